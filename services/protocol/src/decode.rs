//! Reading a stream message into what it means for a record, or into a
//! rejection that says why it cannot be read.

use crate::key::Key;
use crate::rejection::{notice, reject_submission, Position, Rejection};
use crate::{Heartbeat, JobEvent, JobSpec, Subjects, Timestamp, WorkerEvent};

use crate::fold::{JobInput, WorkerInput};

/// What one message means.
#[derive(Debug)]
pub enum Decoded {
    /// It changes the job record under `key`.
    Job {
        /// The record's key, `<group>.<job_id>`.
        key: String,
        /// What changes it.
        input: Box<JobInput>,
    },
    /// It changes the worker record under `key`.
    Worker {
        /// The record's key, `<group>.<worker_id>`.
        key: String,
        /// What changes it.
        input: WorkerInput,
    },
    /// It is a workflow's graph, for the record under `key` in `shoal_workflows`.
    Workflow {
        /// The record's key, `<group>.<name>`.
        key: String,
        /// The graph, with its group and submission.
        record: Box<crate::workflow::WorkflowRecord>,
    },
    /// It cannot be read; the event to publish says why.
    Rejected(Rejection),
    /// It needs nothing (a rejection notice, a pool supervisor's event).
    Nothing,
}

/// Reads a submission from the jobs stream.
pub fn decode_submission(
    subjects: &Subjects,
    subject: &str,
    body: &[u8],
    at: Position<'_>,
) -> Decoded {
    if subjects.is_route(subject) {
        // A routed copy of a submission the record already has.
        return Decoded::Nothing;
    }
    if let Some(place) = subjects.parse_workflow(subject) {
        return decode_workflow(subjects, subject, body, at, place);
    }
    let place = match subjects.parse_job(subject) {
        Ok(place) => place,
        Err(err) => return Decoded::Rejected(notice(subjects, subject, at, err.to_string())),
    };
    let spec = JobSpec::from_slice(body)
        .and_then(|spec| crate::fairness::keyed_by_subject(subjects, subject, spec));
    match spec {
        Ok(spec) => {
            let job_id = spec.job_id(at.sequence);
            Decoded::Job {
                key: format!("{}.{job_id}", place.group),
                input: Box::new(JobInput::Submitted {
                    priority: subjects.job_priority(subject),
                    group: place.group,
                    queue: place.id,
                    job_id,
                    sequence: at.sequence,
                    at: at.stored_at,
                    spec,
                }),
            }
        }
        Err(err) => Decoded::Rejected(reject_submission(
            subjects,
            subject,
            body,
            at,
            err.to_string(),
        )),
    }
}

/// Reads a workflow's graph, submitted in the batch of its jobs.
fn decode_workflow(
    subjects: &Subjects,
    subject: &str,
    body: &[u8],
    at: Position<'_>,
    place: crate::subjects::GroupAndId,
) -> Decoded {
    match serde_json::from_slice::<crate::workflow::WorkflowRecord>(body) {
        Ok(mut record) => {
            record.group = place.group;
            record.name = place.id;
            record.submitted_at = Some(at.stored_at);
            record.stream_sequence = Some(at.sequence);
            Decoded::Workflow {
                key: Key::new(&record.group, &record.name).to_string(),
                record: Box::new(record),
            }
        }
        Err(err) => Decoded::Rejected(notice(subjects, subject, at, format!("workflow: {err}"))),
    }
}

/// Reads the schedules stream (`schedule`: the message's `Nats-Schedule`
/// header): a delayed job (`@at`) with an id shows as
/// `scheduled`; a recurring one makes a new job at each run, and no record
/// of its own. The submissions schedules fire need nothing here: they are
/// read where the jobs stream sources them.
pub fn decode_schedule_stream(
    subjects: &Subjects,
    subject: &str,
    schedule: Option<&str>,
    body: &[u8],
    at: Position<'_>,
) -> Decoded {
    if !subjects.is_schedule(subject) {
        return Decoded::Nothing;
    }
    let Some((group, queue, _)) = subjects.parse_schedule(subject) else {
        return Decoded::Rejected(notice(
            subjects,
            subject,
            at,
            "schedule: expected <prefix>.sched.<group>.<queue>.<schedule_id>".into(),
        ));
    };
    let schedule = schedule.unwrap_or_default();
    let Some(due) = schedule.strip_prefix("@at ") else {
        return Decoded::Nothing;
    };
    let due = match due.trim().parse::<Timestamp>() {
        Ok(due) => due,
        Err(err) => {
            return Decoded::Rejected(notice(subjects, subject, at, format!("schedule: {err}")))
        }
    };
    match JobSpec::from_slice(body) {
        Ok(spec) => match spec.id.clone() {
            Some(job_id) => Decoded::Job {
                key: Key::new(&group, &job_id).to_string(),
                input: Box::new(JobInput::Scheduled {
                    group,
                    queue,
                    job_id,
                    due,
                    spec,
                }),
            },
            None => Decoded::Nothing,
        },
        Err(err) => Decoded::Rejected(notice(subjects, subject, at, format!("schedule: {err}"))),
    }
}

