//! The worker as an instance of the `shoal-worker` micro service: `query`,
//! `drain` and `stop` endpoints on `shoal.ctl.<group>.worker.<worker_id>.`,
//! and its job counters in the service's stats.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::service::{Service, ServiceExt};
use futures_util::StreamExt;
use serde::Serialize;
use shoal_protocol::registry::WORKER_SERVICE_NAME;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Worker;

/// What `query` answers.
#[derive(Debug, Serialize)]
struct WorkerState {
    id: String,
    name: String,
    group: String,
    queues: Vec<String>,
    draining: bool,
    running: Vec<String>,
    jobs_run: u64,
    jobs_failed: u64,
    average_job_ms: f64,
}

impl Worker {
    fn average_job_ms(&self) -> f64 {
        let run = self.jobs_run.load(Ordering::Relaxed);
        if run == 0 {
            return 0.0;
        }
        self.job_micros.load(Ordering::Relaxed) as f64 / run as f64 / 1000.0
    }

    fn counters(&self) -> serde_json::Value {
        serde_json::json!({
            "worker_id": self.id,
            "jobs_run": self.jobs_run.load(Ordering::Relaxed),
            "jobs_failed": self.jobs_failed.load(Ordering::Relaxed),
            "average_job_ms": self.average_job_ms(),
        })
    }
}

/// The running service and its endpoint loops.
pub(crate) struct Control {
    service: Service,
    loops: JoinSet<()>,
}

/// Starts the worker's micro-service instance; `drain` cancels `stop_pulling`,
/// `stop` also hands running jobs back at once.
pub(crate) async fn start(
    worker: Arc<Worker>,
    stop_pulling: CancellationToken,
) -> Result<Control, async_nats::Error> {
    let stats_worker = worker.clone();
    let metadata = HashMap::from([
        ("worker_id".to_string(), worker.id.clone()),
        ("group".to_string(), worker.config.group.clone()),
        ("name".to_string(), worker.config.name.clone()),
    ]);
    let service = worker
        .client
        .service_builder()
        .description("A Shoal worker")
        .metadata(metadata)
        .stats_handler(move |_, _| stats_worker.counters())
        .start(WORKER_SERVICE_NAME, shoal_protocol::VERSION)
        .await?;
    let prefix = format!(
        "{}.ctl.{}.worker.{}",
        worker.config.subjects.prefix(),
        worker.config.group,
        worker.id
    );
    let group = service.group(prefix);
    let mut loops = JoinSet::new();
    for name in ["query", "drain", "stop"] {
        let mut endpoint = group.endpoint_builder().name(name).add(name).await?;
        let worker = worker.clone();
        let stop_pulling = stop_pulling.clone();
        loops.spawn(async move {
            while let Some(request) = endpoint.next().await {
                match name {
                    "drain" => {
                        info!("drain requested");
                        stop_pulling.cancel();
                    }
                    "stop" => {
                        info!("stop requested: running jobs go back");
                        stop_pulling.cancel();
                        worker.abort.cancel();
                    }
                    _ => {}
                }
                let body = serde_json::to_vec(&worker.state(stop_pulling.is_cancelled()))
                    .unwrap_or_default();
                if let Err(err) = request.respond(Ok(body.into())).await {
                    warn!(endpoint = name, error = %err, "could not answer a request");
                }
            }
        });
    }
    Ok(Control { service, loops })
}

impl Worker {
    fn state(&self, draining: bool) -> WorkerState {
        WorkerState {
            id: self.id.clone(),
            name: self.config.name.clone(),
            group: self.config.group.clone(),
            queues: self.config.queues.clone(),
            draining,
            running: self.running_jobs(|running| running.keys().cloned().collect()),
            jobs_run: self.jobs_run.load(Ordering::Relaxed),
            jobs_failed: self.jobs_failed.load(Ordering::Relaxed),
            average_job_ms: self.average_job_ms(),
        }
    }
}

/// Stops answering (before the connection drains).
pub(crate) async fn stop(control: Control) {
    let Control { service, mut loops } = control;
    let _ = service.stop().await;
    loops.abort_all();
    while loops.join_next().await.is_some() {}
}
