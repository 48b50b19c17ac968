//! Folding: how one submission, event or heartbeat moves a record forward.
//!
//! A fold only ever moves a record forward (by state rank and attempt), takes
//! maxima of counters and keeps the fields each input owns, so the record it
//! gives is the same whatever the order or duplication of its inputs.

use crate::{
    Heartbeat, JobEvent, JobEventType, JobRecord, JobSpec, JobState, Timestamp, WorkerEvent,
    WorkerEventType, WorkerRecord, WorkerStatus,
};

/// Something that changes a job record.
#[derive(Debug, Clone, PartialEq)]
pub enum JobInput {
    /// A submission read from the jobs stream.
    Submitted {
        priority: crate::Priority,
        group: String,
        queue: String,
        job_id: String,
        sequence: u64,
        at: Timestamp,
        spec: JobSpec,
    },
    /// An event of the job.
    Event(JobEvent),
    /// A delayed job, waiting in the jobs stream for the server to submit it.
    Scheduled {
        group: String,
        queue: String,
        job_id: String,
        due: Timestamp,
        spec: JobSpec,
    },
}

/// Something that changes a worker record.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerInput {
    /// A lifecycle event of the worker.
    Event(Box<WorkerEvent>),
    /// A heartbeat of the worker.
    Heartbeat(Heartbeat),
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
}

/// Whether the record's state comes from a submission that could not be read.
fn is_rejection(record: &JobRecord) -> bool {
    record.state == Some(JobState::Dead) && record.attempt == 0
}

/// Orders the states of a job: a rejected submission beats only a queued
/// one; any other terminal state beats any other, the first
/// terminal attempt beats later ones (terminal states are final), and a later
/// running attempt beats an earlier one.
fn job_rank(state: Option<JobState>, attempt: u32) -> (u8, u32, u8) {
    match state {
        None => (0, 0, 0),
        // A rejected submission: any attempt of a valid one with its id says more.
        Some(JobState::Dead) if attempt == 0 => (1, 0, 2),
        Some(JobState::Scheduled) => (1, 0, 0),
        Some(JobState::Queued) => (1, 0, 1),
        Some(JobState::Running) => (2, attempt, 0),
        Some(JobState::Lost) => (2, attempt, 1),
        Some(JobState::Retrying) => (2, attempt, 2),
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
            }
        }
        JobInput::Event(event) if event.kind == JobEventType::Waiting => {
            identify(&mut record, &event.group, &event.queue, &event.job_id);
            // Only a job no attempt has reached yet waits for a worker.
            if job_rank(record.state, record.attempt) <= job_rank(Some(JobState::Queued), 0) {
                record.waiting_for.clone_from(&event.error_text);
            }
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
        // Progress never reaches here: it changes no state.
        JobEventType::Progress | JobEventType::Waiting => record.state.unwrap_or(JobState::Running),
    };
    let done = state.is_terminal();
    let started_at = match event.kind {
        JobEventType::Started => Some(event.at),
        JobEventType::Lost
        | JobEventType::Cancelled
        | JobEventType::Missing
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
        ..record.clone()
    }
}

/// Breaks ties between statuses set at the same instant.
fn worker_rank(status: WorkerStatus) -> u8 {
    match status {
        WorkerStatus::Online => 1,
        WorkerStatus::Draining => 2,
        WorkerStatus::Lost => 3,
        WorkerStatus::Offline => 4,
        WorkerStatus::Deleted => 5,
    }
}

/// The status an input sets, if any.
fn status_of(input: &WorkerInput) -> Option<WorkerStatus> {
    match input {
        WorkerInput::Heartbeat(_) => Some(WorkerStatus::Online),
        WorkerInput::Event(event) => match event.kind {
            WorkerEventType::Registered => Some(WorkerStatus::Online),
            WorkerEventType::Draining => Some(WorkerStatus::Draining),
            WorkerEventType::Deregistered | WorkerEventType::Created => Some(WorkerStatus::Offline),
            WorkerEventType::Lost => Some(WorkerStatus::Lost),
            WorkerEventType::Deleted => Some(WorkerStatus::Deleted),
            WorkerEventType::Updated => None,
        },
    }
}