/// Reads a job or worker event, or a rejection notice, from the events stream.
/// Rejection notices and pool supervisors' events change no record: they
/// need nothing.
pub fn decode_event(subjects: &Subjects, subject: &str, body: &[u8], at: Position<'_>) -> Decoded {
    if subject == subjects.rejected() || subjects.is_pool_event(subject) {
        return Decoded::Nothing;
    }
    if let Ok(place) = subjects.parse_job_event(subject) {
        return match serde_json::from_slice::<JobEvent>(body) {
            Ok(event) if event.group == place.group && event.job_id == place.id => {
                match event.validate() {
                    Ok(()) => Decoded::Job {
                        key: Key::new(&place.group, &place.id).to_string(),
                        input: Box::new(JobInput::Event(event)),
                    },
                    Err(err) => Decoded::Rejected(notice(subjects, subject, at, err.to_string())),
                }
            }
            Ok(_) => Decoded::Rejected(notice(
                subjects,
                subject,
                at,
                "job event: group or job_id differ from the subject".into(),
            )),
            Err(err) => {
                Decoded::Rejected(notice(subjects, subject, at, format!("job event: {err}")))
            }
        };
    }
    if let Ok(place) = subjects.parse_worker_event(subject) {
        return match serde_json::from_slice::<WorkerEvent>(body) {
            Ok(event) if event.group == place.group && event.worker_id == place.id => {
                match event.validate() {
                    Ok(()) => Decoded::Worker {
                        key: Key::new(&place.group, &place.id).to_string(),
                        input: WorkerInput::Event(Box::new(event)),
                    },
                    Err(err) => Decoded::Rejected(notice(
                        subjects,
                        subject,
                        at,
                        format!("worker event: {err}"),
                    )),
                }
            }
            Ok(_) => Decoded::Rejected(notice(
                subjects,
                subject,
                at,
                "worker event: group or worker_id differ from the subject".into(),
            )),
            Err(err) => Decoded::Rejected(notice(
                subjects,
                subject,
                at,
                format!("worker event: {err}"),
            )),
        };
    }
    Decoded::Rejected(notice(
        subjects,
        subject,
        at,
        "not a job or worker event subject".into(),
    ))
}

/// Reads a heartbeat from the heartbeats stream.
pub fn decode_heartbeat(
    subjects: &Subjects,
    subject: &str,
    body: &[u8],
    at: Position<'_>,
) -> Decoded {
    let place = match subjects.parse_heartbeat(subject) {
        Ok(place) => place,
        Err(err) => return Decoded::Rejected(notice(subjects, subject, at, err.to_string())),
    };
    match serde_json::from_slice::<Heartbeat>(body) {
        Ok(beat) if beat.group == place.group && beat.worker_id == place.id => Decoded::Worker {
            key: Key::new(&place.group, &place.id).to_string(),
            input: WorkerInput::Heartbeat(beat),
        },
        Ok(_) => Decoded::Rejected(notice(
            subjects,
            subject,
            at,
            "heartbeat: group or worker_id differ from the subject".into(),
        )),
        Err(err) => Decoded::Rejected(notice(subjects, subject, at, format!("heartbeat: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{PoolEvent, PoolEventType};

    #[test]
    fn a_pool_supervisors_event_needs_nothing_and_is_not_rejected() {
        let subjects = Subjects::default();
        let event = PoolEvent::new(PoolEventType::Scaled, "acme", "video", "backlog 12 > 1×5");
        let body = serde_json::to_vec(&event).expect("json");
        let at = Position {
            stream: "SHOAL_EVENTS",
            sequence: 7,
            stored_at: Timestamp::now(),
        };
        let subject = subjects.pool_event("acme", "video");
        assert!(matches!(
            decode_event(&subjects, &subject, &body, at),
            Decoded::Nothing
        ));
    }
}
