//! Records in a KV bucket: read one, read all, and fold a change into one
//! with compare-and-set, so that any number of writers (projectors, the
//! registry) can write the same keys without losing an update.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::kv;
use serde::de::DeserializeOwned;
use serde::Serialize;

use thiserror::Error;

/// Why a record could not be read or written.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The records under a key or filter could not be read.
    #[error("cannot read record {key}")]
    Read {
        /// The key or filter.
        key: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A record could not be written.
    #[error("cannot write record {key}")]
    Write {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Other writers kept changing the record faster than this one could write it.
    #[error("record {0} kept changing under other writers")]
    TooManyConflicts(String),
}

/// An error of any kind, kept as the source of another.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl RecordError {
    pub(crate) fn read(key: &str, source: impl Into<BoxError>) -> Self {
        Self::Read {
            key: key.to_string(),
            source: source.into(),
        }
    }

    fn write(key: &str, source: impl Into<BoxError>) -> Self {
        Self::Write {
            key: key.to_string(),
            source: source.into(),
        }
    }
}

/// Most writes tried for one key before the batch is handed back for redelivery.
const MAX_CONFLICTS: usize = 50;

/// Longest a read of all records may take.
const READ_ALL_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// Keys remembered with their revision; a cache only, dropped when it grows
/// too big, so that a projector's memory stays flat however deep the backlog.
const MAX_CACHED_KEYS: usize = 10_000;

/// Whether a write lost a race with another writer. A clustered server can
/// report it as a plain "wrong last sequence" error rather than by its code.
fn is_conflict(err: &dyn std::fmt::Display) -> bool {
    err.to_string().contains("wrong last sequence")
}

/// Which records expire, and when: those `ended` says are, `after` their
/// last write (whole seconds, one at least).
struct Expiry<R> {
    after: std::time::Duration,
    ended: fn(&R) -> bool,
}

/// One bucket of records of type `R`, with the last revision seen of each key.
pub struct RecordStore<R> {
    store: kv::Store,
    cache: Arc<Mutex<HashMap<String, (u64, R)>>>,
    expiry: Option<Expiry<R>>,
    /// Records that will not change again, and are not worth remembering.
    settled: Option<fn(&R) -> bool>,
}

impl<R> Clone for RecordStore<R> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            cache: self.cache.clone(),
            expiry: self.expiry,
            settled: self.settled,
        }
    }
}

impl<R> Clone for Expiry<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Expiry<R> {}

impl<R> RecordStore<R> {
    /// The bucket's stream.
    pub(crate) fn stream(&self) -> &async_nats::jetstream::stream::Stream {
        &self.store.stream
    }

    /// The subject prefix of the bucket's keys.
    pub(crate) fn prefix(&self) -> &str {
        &self.store.prefix
    }
}

impl<R: Serialize + DeserializeOwned + Clone + PartialEq> RecordStore<R> {
    /// A store over `store`.
    pub fn new(store: kv::Store) -> Self {
        Self {
            store,
            cache: Arc::new(Mutex::new(HashMap::new())),
            expiry: None,
            settled: None,
        }
    }

    /// This store, writing the records `ended` says are with a TTL of
    /// `retention` (rounded up to whole seconds); zero keeps them for ever.
    pub fn expiring(mut self, retention: std::time::Duration, ended: fn(&R) -> bool) -> Self {
        self.expiry = (!retention.is_zero()).then(|| Expiry {
            after: std::time::Duration::from_secs(retention.as_secs_f64().ceil() as u64),
            ended,
        });
        self
    }

    /// How long `record` lives once written, if it expires.
    fn ttl_of(&self, record: &R) -> Option<std::time::Duration> {
        self.expiry
            .filter(|expiry| (expiry.ended)(record))
            .map(|expiry| expiry.after)
    }