/// Applies one input to a worker record (or to nothing, for a new worker).
///
/// The status is the one of the latest input (by its time; a deleted worker
/// stays deleted), so that a lost worker that sends heartbeats again is
/// online again; identity fields follow the latest of `created`, `updated`
/// and `registered`; counters are maxima.
pub fn fold_worker(record: Option<WorkerRecord>, input: &WorkerInput) -> WorkerRecord {
    let mut record = record.unwrap_or_default();
    let (worker_id, group, at) = match input {
        WorkerInput::Heartbeat(beat) => (&beat.worker_id, &beat.group, beat.at),
        WorkerInput::Event(event) => (&event.worker_id, &event.group, event.at),
    };
    record.id.clone_from(worker_id);
    record.group.clone_from(group);
    if let Some(status) = status_of(input) {
        let current = record
            .status
            .map(|status| (record.status_at, worker_rank(status)));
        let deleted = record.status == Some(WorkerStatus::Deleted);
        if !deleted
            && (status == WorkerStatus::Deleted
                || current.is_none_or(|current| (Some(at), worker_rank(status)) > current))
        {
            record.status = Some(status);
            record.status_at = Some(at);
        }
    }
    match input {
        WorkerInput::Heartbeat(beat) => {
            record.heartbeat_interval = Some(beat.interval);
            note_activity(
                &mut record,
                at,
                Some(beat.running.clone()),
                beat.jobs_run,
                beat.jobs_failed,
            );
        }
        WorkerInput::Event(event) => fold_worker_event(&mut record, event),
    }
    record
}

fn fold_worker_event(record: &mut WorkerRecord, event: &WorkerEvent) {
    let at = event.at;
    let identity_is_newer = record
        .identity_at
        .is_none_or(|identity_at| at >= identity_at);
    match event.kind {
        WorkerEventType::Registered => {
            if let Some(info) = event.info.as_ref().filter(|_| {
                record
                    .registered_at
                    .is_none_or(|registered| at >= registered)
            }) {
                record.registered_at = Some(at);
                record.queues.clone_from(&info.queues);
                record.tags.clone_from(&info.tags);
                record.concurrency = info.concurrency;
                record.host.clone_from(&info.host);
                record.pid = info.pid;
                record.version.clone_from(&info.version);
                record.heartbeat_interval = Some(info.heartbeat_interval);
                if identity_is_newer {
                    record.identity_at = Some(at);
                    record.name.clone_from(&info.name);
                    record.labels.clone_from(&info.labels);
                    record.system = info.system;
                }
            }
            note_activity(
                record,
                at,
                Some(Vec::new()),
                event.jobs_run,
                event.jobs_failed,
            );
        }
        WorkerEventType::Deregistered => {
            if record
                .deregistered_at
                .is_none_or(|deregistered| at > deregistered)
            {
                record.deregistered_at = Some(at);
            }
            note_activity(
                record,
                at,
                Some(Vec::new()),
                event.jobs_run,
                event.jobs_failed,
            );
        }
        WorkerEventType::Draining => {
            note_activity(record, at, None, event.jobs_run, event.jobs_failed)
        }
        WorkerEventType::Created | WorkerEventType::Updated => {
            if event.kind == WorkerEventType::Created {
                record.created_at = Some(record.created_at.map_or(at, |created| created.min(at)));
            }
            if let Some(identity) = event.identity.as_ref().filter(|_| identity_is_newer) {
                record.identity_at = Some(at);
                if let Some(name) = &identity.name {
                    record.name.clone_from(name);
                }
                if let Some(labels) = &identity.labels {
                    record.labels.clone_from(labels);
                }
                if let Some(system) = identity.system {
                    record.system = system;
                }
                if identity.user.is_some() {
                    record.user.clone_from(&identity.user);
                }
                if identity.resource.is_some() {
                    record.resource.clone_from(&identity.resource);
                }
            }
        }
        WorkerEventType::Deleted | WorkerEventType::Lost => {}
    }
}

