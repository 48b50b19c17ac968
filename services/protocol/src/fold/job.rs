//! The fold of job records: a submission, a schedule or an event of a job
//! moves its record forward by state rank and attempt, whatever the order.

use crate::{JobEvent, JobEventType, JobRecord, JobSpec, JobState, Timestamp};

/// Something that changes a job record.
#[derive(Debug, Clone, PartialEq)]
pub enum JobInput {
    /// A submission read from the jobs stream.
    Submitted {
        /// Its priority, from its subject.
        priority: crate::Priority,
        /// Its group.
        group: String,
        /// Its queue.
        queue: String,
        /// Its id (the sequence when it named none).
        job_id: String,
        /// Its sequence in the jobs stream.
        sequence: u64,
        /// When the stream stored it.
        at: Timestamp,
        /// The job as submitted.
        spec: JobSpec,
    },
    /// An event of the job.
    Event(JobEvent),
    /// A delayed job, waiting in the jobs stream for the server to submit it.
    Scheduled {
        /// Its group.
        group: String,
        /// Its queue.
        queue: String,
        /// Its id.
        job_id: String,
        /// When the server submits it.
        due: Timestamp,
        /// The job as scheduled.
        spec: JobSpec,
    },
}

/// Names the record's job.
fn identify(record: &mut JobRecord, group: &str, queue: &str, job_id: &str) {
    group.clone_into(&mut record.group);
    queue.clone_into(&mut record.queue);
    job_id.clone_into(&mut record.id);
}

/// Keeps what a record shows of the job's spec (never its env values).
fn keep_spec(record: &mut JobRecord, spec: &JobSpec) {
    record.entrypoint.clone_from(&spec.entrypoint);
    record.command.clone_from(&spec.command);
    record.args.clone_from(&spec.args);
    record.env_names = spec.env.keys().cloned().collect();
    record.timeout = spec.timeout;
    record.tags.clone_from(&spec.tags);
    record.labels.clone_from(&spec.labels);
    record.depends_on.clone_from(&spec.depends_on);
    record.on_parent_failure = spec.on_parent_failure;
    record.concurrency.clone_from(&spec.concurrency);
    record.rate.clone_from(&spec.rate);
    record.fairness_key.clone_from(&spec.fairness_key);
}

/// Whether the record's state comes from a submission that could not be read.
fn is_rejection(record: &JobRecord) -> bool {
    record.state == Some(JobState::Dead) && record.attempt == 0
}

/// Orders the states of a job: a rejected submission beats only a queued
/// one; any other terminal state beats any other, the first
/// terminal attempt beats later ones (terminal states are final), and a later
/// running attempt beats an earlier one. An attempt held back (waiting) or
/// let go (queued again) comes before that attempt runs.
fn job_rank(state: Option<JobState>, attempt: u32) -> (u8, u32, u8) {
    match state {
        None => (0, 0, 0),
        // A rejected submission: any attempt of a valid one with its id says more.
        Some(JobState::Dead) if attempt == 0 => (1, 0, 2),
        Some(JobState::Scheduled) => (1, 0, 0),
        Some(JobState::Queued | JobState::Waiting) if attempt == 0 => (1, 0, 1),
        Some(JobState::Queued | JobState::Waiting) => (2, attempt, 0),
        Some(JobState::Running) => (2, attempt, 1),
        Some(JobState::Lost) => (2, attempt, 2),
        Some(JobState::Retrying) => (2, attempt, 3),
        Some(_) => (3, u32::MAX - attempt, 0),
    }
}

/// The time and worker that decide between two different inputs of the same rank.
fn job_tiebreak(record: &JobRecord) -> (Option<Timestamp>, Option<String>) {
    let at = if record.done {
        record.finished_at
    } else {
        record.started_at
    };
    (at, record.worker_id.clone())
}

