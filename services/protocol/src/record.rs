//! Records: the values of the `shoal_jobs` and `shoal_workers` buckets,
//! folded by the projector from submissions, events and heartbeats.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::timestamp::Timestamp;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Delayed: submitted when its time comes.
    Scheduled,
    /// Submitted, waiting for a worker.
    Queued,
    /// Held back: its parents, a concurrency slot or its rate (`waiting_for` says which).
    Waiting,
    /// A worker runs it.
    Running,
    /// It ended well.
    Succeeded,
    /// It ended badly.
    Failed,
    /// It was cancelled.
    Cancelled,
    /// It ran past its timeout.
    TimedOut,
    /// Given up: it kept ending its workers, or its submission could not be read
    /// (poison); a copy with the reason is in the dead-letter stream.
    Dead,
    /// Its worker was lost; it will run again.
    Lost,
    /// An attempt failed; the next one waits for its delay.
    Retrying,
    /// Its submission went missing from the stream before it ended.
    Missing,
    /// Never run: a job it depends on ended without success (`error_text` names it).
    Skipped,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [Self; 13] = [
        Self::Scheduled,
        Self::Queued,
        Self::Waiting,
        Self::Running,
        Self::Lost,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
        Self::Dead,
        Self::Missing,
        Self::Skipped,
    ];

    /// Whether the state is final.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            Self::Scheduled
                | Self::Queued
                | Self::Waiting
                | Self::Running
                | Self::Lost
                | Self::Retrying
        )
    }

    /// The name used on the wire and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Waiting => "waiting",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Dead => "dead",
            Self::Lost => "lost",
            Self::Retrying => "retrying",
            Self::Missing => "missing",
            Self::Skipped => "skipped",
        }
    }
}

/// The state of one job, under `<group>.<job_id>` in `shoal_jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "JobRecord")]
pub struct JobRecord {
    /// The job's id.
    pub id: String,
    /// The job's group.
    pub group: String,
    /// The job's queue.
    pub queue: String,
    /// Where the job is in its life.
    pub state: Option<JobState>,
    /// Whether the state is final.
    pub done: bool,
    /// Whether the job ended in anything but success.
    pub error: bool,
    /// Why it failed, timed out or was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_text: Option<String>,
    /// The attempt the state belongs to.
    pub attempt: u32,
    /// How many attempts were seen.
    pub attempts: u32,
    /// The worker of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// The entrypoint it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// The raw command it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Its extra arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Names of the environment variables it sets (values are never kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_names: Vec<String>,
    /// Its timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Its labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its sequence in the jobs stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sequence: Option<u64>,
    /// When it was submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<Timestamp>,
    /// How urgent it is (from the subject it was submitted on).
    #[serde(default)]
    pub priority: crate::Priority,
    /// When a delayed job is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<Timestamp>,
    /// When the current attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The exit code of its process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The last bytes of its stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_tail: Option<String>,
    /// The last bytes of its stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// When the next attempt is due (while `retrying`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    /// How far it says it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::event::Progress>,
    /// Why a queued or waiting job does not start yet (`waiting for a worker
    /// with tags ...`, `parents a, b`, `concurrency key k (2 of 2 running)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Until when a job held by its rate limit waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_until: Option<Timestamp>,
    /// What it waits for while `waiting` after a worker held it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<crate::hold::HoldKind>,
    /// The parents it waits for, when held by them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_on: Vec<String>,
    /// When it was last held or let go (orders those of one attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Timestamp>,
    /// The jobs it depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// What it does when a parent ends without success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_parent_failure: Option<crate::hold::ParentFailure>,
    /// Its concurrency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::hold::ConcurrencyLimit>,
    /// Its rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<crate::hold::RateLimit>,
    /// The key it takes turns under with the other keys of its queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
    /// The small result it left: that JSON, or its text as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<crate::JobResult>,
    /// The W3C trace id its latest attempt continued (32 hex digits), to
    /// find the job in a tracing backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl JobRecord {
    /// Whether it waits for its fairness key's turn: it has a key, and no
    /// worker was sent it yet.
    pub fn awaits_its_turn(&self) -> bool {
        self.fairness_key.is_some()
            && self.attempt == 0
            && matches!(self.state, Some(JobState::Queued | JobState::Waiting))
    }
}

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Alive and taking jobs.
    Online,
    /// Finishing its jobs before it leaves.
    Draining,
    /// Not running: left cleanly, or created and not started yet.
    Offline,
    /// Its heartbeats stopped.
    Lost,
    /// Deleted by an admin; it takes no more jobs.
    Deleted,
}

