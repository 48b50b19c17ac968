//! Limits the whole fleet keeps, as records of the `shoal_limits` bucket:
//! `<group>.concurrency.<key>` lists the jobs running with a concurrency
//! key, each under a lease; `<group>.rate.<key>` lists the starts of a rate
//! limit's window. Workers change them with compare-and-set, so no slot is
//! granted twice; a lease that runs out (its worker died) frees its slot.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::timestamp::Timestamp;

/// Which limit a record keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    /// Jobs running at once.
    Concurrency,
    /// Starts per window.
    Rate,
}

impl LimitKind {
    /// The token of the kind in a key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Rate => "rate",
        }
    }

    /// The key of `key`'s record in `group`: `<group>.<kind>.<key>`.
    pub fn record_key(self, group: &str, key: &str) -> String {
        format!("{group}.{}.{key}", self.as_str())
    }

    /// Reads `<group>.<kind>.<key>` back.
    pub fn parse_key(text: &str) -> Option<(String, Self, String)> {
        let mut tokens = text.splitn(3, '.');
        let group = tokens.next()?;
        let kind = match tokens.next()? {
            "concurrency" => Self::Concurrency,
            "rate" => Self::Rate,
            _ => return None,
        };
        Some((group.to_string(), kind, tokens.next()?.to_string()))
    }
}

/// A job that holds a concurrency slot until its lease runs out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The job's id.
    pub job_id: String,
    /// Its attempt.
    pub attempt: u32,
    /// The worker running it.
    pub worker_id: String,
    /// When the lease ends unless renewed.
    pub until: Timestamp,
}

/// A start counted in a rate limit's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// The job's id.
    pub job_id: String,
    /// When it started.
    pub at: Timestamp,
}

/// The record of one key in `shoal_limits`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "LimitRecord")]
pub struct LimitRecord {
    /// A limit set for the key (`shoal limit set`), over the jobs' own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The jobs holding a concurrency slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<Holder>,
    /// The starts within a rate limit's window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts: Vec<Start>,
}

/// Why a job may not take a slot or start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Full {
    /// Every concurrency slot is held.
    Running {
        /// Slots held.
        running: u32,
        /// The limit in force.
        limit: u32,
    },
    /// The window holds `limit` starts already.
    Rate {
        /// When the earliest start leaves the window.
        until: Timestamp,
    },
}

impl LimitRecord {
    /// The concurrency limit in force: the key's own, else the job's.
    pub fn limit_or(&self, own: u32) -> u32 {
        self.limit.unwrap_or(own)
    }

    /// Holders whose lease has not run out at `now`.
    pub fn live_holders(&self, now: Timestamp) -> u32 {
        self.holders
            .iter()
            .filter(|holder| holder.until > now)
            .count() as u32
    }

    /// Concurrency slots free at `now` under the job's limit `own`.
    pub fn free_slots(&self, own: u32, now: Timestamp) -> u32 {
        self.limit_or(own).saturating_sub(self.live_holders(now))
    }

    /// Takes a slot for `holder` (or renews the one its job holds), dropping
    /// the leases that ran out.
    pub fn acquire(&mut self, holder: Holder, own: u32, now: Timestamp) -> Result<(), Full> {
        self.holders
            .retain(|held| held.until > now && held.job_id != holder.job_id);
        let limit = self.limit_or(own);
        let running = self.holders.len() as u32;
        if running >= limit {
            return Err(Full::Running { running, limit });
        }
        self.holders.push(holder);
        Ok(())
    }

    /// Moves the lease of `job_id`'s slot to `until`; `false` if it holds none.
    pub fn renew(&mut self, job_id: &str, until: Timestamp) -> bool {
        match self
            .holders
            .iter_mut()
            .find(|holder| holder.job_id == job_id)
        {
            Some(holder) => {
                holder.until = until;
                true
            }
            None => false,
        }
    }

