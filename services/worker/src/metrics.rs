//! The worker's metrics: jobs started and finished, retries, run and pickup
//! times, and its slots, by group and queue (never by job).

use std::time::Duration;

use shoal_metrics::{
    seconds_histogram, Counter, Family, FinishedLabels, Gauge, Histogram, QueueLabels, Registry,
    SlotLabels,
};

/// A family of histograms of seconds, by queue.
type Seconds = Family<QueueLabels, Histogram, fn() -> Histogram>;

/// The worker's metric families (cheap to update, served only with
/// `metrics_listen`).
pub(crate) struct WorkerMetrics {
    started: Family<QueueLabels, Counter>,
    finished: Family<FinishedLabels, Counter>,
    retried: Family<QueueLabels, Counter>,
    run_seconds: Seconds,
    pickup_seconds: Seconds,
    slots: Family<SlotLabels, Gauge>,
}

impl WorkerMetrics {
    /// The families, registered in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            started: Family::default(),
            finished: Family::default(),
            retried: Family::default(),
            run_seconds: Family::new_with_constructor(seconds_histogram),
            pickup_seconds: Family::new_with_constructor(seconds_histogram),
            slots: Family::default(),
        };
        registry.register(
            "shoal_jobs_started",
            "Attempts of jobs this worker started",
            metrics.started.clone(),
        );
        registry.register(
            "shoal_jobs_finished",
            "Jobs this worker ended for good, by final state",
            metrics.finished.clone(),
        );
        registry.register(
            "shoal_jobs_retried",
            "Attempts that failed and were scheduled again",
            metrics.retried.clone(),
        );
        registry.register(
            "shoal_job_run_seconds",
            "Time an attempt ran, from its start to its outcome",
            metrics.run_seconds.clone(),
        );
        registry.register(
            "shoal_job_pickup_seconds",
            "Time from a job's submission to the start of its first attempt",
            metrics.pickup_seconds.clone(),
        );
        registry.register(
            "shoal_worker_slots",
            "The worker's job slots, busy or free",
            metrics.slots.clone(),
        );
        metrics
    }

    /// An attempt started; `pickup` is the time since submission of a first one.
    pub(crate) fn started(&self, group: &str, queue: &str, pickup: Option<Duration>) {
        let labels = queue_labels(group, queue);
        self.started.get_or_create(&labels).inc();
        if let Some(pickup) = pickup {
            self.pickup_seconds
                .get_or_create(&labels)
                .observe(pickup.as_secs_f64());
        }
    }

    /// An attempt ended after `ran`: for good in `state`, or to be retried (`None`).
    pub(crate) fn ended(&self, group: &str, queue: &str, state: Option<&str>, ran: Duration) {
        let labels = queue_labels(group, queue);
        self.run_seconds
            .get_or_create(&labels)
            .observe(ran.as_secs_f64());
        match state {
            Some(state) => {
                let labels = FinishedLabels {
                    group: group.to_string(),
                    queue: queue.to_string(),
                    state: state.to_string(),
                };
                self.finished.get_or_create(&labels).inc();
            }
            None => {
                self.retried.get_or_create(&labels).inc();
            }
        }
    }

    /// `busy` of the worker's `concurrency` slots run jobs.
    pub(crate) fn slots(&self, group: &str, busy: usize, concurrency: u32) {
        let busy = i64::try_from(busy).unwrap_or(i64::MAX);
        let free = (i64::from(concurrency) - busy).max(0);
        for (state, value) in [("busy", busy), ("free", free)] {
            let labels = SlotLabels {
                group: group.to_string(),
                state: state.to_string(),
            };
            self.slots.get_or_create(&labels).set(value);
        }
    }
}

fn queue_labels(group: &str, queue: &str) -> QueueLabels {
    QueueLabels {
        group: group.to_string(),
        queue: queue.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_are_counted_by_state_and_retries_apart() {
        let mut registry = Registry::default();
        let metrics = WorkerMetrics::new(&mut registry);
        metrics.started("acme", "video", Some(Duration::from_millis(3)));
        metrics.ended("acme", "video", None, Duration::from_millis(10));
        metrics.started("acme", "video", None);
        metrics.ended(
            "acme",
            "video",
            Some("succeeded"),
            Duration::from_millis(10),
        );
        metrics.slots("acme", 1, 4);
        let text = shoal_metrics::encode(&registry);
        for line in [
            r#"shoal_jobs_started_total{group="acme",queue="video"} 2"#,
            r#"shoal_jobs_retried_total{group="acme",queue="video"} 1"#,
            r#"shoal_jobs_finished_total{group="acme",queue="video",state="succeeded"} 1"#,
            r#"shoal_job_run_seconds_count{group="acme",queue="video"} 2"#,
            r#"shoal_job_pickup_seconds_count{group="acme",queue="video"} 1"#,
            r#"shoal_worker_slots{group="acme",state="busy"} 1"#,
            r#"shoal_worker_slots{group="acme",state="free"} 3"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
