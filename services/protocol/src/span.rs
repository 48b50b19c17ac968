//! A span that ended, as a part hands it over for export: the submission of
//! a job (producer) and each attempt of it (consumer), named and described
//! after the OpenTelemetry messaging conventions. Pure data and the trait a
//! part hands spans to; the exporter lives elsewhere.

use std::time::SystemTime;

use crate::trace::TraceParent;

/// `messaging.system`: always `nats`.
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// `messaging.destination.name`: the subject a job was submitted to or taken from.
pub const MESSAGING_DESTINATION: &str = "messaging.destination.name";
/// `messaging.operation.type`: `send` for a submission, `process` for an attempt.
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// `messaging.operation.name`: `submit` or `run`.
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// `messaging.message.id`: the job's id.
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
/// The job's id.
pub const JOB_ID: &str = "shoal.job.id";
/// The job's group.
pub const GROUP: &str = "shoal.group";
/// The job's queue.
pub const QUEUE: &str = "shoal.queue";
/// The attempt's number, from 1.
pub const ATTEMPT: &str = "shoal.attempt";
/// How the attempt ended (`succeeded`, `failed`, `retrying`, ...).
pub const OUTCOME: &str = "shoal.outcome";

/// What a span did, for the tracing backend's arrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// It sent a message: a job's submission.
    Producer,
    /// It processed a message: an attempt of a job.
    Consumer,
}

/// The value of an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// Text.
    Text(String),
    /// A whole number.
    Number(i64),
}

/// A span that has ended.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedSpan {
    /// Its trace and its own span id.
    pub context: TraceParent,
    /// The span it continues (the submission's, for an attempt).
    pub parent: Option<TraceParent>,
    /// What it did.
    pub kind: SpanKind,
    /// Its name: `<operation> <destination>`, e.g. `submit shoal.jobs.acme.default`.
    pub name: String,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes.
    pub attributes: Vec<(&'static str, AttributeValue)>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl EndedSpan {
    /// A job's span: the messaging attributes and the job's, named after
    /// what it did and where.
    pub fn of_job(job: JobSpan<'_>, context: TraceParent, start: SystemTime) -> Self {
        let (kind, operation, operation_type) = match job.attempt {
            None => (SpanKind::Producer, "submit", "send"),
            Some(_) => (SpanKind::Consumer, "run", "process"),
        };
        let text = |value: &str| AttributeValue::Text(value.to_string());
        let mut attributes = vec![
            (MESSAGING_SYSTEM, text("nats")),
            (MESSAGING_DESTINATION, text(job.subject)),
            (MESSAGING_OPERATION_TYPE, text(operation_type)),
            (MESSAGING_OPERATION_NAME, text(operation)),
            (MESSAGING_MESSAGE_ID, text(job.id)),
            (JOB_ID, text(job.id)),
            (GROUP, text(job.group)),
            (QUEUE, text(job.queue)),
        ];
        if let Some(attempt) = job.attempt {
            attributes.push((ATTEMPT, AttributeValue::Number(i64::from(attempt))));
        }
        Self {
            context,
            parent: None,
            kind,
            name: format!("{operation} {}", job.subject),
            start,
            end: SystemTime::now(),
            attributes,
            error: None,
        }
    }
}

/// Which job a span is about.
#[derive(Debug, Clone, Copy)]
pub struct JobSpan<'a> {
    /// The job's id.
    pub id: &'a str,
    /// Its group.
    pub group: &'a str,
    /// Its queue.
    pub queue: &'a str,
    /// The subject it was submitted to, or taken from.
    pub subject: &'a str,
    /// The attempt, for an attempt's span; none for the submission's.
    pub attempt: Option<u32>,
}

/// Where a part hands its ended spans (an OTLP exporter, say). It must not
/// block: a span that cannot be taken now is dropped, never waited for.
pub trait SpanSink: Send + Sync {
    /// Takes one ended span.
    fn ended(&self, span: EndedSpan);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempts_span_follows_the_messaging_conventions() {
        let context: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .expect("valid");
        let job = JobSpan {
            id: "j1",
            group: "acme",
            queue: "video",
            subject: "shoal.jobs.acme.video",
            attempt: Some(2),
        };
        let span = EndedSpan::of_job(job, context, SystemTime::now());
        assert_eq!(span.kind, SpanKind::Consumer);
        assert_eq!(span.name, "run shoal.jobs.acme.video");
        let value = |key| span.attributes.iter().find(|(name, _)| *name == key);
        assert_eq!(
            value(MESSAGING_SYSTEM).map(|(_, v)| v),
            Some(&AttributeValue::Text("nats".into()))
        );
        assert_eq!(
            value(MESSAGING_OPERATION_TYPE).map(|(_, v)| v),
            Some(&AttributeValue::Text("process".into()))
        );
        assert_eq!(
            value(ATTEMPT).map(|(_, v)| v),
            Some(&AttributeValue::Number(2))
        );
        let submit = EndedSpan::of_job(
            JobSpan {
                attempt: None,
                ..job
            },
            context,
            SystemTime::now(),
        );
        assert_eq!(submit.kind, SpanKind::Producer);
        assert!(submit.attributes.iter().all(|(name, _)| *name != ATTEMPT));
    }
}
