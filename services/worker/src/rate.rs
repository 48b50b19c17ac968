//! Bounds on what one job may put in the shared streams per second: its
//! output in `SHOAL_LOGS` and its progress in `SHOAL_EVENTS`, so that one
//! chatty job cannot crowd out the events every group's records wait for.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(rate: u64, burst: u64) -> Self {
        Self {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            at: Instant::now(),
        }
    }

    /// Takes `amount` tokens if there are that many.
    pub(crate) fn take(&mut self, amount: u64) -> bool {
        self.take_at(amount, Instant::now())
    }

    fn take_at(&mut self, amount: u64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        let amount = amount as f64;
        if amount <= self.tokens {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }
}

/// Bytes of output a second one job may stream (beyond, its output is in
/// its output file only).
pub(crate) const LOG_BYTES_PER_SECOND: u64 = 1024 * 1024;

/// Bytes of output one job may stream at once before the rate applies.
pub(crate) const LOG_BURST_BYTES: u64 = 4 * 1024 * 1024;

/// Shortest time between two progress events of one job; the latest
/// report of a shorter time is the one sent.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(100, 300);
        bucket.at = start;
        assert!(bucket.take_at(300, start));
        assert!(!bucket.take_at(1, start));
        assert!(bucket.take_at(100, start + Duration::from_secs(1)));
        assert!(!bucket.take_at(50, start + Duration::from_secs(1)));
        assert!(bucket.take_at(300, start + Duration::from_secs(10)));
    }
}
