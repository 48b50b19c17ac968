//! The wire contract of Shoal: subjects, message and record types, their
//! validation, and the fold that turns messages into records. Pure: no I/O,
//! no NATS client, no runtime.
//!
//! Every type that travels over NATS lives here and derives `JsonSchema`, so
//! that `schemas/` can be generated from the code and third-party clients can
//! speak Shoal with nothing but the schema files.

#![deny(missing_docs)]

pub mod amounts;
pub mod api;
pub mod decode;
pub mod duration;
pub mod event;
pub mod fairness;
pub mod fold;
pub mod hold;
pub mod job;
pub mod job_result;
pub mod key;
pub mod limits;
pub mod names;
pub mod permissions;
pub mod priority;
pub mod record;
pub mod registry;
pub mod rejection;
pub mod resource;
pub mod schema;
pub mod span;
pub mod subjects;
pub mod supervisor;
pub mod tags;
pub mod timestamp;
pub mod token;
pub mod trace;
pub mod workflow;

pub use duration::Duration;
pub use event::{
    Heartbeat, JobEvent, JobEventType, RejectedNotice, WorkerEvent, WorkerEventType, WorkerInfo,
};
pub use job::{Action, JobSpec};
pub use job_result::JobResult;
pub use priority::Priority;
pub use record::{JobRecord, JobState, WorkerRecord, WorkerStatus};
pub use subjects::Subjects;
pub use timestamp::Timestamp;

/// The group of workers, jobs and resources that name none: what `shoal
/// worker run` serves and where `shoal job submit` sends, every command alike.
pub const DEFAULT_GROUP: &str = "default";

/// The group whose jobs only system workers serve (of every group's pools).
pub const SYSTEM_GROUP: &str = "_system";

/// The queue a job goes to when its submitter names none.
pub const DEFAULT_QUEUE: &str = "default";

/// The version of Shoal, as reported by workers when they register.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
