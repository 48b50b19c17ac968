//! What a local supervisor of a pool reports: its decisions and restarts as
//! events on `shoal.evt.pool.<group>.<pool>`, and its state as a record in
//! `shoal_supervisors` under `<group>.<pool>`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::timestamp::Timestamp;

/// What a supervisor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PoolEventType {
    /// The replica count changed (or was set at start or stop): `from`, `to`, `why`.
    #[serde(rename = "pool.scaled")]
    Scaled,
    /// A replica ended without being asked to and another was started in its place.
    #[serde(rename = "pool.replica_restarted")]
    ReplicaRestarted,
}

impl PoolEventType {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scaled => "pool.scaled",
            Self::ReplicaRestarted => "pool.replica_restarted",
        }
    }
}

/// One decision or restart of a pool's supervisor, on `shoal.evt.pool.<group>.<pool>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "PoolEvent")]
pub struct PoolEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: PoolEventType,
    /// The pool's name.
    pub pool: String,
    /// The pool's group.
    pub group: String,
    /// When it happened.
    pub at: Timestamp,
    /// Replicas before (on `pool.scaled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// Replicas after (on `pool.scaled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
    /// Why, e.g. `backlog 120 > 6×5`, `cpu 93% > 80%`, `exited with code 1`.
    pub why: String,
    /// The process id of the replica that ended (on `pool.replica_restarted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The worker id of the replica that ended, when it was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Restarts of that replica so far, this one included (on `pool.replica_restarted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
    /// The delay before the new process starts (on `pool.replica_restarted`), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

impl PoolEvent {
    /// An event of `kind` about `group`/`pool`, happening now, with nothing else filled in.
    pub fn new(kind: PoolEventType, group: &str, pool: &str, why: impl Into<String>) -> Self {
        Self {
            kind,
            pool: pool.to_string(),
            group: group.to_string(),
            at: Timestamp::now(),
            from: None,
            to: None,
            why: why.into(),
            pid: None,
            worker_id: None,
            restarts: None,
            backoff_ms: None,
        }
    }
}

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaStatus {
    /// Its process runs.
    Running,
    /// It was asked to stop (SIGTERM) and finishes its jobs.
    Draining,
    /// Its process ended unexpectedly; another starts after a backoff.
    Restarting,
}

/// One replica of a supervised pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaState {
    /// The worker name it was started with.
    pub name: String,
    /// Where it is.
    pub status: ReplicaStatus,
    /// Its process id (none while it waits to be restarted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its worker id, once it has registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// When its current process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// Times this replica was restarted.
    #[serde(default)]
    pub restarts: u64,
}

/// The load a supervisor last measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasuredLoad {
    /// Jobs waiting or running on the pool's queue consumers (`num_pending + num_ack_pending`).
    pub backlog: u64,
    /// Average CPU use of the replicas, in percent of their request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Average memory use of the replicas, in percent of their request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<f64>,
}

/// A supervisor's state, in `shoal_supervisors` under `<group>.<pool>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "SupervisorRecord")]
pub struct SupervisorRecord {
    /// The pool's name.
    pub pool: String,
    /// The pool's group.
    pub group: String,
    /// The host the supervisor runs on.
    pub host: String,
    /// The supervisor's process id.
    pub pid: u32,
    /// Whether the supervisor runs (`false` once it has stopped).
    pub running: bool,
    /// Replicas it aims for.
    pub desired: u32,
    /// Its replicas, draining ones included.
    pub replicas: Vec<ReplicaState>,
    /// Restarts of every replica so far.
    pub restarts: u64,
    /// The load it last measured.
    #[serde(default)]
    pub load: MeasuredLoad,
    /// Its last `pool.scaled` decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<PoolEvent>,
    /// When it was written.
    pub updated_at: Timestamp,
}

impl SupervisorRecord {
    /// Replicas that run and are not draining.
    pub fn running_replicas(&self) -> usize {
        self.replicas
            .iter()
            .filter(|replica| replica.status == ReplicaStatus::Running)
            .count()
    }
}
