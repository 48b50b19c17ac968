//! How the inputs of one key are folded and written: each input on its
//! own (one that panics is left out), which submissions another owns, and
//! whether a worker's change is worth a write.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use shoal_protocol::fold::JobInput;
use shoal_protocol::{JobRecord, WorkerRecord};

/// Folds `inputs` into `record` one at a time; an input whose fold panics
/// is left out and its position noted in `panicked`, so that one message
/// cannot stop the projector, nor take the other inputs of its key down.
pub(crate) fn guarded_fold<R: Clone + Default, I>(
    record: Option<R>,
    inputs: &[I],
    fold: fn(Option<R>, &I) -> R,
    panicked: &Mutex<BTreeSet<usize>>,
) -> R {
    let mut left_out = BTreeSet::new();
    let mut folded = record;
    for (position, input) in inputs.iter().enumerate() {
        let before = folded.clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fold(before, input))) {
            Ok(next) => folded = Some(next),
            Err(_) => {
                left_out.insert(position);
            }
        }
    }
    if let Ok(mut shared) = panicked.lock() {
        *shared = left_out;
    }
    folded.unwrap_or_default()
}

/// The positions of the inputs whose fold panicked in the last try.
pub(crate) fn panicked_inputs(panicked: &Mutex<BTreeSet<usize>>) -> BTreeSet<usize> {
    panicked.lock().map(|set| set.clone()).unwrap_or_default()
}

/// The submissions among `inputs` (by message index) that the record shows
/// another submission owns, with that owner's sequence.
pub(crate) fn duplicate_submissions(
    record: &JobRecord,
    inputs: &[JobInput],
    indexes: &[usize],
) -> Vec<(usize, u64)> {
    let Some(owner) = record.stream_sequence else {
        return Vec::new();
    };
    inputs
        .iter()
        .zip(indexes)
        .filter_map(|(input, &index)| match input {
            JobInput::Submitted { sequence, .. } if *sequence != owner => Some((index, owner)),
            _ => None,
        })
        .collect()
}

/// Heartbeats only move `last_seen`; such a change is written once it is
/// two heartbeat intervals old, so KV is not written at every beat.
pub(crate) fn worth_writing_worker(old: Option<&WorkerRecord>, new: &WorkerRecord) -> bool {
    let Some(old) = old else {
        return true;
    };
    let mut without_last_seen = new.clone();
    without_last_seen.last_seen = old.last_seen;
    if old.status == new.status {
        without_last_seen.status_at = old.status_at;
    }
    if &without_last_seen != old {
        return true;
    }
    let interval = new
        .heartbeat_interval
        .map_or(Duration::from_secs(5), |interval| interval.get());
    match (old.last_seen, new.last_seen) {
        (Some(before), Some(after)) => (after.0 - before.0) >= interval * 2,
        _ => true,
    }
}
