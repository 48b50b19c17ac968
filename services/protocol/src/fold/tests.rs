//! The folds give the same record whatever the order and duplication of
//! their inputs.

use crate::fold::{fold_job, fold_worker, JobInput, WorkerInput};
use crate::{
    Duration, Heartbeat, JobEvent, JobEventType, JobRecord, JobSpec, JobState, Timestamp,
    WorkerEvent, WorkerEventType, WorkerInfo, WorkerStatus,
};

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
