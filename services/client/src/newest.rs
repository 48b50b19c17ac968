//! The records changed last, newest first, a page at a time. A page is read
//! from the end of the bucket's stream, in growing windows, so that it costs
//! about its own size and not the bucket's: listing the last 100 jobs of a
//! group of 50,000 reads a few hundred messages, not 50,000.

use std::collections::HashMap;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::records::{RecordError, RecordStore};

/// One page of records, the one changed last first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<R> {
    /// The records with the revision of their last change, newest first.
    pub records: Vec<(u64, R)>,
    /// The `before` that reads the next page, if there is one.
    pub next_before: Option<u64>,
}

/// The first window read back from the end of the stream, per record asked for.
const WINDOW_PER_RECORD: u64 = 4;

/// How much larger each window is than the last when it held too few records.
const WINDOW_GROWTH: u64 = 4;

/// Longest a page may take to read.
const PAGE_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

impl<R: DeserializeOwned> RecordStore<R> {
    /// At most `limit` records under the keys matching `filter` whose last
    /// change came before revision `before` (all, without it), the newest
    /// change first.
    pub async fn newest(
        &self,
        filter: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<R>, RecordError> {
        let last = self
            .stream()
            .get_info()
            .await
            .map_err(|err| RecordError::read(filter, err))?
            .state
            .last_sequence;
        let end = before.map_or(last, |before| before.saturating_sub(1).min(last));
        let limit = limit.max(1);
        // One more than asked for tells whether there is a next page.
        let wanted = limit + 1;
        let mut window = (wanted as u64).saturating_mul(WINDOW_PER_RECORD).max(256);
        loop {
            let start = end.saturating_sub(window.saturating_sub(1)).max(1);
            let mut page: Vec<(u64, R)> = self
                .latest_since(filter, start)
                .await?
                .into_values()
                .filter(|(revision, _)| *revision <= end)
                .filter_map(|(revision, record)| record.map(|record| (revision, record)))
                .collect();
            if page.len() >= wanted || start == 1 {
                page.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
                let more = page.len() > limit;
                page.truncate(limit);
                let next_before = more
                    .then(|| page.last().map(|(revision, _)| *revision))
                    .flatten();
                return Ok(Page {
                    records: page,
                    next_before,
                });
            }
            window = window.saturating_mul(WINDOW_GROWTH);
        }
    }

    /// The last change of each key matching `filter` from stream sequence
    /// `start` to the end, with its revision (a deleted key: none).
    async fn latest_since(
        &self,
        filter: &str,
        start: u64,
    ) -> Result<HashMap<String, (u64, Option<R>)>, RecordError> {
        let failed = |err: &dyn std::fmt::Display| RecordError::read(filter, err.to_string());
        let prefix = self.prefix().to_string();
        let config = OrderedConfig {
            filter_subject: format!("{prefix}{filter}"),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        };
        let mut consumer = self
            .stream()
            .create_consumer(config)
            .await
            .map_err(|err| failed(&err))?;
        let mut remaining = consumer
            .info()
            .await
            .map_err(|err| failed(&err))?
            .num_pending;
        let mut latest = HashMap::new();
        if remaining == 0 {
            return Ok(latest);
        }
        let mut messages = consumer.messages().await.map_err(|err| failed(&err))?;
        let deadline = tokio::time::Instant::now() + PAGE_BOUND;
        while remaining > 0 {
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, messages.next()).await else {
                return Err(failed(&"the page did not come within 30s"));
            };
            let message = message.map_err(|err| failed(&err))?;
            let info = message.info().map_err(|err| failed(&err))?;
            remaining = info.pending;
            let revision = info.stream_sequence;
            let Some(key) = message.subject.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let deleted = message
                .headers
                .as_ref()
                .is_some_and(|headers| headers.get("KV-Operation").is_some());
            let record = match deleted {
                true => None,
                false => serde_json::from_slice(&message.payload).ok(),
            };
            latest.insert(key.to_string(), (revision, record));
        }
        Ok(latest)
    }
}
