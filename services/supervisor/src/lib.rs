//! The local supervisor of a pool: turns a Pool resource into running
//! `shoal worker run` processes on this machine. It keeps `replicas` of them
//! running (restarting any that ends unasked, with exponential backoff),
//! and with autoscaling on moves their count between `minReplicas` and
//! `maxReplicas` from the backlog of the pool's queue consumers and the
//! replicas' CPU and memory use. Every decision and restart is an event on
//! `shoal.evt.pool.<group>.<pool>`; its state is kept in `shoal_supervisors`.
//! On shutdown it drains every replica and writes its final state.

pub mod backlog;
pub mod command;
pub mod decide;
pub mod events;
mod keda;
pub mod kubernetes;
mod metrics;
pub mod pool;
pub mod replicas;
mod secrets;
pub mod state;
mod supervisor;
mod sys;
pub mod usage;

use std::path::PathBuf;
use std::time::Duration;

use shoal_client::streams::{Layout, SetupError};
use thiserror::Error;

pub use pool::PoolPlan;
pub use secrets::SecretFiles;
pub use supervisor::run;

/// Why a supervisor could not start or run.
#[derive(Debug, Error)]
pub enum SupervisorError {
    /// The pool or a setting cannot be used; the text starts with the field's path.
    #[error("{0}")]
    Pool(String),
    /// Streams or buckets could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// NATS did not answer as it should.
    #[error("{0}")]
    Nats(String),
    /// NATS could not be reached.
    #[error(transparent)]
    Connect(#[from] shoal_client::connect::ConnectError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] shoal_metrics::MetricsError),
}

/// How a supervisor runs.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The streams and buckets of the installation.
    pub layout: Layout,
    /// The pool.
    pub pool: PoolPlan,
    /// The `shoal` binary the replicas run (`shoal worker run`).
    pub program: PathBuf,
    /// Variables of every replica before the pool's own (connection settings, extras).
    pub env: Vec<(String, String)>,
    /// Time between two reads of the load.
    pub poll_interval: Duration,
    /// Jobs waiting or running per replica that autoscaling aims for.
    pub target_backlog: u64,
    /// Time the wanted count must stay lower before replicas are drained.
    pub cooldown: Duration,
    /// First delay before restarting a replica that ended; doubles up to `restart_backoff_max`.
    pub restart_backoff: Duration,
    /// Longest delay before a restart.
    pub restart_backoff_max: Duration,
    /// Longest a replica may take to drain before it is killed.
    pub drain_timeout: Duration,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}
