//! Concurrency slots and rate-limit starts in `shoal_limits`, taken,
//! renewed and given back with compare-and-set on the key's record, so that
//! any number of workers share one limit and no slot is granted twice.

use async_nats::jetstream::kv;
use shoal_protocol::limits::{Full, Holder, LimitKind, LimitRecord};
use shoal_protocol::Timestamp;

use crate::records::{BoxError, RecordError};

/// Most writes tried for one key before giving up.
const MAX_CONFLICTS: usize = 100;

/// The limits of one installation.
#[derive(Clone)]
pub struct Limits {
    store: kv::Store,
}

impl Limits {
    /// The limits kept in `store` (`shoal_limits`).
    pub fn new(store: kv::Store) -> Self {
        Self { store }
    }

    /// Takes a slot of `key` for `holder` under the job's limit `own`.
    pub async fn acquire(
        &self,
        group: &str,
        key: &str,
        holder: Holder,
        own: u32,
    ) -> Result<Result<(), Full>, RecordError> {
        let record_key = LimitKind::Concurrency.record_key(group, key);
        self.change(&record_key, |record| {
            record.acquire(holder.clone(), own, Timestamp::now())
        })
        .await
    }

    /// Moves the lease of `job_id`'s slot of `key` to `until`; `false` when
    /// it holds none any more.
    pub async fn renew(
        &self,
        group: &str,
        key: &str,
        job_id: &str,
        until: Timestamp,
    ) -> Result<bool, RecordError> {
        let record_key = LimitKind::Concurrency.record_key(group, key);
        let renewed = self
            .change(&record_key, |record| {
                if record.renew(job_id, until) {
                    Ok(())
                } else {
                    Err(())
                }
            })
            .await?;
        Ok(renewed.is_ok())
    }

    /// Gives back `job_id`'s slot of `key`.
    pub async fn release(&self, group: &str, key: &str, job_id: &str) -> Result<(), RecordError> {
        let record_key = LimitKind::Concurrency.record_key(group, key);
        self.change(&record_key, |record| {
            if record.release(job_id) {
                Ok(())
            } else {
                Err(())
            }
        })
        .await
        .map(drop)
    }

    /// Counts a start of `job_id` in the window of `key`, if it has room.
    pub async fn start(
        &self,
        group: &str,
        key: &str,
        job_id: &str,
        (limit, per): (u32, std::time::Duration),
    ) -> Result<Result<(), Full>, RecordError> {
        let record_key = LimitKind::Rate.record_key(group, key);
        self.change(&record_key, |record| {
            record.start(job_id, limit, per, Timestamp::now())
        })
        .await
    }

    /// Sets the concurrency limit of `key` over the jobs' own (`None`: theirs again).
    pub async fn set_limit(
        &self,
        group: &str,
        key: &str,
        limit: Option<u32>,
    ) -> Result<LimitRecord, RecordError> {
        let record_key = LimitKind::Concurrency.record_key(group, key);
        let _: Result<(), ()> = self
            .change(&record_key, |record| {
                record.limit = limit;
                Ok(())
            })
            .await?;
        Ok(self
            .read(&record_key)
            .await?
            .map(|(_, record)| record)
            .unwrap_or_default())
    }

    /// The record of `key`, if any.
    pub async fn get(
        &self,
        group: &str,
        kind: LimitKind,
        key: &str,
    ) -> Result<Option<LimitRecord>, RecordError> {
        let record_key = kind.record_key(group, key);
        Ok(self.read(&record_key).await?.map(|(_, record)| record))
    }

    /// Applies `change` to the record under `key` and writes it when the
    /// change says so (`Ok`); on a conflict, reads it again and retries.
    async fn change<T, E>(
        &self,
        key: &str,
        change: impl Fn(&mut LimitRecord) -> Result<T, E>,
    ) -> Result<Result<T, E>, RecordError> {
        for tries in 0..MAX_CONFLICTS {
            if tries > 0 {
                tokio::time::sleep(pause_after(tries)).await;
            }
            let current = self.read(key).await?;
            let mut record = current
                .as_ref()
                .map(|(_, record)| record.clone())
                .unwrap_or_default();
            let outcome = match change(&mut record) {
                Ok(outcome) => outcome,
                Err(refused) => return Ok(Err(refused)),
            };
            let body = serde_json::to_vec(&record).map_err(|err| write_error(key, err))?;
            let written = match &current {
                Some((revision, _)) => self
                    .store
                    .update(key, body.into(), *revision)
                    .await
                    .map_err(|err| {
                        (err.kind() == kv::UpdateErrorKind::WrongLastRevision || is_conflict(&err))
                            .then_some(())
                            .ok_or_else(|| write_error(key, err))
                    }),
                None => self.store.create(key, body.into()).await.map_err(|err| {
                    (err.kind() == kv::CreateErrorKind::AlreadyExists || is_conflict(&err))
                        .then_some(())
                        .ok_or_else(|| write_error(key, err))
                }),
            };
            match written {
                Ok(_) => return Ok(Ok(outcome)),
                Err(Ok(())) => continue,
                Err(Err(err)) => return Err(err),
            }
        }
        Err(RecordError::TooManyConflicts(key.to_string()))
    }

    /// The revision and record under `key`, if it holds one.
    async fn read(&self, key: &str) -> Result<Option<(u64, LimitRecord)>, RecordError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|err| RecordError::read(key, err))?;
        let Some(entry) = entry.filter(|entry| entry.operation == kv::Operation::Put) else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&entry.value).unwrap_or_default();
        Ok(Some((entry.revision, record)))
    }
}

/// A pause after `tries` conflicts: a random part of a window that doubles
/// up to 64 ms, so that writers of one key stop colliding in step.
fn pause_after(tries: usize) -> std::time::Duration {
    let window = 1u64 << tries.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::from(since.subsec_nanos()));
    std::time::Duration::from_micros((nanos / 1000) % (window * 1000))
}

fn write_error(key: &str, source: impl Into<BoxError>) -> RecordError {
    RecordError::Write {
        key: key.to_string(),
        source: source.into(),
    }
}

/// Whether a write lost a race with another writer (a clustered server
/// may say so only in words).
fn is_conflict(err: &dyn std::fmt::Display) -> bool {
    err.to_string().contains("wrong last sequence")
}
