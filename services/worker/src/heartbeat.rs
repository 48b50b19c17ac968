//! Heartbeats: a small message on `shoal.hb.<group>.<worker_id>` at every
//! interval, with the jobs the worker is running.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shoal_protocol::{Heartbeat, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::Worker;

impl Worker {
    /// The heartbeat the worker would send now.
    pub(crate) fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            worker_id: self.id.clone(),
            group: self.config.group.clone(),
            at: Timestamp::now(),
            interval: self.config.heartbeat_interval,
            running: self.running_jobs(|running| running.keys().cloned().collect()),
            jobs_run: self.jobs_run.load(Ordering::Relaxed),
            jobs_failed: self.jobs_failed.load(Ordering::Relaxed),
        }
    }
}

/// Sends heartbeats until `stop` is cancelled.
pub(crate) async fn beat(worker: Arc<Worker>, stop: CancellationToken) {
    let subject = worker
        .config
        .subjects
        .heartbeat(&worker.config.group, &worker.id);
    let mut ticker = tokio::time::interval(worker.config.heartbeat_interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Ok(body) = serde_json::to_vec(&worker.heartbeat()) else {
            continue;
        };
        if let Err(err) = worker.client.publish(subject.clone(), body.into()).await {
            debug!(error = %err, "heartbeat not sent");
        }
    }
}
