//! The test harness: servers, Shoal processes, waiting on conditions and on
//! KV, and the names of what Shoal makes.

pub mod browser;
pub mod cluster;
pub mod kv;
pub mod otlp;
pub mod process;
pub mod scrape;
pub mod secure;
pub mod server;
pub mod wait;

use shoal_protocol::names::Names;
use shoal_protocol::Subjects;

pub use kv::{job_record, wait_for_job, wait_for_worker, Fleet};
pub use process::{shoal, ShoalProcess};
pub use server::NatsServer;
pub use wait::eventually;

/// The subjects of the installation under test (the default prefix, `shoal`).
pub fn subjects() -> Subjects {
    Subjects::default()
}

/// The names of its streams, buckets and consumers.
pub fn names() -> Names {
    Names::new(subjects())
}
