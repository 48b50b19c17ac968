//! The pull loops of a worker, one per served queue, grouped by the group
//! they serve so that the `_system` group can be started and stopped while
//! the worker runs (an admin promotes or demotes it).

use std::collections::BTreeMap;
use std::sync::Arc;

use shoal_protocol::streams::{Layout, SetupError};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, Instrument};

use shoal_protocol::Priority;

use crate::job::QueueLimits;
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
        for queue in &config.queues {
            let mut consumers = Vec::with_capacity(Priority::ORDER.len());
            for priority in Priority::ORDER {
                let consumer = self
                    .layout
                    .open_queue_consumer(
                        &self.worker.js,
                        group,
                        queue,
                        priority,
                        config.ack_wait,
                        config.max_deliver,
                    )
                    .await?;
                consumers.push(consumer);
            }
            // The consumers keep the settings of whoever created them.
            let limits = match consumers[1].info().await {
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
