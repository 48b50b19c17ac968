//! Folding: how one submission, event or heartbeat moves a record forward.
//!
//! A fold only ever moves a record forward (by state rank and attempt), takes
//! maxima of counters and keeps the fields each input owns, so the record it
//! gives is the same whatever the order or duplication of its inputs.

mod job;
mod worker;

#[cfg(test)]
mod tests;

pub use job::{fold_job, parents_text, JobInput};
pub use worker::{fold_worker, WorkerInput};