/// Applies one input to a job record (or to nothing, for a new job).
pub fn fold_job(record: Option<JobRecord>, input: &JobInput) -> JobRecord {
    let mut record = record.unwrap_or_default();
    match input {
        JobInput::Scheduled {
            group,
            queue,
            job_id,
            due,
            spec,
        } => {
            identify(&mut record, group, queue, job_id);
            keep_spec(&mut record, spec);
            record.scheduled_for = Some(*due);
            if job_rank(record.state, record.attempt) < job_rank(Some(JobState::Scheduled), 0) {
                record.state = Some(JobState::Scheduled);
            }
        }
        JobInput::Submitted {
            priority,
            group,
            queue,
            job_id,
            sequence,
            at,
            spec,
        } => {
            match record.stream_sequence {
                // A later submission with an id already taken changes nothing.
                Some(owner) if owner < *sequence => return record,
                // An earlier one owns the id: what the later one set goes.
                Some(owner) if owner > *sequence => record = disowned(record),
                _ => {}
            }
            identify(&mut record, group, queue, job_id);
            keep_spec(&mut record, spec);
            record.priority = *priority;
            record.stream_sequence = Some(*sequence);
            record.submitted_at = Some(*at);
            if job_rank(record.state, record.attempt) < job_rank(Some(JobState::Queued), 0) {
                record.state = Some(JobState::Queued);
                // A job with parents waits for them from the start.
                if !spec.depends_on.is_empty() {
                    record.state = Some(JobState::Waiting);
                    record.waiting_for = Some(parents_text(&spec.depends_on));
                }
            }
        }
        JobInput::Event(event) if event.kind == JobEventType::Waiting => {
            identify(&mut record, &event.group, &event.queue, &event.job_id);
            // Only a job no attempt has reached yet waits for a worker: it
            // is in line for one before anything else.
            if job_rank(record.state, record.attempt) <= job_rank(Some(JobState::Queued), 0) {
                record.state = Some(JobState::Queued);
                record.waiting_for.clone_from(&event.error_text);
            }
        }
        JobInput::Event(event)
            if matches!(event.kind, JobEventType::Held | JobEventType::Released) =>
        {
            identify(&mut record, &event.group, &event.queue, &event.job_id);
            record = with_hold(record, event);
        }
        JobInput::Event(event) if event.kind == JobEventType::Progress => {
            identify(&mut record, &event.group, &event.queue, &event.job_id);
            let newer = |progress: &crate::event::Progress| {
                record
                    .progress
                    .as_ref()
                    .is_none_or(|current| progress.at > current.at)
            };
            if let Some(progress) = event.progress.as_ref().filter(|progress| newer(progress)) {
                record.progress = Some(progress.clone());
            }
        }
        JobInput::Event(event) if event.kind == JobEventType::Rejected => {
            match (record.stream_sequence, event.stream_sequence) {
                // A submission that could not be read, with an id an earlier one holds.
                (Some(owner), Some(rejected)) if owner < rejected => return record,
                // It came first: what a later submission set goes.
                (Some(owner), Some(rejected)) if owner > rejected => {
                    record = disowned(record);
                    record.stream_sequence = Some(rejected);
                }
                (None, Some(rejected)) => record.stream_sequence = Some(rejected),
                _ => {}
            }
            record = with_event(record, event);
        }
        JobInput::Event(event) => record = with_event(record, event),
    }
    record
}

/// The record without what its owning submission set (its spec, time,
/// priority and sequence, and its state if that was its rejection), for
/// an earlier submission to take the id.
fn disowned(record: JobRecord) -> JobRecord {
    let kept = JobRecord {
        id: record.id.clone(),
        group: record.group.clone(),
        queue: record.queue.clone(),
        attempts: record.attempts,
        scheduled_for: record.scheduled_for,
        progress: record.progress.clone(),
        waiting_for: record.waiting_for.clone(),
        ..JobRecord::default()
    };
    if is_rejection(&record) {
        return kept;
    }
    JobRecord {
        entrypoint: None,
        command: None,
        args: Vec::new(),
        env_names: Vec::new(),
        timeout: None,
        tags: Vec::new(),
        labels: Default::default(),
        priority: Default::default(),
        stream_sequence: None,
        submitted_at: None,
        ..record
    }
}

/// The text of a job waiting for its parents.
pub fn parents_text(parents: &[String]) -> String {
    format!("parents {}", parents.join(", "))
}

