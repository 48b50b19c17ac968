//! The quota of waiting jobs per group: a submission that finds its group
//! with that many jobs waiting already is rejected (recorded `dead`, with
//! the reason, and copied to the dead letters), so that one group's flood
//! cannot take the fleet's queues and the projector's time from the others.
//!
//! Waiting jobs are those the group's queue and route consumers have not
//! delivered yet (`num_pending`, what KEDA reads), counted once a second by
//! a task of its own: the quota may be passed by what one second brings;
//! and the jobs that wait for their fairness key's turn (on a subject no
//! consumer reads), tallied as this projector folds their records since
//! it started.
//! A group past its quota has at least that many older jobs before the rejected ones, so
//! the rejection is recorded before any worker reaches them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use shoal_protocol::names::JobConsumer;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often the waiting jobs are counted.
const COUNT_EVERY: Duration = Duration::from_secs(1);

/// Longest a count may take before it is given up until the next one.
const COUNT_WITHIN: Duration = Duration::from_secs(5);

/// The quota, and the last count of each group's waiting jobs (kept by a
/// task of its own, so that folding never waits for a count).
pub(crate) struct Quota {
    max: u64,
    counts: Arc<RwLock<BTreeMap<String, u64>>>,
    turns: std::sync::Mutex<BTreeMap<String, i64>>,
}

impl Quota {
    /// At most `max` waiting jobs per group (0: no quota) in the jobs stream
    /// `stream`, counted until `shutdown`.
    pub(crate) fn start(
        max: u64,
        js: jetstream::Context,
        stream: String,
        shutdown: CancellationToken,
    ) -> Self {
        let counts = Arc::new(RwLock::new(BTreeMap::new()));
        if max > 0 {
            tokio::spawn(keep_counting(js, stream, counts.clone(), shutdown));
        }
        Self {
            max,
            counts,
            turns: Default::default(),
        }
    }

    /// Why a new submission of `group` is refused, if it is.
    pub(crate) fn refusal(&self, group: &str) -> Option<String> {
        if self.max == 0 {
            return None;
        }
        let pending = self
            .counts
            .read()
            .ok()
            .and_then(|counts| counts.get(group).copied())
            .unwrap_or(0);
        let awaiting_turns = self
            .turns
            .lock()
            .ok()
            .and_then(|turns| turns.get(group).copied())
            .unwrap_or(0);
        let waiting = pending + awaiting_turns.max(0) as u64;
        (waiting >= self.max).then(|| {
            format!(
                "group {group} has {waiting} jobs waiting, its quota is {}; submit it again later, with another id",
                self.max
            )
        })
    }

    /// Notes a job record of `group` written: whether it waited for its
    /// fairness key's turn before, and whether it does now.
    pub(crate) fn note_turn(&self, group: &str, was: bool, is: bool) {
        if was == is || self.max == 0 {
            return;
        }
        if let Ok(mut turns) = self.turns.lock() {
            let count = turns.entry(group.to_string()).or_default();
            *count += if is { 1 } else { -1 };
            if *count <= 0 {
                turns.remove(group);
            }
        }
    }
}

async fn keep_counting(
    js: jetstream::Context,
    stream: String,
    counts: Arc<RwLock<BTreeMap<String, u64>>>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(COUNT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match tokio::time::timeout(COUNT_WITHIN, count(&js, &stream)).await {
            Ok(Ok(counted)) => {
                if let Ok(mut shared) = counts.write() {
                    *shared = counted;
                }
            }
            Ok(Err(err)) => {
                warn!(error = %err, "cannot count the waiting jobs; the quota uses the last count")
            }
            Err(_) => {
                warn!("counting the waiting jobs took too long; the quota uses the last count")
            }
        }
    }
}

/// The jobs each group's consumers have yet to deliver.
async fn count(
    js: &jetstream::Context,
    stream: &str,
) -> Result<BTreeMap<String, u64>, async_nats::Error> {
    let stream = js.get_stream_no_info(stream).await?;
    let mut consumers = stream.consumers();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(info) = consumers.next().await {
        let info = info?;
        if let Some(consumer) = JobConsumer::parse(&info.name) {
            *counts.entry(consumer.group).or_default() += info.num_pending;
        }
    }
    Ok(counts)
}
