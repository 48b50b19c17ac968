//! Everything that talks to NATS on behalf of Shoal's parts and users: the
//! producer API ([`Client`]: submit, schedule, get, wait, cancel, retry,
//! logs, and the registry's operations), the connection, the streams and
//! buckets (set up and upgraded), records read and folded with
//! compare-and-set, publishing once under an id, dead letters and rejections.

#![deny(missing_docs)]

pub mod client;
pub mod connect;
pub mod error;
pub mod jobs;
pub mod login;
pub mod logs;
pub mod publish;
pub mod records;
pub mod registry;
pub mod rejection;
pub mod schedules;
pub mod secrecy;
pub mod streams;
pub mod submit;
pub mod upgrade;

pub use client::{Client, Target};
pub use error::ClientError;
pub use records::{RecordError, RecordStore};
pub use schedules::{Schedule, When};
pub use submit::Submitted;

/// An error and its sources on one line, `outer: inner: ...`: the sentence a
/// user or a log reads.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        // Some errors repeat their source in their own text.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
