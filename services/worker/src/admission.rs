//! What is checked of a delivered job before it runs: that the queue can
//! honour its retry policy, which submission it comes from, and what its
//! record says (ended already, or its id held by another submission).

use async_nats::jetstream::Message;
use shoal_protocol::hold::ATTEMPTS_BEFORE_HEADER;
use shoal_protocol::job::InvalidJob;
use shoal_protocol::key::Key;
use shoal_protocol::rejection::SEQUENCE_HEADER;
use shoal_protocol::{JobRecord, JobSpec, JobState};
use tracing::warn;

use crate::delivery::{Delivery, QueueLimits};
use crate::Worker;

/// Refuses a retry policy the queue cannot honour: attempts are
/// deliveries, and the consumer gives a job up after `max_deliver`.
pub(crate) fn check_attempts_fit(spec: &JobSpec, limits: QueueLimits) -> Result<(), InvalidJob> {
    match &spec.retry {
        Some(retry)
            if limits.max_deliver > 0 && i64::from(retry.max_attempts) > limits.max_deliver =>
        {
            Err(InvalidJob::Field {
                field: "retry.max_attempts".into(),
                reason: format!(
                    "{} is more than the {} deliveries this queue allows",
                    retry.max_attempts, limits.max_deliver
                ),
            })
        }
        _ => Ok(()),
    }
}

/// The sequence of the submission a delivered message carries: its own, or
/// for a copy the dispatcher routed (a subject only operators publish to),
/// the one it names.
pub(crate) fn submission_sequence(
    subjects: &shoal_protocol::Subjects,
    message: &Message,
    own: u64,
) -> u64 {
    if !subjects.is_route(&message.subject) {
        return own;
    }
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(SEQUENCE_HEADER))
        .and_then(|value| value.as_str().parse().ok())
        .unwrap_or(own)
}

/// The attempts a job had before this copy of it: a copy the registry let
/// go after holding the job (a subject only operators publish to) names
/// them, so that its attempts go on from there.
pub(crate) fn attempts_before(subjects: &shoal_protocol::Subjects, message: &Message) -> u32 {
    if !subjects.is_route(&message.subject) {
        return 0;
    }
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(ATTEMPTS_BEFORE_HEADER))
        .and_then(|value| value.as_str().parse().ok())
        .unwrap_or(0)
}

/// What the job's record says of a delivered job.
pub(crate) enum Recorded {
    /// Nothing that stops it running.
    Runnable,
    /// It ended already (or was cancelled).
    Done,
    /// Another submission holds its id.
    TakenBy(u64),
}

pub(crate) async fn recorded(worker: &Worker, delivery: &Delivery) -> Recorded {
    let key = Key::new(&delivery.group, &delivery.job_id).to_string();
    let record = match worker.jobs_bucket.get(key).await {
        Ok(Some(value)) => serde_json::from_slice::<JobRecord>(&value).ok(),
        Ok(None) => None,
        Err(err) => {
            warn!(error = %err, "cannot read the job record; running the job");
            None
        }
    };
    match record {
        Some(record) => match record.stream_sequence {
            // Only an earlier submission holds the id: if the record names a
            // later one, this one is the first, and the fold will say so.
            Some(owner) if owner < delivery.submission => Recorded::TakenBy(owner),
            _ if record.done => Recorded::Done,
            _ => Recorded::Runnable,
        },
        None => Recorded::Runnable,
    }
}

/// Whether an attempt's outcome is still this worker's to report.
pub(crate) enum Standing {
    /// It is: no later attempt started, none ended.
    Current,
    /// The job ended elsewhere meanwhile.
    Done,
    /// A later attempt started: this worker was cut off past the ack wait,
    /// and the message is another worker's now.
    Superseded(u32),
}

/// What the record says of an attempt that ran long enough to have been
/// handed to another worker meanwhile (this one paused or cut off).
pub(crate) async fn standing(worker: &Worker, delivery: &Delivery) -> Standing {
    let key = Key::new(&delivery.group, &delivery.job_id).to_string();
    let record = match worker.jobs_bucket.get(key).await {
        Ok(Some(value)) => serde_json::from_slice::<JobRecord>(&value).ok(),
        _ => None,
    };
    match record {
        Some(record) if record.done => Standing::Done,
        Some(record) if record.attempts > delivery.attempt => Standing::Superseded(record.attempts),
        _ => Standing::Current,
    }
}

/// Whether the job's record says it was cancelled: a cancel whose stop
/// request this worker missed (sent while it reconnected, or just before the
/// job started) still reaches the job this way.
pub(crate) async fn cancelled(worker: &Worker, delivery: &Delivery) -> bool {
    let key = Key::new(&delivery.group, &delivery.job_id).to_string();
    match worker.jobs_bucket.get(key).await {
        Ok(Some(value)) => serde_json::from_slice::<JobRecord>(&value)
            .is_ok_and(|record| record.state == Some(JobState::Cancelled)),
        _ => false,
    }
}
