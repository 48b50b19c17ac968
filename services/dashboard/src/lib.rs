//! The live web dashboard, `shoal dashboard`: the fleet (workers, pools),
//! the queues and the jobs of the groups its NATS login may read, served as
//! one page and a little JavaScript from the binary itself, kept up to date
//! by KV watches pushed to the browser as server-sent events.

#![deny(missing_docs)]

mod assets;
pub mod command;
mod hosts;
mod jobs;
mod live;
mod metrics;
mod poll;
mod queues;
mod routes;
mod scope;
mod throughput;
mod workflows;

pub use command::{run, DashboardArgs};

use thiserror::Error;

/// Why the dashboard could not start or stopped.
#[derive(Debug, Error)]
pub enum DashboardError {
    /// A setting cannot be used.
    #[error("invalid setting `{field}`: {reason}")]
    Setting {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// NATS refused or failed.
    #[error(transparent)]
    Client(#[from] shoal_client::ClientError),
    /// The address cannot be listened on.
    #[error("cannot serve the dashboard on {addr} (listen): {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] shoal_metrics::MetricsError),
}
