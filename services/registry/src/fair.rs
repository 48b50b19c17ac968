//! Fair share within a queue: a job with a fairness key waits on its key's
//! subject, which no worker reads, until the registry lets it go to the
//! workers (as a routed copy, like a held job). Keys take turns: each pass
//! lets go the oldest job of each key with waiting jobs in round-robin
//! order, and only so many that the jobs let go and not started yet stay
//! under the queue's window: what it started in the last half second (at
//! least [`MIN_WINDOW`]). A key's first job thus waits behind about half a
//! second of another key's backlog, never behind all of it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::dispatch::Directory;
use crate::waiting::WaitingJob;
use crate::{ApiError, Registry};

/// Fewest jobs of a queue let go and not started yet that a pass allows.
pub(crate) const MIN_WINDOW: usize = 16;

/// Most jobs of a queue let go and not started yet.
const MAX_WINDOW: usize = 4096;

/// Shortest time between two passes: changes that come together are taken together.
const PASS_SPACING: Duration = Duration::from_millis(20);

/// Longest time between two passes when nothing changes (a tag set came).
const IDLE_PASS: Duration = Duration::from_secs(1);

/// How far back a queue's starts count for its window.
const START_MEMORY: Duration = Duration::from_secs(1);

/// Jobs let go at once.
const LET_GO_AT_ONCE: usize = 16;

/// A group and a queue.
type Queue = (String, String);

/// What the passes remember of one queue.
#[derive(Debug, Default)]
struct Turns {
    /// The key served last: the next pass starts after it.
    last_key: Option<String>,
    /// Jobs let go and not started after the last pass.
    in_flight: usize,
    /// How many started (left the jobs let go) at each pass, recent ones.
    starts: VecDeque<(Instant, usize)>,
}

impl Turns {
    /// Notes the jobs of the queue let go and not started now, counting
    /// those that started since the last pass.
    fn note(&mut self, in_flight: usize, now: Instant) {
        let started = self.in_flight.saturating_sub(in_flight);
        self.in_flight = in_flight;
        self.starts.push_back((now, started));
        while self
            .starts
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > START_MEMORY)
        {
            self.starts.pop_front();
        }
    }

    /// How many jobs may be let go and not started at once: half of what
    /// started in the last second, within bounds.
    fn window(&self) -> usize {
        let started: usize = self.starts.iter().map(|(_, count)| count).sum();
        (started / 2).clamp(MIN_WINDOW, MAX_WINDOW)
    }
}

/// The jobs of one queue a pass looks at.
#[derive(Debug, Default)]
struct QueueNow {
    /// The keys of `shoal_jobs` of the jobs that wait for their turn, by
    /// fairness key, oldest first.
    by_key: BTreeMap<String, VecDeque<(u64, String)>>,
    /// Jobs let go and not started yet.
    in_flight: usize,
}

/// Lets jobs with a fairness key go in their turns, as jobs change,
/// until `shutdown`.
pub(crate) async fn watch(
    registry: Arc<Registry>,
    directory: Arc<RwLock<Directory>>,
    shutdown: CancellationToken,
) {
    let mut turns: HashMap<Queue, Turns> = HashMap::new();
    let mut sent: HashSet<String> = HashSet::new();
    let mut spacing = PASS_SPACING;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = registry.waiting.changed() => {}
            _ = tokio::time::sleep(IDLE_PASS) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(spacing) => {}
        }
        match registry
            .let_turns_go(&directory, &mut turns, &mut sent)
            .await
        {
            // Looking over a long backlog takes a fifth of the time at most.
            Ok(looking) => spacing = (looking * 4).clamp(PASS_SPACING, IDLE_PASS),
            Err(err) => {
                warn!(error = %err.description, "cannot let jobs go in their fairness keys' turns; trying again")
            }
        }
    }
}

impl Registry {
    /// One pass: for each queue with jobs waiting for their turn, lets go
    /// as many as its window has room for, key by key. `sent` holds the
    /// jobs let go whose record does not say so yet. Gives how long
    /// looking over the waiting jobs took.
    async fn let_turns_go(
        &self,
        directory: &RwLock<Directory>,
        turns: &mut HashMap<Queue, Turns>,
        sent: &mut HashSet<String>,
    ) -> Result<Duration, ApiError> {
        let now = Instant::now();
        // A backlog without fairness keys is not looked over at all.
        if self.waiting.counted() == 0 {
            turns.clear();
            sent.clear();
            return Ok(Duration::ZERO);
        }
        let Some(queues) = self.waiting.read(|entries| queues_now(entries, sent)) else {
            return Ok(Duration::ZERO);
        };
        let looking = now.elapsed();
        turns.retain(|queue, _| queues.contains_key(queue));
        let mut chosen: Vec<String> = Vec::new();
        for (queue, mut jobs) in queues {
            let turn = turns.entry(queue).or_default();
            turn.note(jobs.in_flight, now);
            let room = turn.window().saturating_sub(jobs.in_flight);
            chosen.extend(take_turns(&mut jobs.by_key, &mut turn.last_key, room));
        }
        let jobs: Vec<WaitingJob> = chosen
            .iter()
            .filter_map(|key| self.waiting.get(key))
            .collect();
        let mut letting_go = futures_util::stream::iter(jobs)
            .map(|job| async move {
                let gone = self.let_go(directory, &job).await;
                (job, gone)
            })
            .buffer_unordered(LET_GO_AT_ONCE);
        let mut failure = None;
        while let Some((job, gone)) = letting_go.next().await {
            match gone {
                Ok(true) => {
                    // In flight from now: what leaves by the next pass started.
                    if let Some(turn) = turns.get_mut(&(job.group.clone(), job.queue.clone())) {
                        turn.in_flight += 1;
                    }
                    sent.insert(job.key());
                }
                Ok(false) => {}
                Err(err) => failure = Some(err),
            }
        }
        failure.map_or(Ok(looking), Err)
    }
}

