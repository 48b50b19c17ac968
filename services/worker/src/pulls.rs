//! The pull loops of a worker, one per served queue, grouped by the group
//! they serve so that the `_system` group can be started and stopped while
//! the worker runs (an admin promotes or demotes it).

use std::collections::BTreeMap;
use std::sync::Arc;

use shoal_client::streams::{Layout, SetupError};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, Instrument};

use async_nats::jetstream::consumer::PullConsumer;
use shoal_protocol::tags::{tag_set_key, UNTAGGED_KEY};
use shoal_protocol::Priority;

use crate::delivery::QueueLimits;
use crate::pull::pull_queue;
use crate::Worker;

/// The pull loops of one worker.
pub(crate) struct Pulls {
    worker: Arc<Worker>,
    layout: Layout,
    slots: Arc<Semaphore>,
    jobs: TaskTracker,
    stop: CancellationToken,
    groups: BTreeMap<String, (CancellationToken, Vec<JoinHandle<()>>)>,
}

impl Pulls {
    /// No loops yet; `stop` ends them all, `jobs` tracks the jobs they start.
    pub(crate) fn new(
        worker: Arc<Worker>,
        layout: Layout,
        jobs: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(worker.config.concurrency as usize));
        Self {
            worker,
            layout,
            slots,
            jobs,
            stop,
            groups: BTreeMap::new(),
        }
    }

    /// Starts pulling the worker's queues in `group`.
    pub(crate) async fn start(&mut self, group: &str) -> Result<(), SetupError> {
        if self.groups.contains_key(group) {
            return Ok(());
        }
        let token = self.stop.child_token();
        let mut handles = Vec::new();
        let config = &self.worker.config;
        let key = tag_set_key(&config.tags);
        for queue in &config.queues {
            let (consumers, long_poll) = self.consumers_of(group, queue, &key).await?;
            // The consumers keep the settings of whoever created them.
            let limits = match consumers[long_poll].clone().info().await {
                Ok(info) => QueueLimits {
                    ack_wait: info.config.ack_wait,
                    max_deliver: info.config.max_deliver,
                },
                Err(_) => QueueLimits {
                    ack_wait: config.ack_wait,
                    max_deliver: config.max_deliver,
                },
            };
            let puller = pull_queue(
                self.worker.clone(),
                consumers,
                long_poll,
                self.slots.clone(),
                self.jobs.clone(),
                token.clone(),
                limits,
            );
            handles.push(tokio::spawn(puller.in_current_span()));
        }
        info!(served_group = group, "pulling jobs");
        self.groups.insert(group.to_string(), (token, handles));
        Ok(())
    }

    /// The consumers a worker takes a queue's jobs from, in the order it looks
    /// at them, and the one it long-polls when none has jobs. A worker without
    /// tags takes submissions directly (high, normal, low) and what the
    /// dispatcher routes to untagged workers; a worker with tags only what the
    /// dispatcher routes to its tag set.
    async fn consumers_of(
        &self,
        group: &str,
        queue: &str,
        key: &str,
    ) -> Result<(Vec<PullConsumer>, usize), SetupError> {
        let config = &self.worker.config;
        let js = &self.worker.js;
        let routed = self
            .layout
            .open_route_consumer(js, group, queue, key, config.ack_wait, config.max_deliver)
            .await?;
        if key != UNTAGGED_KEY {
            return Ok((vec![routed], 0));
        }
        let mut consumers = Vec::with_capacity(Priority::ORDER.len() + 1);
        for priority in Priority::ORDER {
            consumers.push(
                self.layout
                    .open_queue_consumer(
                        js,
                        group,
                        queue,
                        priority,
                        config.ack_wait,
                        config.max_deliver,
                    )
                    .await?,
            );
        }
        consumers.push(routed);
        Ok((consumers, 1))
    }

    /// Stops pulling in `group`; running jobs go on.
    pub(crate) async fn stop_group(&mut self, group: &str) {
        if let Some((token, handles)) = self.groups.remove(group) {
            token.cancel();
            for handle in handles {
                let _ = handle.await;
            }
            info!(served_group = group, "stopped pulling jobs");
        }
    }

    /// Waits for every loop to end (after `stop`).
    pub(crate) async fn join(mut self) {
        let groups: Vec<String> = self.groups.keys().cloned().collect();
        for group in groups {
            self.stop_group(&group).await;
        }
    }

    /// Whether the loops of `group` run.
    pub(crate) fn serves(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }
}
