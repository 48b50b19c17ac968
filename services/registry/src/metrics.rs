//! The registry's metrics, fleet-wide: each queue's depth at each priority
//! (what KEDA reads) and the age of its oldest waiting job, read from the
//! jobs stream's consumers when scraped; the workers by group and status,
//! from the registry's mirror; and the dead letters stored per queue, from
//! the dead-letter stream, whoever stored them.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use futures_util::StreamExt;
use shoal_metrics::{
    Counter, Family, Gauge, QueueDepthLabels, QueueLabels, Registry as Metrics, WorkerStatusLabels,
};
use shoal_protocol::WorkerStatus;
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
    queue_workers: Family<QueueLabels, Gauge>,
    dead: Family<QueueLabels, Counter>,
    /// The dead letters each queue held at the last read, to count only new ones.
    dead_seen: Mutex<HashMap<QueueLabels, u64>>,
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
            "shoal_queue_workers",
            "Online workers that read a queue",
            metrics.queue_workers.clone(),
        );
        registry.register(
            "shoal_jobs_dead",
            "Jobs given up (dead letters stored), per queue, whoever gave them up",
            metrics.dead.clone(),
        );
        metrics
    }
}

impl Registry {
    /// Reads the figures a scrape serves.
    pub(crate) async fn refresh_metrics(&self) {
        self.count_workers();
        if let Err(err) = self.count_dead_letters().await {
            debug!(error = %err, "cannot read the dead letters for the metrics");
        }
        let shoal = shoal_client::Client::over(self.client.clone(), self.config.layout.clone());
        match shoal.queue_figures().await {
            Ok(figures) => {
                self.metrics.depth.clear();
                self.metrics.oldest.clear();
                for queue in figures {
                    let labels = QueueDepthLabels {
                        priority: queue.priority.to_string(),
                        tags: queue.tags,
                        group: queue.group,
                        queue: queue.queue,
                    };
                    // A queue's count starts at zero, so that its first dead letter is a rise.
                    let dead = QueueLabels {
                        group: labels.group.clone(),
                        queue: labels.queue.clone(),
                    };
                    self.metrics.dead.get_or_create(&dead).inc_by(0);
                    let depth = i64::try_from(queue.depth).unwrap_or(i64::MAX);
                    self.metrics.depth.get_or_create(&labels).set(depth);
                    self.metrics
                        .oldest
                        .get_or_create(&labels)
                        .set(queue.oldest_seconds);
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
        let mut readers: HashMap<QueueLabels, i64> = HashMap::new();
        for record in records {
            let Some(status) = record.status else {
                continue;
            };
            if status == WorkerStatus::Online {
                for queue in &record.queues {
                    let labels = QueueLabels {
                        group: record.group.clone(),
                        queue: queue.clone(),
                    };
                    *readers.entry(labels).or_default() += 1;
                }
            }
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
        self.metrics.queue_workers.clear();
        for (labels, count) in readers {
            self.metrics.queue_workers.get_or_create(&labels).set(count);
        }
    }

    /// Adds the dead letters stored since the last read to each queue's count.
    async fn count_dead_letters(&self) -> Result<(), async_nats::Error> {
        let subjects = &self.config.layout.subjects;
        let stream = self
            .js
            .get_stream_no_info(self.config.layout.dead_stream())
            .await?;
        let mut counts = stream.info_with_subjects(subjects.all_dead()).await?;
        let mut stored = Vec::new();
        while let Some(entry) = counts.next().await {
            let (subject, count) = entry?;
            if let Some((group, queue)) = subjects.parse_dead(&subject) {
                stored.push((QueueLabels { group, queue }, count as u64));
            }
        }
        let mut seen = self
            .metrics
            .dead_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (labels, count) in stored {
            // Letters older than the stream keeps leave it: only a rise counts.
            let before = seen.insert(labels.clone(), count).unwrap_or(0);
            let counter = self.metrics.dead.get_or_create(&labels);
            counter.inc_by(count.saturating_sub(before));
        }
        Ok(())
    }
}