/// The jobs of each queue that wait for their turn, and those let go and
/// not started; forgets from `sent` the jobs whose record moved on.
fn queues_now(
    entries: &HashMap<String, WaitingJob>,
    sent: &mut HashSet<String>,
) -> BTreeMap<Queue, QueueNow> {
    let mut queues: BTreeMap<Queue, QueueNow> = BTreeMap::new();
    let mut still_sent = HashSet::with_capacity(sent.len());
    for (key, job) in entries {
        let Some(fairness_key) = &job.fairness_key else {
            continue;
        };
        let queue = || (job.group.clone(), job.queue.clone());
        if job.released {
            queues.entry(queue()).or_default().in_flight += 1;
        } else if job.awaits_its_turn {
            let now = queues.entry(queue()).or_default();
            if sent.contains(key) {
                still_sent.insert(key.clone());
                now.in_flight += 1;
            } else {
                now.by_key
                    .entry(fairness_key.clone())
                    .or_default()
                    .push_back((job.sequence, key.clone()));
            }
        }
    }
    *sent = still_sent;
    for now in queues.values_mut() {
        for jobs in now.by_key.values_mut() {
            jobs.make_contiguous().sort_unstable();
        }
    }
    queues
}

/// Up to `room` jobs, one of each key in turn (oldest first), starting
/// after the key served last; remembers the last key it served.
fn take_turns(
    by_key: &mut BTreeMap<String, VecDeque<(u64, String)>>,
    last_key: &mut Option<String>,
    room: usize,
) -> Vec<String> {
    let mut keys: Vec<String> = by_key.keys().cloned().collect();
    if let Some(last) = last_key.as_ref() {
        let after = keys.partition_point(|key| key <= last);
        keys.rotate_left(after);
    }
    let mut chosen = Vec::new();
    while chosen.len() < room {
        let mut took = false;
        for key in &keys {
            if chosen.len() >= room {
                break;
            }
            if let Some((_, job)) = by_key.get_mut(key).and_then(VecDeque::pop_front) {
                chosen.push(job);
                *last_key = Some(key.clone());
                took = true;
            }
        }
        if !took {
            break;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(keys: &[(&str, u64)]) -> BTreeMap<String, VecDeque<(u64, String)>> {
        let mut by_key = BTreeMap::new();
        let mut sequence = 0;
        for (key, count) in keys {
            let jobs: &mut VecDeque<(u64, String)> = by_key.entry(key.to_string()).or_default();
            for index in 0..*count {
                sequence += 1;
                jobs.push_back((sequence, format!("{key}-{index}")));
            }
        }
        by_key
    }

    #[test]
    fn keys_take_turns_whatever_the_size_of_their_backlog() {
        let mut by_key = backlog(&[("big", 10_000), ("lone", 1), ("small", 2)]);
        let mut last = None;
        let chosen = take_turns(&mut by_key, &mut last, 5);
        assert_eq!(chosen, ["big-0", "lone-0", "small-0", "big-1", "small-1"]);
        assert_eq!(last.as_deref(), Some("small"));
    }

    #[test]
    fn the_next_pass_starts_after_the_key_served_last() {
        let mut by_key = backlog(&[("a", 5), ("b", 5), ("c", 5)]);
        let mut last = None;
        assert_eq!(take_turns(&mut by_key, &mut last, 1), ["a-0"]);
        assert_eq!(take_turns(&mut by_key, &mut last, 1), ["b-0"]);
        assert_eq!(take_turns(&mut by_key, &mut last, 2), ["c-0", "a-1"]);
    }

    #[test]
    fn no_room_lets_nothing_go_and_an_empty_backlog_ends_the_turns() {
        let mut by_key = backlog(&[("a", 2)]);
        let mut last = None;
        assert!(take_turns(&mut by_key, &mut last, 0).is_empty());
        assert_eq!(take_turns(&mut by_key, &mut last, 10).len(), 2);
    }

    #[test]
    fn the_window_follows_what_the_queue_started_within_bounds() {
        let mut turns = Turns::default();
        let now = Instant::now();
        assert_eq!(turns.window(), MIN_WINDOW);
        turns.note(1_000, now);
        turns.note(0, now);
        assert_eq!(turns.window(), 500);
        let later = now + START_MEMORY * 2;
        turns.note(0, later);
        assert_eq!(turns.window(), MIN_WINDOW);
    }
}