    fn cached(&self, key: &str) -> Option<(u64, R)> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    fn remember(&self, key: &str, revision: u64, record: R) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED_KEYS {
                cache.clear();
            }
            cache.insert(key.to_string(), (revision, record));
        }
    }

    fn forget(&self, key: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key);
        }
    }

    /// The revision and record under `key`; a deleted or unreadable value
    /// counts as no record, but its revision is kept for the next write.
    async fn read(&self, key: &str) -> Result<Option<(u64, Option<R>)>, RecordError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|err| RecordError::read(key, err))?;
        Ok(entry.map(|entry| {
            let record = match entry.operation {
                kv::Operation::Put => serde_json::from_slice(&entry.value).ok(),
                _ => None,
            };
            (entry.revision, record)
        }))
    }

    /// Every record under the keys matching `filter` (`>` for all), as of now.
    pub async fn read_all(&self, filter: &str) -> Result<Vec<R>, RecordError> {
        use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
        use futures_util::StreamExt;
        let config = OrderedConfig {
            filter_subject: format!("{}{filter}", self.store.prefix),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        };
        let mut consumer = self
            .store
            .stream
            .create_consumer(config)
            .await
            .map_err(|err| RecordError::read(filter, err))?;
        let mut remaining = consumer
            .info()
            .await
            .map_err(|err| RecordError::read(filter, err))?
            .num_pending;
        let mut records = Vec::new();
        if remaining == 0 {
            return Ok(records);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|err| RecordError::read(filter, err))?;
        // Every read has a bound: messages counted may be purged before they come.
        let deadline = tokio::time::Instant::now() + READ_ALL_BOUND;
        while remaining > 0 {
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, messages.next()).await else {
                return Err(RecordError::read(
                    filter,
                    "the records did not all come within 30s",
                ));
            };
            let message = message.map_err(|err| RecordError::read(filter, err))?;
            remaining = message.info().map(|info| info.pending).unwrap_or(0);
            let deleted = message
                .headers
                .as_ref()
                .is_some_and(|headers| headers.get("KV-Operation").is_some());
            if !deleted {
                if let Ok(record) = serde_json::from_slice(&message.payload) {
                    records.push(record);
                }
            }
        }
        Ok(records)
    }

    /// The revision under `key` and its record (none if deleted or
    /// unreadable), if the key was ever written.
    pub async fn get_with_revision(
        &self,
        key: &str,
    ) -> Result<Option<(u64, Option<R>)>, RecordError> {
        self.read(key).await
    }

    /// The record under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<R>, RecordError> {
        Ok(self.read(key).await?.and_then(|(_, record)| record))
    }

    /// Folds `change` into the record under `key` and writes it if it changed
    /// and `worth_writing` agrees; retries from a fresh read on a conflict.
    pub async fn update<F, W>(
        &self,
        key: &str,
        change: F,
        worth_writing: W,
    ) -> Result<R, RecordError>
    where
        F: Fn(Option<R>) -> R,
        W: Fn(Option<&R>, &R) -> bool,
    {
        let mut current = match self.cached(key) {
            Some((revision, record)) => Some((revision, Some(record))),
            None => self.read(key).await?,
        };
        for _ in 0..MAX_CONFLICTS {
            let (revision, old) = match &current {
                Some((revision, record)) => (Some(*revision), record.clone()),
                None => (None, None),
            };
            let new = change(old.clone());
            if old.as_ref() == Some(&new) || !worth_writing(old.as_ref(), &new) {
                return Ok(new);
            }
            let body = serde_json::to_vec(&new).map_err(|err| RecordError::write(key, err))?;
            let ttl = self.ttl_of(&new);
            let written = match revision {
                Some(revision) => match ttl {
                    Some(ttl) => {
                        self.store
                            .update_with_ttl(key, body.into(), revision, ttl)
                            .await
                    }
                    None => self.store.update(key, body.into(), revision).await,
                }
                .map_err(|err| {
                    (matches!(err.kind(), kv::UpdateErrorKind::WrongLastRevision)
                        || is_conflict(&err))
                    .then_some(())
                    .ok_or_else(|| RecordError::write(key, err))
                }),
                None => match ttl {
                    Some(ttl) => self.store.create_with_ttl(key, body.into(), ttl).await,
                    None => self.store.create(key, body.into()).await,
                }
                .map_err(|err| {
                    (matches!(err.kind(), kv::CreateErrorKind::AlreadyExists) || is_conflict(&err))
                        .then_some(())
                        .ok_or_else(|| RecordError::write(key, err))
                }),
            };
            match written {
                Ok(_) if self.settled.is_some_and(|settled| settled(&new)) => {
                    self.forget(key);
                    return Ok(new);
                }
                Ok(new_revision) => {
                    self.remember(key, new_revision, new.clone());
                    return Ok(new);
                }
                Err(Ok(())) => {
                    self.forget(key);
                    current = self.read(key).await?;
                }
                Err(Err(err)) => {
                    self.forget(key);
                    return Err(err);
                }
            }
        }
        Err(RecordError::TooManyConflicts(key.to_string()))
    }
}

impl RecordStore<shoal_protocol::JobRecord> {
    /// The job records of `layout`: an ended job's record expires after the
    /// layout's job retention.
    pub fn of_jobs(store: kv::Store, layout: &crate::streams::Layout) -> Self {
        let mut store = Self::new(store).expiring(layout.job_retention, |record| record.done);
        // A job that ended is written again only by a duplicate or a replay.
        store.settled = Some(|record: &shoal_protocol::JobRecord| record.done);
        store
    }
}