    /// Frees `job_id`'s slot; `false` if it held none.
    pub fn release(&mut self, job_id: &str) -> bool {
        let before = self.holders.len();
        self.holders.retain(|holder| holder.job_id != job_id);
        self.holders.len() != before
    }

    /// Starts left in the window of `per` ending at `now`.
    pub fn free_starts(&self, limit: u32, per: std::time::Duration, now: Timestamp) -> u32 {
        limit.saturating_sub(self.starts_within(per, now))
    }

    /// Counts a start of `job_id` at `now` if the window has room; else says
    /// when it will.
    pub fn start(
        &mut self,
        job_id: &str,
        limit: u32,
        per: std::time::Duration,
        now: Timestamp,
    ) -> Result<(), Full> {
        self.starts
            .retain(|start| start.at.checked_add(per).is_some_and(|end| end > now));
        if self.starts.len() as u32 >= limit {
            let earliest = self.starts.iter().map(|start| start.at).min();
            let until = earliest.and_then(|at| at.checked_add(per)).unwrap_or(now);
            return Err(Full::Rate { until });
        }
        self.starts.push(Start {
            job_id: job_id.to_string(),
            at: now,
        });
        Ok(())
    }

    fn starts_within(&self, per: std::time::Duration, now: Timestamp) -> u32 {
        self.starts
            .iter()
            .filter(|start| start.at.checked_add(per).is_some_and(|end| end > now))
            .count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp(time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seconds))
    }

    fn holder(job: &str, until: i64) -> Holder {
        Holder {
            job_id: job.into(),
            attempt: 1,
            worker_id: "w".into(),
            until: at(until),
        }
    }

    #[test]
    fn no_more_than_the_limit_hold_a_slot_and_a_lease_that_ran_out_frees_one() {
        let mut record = LimitRecord::default();
        assert_eq!(record.acquire(holder("a", 30), 2, at(0)), Ok(()));
        assert_eq!(record.acquire(holder("b", 30), 2, at(0)), Ok(()));
        assert_eq!(
            record.acquire(holder("c", 30), 2, at(1)),
            Err(Full::Running {
                running: 2,
                limit: 2
            })
        );
        assert_eq!(record.free_slots(2, at(31)), 2);
        assert_eq!(record.acquire(holder("c", 61), 2, at(31)), Ok(()));
        assert_eq!(record.holders.len(), 1);
        assert!(record.renew("c", at(90)));
        assert!(record.release("c"));
        assert!(!record.release("c"));
    }

    #[test]
    fn the_key_s_own_limit_beats_the_job_s() {
        let mut record = LimitRecord {
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(record.acquire(holder("a", 30), 5, at(0)), Ok(()));
        assert!(record.acquire(holder("b", 30), 5, at(0)).is_err());
        record.limit = Some(3);
        assert_eq!(record.free_slots(5, at(0)), 2);
    }

    #[test]
    fn a_rate_counts_starts_in_a_sliding_window_and_says_when_room_comes() {
        let mut record = LimitRecord::default();
        let minute = std::time::Duration::from_secs(60);
        assert_eq!(record.start("a", 2, minute, at(0)), Ok(()));
        assert_eq!(record.start("b", 2, minute, at(10)), Ok(()));
        assert_eq!(
            record.start("c", 2, minute, at(20)),
            Err(Full::Rate { until: at(60) })
        );
        assert_eq!(record.free_starts(2, minute, at(60)), 1);
        assert_eq!(record.start("c", 2, minute, at(60)), Ok(()));
    }

    #[test]
    fn a_record_key_reads_back() {
        let key = LimitKind::Concurrency.record_key("acme", "customer-42");
        assert_eq!(key, "acme.concurrency.customer-42");
        assert_eq!(
            LimitKind::parse_key(&key),
            Some(("acme".into(), LimitKind::Concurrency, "customer-42".into()))
        );
        assert_eq!(LimitKind::parse_key("acme.other.k"), None);
    }
}
