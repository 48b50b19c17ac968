//! The registry's metrics, fleet-wide: each queue's depth at each priority
//! (what KEDA reads) and the age of its oldest waiting job, read from the
//! jobs stream's consumers when scraped; the workers by group and status,
//! from the registry's mirror; and the jobs it buried as dead.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use futures_util::StreamExt;
use shoal_metrics::{
    Counter, Family, Gauge, GroupLabels, QueueDepthLabels, Registry as Metrics, WorkerStatusLabels,
};
use shoal_protocol::names::JobConsumer;
use tracing::debug;

use crate::Registry;

/// A gauge of seconds.
type Seconds = Gauge<f64, AtomicU64>;

/// The registry's metric families.
#[derive(Default)]
pub(crate) struct RegistryMetrics {
    depth: Family<QueueDepthLabels, Gauge>,
    oldest: Family<QueueDepthLabels, Seconds>,
    workers: Family<WorkerStatusLabels, Gauge>,
    dead: Family<GroupLabels, Counter>,
}

impl RegistryMetrics {
    /// The families, registered in `registry`.
    pub(crate) fn new(registry: &mut Metrics) -> Self {
        let metrics = Self::default();
        registry.register(
            "shoal_queue_depth",
            "Jobs waiting or running on a queue's consumer (num_pending + num_ack_pending, as KEDA reads it)",
            metrics.depth.clone(),
        );
        registry.register(
            "shoal_queue_oldest_age_seconds",
            "Age of the oldest job of a queue that no worker has taken yet",
            metrics.oldest.clone(),
        );
        registry.register(
            "shoal_workers",
            "Workers by group and status",
            metrics.workers.clone(),
        );
        registry.register(
            "shoal_jobs_dead",
            "Jobs this registry buried after their last delivery",
            metrics.dead.clone(),
        );
        metrics
    }
}

/// What one queue consumer says.
struct QueueFigures {
    labels: QueueDepthLabels,
    depth: u64,
    oldest_seconds: f64,
}

impl Registry {
    /// Counts a job buried as dead.
    pub(crate) fn count_dead(&self, group: &str) {
        let labels = GroupLabels {
            group: group.to_string(),
        };
        self.metrics.dead.get_or_create(&labels).inc();
    }

    /// Reads the figures a scrape serves.
    pub(crate) async fn refresh_metrics(&self) {
        self.count_workers();
        match self.queue_figures().await {
            Ok(figures) => {
                // The routes of several tag sets of a queue add up.
                let mut queues: HashMap<QueueDepthLabels, (u64, f64)> = HashMap::new();
                for queue in figures {
                    let summed = queues.entry(queue.labels).or_default();
                    summed.0 += queue.depth;
                    summed.1 = summed.1.max(queue.oldest_seconds);
                }
                self.metrics.depth.clear();
                self.metrics.oldest.clear();
                for (labels, (depth, oldest_seconds)) in queues {
                    let depth = i64::try_from(depth).unwrap_or(i64::MAX);
                    self.metrics.depth.get_or_create(&labels).set(depth);
                    self.metrics
                        .oldest
                        .get_or_create(&labels)
                        .set(oldest_seconds);
                }
            }
            Err(err) => debug!(error = %err, "cannot read the queues' consumers for the metrics"),
        }
    }

    fn count_workers(&self) {
        let Some(records) = self.worker_records.values() else {
            return;
        };
        let mut counts: HashMap<WorkerStatusLabels, i64> = HashMap::new();
        for record in records {
            let Some(status) = record.status else {
                continue;
            };
            let labels = WorkerStatusLabels {
                group: record.group,
                status: status.as_str().to_string(),
            };
            *counts.entry(labels).or_default() += 1;
        }
        self.metrics.workers.clear();
        for (labels, count) in counts {
            self.metrics.workers.get_or_create(&labels).set(count);
        }
    }

    async fn queue_figures(&self) -> Result<Vec<QueueFigures>, async_nats::Error> {
        let stream = self
            .js
            .get_stream_no_info(self.config.layout.jobs_stream())
            .await?;
        let mut consumers = stream.consumers();
        let mut figures = Vec::new();
        while let Some(info) = consumers.next().await {
            let info = info?;
            let Some(consumer) = JobConsumer::parse(&info.name) else {
                continue;
            };
            let oldest_seconds = match info.num_pending {
                0 => 0.0,
                _ => {
                    let filter = info.config.filter_subject.clone();
                    let next = info.delivered.stream_sequence + 1;
                    match stream.get_first_raw_message_by_subject(&filter, next).await {
                        Ok(message) => {
                            let age = time::OffsetDateTime::now_utc() - message.time;
                            age.as_seconds_f64().max(0.0)
                        }
                        Err(_) => 0.0,
                    }
                }
            };
            let priority = consumer
                .priority
                .map_or("routed", shoal_protocol::Priority::as_str);
            figures.push(QueueFigures {
                labels: QueueDepthLabels {
                    group: consumer.group,
                    queue: consumer.queue,
                    priority: priority.to_string(),
                },
                depth: info.num_pending + info.num_ack_pending as u64,
                oldest_seconds,
            });
        }
        Ok(figures)
    }
}
