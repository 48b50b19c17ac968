//! Jobs ended per ten seconds over the last ten minutes, counted from the
//! job records the dashboard sees change: the small chart of the queues.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use shoal_protocol::{JobRecord, JobState};

/// Seconds one slot of the chart covers.
pub(crate) const SLOT_SECONDS: i64 = 10;

/// Slots the chart shows.
const SLOTS: usize = 60;

/// The jobs that ended in one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Slot {
    /// When the slot starts, in Unix seconds.
    pub(crate) at: i64,
    /// Jobs that succeeded.
    pub(crate) succeeded: u64,
    /// Jobs that ended otherwise.
    pub(crate) failed: u64,
}

/// The counts, and the jobs already counted (a record written again after
/// its end is not counted twice).
#[derive(Debug, Default)]
pub(crate) struct Throughput {
    slots: VecDeque<Slot>,
    counted: HashMap<String, i64>,
}

impl Throughput {
    /// Counts the job under `key` if its record says it ended within the window.
    pub(crate) fn count(&mut self, key: &str, record: &JobRecord, now: i64) {
        let Some(state) = record.state.filter(|state| state.is_terminal()) else {
            return;
        };
        let ended = record
            .finished_at
            .map_or(now, |at| at.0.unix_timestamp())
            .min(now);
        let at = ended - ended.rem_euclid(SLOT_SECONDS);
        if at <= Self::window_start(now) - SLOT_SECONDS || self.counted.contains_key(key) {
            return;
        }
        self.counted.insert(key.to_string(), at);
        let slot = match self.slots.iter_mut().find(|slot| slot.at == at) {
            Some(slot) => slot,
            None => {
                self.slots.push_back(Slot {
                    at,
                    ..Slot::default()
                });
                self.slots.make_contiguous().sort_by_key(|slot| slot.at);
                self.slots
                    .iter_mut()
                    .find(|slot| slot.at == at)
                    .expect("just pushed")
            }
        };
        match state {
            JobState::Succeeded => slot.succeeded += 1,
            _ => slot.failed += 1,
        }
        self.forget_before(now);
    }

    /// The last ten minutes, one slot per ten seconds, oldest first.
    pub(crate) fn chart(&mut self, now: i64) -> Vec<Slot> {
        self.forget_before(now);
        let start = Self::window_start(now);
        (0..SLOTS as i64)
            .map(|index| {
                let at = start + index * SLOT_SECONDS;
                self.slots
                    .iter()
                    .find(|slot| slot.at == at)
                    .copied()
                    .unwrap_or(Slot {
                        at,
                        ..Slot::default()
                    })
            })
            .collect()
    }

    fn window_start(now: i64) -> i64 {
        let current = now - now.rem_euclid(SLOT_SECONDS);
        current - (SLOTS as i64 - 1) * SLOT_SECONDS
    }

    fn forget_before(&mut self, now: i64) {
        let start = Self::window_start(now);
        while self.slots.front().is_some_and(|slot| slot.at < start) {
            self.slots.pop_front();
        }
        self.counted.retain(|_, at| *at >= start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::timestamp::Timestamp;

    fn ended(state: JobState, seconds: i64) -> JobRecord {
        JobRecord {
            state: Some(state),
            done: true,
            finished_at: Some(Timestamp(
                time::OffsetDateTime::from_unix_timestamp(seconds).expect("a time"),
            )),
            ..JobRecord::default()
        }
    }

    #[test]
    fn each_ended_job_is_counted_once_in_the_slot_of_its_end() {
        let now = 1_000_007;
        let mut throughput = Throughput::default();
        throughput.count("a.1", &ended(JobState::Succeeded, now - 5), now);
        throughput.count("a.1", &ended(JobState::Succeeded, now - 5), now);
        throughput.count("a.2", &ended(JobState::Failed, now - 25), now);
        throughput.count("a.3", &ended(JobState::Succeeded, now - 3600), now);
        throughput.count("a.4", &JobRecord::default(), now);
        let chart = throughput.chart(now);
        assert_eq!(chart.len(), SLOTS);
        assert_eq!(chart.iter().map(|slot| slot.succeeded).sum::<u64>(), 1);
        assert_eq!(chart.iter().map(|slot| slot.failed).sum::<u64>(), 1);
        assert_eq!(chart.last().map(|slot| slot.succeeded), Some(1));
        assert!(chart
            .windows(2)
            .all(|pair| pair[1].at - pair[0].at == SLOT_SECONDS));
    }
}
