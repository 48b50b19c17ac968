//! Settling a delivered message: acked once folded, else handed back with a
//! pause, and rejected when the message itself cannot be folded.

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use shoal_client::rejection::position;
use shoal_client::RecordError;
use shoal_protocol::rejection;
use tracing::debug;

use crate::Projector;

impl Projector {
    /// Acks a folded message. One that was not is handed back: while the
    /// servers cannot take the write, with growing pauses and for as long
    /// as it takes (the message is not at fault); when the message itself
    /// cannot be folded, [`MAX_FOLD_DELIVERIES`] times, then it is rejected
    /// with the reason.
    pub(crate) async fn settle(&self, message: &Message, failed: Option<Failure>) {
        let deliveries = delivered(message);
        let kind = match failed {
            None => AckKind::Ack,
            Some(failure) if !failure.permanent => AckKind::Nak(Some(backoff(deliveries))),
            Some(failure) => match position(message) {
                Some(at) if deliveries >= MAX_FOLD_DELIVERIES => {
                    let reason = format!(
                        "could not be folded in {MAX_FOLD_DELIVERIES} deliveries: {}",
                        failure.reason
                    );
                    let notice = rejection::notice(
                        &self.config.layout.subjects,
                        &message.subject,
                        at,
                        reason,
                    );
                    match self.publish_rejection(&notice).await {
                        Ok(()) => AckKind::Term,
                        Err(_) => AckKind::Nak(Some(backoff(deliveries))),
                    }
                }
                _ => AckKind::Nak(Some(Duration::from_secs(1))),
            },
        };
        if let Err(err) = message.ack_with(kind).await {
            debug!(error = %err, "ack failed; the message will come again");
        }
    }
}

/// Deliveries after which a message that cannot be folded is rejected.
pub(crate) const MAX_FOLD_DELIVERIES: u64 = 5;

/// How many times the message was delivered (1 when the server does not say).
pub(crate) fn delivered(message: &Message) -> u64 {
    message
        .info()
        .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1))
}

/// Why a message was not folded, and whether it is the message's fault.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    reason: String,
    /// The message cannot be folded (a panic, a write the servers refuse);
    /// else the servers could not take the write for now.
    permanent: bool,
}

impl Failure {
    /// The servers could not take the write for now.
    pub(crate) fn transient(reason: String) -> Self {
        Self {
            reason,
            permanent: false,
        }
    }

    /// The message itself cannot be folded.
    pub(crate) fn permanent(reason: &str) -> Self {
        Self {
            reason: reason.to_string(),
            permanent: true,
        }
    }

    /// A failed write: for now while the servers cannot answer or keep
    /// changing the record, for good when they refuse it.
    pub(crate) fn of(err: &RecordError) -> Self {
        let reason = shoal_client::error_chain(err);
        let lowered = reason.to_lowercase();
        let for_now = matches!(err, RecordError::TooManyConflicts(_))
            || [
                "timed out",
                "no responders",
                "leader",
                "unavailable",
                "not available",
                "connection",
                "i/o",
            ]
            .iter()
            .any(|sign| lowered.contains(sign));
        Self {
            reason,
            permanent: !for_now,
        }
    }
}

/// The pause before a message that could not be folded comes again:
/// doubling from a second, at most half a minute.
fn backoff(deliveries: u64) -> Duration {
    let doublings = u32::try_from(deliveries.saturating_sub(1).min(5)).unwrap_or(5);
    Duration::from_secs(1u64 << doublings).min(Duration::from_secs(30))
}
