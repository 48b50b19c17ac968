//! The test harness: servers, Shoal processes, and waiting on KV.

pub mod cluster;
pub mod kv;
pub mod process;
pub mod secure;
pub mod server;

pub use kv::{job_record, wait_for_job, wait_for_worker, Fleet};
pub use process::{shoal, ShoalProcess};
pub use server::NatsServer;
