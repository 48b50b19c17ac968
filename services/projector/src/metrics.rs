//! The projector's metrics: messages folded, and how far each stream's
//! consumer is behind, by stream.

use std::collections::BTreeMap;

use async_nats::jetstream::Message;
use shoal_metrics::{Counter, Family, Gauge, Registry, StreamLabels};

use crate::settle::Failure;
use crate::{Projector, Source};

/// The projector's metric families.
#[derive(Default)]
pub(crate) struct ProjectorMetrics {
    folded: Family<StreamLabels, Counter>,
    lag: Family<StreamLabels, Gauge>,
}

impl ProjectorMetrics {
    /// The families, registered in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "shoal_projector_folded",
            "Messages folded into the buckets, by the stream they came from",
            metrics.folded.clone(),
        );
        registry.register(
            "shoal_projector_lag_messages",
            "Messages of a stream not yet delivered to the projector, at its last batch",
            metrics.lag.clone(),
        );
        metrics
    }
}

fn labels(stream: &str) -> StreamLabels {
    StreamLabels {
        stream: stream.to_string(),
    }
}

impl Projector {
    /// Counts the messages of a batch that were folded (not handed back),
    /// once per stream rather than per message.
    pub(crate) fn count_folded(&self, messages: &[(Source, Message)], failed: &[Option<Failure>]) {
        let mut folded: BTreeMap<Source, u64> = BTreeMap::new();
        for ((source, _), failed) in messages.iter().zip(failed) {
            if failed.is_none() {
                *folded.entry(*source).or_default() += 1;
            }
        }
        for (source, count) in folded {
            let stream = self.stream_name(source);
            self.metrics
                .folded
                .get_or_create(&labels(&stream))
                .inc_by(count);
        }
    }

    /// Notes that `pending` messages of `stream` were left after a batch.
    pub(crate) fn note_lag(&self, stream: &str, pending: u64) {
        let pending = i64::try_from(pending).unwrap_or(i64::MAX);
        self.metrics.lag.get_or_create(&labels(stream)).set(pending);
    }
}
