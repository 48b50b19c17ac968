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
pub mod limits;
pub mod login;
pub mod logs;
pub mod newest;
pub mod publish;
pub mod queues;
pub mod records;
pub mod registry;
pub mod rejection;
pub mod schedules;
pub mod secrecy;
pub mod streams;
pub mod submit;
pub mod trace;
pub mod upgrade;
pub mod workflow;

pub use client::{Client, Target};
pub use error::ClientError;
pub use records::{RecordError, RecordStore};
pub use schedules::{Schedule, When, SCHEDULE_LABEL};
pub use submit::Submitted;

/// An error and its sources on one line, `outer: inner: ...`: the sentence a
/// user or a log reads.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    one_sentence(&parts)
}

/// An error's texts, outermost first, joined by `: `, each said once: a
/// context its cause starts with (`id` over `id: ...`), or a cause the
/// text so far already ends with, is left out.
pub fn one_sentence(parts: &[String]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let repeated_ahead = parts
            .get(index + 1)
            .is_some_and(|next| next.starts_with(&format!("{part}:")));
        let said = kept
            .last()
            .is_some_and(|last| last.ends_with(part.as_str()));
        if !repeated_ahead && !said {
            kept.push(part);
        }
    }
    kept.join(": ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_text_of_an_error_is_said_once() {
        let parts = |texts: &[&str]| {
            texts
                .iter()
                .map(|text| text.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            super::one_sentence(&parts(&["id", "id: `a b` is not a valid token"])),
            "id: `a b` is not a valid token"
        );
        assert_eq!(
            super::one_sentence(&parts(&["cannot store: timed out", "timed out"])),
            "cannot store: timed out"
        );
        assert_eq!(
            super::one_sentence(&parts(&["cannot read record a.b", "timed out"])),
            "cannot read record a.b: timed out"
        );
    }
}
