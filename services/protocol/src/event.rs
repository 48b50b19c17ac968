//! Events: what workers (and, for unreadable input, any service) report.
//! They are the truth; the KV buckets are folded from them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::timestamp::Timestamp;
use crate::token::{validate_token, InvalidToken};

/// Longest tail of stdout or stderr kept in an outcome event, in bytes.
pub const MAX_OUTPUT_TAIL_BYTES: usize = 4096;

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobEventType {
    /// A worker started an attempt.
    Started,
    /// The attempt ended well: the job is done.
    Succeeded,
    /// The attempt failed: exit code or error text say why.
    Failed,
    /// The attempt ran past its timeout and was stopped.
    TimedOut,
    /// The submission could not be read or validated; it never runs and ends `dead`.
    Rejected,
    /// The worker running the attempt stopped sending heartbeats.
    Lost,
    /// The attempt failed or timed out; another follows after `retry_in`.
    Retrying,
    /// Someone cancelled the job; it does not run (any more).
    Cancelled,
    /// The job reported how far it got (a `::shoal progress` line).
    Progress,
    /// The reconciler found its submission gone from the stream before it ended.
    Missing,
    /// JetStream gave the job up after `max_deliver` deliveries; it is in the dead-letter stream.
    Dead,
    /// No live worker may take the job (by its tags): it waits, and `error_text` says for what.
    Waiting,
    /// A worker held the job back before its attempt (its parents, a
    /// concurrency slot or its rate): `error_text` says which, `until` until when.
    Held,
    /// The registry let a held job go to the workers again.
    Released,
    /// A parent ended without success: the job never runs (`error_text` says which).
    Skipped,
}

/// How far a job says it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Percent done, 0 to 100.
    pub percent: u8,
    /// What it is doing.
    #[serde(default)]
    pub message: String,
    /// When it said so.
    pub at: Timestamp,
}

/// Largest result a job may leave, in bytes.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// One step in the life of a job, on `shoal.evt.job.<group>.<job_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "JobEvent")]
pub struct JobEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: JobEventType,
    /// The job's id.
    pub job_id: String,
    /// The job's group.
    pub group: String,
    /// The job's queue.
    pub queue: String,
    /// Which attempt this is, from 1 (the delivery count of the submission).
    #[serde(default)]
    pub attempt: u32,
    /// When it happened.
    pub at: Timestamp,
    /// The worker that ran the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// When the attempt started (on outcome events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// The process's exit code, when a process ran and exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the attempt failed or the submission was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_text: Option<String>,
    /// The last bytes of stdout (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_tail: Option<String>,
    /// The last bytes of stderr (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// The delay before the next attempt (on `retrying`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in: Option<Duration>,
    /// How far it got (on `progress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The small result it left in `$SHOAL_RESULT_FILE` (on `succeeded`):
    /// that JSON, or its text as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<crate::JobResult>,
    /// The sequence of the submission the event is about, in the jobs stream
    /// (on `rejected`: of the submission that could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sequence: Option<u64>,
    /// The W3C trace context of the attempt (`00-<trace>-<span>-<flags>`),
    /// continuing the submission's `traceparent`; also its header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Until when a held job waits (on `held`, for a rate limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// What a held job waits for (on `held`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<crate::hold::HoldKind>,
    /// The parents a held job waits for (on `held` by its parents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_on: Vec<String>,
}

impl JobEvent {
    /// An event of `kind` for `job_id`, with nothing but the identity filled in.
    pub fn new(
        kind: JobEventType,
        group: &str,
        queue: &str,
        job_id: &str,
        attempt: u32,
        at: Timestamp,
    ) -> Self {
        Self {
            kind,
            job_id: job_id.to_string(),
            group: group.to_string(),
            queue: queue.to_string(),
            attempt,
            at,
            worker_id: None,
            started_at: None,
            exit_code: None,
            error_text: None,
            stdout_tail: None,
            stderr_tail: None,
            retry_in: None,
            progress: None,
            result: None,
            stream_sequence: None,
            traceparent: None,
            until: None,
            held_by: None,
            waiting_on: Vec::new(),
        }
    }

    /// Checks the identity tokens of the event.
    pub fn validate(&self) -> Result<(), InvalidToken> {
        validate_token("job_id", &self.job_id)?;
        validate_token("group", &self.group)?;
        validate_token("queue", &self.queue)?;
        if let Some(worker_id) = &self.worker_id {
            validate_token("worker_id", worker_id)?;
        }
        Ok(())
    }
}

/// What happened to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerEventType {
    /// The worker started and announces itself.
    Registered,
    /// The worker stopped taking jobs and waits for its running ones.
    Draining,
    /// The worker left cleanly.
    Deregistered,
    /// An admin created the worker's identity through the registry.
    Created,
    /// An admin changed the worker's identity.
    Updated,
    /// An admin deleted the worker: it stops taking jobs.
    Deleted,
    /// Its heartbeats stopped; its running jobs will run again elsewhere.
    Lost,
}

