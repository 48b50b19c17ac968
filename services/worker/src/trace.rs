//! The trace an attempt continues: the submission's W3C `traceparent`, with
//! a span of the attempt's own, which its events, its output and its
//! process (`TRACEPARENT`) carry.

use async_nats::jetstream::Message;
use shoal_protocol::trace::{TraceParent, TRACEPARENT};
use tracing::debug;

/// A span of its own for this attempt in the trace the submission carries;
/// none when it carries no valid `traceparent` (any submitter writes it).
pub(crate) fn attempt_trace(message: &Message) -> Option<TraceParent> {
    let header = message.headers.as_ref()?.get(TRACEPARENT)?;
    match header.as_str().parse::<TraceParent>() {
        Ok(parent) => shoal_client::trace::child_of(&parent),
        Err(err) => {
            debug!(error = %err, "the job's traceparent is ignored");
            None
        }
    }
}
