//! Jobs after they were submitted: found by id, read, waited for, cancelled
//! (through the registry), retried under a new id, and listed.

use std::time::{Duration, Instant};

use shoal_protocol::api::ApiOp;
use shoal_protocol::key::Key;
use shoal_protocol::registry::CancelResult;
use shoal_protocol::token::validate_token;
use shoal_protocol::{JobRecord, JobSpec, JobState};

use crate::client::{Client, Target};
use crate::error::ClientError;
use crate::records::RecordStore;
use crate::streams::find_key_by_id;
use crate::submit::Submitted;

/// How often [`Client::wait`] reads the record.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// Most retries of one job (`<id>-retry1` .. `<id>-retry100`).
const MAX_RETRIES: u32 = 100;

impl Client {
    /// The key of job `id`: in `group` when given, else looked up in every
    /// group the login may read.
    pub async fn find(&self, id: &str, group: Option<&str>) -> Result<Key, ClientError> {
        validate_token("id", id)?;
        if let Some(group) = group {
            validate_token("group", group)?;
            return Ok(Key::new(group, id));
        }
        let bucket = self.layout().jobs_bucket();
        let found = find_key_by_id(self.jetstream(), &bucket, id)
            .await
            .map_err(|err| ClientError::nats(format!("cannot look job {id} up"), err))?;
        let key = found.ok_or_else(|| ClientError::NoSuchJob(id.to_string()))?;
        Key::parse(&key).map_err(ClientError::from)
    }

    /// The record of the job under `key`, if any.
    pub async fn get(&self, key: &Key) -> Result<Option<JobRecord>, ClientError> {
        Ok(self.job_records().await?.get(&key.to_string()).await?)
    }

    /// The record of the job under `key` with the revision of its last
    /// change, if any.
    pub async fn get_with_revision(
        &self,
        key: &Key,
    ) -> Result<Option<(u64, JobRecord)>, ClientError> {
        let found = self
            .job_records()
            .await?
            .get_with_revision(&key.to_string())
            .await?;
        Ok(found.and_then(|(revision, record)| record.map(|record| (revision, record))))
    }

    /// The records of the jobs whose keys match `filter` (`acme.*`, `>`).
    pub async fn list(&self, filter: &str) -> Result<Vec<JobRecord>, ClientError> {
        Ok(self.job_records().await?.read_all(filter).await?)
    }

    /// At most `limit` job records under `filter` whose last change came
    /// before revision `before`, the newest change first.
    pub async fn newest(
        &self,
        filter: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<crate::newest::Page<JobRecord>, ClientError> {
        Ok(self
            .job_records()
            .await?
            .newest(filter, limit, before)
            .await?)
    }

    /// A page of `group`'s jobs (every group's, without it), the one changed
    /// last first, read by the registry: what a login that may not open a
    /// consumer of the bucket reads.
    pub async fn job_page(
        &self,
        group: Option<&str>,
        limit: usize,
        before: Option<u64>,
    ) -> Result<shoal_protocol::registry::JobPage, ClientError> {
        let request = shoal_protocol::registry::ListJobs {
            group: None,
            limit: Some(limit),
            before,
        };
        let op = ApiOp::JobList(group.map(str::to_string));
        self.request(&op, &request).await
    }

    /// The record of the job under `key` once it has ended, waited for at
    /// most `within` (a job not yet recorded is waited for too).
    pub async fn wait(&self, key: &Key, within: Duration) -> Result<JobRecord, ClientError> {
        let deadline = Instant::now() + within;
        let records = self.job_records().await?;
        loop {
            // A read of the record itself (a direct get of its key), which a
            // user's permissions can limit to its group.
            if let Some(record) = records.get(&key.to_string()).await? {
                if record.done {
                    return Ok(record);
                }
            }
            if Instant::now() + WAIT_POLL > deadline {
                return Err(ClientError::TimedOut {
                    id: key.id().to_string(),
                    within: shoal_protocol::Duration(within),
                });
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Cancels the job under `key` wherever it is, through the registry.
    pub async fn cancel(&self, key: &Key) -> Result<CancelResult, ClientError> {
        self.request(&ApiOp::JobCancel(key.clone()), &()).await
    }

    /// Submits the spec of the ended job under `key` again, as
    /// `<id>-retry<N>` (the first free N), labelled `retry_of=<id>`.
    pub async fn retry(&self, key: &Key) -> Result<Submitted, ClientError> {
        let record = self
            .get(key)
            .await?
            .ok_or_else(|| ClientError::NoSuchJob(key.id().to_string()))?;
        if !record.done {
            return Err(ClientError::JobState {
                id: record.id.clone(),
                reason: format!(
                    "is {}: only an ended job can be retried",
                    record.state.map_or("unknown", JobState::as_str)
                ),
            });
        }
        let mut spec = self.submission_of(&record).await?;
        let mut new_id = None;
        for attempt in 1..=MAX_RETRIES {
            let candidate = format!("{}-retry{attempt}", record.id);
            if self
                .get(&Key::new(&record.group, &candidate))
                .await?
                .is_none()
            {
                new_id = Some(candidate);
                break;
            }
        }
        let new_id = new_id.ok_or_else(|| ClientError::JobState {
            id: record.id.clone(),
            reason: "was retried too often".to_string(),
        })?;
        spec.id = Some(new_id);
        spec.labels.insert("retry_of".into(), record.id.clone());
        let target = Target::new(&record.group, &record.queue)?.with_priority(record.priority);
        self.submit(&target, &spec).await
    }

    /// The job spec a record was submitted with, from the jobs stream.
    async fn submission_of(&self, record: &JobRecord) -> Result<JobSpec, ClientError> {
        let gone = |reason: &str| ClientError::JobState {
            id: record.id.clone(),
            reason: reason.to_string(),
        };
        let sequence = record
            .stream_sequence
            .ok_or_else(|| gone("has no submission to retry"))?;
        let stream = self
            .jetstream()
            .get_stream(self.layout().jobs_stream())
            .await
            .map_err(|err| ClientError::nats("cannot open the jobs stream", err))?;
        let message = stream.get_raw_message(sequence).await.map_err(|_| {
            gone("cannot be retried: its submission is no longer in the jobs stream")
        })?;
        JobSpec::from_slice(&message.payload)
            .map_err(|_| gone("cannot be retried: its submission is not a valid job"))
    }

    async fn job_records(&self) -> Result<RecordStore<JobRecord>, ClientError> {
        Ok(RecordStore::new(self.jobs_bucket().await?))
    }
}