impl WorkerEventType {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Draining => "draining",
            Self::Deregistered => "deregistered",
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Lost => "lost",
        }
    }
}

/// A worker identity as an admin sets it (on `created` and `updated`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityChange {
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The NATS user it connects as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Whether it serves `_system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<bool>,
    /// The resource it was declared by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Box<crate::resource::Resource>>,
}

/// What a worker is: sent when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerInfo {
    /// A human name for the worker.
    pub name: String,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// Its tags: it takes jobs whose tags include all of them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free metadata.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether it serves the `_system` group.
    #[serde(default)]
    pub system: bool,
    /// How many jobs it runs at once.
    pub concurrency: u32,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The Shoal version it runs.
    pub version: String,
    /// How often it sends heartbeats.
    pub heartbeat_interval: Duration,
}

/// One step in the life of a worker, on `shoal.evt.worker.<group>.<worker_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "WorkerEvent")]
pub struct WorkerEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: WorkerEventType,
    /// The worker's id.
    pub worker_id: String,
    /// The worker's group.
    pub group: String,
    /// When it happened.
    pub at: Timestamp,
    /// What the worker is (on `registered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<WorkerInfo>,
    /// What an admin set (on `created` and `updated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityChange>,
    /// Jobs it ran so far (on `draining` and `deregistered`).
    #[serde(default)]
    pub jobs_run: u64,
    /// Jobs of those that did not succeed.
    #[serde(default)]
    pub jobs_failed: u64,
}

impl WorkerEvent {
    /// An event about a worker that is not the worker's own report (an admin's
    /// change, a liveness verdict): no info, no counters, happening now.
    pub fn about(kind: WorkerEventType, group: &str, worker_id: &str) -> Self {
        Self {
            kind,
            worker_id: worker_id.to_string(),
            group: group.to_string(),
            at: Timestamp::now(),
            info: None,
            identity: None,
            jobs_run: 0,
            jobs_failed: 0,
        }
    }

    /// Checks the identity tokens of the event, and that what a worker says
    /// it serves is made of tokens and bounded.
    pub fn validate(&self) -> Result<(), InvalidWorkerEvent> {
        validate_token("worker_id", &self.worker_id)?;
        validate_token("group", &self.group)?;
        if let Some(info) = &self.info {
            for (field, values, max) in [
                ("info.queues", &info.queues, MAX_WORKER_QUEUES),
                ("info.tags", &info.tags, MAX_WORKER_TAGS),
            ] {
                if values.len() > max {
                    return Err(InvalidWorkerEvent::TooMany {
                        field,
                        count: values.len(),
                        max,
                    });
                }
                for value in values {
                    validate_token(field, value)?;
                }
            }
        }
        Ok(())
    }
}

/// Most queues one worker may serve.
pub const MAX_WORKER_QUEUES: usize = 64;

/// Most tags one worker may carry.
pub const MAX_WORKER_TAGS: usize = 32;

/// A worker event that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWorkerEvent {
    /// A token is not one.
    #[error(transparent)]
    Token(#[from] InvalidToken),
    /// A list is longer than allowed.
    #[error("{field}: {count} is more than the {max} allowed")]
    TooMany {
        /// The list.
        field: &'static str,
        /// How long it is.
        count: usize,
        /// How long it may be.
        max: usize,
    },
}

/// A worker's sign of life, on `shoal.hb.<group>.<worker_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Heartbeat")]
pub struct Heartbeat {
    /// The worker's id.
    pub worker_id: String,
    /// The worker's group.
    pub group: String,
    /// When it was sent.
    pub at: Timestamp,
    /// How often the worker sends them.
    pub interval: Duration,
    /// Ids of the jobs it is running.
    #[serde(default)]
    pub running: Vec<String>,
    /// Jobs it ran so far.
    #[serde(default)]
    pub jobs_run: u64,
    /// Jobs of those that did not succeed.
    #[serde(default)]
    pub jobs_failed: u64,
}

impl Heartbeat {
    /// Checks the identity tokens of the heartbeat.
    pub fn validate(&self) -> Result<(), InvalidToken> {
        validate_token("worker_id", &self.worker_id)?;
        validate_token("group", &self.group)
    }
}

/// A message that could not be read and belongs to no job, on `shoal.evt.rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "RejectedNotice")]
pub struct RejectedNotice {
    /// The subject the message was published on.
    pub subject: String,
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence in that stream.
    pub sequence: u64,
    /// Why it was rejected.
    pub reason: String,
    /// When it was stored.
    pub at: Timestamp,
}

/// Keeps at most the last `max` bytes of `bytes`, as lossy UTF-8.
pub fn tail_text(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
