//! When a failed attempt runs again: the job's retry policy, within the
//! deliveries its queue allows, spread by jitter.

use std::time::Duration;

use shoal_protocol::JobSpec;

use crate::delivery::{Delivery, QueueLimits};

/// The delay before the next attempt, if the job's retry policy and the
/// queue's `max_deliver` leave one.
pub(crate) fn retry_delay(
    spec: &JobSpec,
    delivery: &Delivery,
    limits: QueueLimits,
) -> Option<Duration> {
    let retry = spec.retry.as_ref()?;
    let deliveries_left =
        limits.max_deliver <= 0 || i64::from(delivery.attempt) < limits.max_deliver;
    if delivery.attempt >= retry.max_attempts || !deliveries_left {
        return None;
    }
    let delay = retry.delay_after(delivery.attempt);
    let jitter = delay.mul_f64(f64::from(retry.jitter) / 100.0 * random_fraction());
    Some(delay + jitter)
}

/// A number in [0, 1) from the clock's nanoseconds: enough to spread retries.
fn random_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}
