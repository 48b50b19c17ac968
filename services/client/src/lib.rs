//! Everything that talks to NATS on behalf of Shoal's parts and users: the
//! connection, the streams and buckets (set up and upgraded), records read
//! and folded with compare-and-set, publishing once under an id, dead
//! letters and rejections.

pub mod connect;
pub mod publish;
pub mod records;
pub mod rejection;
pub mod secrecy;
pub mod streams;
pub mod upgrade;

pub use records::{RecordError, RecordStore};

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