/// Applies a hold or a release of an attempt, if no later step of the job
/// was seen; of the holds and releases of one attempt, the latest wins.
fn with_hold(mut record: JobRecord, event: &JobEvent) -> JobRecord {
    let attempt = event.attempt.max(1);
    let rank = job_rank(Some(JobState::Waiting), attempt);
    let current = job_rank(record.state, record.attempt);
    let later = current < rank
        || (current == rank && record.waiting_since.is_none_or(|since| event.at >= since));
    if !later {
        return record;
    }
    let held = event.kind == JobEventType::Held;
    record.state = Some(if held {
        JobState::Waiting
    } else {
        JobState::Queued
    });
    record.attempt = attempt;
    record.waiting_for = event.error_text.clone().filter(|_| held);
    record.waiting_until = event.until.filter(|_| held);
    record.held_by = event.held_by.filter(|_| held);
    record.waiting_on = if held {
        event.waiting_on.clone()
    } else {
        Vec::new()
    };
    record.waiting_since = Some(event.at);
    record
}

/// Applies an event that sets a state, if it moves the record forward.
fn with_event(mut record: JobRecord, event: &JobEvent) -> JobRecord {
    identify(&mut record, &event.group, &event.queue, &event.job_id);
    record.attempts = record.attempts.max(event.attempt);
    let candidate = state_of_event(&record, event);
    let current_rank = job_rank(record.state, record.attempt);
    let candidate_rank = job_rank(candidate.state, candidate.attempt);
    let wins = candidate_rank > current_rank
        || (candidate_rank == current_rank && job_tiebreak(&candidate) > job_tiebreak(&record));
    if wins {
        candidate
    } else {
        record
    }
}

/// The record as the event alone would leave it, keeping the submission's fields.
fn state_of_event(record: &JobRecord, event: &JobEvent) -> JobRecord {
    let state = match event.kind {
        JobEventType::Started => JobState::Running,
        JobEventType::Succeeded => JobState::Succeeded,
        JobEventType::Failed => JobState::Failed,
        JobEventType::TimedOut => JobState::TimedOut,
        JobEventType::Rejected | JobEventType::Dead => JobState::Dead,
        JobEventType::Lost => JobState::Lost,
        JobEventType::Retrying => JobState::Retrying,
        JobEventType::Cancelled => JobState::Cancelled,
        JobEventType::Missing => JobState::Missing,
        JobEventType::Skipped => JobState::Skipped,
        // These never reach here: they change no state, or have their own fold.
        JobEventType::Progress
        | JobEventType::Waiting
        | JobEventType::Held
        | JobEventType::Released => record.state.unwrap_or(JobState::Running),
    };
    let done = state.is_terminal();
    let started_at = match event.kind {
        JobEventType::Started => Some(event.at),
        JobEventType::Lost
        | JobEventType::Cancelled
        | JobEventType::Missing
        | JobEventType::Skipped
        | JobEventType::Dead => record.started_at,
        _ => event.started_at,
    };
    JobRecord {
        state: Some(state),
        done,
        error: done && state != JobState::Succeeded,
        error_text: event.error_text.clone(),
        attempt: event.attempt,
        worker_id: event.worker_id.clone(),
        started_at,
        finished_at: done.then_some(event.at),
        exit_code: event.exit_code,
        stdout_tail: event.stdout_tail.clone(),
        stderr_tail: event.stderr_tail.clone(),
        next_attempt_at: event
            .retry_in
            .and_then(|delay| event.at.checked_add(delay.get())),
        result: event.result.clone(),
        waiting_for: None,
        waiting_until: None,
        held_by: None,
        waiting_on: Vec::new(),
        trace_id: trace_id_of(event).or_else(|| record.trace_id.clone()),
        ..record.clone()
    }
}

/// The trace id of the attempt an event reports, if it carries a valid one.
fn trace_id_of(event: &JobEvent) -> Option<String> {
    let parent: crate::trace::TraceParent = event.traceparent.as_deref()?.parse().ok()?;
    Some(parent.trace_id())
}
