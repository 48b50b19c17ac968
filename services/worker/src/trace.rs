//! The trace an attempt continues: the submission's W3C `traceparent`, with
//! a span of the attempt's own, which its events, its output and its
//! process (`TRACEPARENT`) carry.

use std::time::SystemTime;

use async_nats::jetstream::Message;
use shoal_protocol::span::{AttributeValue, EndedSpan, JobSpan, SpanSink, OUTCOME};
use shoal_protocol::trace::{TraceParent, TRACEPARENT};
use tracing::debug;

use crate::delivery::Delivery;
use crate::Worker;

/// The trace the submission carries, and a span of this attempt's own in
/// it; none when it carries no valid `traceparent` (any submitter writes it).
pub(crate) fn attempt_trace(message: &Message) -> Option<(TraceParent, TraceParent)> {
    let header = message.headers.as_ref()?.get(TRACEPARENT)?;
    match header.as_str().parse::<TraceParent>() {
        Ok(parent) => shoal_client::trace::child_of(&parent).map(|own| (parent, own)),
        Err(err) => {
            debug!(error = %err, "the job's traceparent is ignored");
            None
        }
    }
}

/// Hands the attempt's span to the exporter, when spans are exported and
/// the job carried a trace: how it ended, and why when it failed.
pub(crate) fn ended(
    worker: &Worker,
    delivery: &Delivery,
    message: &Message,
    start: SystemTime,
    outcome: &str,
    error: Option<&str>,
) {
    let (Some(spans), Some((parent, own))) = (&worker.spans, delivery.traced) else {
        return;
    };
    let job = JobSpan {
        id: &delivery.job_id,
        group: &delivery.group,
        queue: &delivery.queue,
        subject: message.subject.as_str(),
        attempt: Some(delivery.attempt),
    };
    let mut span = EndedSpan::of_job(job, own, start);
    span.parent = Some(parent);
    span.attributes
        .push((OUTCOME, AttributeValue::Text(outcome.to_string())));
    // An attempt that did not succeed is an error, with its reason when there is one.
    span.error = match (outcome, error) {
        ("succeeded", _) => None,
        (_, Some(error)) => Some(error.to_string()),
        ("handed_back", None) => Some("the worker stopped before the job ended".to_string()),
        ("superseded", None) => Some("another attempt ended the job meanwhile".to_string()),
        (outcome, None) => Some(outcome.to_string()),
    };
    spans.ended(span);
}