/// Moves `last_seen` forward; the running jobs and counters follow the latest report.
fn note_activity(
    record: &mut WorkerRecord,
    at: Timestamp,
    running: Option<Vec<String>>,
    jobs_run: u64,
    jobs_failed: u64,
) {
    if record.last_seen.is_none_or(|seen| at > seen) {
        record.last_seen = Some(at);
        if let Some(running) = running {
            record.running = running;
        }
    }
    record.jobs_run = record.jobs_run.max(jobs_run);
    record.jobs_failed = record.jobs_failed.max(jobs_failed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Duration, WorkerInfo};

    fn at(seconds: i64) -> Timestamp {
        Timestamp(
            time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("valid time"),
        )
    }

    fn event(kind: JobEventType, attempt: u32, seconds: i64, worker: &str) -> JobInput {
        let mut event = JobEvent::new(kind, "acme", "q", "7", attempt, at(seconds));
        event.worker_id = Some(worker.to_string());
        if kind != JobEventType::Started {
            event.started_at = Some(at(seconds - 1));
        }
        JobInput::Event(event)
    }

    fn submitted() -> JobInput {
        JobInput::Submitted {
            priority: crate::Priority::Normal,
            group: "acme".into(),
            queue: "q".into(),
            job_id: "7".into(),
            sequence: 7,
            at: at(0),
            spec: JobSpec::entrypoint("noop", vec![]),
        }
    }

    fn fold_all(inputs: &[&JobInput]) -> JobRecord {
        inputs
            .iter()
            .fold(None, |record, input| Some(fold_job(record, input)))
            .expect("some input")
    }

    /// Every order of a sequence, by Heap's algorithm.
    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        fn heap<T: Clone>(k: usize, items: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
            if k <= 1 {
                out.push(items.clone());
                return;
            }
            for i in 0..k {
                heap(k - 1, items, out);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                items.swap(j, k - 1);
            }
        }
        let mut out = Vec::new();
        heap(items.len(), &mut items.to_vec(), &mut out);
        out
    }

    fn submitted_again(sequence: u64, entrypoint: &str) -> JobInput {
        JobInput::Submitted {
            priority: crate::Priority::Normal,
            group: "acme".into(),
            queue: "q".into(),
            job_id: "7".into(),
            sequence,
            at: at(sequence as i64),
            spec: JobSpec::entrypoint(entrypoint, vec![]),
        }
    }

    fn rejected(sequence: u64) -> JobInput {
        let mut event = JobEvent::new(JobEventType::Rejected, "acme", "q", "7", 0, at(9));
        event.stream_sequence = Some(sequence);
        event.error_text = Some("entrypont: unknown field".into());
        JobInput::Event(event)
    }

    #[test]
    fn a_second_submission_with_a_taken_id_never_rewrites_the_first_jobs_record() {
        let inputs = [
            submitted(),
            event(JobEventType::Started, 1, 1, "w1"),
            event(JobEventType::Succeeded, 1, 2, "w1"),
            submitted_again(20, "sleep"),
            rejected(30),
        ];
        let expected = fold_all(&inputs.iter().collect::<Vec<_>>());
        assert_eq!(expected.state, Some(JobState::Succeeded));
        assert_eq!(expected.entrypoint.as_deref(), Some("noop"));
        assert_eq!(expected.stream_sequence, Some(7));
        assert_eq!(expected.submitted_at, Some(at(0)));
        for order in permutations(&inputs.iter().collect::<Vec<_>>()) {
            assert_eq!(fold_all(&order), expected);
        }
    }

    #[test]
    fn a_rejected_submission_owns_its_id_against_a_later_valid_one() {
        let inputs = [rejected(3), submitted_again(20, "sleep"), rejected(40)];
        let expected = fold_all(&inputs.iter().collect::<Vec<_>>());
        assert_eq!(expected.state, Some(JobState::Dead));
        assert_eq!(expected.stream_sequence, Some(3));
        assert_eq!(expected.entrypoint, None);
        for order in permutations(&inputs.iter().collect::<Vec<_>>()) {
            assert_eq!(fold_all(&order), expected);
        }
        let ran = [
            rejected(3),
            submitted_again(20, "sleep"),
            event(JobEventType::Started, 1, 1, "w1"),
            event(JobEventType::Succeeded, 1, 2, "w1"),
        ];
        let expected = fold_all(&ran.iter().collect::<Vec<_>>());
        assert_eq!(expected.state, Some(JobState::Succeeded));
        for order in permutations(&ran.iter().collect::<Vec<_>>()) {
            assert_eq!(fold_all(&order), expected);
        }
        let inputs = [submitted_again(3, "noop"), rejected(20)];
        for order in permutations(&inputs.iter().collect::<Vec<_>>()) {
            let record = fold_all(&order);
            assert_eq!(record.state, Some(JobState::Queued));
            assert_eq!(record.stream_sequence, Some(3));
        }
    }

    #[test]
    fn a_job_record_is_the_same_whatever_the_order_and_duplication_of_its_inputs() {
        let inputs = [
            submitted(),
            event(JobEventType::Started, 1, 1, "w1"),
            event(JobEventType::Started, 2, 5, "w2"),
            event(JobEventType::Succeeded, 2, 6, "w2"),
            event(JobEventType::Started, 2, 5, "w2"),
        ];
        let expected = fold_all(&inputs.iter().collect::<Vec<_>>());
        assert_eq!(expected.state, Some(JobState::Succeeded));
        assert_eq!(expected.attempts, 2);
        assert_eq!(expected.worker_id.as_deref(), Some("w2"));
        assert_eq!(expected.stream_sequence, Some(7));
        for order in permutations(&inputs.iter().collect::<Vec<_>>()) {
            assert_eq!(fold_all(&order), expected);
        }
    }

    #[test]
    fn a_terminal_state_is_final() {
        let record = fold_all(&[
            &event(JobEventType::Failed, 1, 2, "w1"),
            &event(JobEventType::Started, 2, 9, "w2"),
        ]);
        assert_eq!(record.state, Some(JobState::Failed));
        assert!(record.done && record.error);
    }

    #[test]
    fn a_worker_record_is_the_same_whatever_the_order_of_its_inputs() {
        let info = WorkerInfo {
            name: "w".into(),
            queues: vec!["q".into()],
            concurrency: 2,
            heartbeat_interval: Duration::from_secs(1),
            ..WorkerInfo::default()
        };
        let worker_event = |kind, seconds, jobs_run| {
            WorkerInput::Event(Box::new(WorkerEvent {
                kind,
                worker_id: "w1".into(),
                group: "acme".into(),
                at: at(seconds),
                info: (kind == WorkerEventType::Registered).then(|| info.clone()),
                identity: None,
                jobs_run,
                jobs_failed: 0,
            }))
        };
        let beat = |seconds, running: &[&str], jobs_run| {
            WorkerInput::Heartbeat(Heartbeat {
                worker_id: "w1".into(),
                group: "acme".into(),
                at: at(seconds),
                interval: Duration::from_secs(1),
                running: running.iter().map(|id| id.to_string()).collect(),
                jobs_run,
                jobs_failed: 0,
            })
        };
        let inputs = [
            worker_event(WorkerEventType::Registered, 0, 0),
            beat(1, &["a"], 0),
            beat(2, &[], 1),
            worker_event(WorkerEventType::Deregistered, 3, 1),
        ];
        let fold = |order: &[&WorkerInput]| {
            order
                .iter()
                .fold(None, |record, input| Some(fold_worker(record, input)))
                .expect("some input")
        };
        let expected = fold(&inputs.iter().collect::<Vec<_>>());
        assert_eq!(expected.status, Some(WorkerStatus::Offline));
        assert_eq!(expected.jobs_run, 1);
        assert_eq!(expected.name, "w");
        for order in permutations(&inputs.iter().collect::<Vec<_>>()) {
            assert_eq!(fold(&order), expected);
        }
    }

    #[test]
    fn a_lost_worker_that_beats_again_is_online_and_a_deleted_one_stays_deleted() {
        let event = |kind, seconds| {
            WorkerInput::Event(Box::new(WorkerEvent {
                kind,
                worker_id: "w1".into(),
                group: "acme".into(),
                at: at(seconds),
                info: None,
                identity: None,
                jobs_run: 0,
                jobs_failed: 0,
            }))
        };
        let beat = |seconds| {
            WorkerInput::Heartbeat(Heartbeat {
                worker_id: "w1".into(),
                group: "acme".into(),
                at: at(seconds),
                interval: Duration::from_secs(1),
                running: vec![],
                jobs_run: 0,
                jobs_failed: 0,
            })
        };
        let fold = |inputs: &[&WorkerInput]| {
            inputs
                .iter()
                .fold(None, |record, input| Some(fold_worker(record, input)))
                .expect("input")
        };
        let (lost, back) = (event(WorkerEventType::Lost, 5), beat(9));
        for order in permutations(&[&beat(1), &lost, &back]) {
            assert_eq!(fold(&order).status, Some(WorkerStatus::Online));
        }
        let deleted = event(WorkerEventType::Deleted, 3);
        for order in permutations(&[&beat(1), &deleted, &back]) {
            assert_eq!(fold(&order).status, Some(WorkerStatus::Deleted));
        }
    }
}