impl WorkerStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Online,
        Self::Draining,
        Self::Offline,
        Self::Lost,
        Self::Deleted,
    ];

    /// The name used on the wire and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Draining => "draining",
            Self::Offline => "offline",
            Self::Lost => "lost",
            Self::Deleted => "deleted",
        }
    }
}

impl WorkerRecord {
    /// Whether the worker left `after` or longer before `now`: deleted, or
    /// offline after it ran (one created and never started has not left).
    pub fn is_gone(&self, now: Timestamp, after: std::time::Duration) -> bool {
        let left = match self.status {
            Some(WorkerStatus::Deleted) => true,
            Some(WorkerStatus::Offline) => self.last_seen.is_some(),
            _ => false,
        };
        let Ok(after) = time::Duration::try_from(after) else {
            return false;
        };
        left && self
            .status_at
            .or(self.last_seen)
            .is_some_and(|at| now.0 - at.0 >= after)
    }
}

/// The state of one worker, under `<group>.<worker_id>` in `shoal_workers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "WorkerRecord")]
pub struct WorkerRecord {
    /// The worker's id.
    pub id: String,
    /// The worker's group.
    pub group: String,
    /// Where it is in its life.
    pub status: Option<WorkerStatus>,
    /// When the status was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_at: Option<Timestamp>,
    /// When an admin created it through the registry (absent for self-registered workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When its name, labels or system flag last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_at: Option<Timestamp>,
    /// The NATS user it connects as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The resource it was declared by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Box<crate::resource::Resource>>,
    /// A human name.
    #[serde(default)]
    pub name: String,
    /// The queues it serves.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether it serves the `_system` group.
    #[serde(default)]
    pub system: bool,
    /// How many jobs it runs at once.
    #[serde(default)]
    pub concurrency: u32,
    /// Its host.
    #[serde(default)]
    pub host: String,
    /// Its process id.
    #[serde(default)]
    pub pid: u32,
    /// Its Shoal version.
    #[serde(default)]
    pub version: String,
    /// How often it sends heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<Duration>,
    /// When it registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<Timestamp>,
    /// When it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<Timestamp>,
    /// The last time it was heard from (kept to within two heartbeat intervals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// Ids of the jobs it runs, as of `last_seen`.
    #[serde(default)]
    pub running: Vec<String>,
    /// Jobs it ran.
    #[serde(default)]
    pub jobs_run: u64,
    /// Jobs of those that did not succeed.
    #[serde(default)]
    pub jobs_failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(status: WorkerStatus, seen: bool, minutes_ago: i64) -> WorkerRecord {
        let at = Timestamp(Timestamp::now().0 - time::Duration::minutes(minutes_ago));
        WorkerRecord {
            status: Some(status),
            status_at: Some(at),
            last_seen: seen.then_some(at),
            ..WorkerRecord::default()
        }
    }

    const GONE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

    #[test]
    fn a_worker_is_gone_once_it_left_long_enough_ago_and_one_never_started_never_is() {
        let now = Timestamp::now();
        assert!(worker(WorkerStatus::Offline, true, 11).is_gone(now, GONE_AFTER));
        assert!(!worker(WorkerStatus::Offline, true, 9).is_gone(now, GONE_AFTER));
        assert!(worker(WorkerStatus::Deleted, false, 11).is_gone(now, GONE_AFTER));
        assert!(!worker(WorkerStatus::Offline, false, 60).is_gone(now, GONE_AFTER));
        assert!(!worker(WorkerStatus::Lost, true, 60).is_gone(now, GONE_AFTER));
        assert!(!worker(WorkerStatus::Online, true, 60).is_gone(now, GONE_AFTER));
    }
}
