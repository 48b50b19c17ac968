//! The jobs that wait to run, as the registry keeps them from `shoal_jobs`:
//! what the reconciler checks against the jobs stream, and the parked jobs
//! the dispatcher routes when a worker that may take them comes.

use shoal_protocol::hold::{ConcurrencyLimit, HoldKind, RateLimit};
use shoal_protocol::key::Key;
use shoal_protocol::{JobRecord, JobState, Timestamp};

/// What a job a worker held back waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    /// Which of its holds.
    pub(crate) by: HoldKind,
    /// When it was held.
    pub(crate) since: Option<Timestamp>,
    /// Until when its rate limit holds it.
    pub(crate) until: Option<Timestamp>,
    /// The parents it waits for.
    pub(crate) waiting_on: Vec<String>,
}

/// A queued, waiting, retrying or lost job, with its submission's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WaitingJob {
    /// Its group.
    pub(crate) group: String,
    /// Its queue.
    pub(crate) queue: String,
    /// Its id.
    pub(crate) id: String,
    /// Its latest attempt.
    pub(crate) attempt: u32,
    /// Its submission's sequence in `SHOAL_JOBS`.
    pub(crate) sequence: u64,
    /// Whether it is parked: no live worker could take it when it came.
    pub(crate) parked: bool,
    /// Its tags.
    pub(crate) tags: Vec<String>,
    /// Its concurrency key.
    pub(crate) concurrency: Option<ConcurrencyLimit>,
    /// Its rate limit.
    pub(crate) rate: Option<RateLimit>,
    /// What it waits for, when a worker held it back.
    pub(crate) held: Option<Box<Held>>,
    /// Whether a worker held it back and it was let go since, not taken yet.
    pub(crate) released: bool,
    /// The key it takes turns under, if any.
    pub(crate) fairness_key: Option<String>,
    /// Whether it waits for its fairness key's turn (no worker was sent it yet).
    pub(crate) awaits_its_turn: bool,
}

impl WaitingJob {
    /// What the registry keeps of `record`: only a job that waits, and whose
    /// submission is known.
    pub(crate) fn of(record: JobRecord) -> Option<Self> {
        let state = record.state?;
        let awaits_its_turn = record.awaits_its_turn();
        if !matches!(
            state,
            JobState::Queued | JobState::Waiting | JobState::Retrying | JobState::Lost
        ) {
            return None;
        }
        let held = match record.held_by {
            Some(by) if state == JobState::Waiting && record.attempt > 0 => Some(Box::new(Held {
                by,
                since: record.waiting_since,
                until: record.waiting_until,
                waiting_on: record.waiting_on,
            })),
            _ => None,
        };
        Some(Self {
            parked: state == JobState::Queued
                && record.attempt == 0
                && record.waiting_for.is_some(),
            held,
            released: state == JobState::Queued && record.attempt > 0,
            concurrency: record.concurrency,
            rate: record.rate,
            awaits_its_turn,
            fairness_key: record.fairness_key,
            sequence: record.stream_sequence?,
            group: record.group,
            queue: record.queue,
            id: record.id,
            attempt: record.attempt,
            tags: record.tags,
        })
    }

    /// Its key in `shoal_jobs`.
    pub(crate) fn key(&self) -> String {
        Key::new(&self.group, &self.id).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: JobState, waiting_for: Option<&str>) -> JobRecord {
        JobRecord {
            id: "j1".into(),
            group: "acme".into(),
            queue: "default".into(),
            state: Some(state),
            stream_sequence: Some(7),
            waiting_for: waiting_for.map(str::to_string),
            tags: vec!["gpu".into()],
            ..Default::default()
        }
    }

    #[test]
    fn only_jobs_that_wait_are_kept_and_parked_ones_are_marked() {
        assert_eq!(WaitingJob::of(record(JobState::Succeeded, None)), None);
        assert_eq!(WaitingJob::of(record(JobState::Running, None)), None);
        let queued = WaitingJob::of(record(JobState::Queued, None)).expect("kept");
        assert!(!queued.parked);
        assert_eq!((queued.key(), queued.sequence), ("acme.j1".into(), 7));
        let parked = WaitingJob::of(record(JobState::Queued, Some("a gpu"))).expect("kept");
        assert!(parked.parked);
        assert!(WaitingJob::of(record(JobState::Retrying, None)).is_some());
        assert!(WaitingJob::of(record(JobState::Lost, None)).is_some());
    }

    #[test]
    fn a_record_without_its_submission_is_not_kept() {
        let mut unknown = record(JobState::Queued, None);
        unknown.stream_sequence = None;
        assert_eq!(WaitingJob::of(unknown), None);
    }
}
