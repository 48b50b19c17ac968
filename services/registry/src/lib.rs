//! The registry: the `shoal-registry` micro service for admin work (create,
//! get, list, update and delete workers; apply, list and delete resources),
//! and its periodic parts: liveness, dispatch by tags, dead letters and the
//! reconciler.
//!
//! It keeps no state of its own: every change is an event, folded into KV
//! right away with the protocol's fold (so a read after a write sees it,
//! and a replay gives the same records); what it holds in memory is a
//! mirror of the buckets, read again from them when it starts. Several replicas share the work through
//! the micro service's queue group; the liveness check deduplicates its
//! events by id, so replicas never double its effects.

mod api;
mod dead;
mod declared;
mod dispatch;
mod fair;
mod jobs;
mod liveness;
mod logs;
mod metrics;
mod mirror;
mod reconcile;
mod release;
mod resources;
mod waiting;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use shoal_client::publish::{publish_once, Check, Stored};
use shoal_client::streams::{Layout, SetupError};
use shoal_client::RecordStore;
use shoal_protocol::registry::codes;
use shoal_protocol::resource::Resource;
use shoal_protocol::{JobRecord, WorkerRecord};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::info;

use mirror::Mirror;
use waiting::WaitingJob;

/// How the registry runs.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The streams and buckets.
    pub layout: Layout,
    /// Heartbeat intervals without a heartbeat after which a worker is lost.
    pub lost_after: u32,
    /// How often the liveness check runs.
    pub check_interval: Duration,
    /// How often submissions are compared with job records.
    pub reconcile_interval: Duration,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Why the registry stopped.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// Streams or buckets could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The micro service could not start.
    #[error("cannot start the micro service: {0}")]
    Service(String),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] shoal_metrics::MetricsError),
}

/// An answer that is an error: a code of [`codes`] and one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code.
    pub code: usize,
    /// The sentence.
    pub description: String,
}

impl ApiError {
    fn bad_request(description: impl Into<String>) -> Self {
        Self {
            code: codes::BAD_REQUEST,
            description: description.into(),
        }
    }

    fn not_found(description: impl Into<String>) -> Self {
        Self {
            code: codes::NOT_FOUND,
            description: description.into(),
        }
    }

    fn forbidden(description: impl Into<String>) -> Self {
        Self {
            code: codes::FORBIDDEN,
            description: description.into(),
        }
    }

    fn conflict(description: impl Into<String>) -> Self {
        Self {
            code: codes::CONFLICT,
            description: description.into(),
        }
    }

    /// A failure of the registry itself, described with its causes.
    fn internal(err: impl Into<shoal_client::records::BoxError>) -> Self {
        Self {
            code: codes::INTERNAL,
            description: shoal_client::error_chain(&*err.into()),
        }
    }
}

/// The registry's handles, shared by its endpoints and its liveness check.
pub(crate) struct Registry {
    config: RegistryConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    workers: RecordStore<WorkerRecord>,
    jobs: RecordStore<JobRecord>,
    names: kv::Store,
    pools: kv::Store,
    /// Every worker record, followed.
    worker_records: Arc<Mirror<WorkerRecord>>,
    /// Every pool spec, followed.
    pool_specs: Arc<Mirror<Resource>>,
    /// The jobs that wait, followed; the keys of jobs that end are noted.
    waiting: Arc<Mirror<WaitingJob>>,
    /// The records of concurrency keys and rate limits, followed.
    limit_records: Arc<Mirror<shoal_protocol::limits::LimitRecord>>,
    /// The revision of each parked job's record when this registry routed it.
    routed: std::sync::Mutex<HashMap<String, u64>>,
    /// Its metrics.
    metrics: metrics::RegistryMetrics,
}

impl Registry {
    /// Publishes an event with a deduplication id; `Ok(false)` when it was a duplicate.
    async fn publish(
        &self,
        subject: String,
        msg_id: Option<String>,
        body: Vec<u8>,
    ) -> Result<bool, ApiError> {
        self.publish_with_headers(subject, msg_id, HeaderMap::new(), body)
            .await
    }

    /// [`Registry::publish`] with headers of its own.
    async fn publish_with_headers(
        &self,
        subject: String,
        msg_id: Option<String>,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<bool, ApiError> {
        let Some(msg_id) = msg_id else {
            self.js
                .publish_with_headers(subject, headers, body.into())
                .await
                .map_err(ApiError::internal)?
                .await
                .map_err(ApiError::internal)?;
            return Ok(true);
        };
        let stored = publish_once(
            &self.js,
            &subject,
            &msg_id,
            headers,
            body.into(),
            Check::Verify,
        )
        .await
        .map_err(ApiError::internal)?;
        Ok(!matches!(stored, Stored::Duplicate(_)))
    }
}

/// Runs `check` every `interval` until `shutdown`; a failed check is logged
/// and tried again at the next tick.
async fn every<F, Fut>(interval: Duration, shutdown: CancellationToken, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = check().await {
            tracing::warn!(error = %err.description, "{what} failed; trying again");
        }
    }
}

/// Runs the registry until `shutdown` is cancelled.
pub async fn run(
    config: RegistryConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<(), RegistryError> {
    let js = jetstream::new(client.clone());
    let buckets = config.layout.set_up_as_operator(&js).await?;
    let jobs = RecordStore::of_jobs(buckets.jobs.clone(), &config.layout);
    // Every task the registry starts is tracked here and ends before it returns.
    let tasks = tokio_util::task::TaskTracker::new();
    let mut metrics_registry = shoal_metrics::Registry::default();
    let metrics = metrics::RegistryMetrics::new(&mut metrics_registry);
    let registry = std::sync::Arc::new(Registry {
        metrics,
        config,
        client: client.clone(),
        js,
        workers: RecordStore::new(buckets.workers.clone()),
        jobs,
        worker_records: Mirror::follow(buckets.workers.clone(), Some, &tasks, shutdown.clone()),
        pool_specs: Mirror::follow(buckets.pools.clone(), Some, &tasks, shutdown.clone()),
        waiting: Mirror::follow_noting(
            buckets.jobs.clone(),
            WaitingJob::of,
            |record: &JobRecord| record.done,
            |job: &WaitingJob| job.fairness_key.is_some(),
            &tasks,
            shutdown.clone(),
        ),
        limit_records: Mirror::follow(buckets.limits.clone(), Some, &tasks, shutdown.clone()),
        routed: std::sync::Mutex::new(HashMap::new()),
        names: buckets.names,
        pools: buckets.pools,
    });
    if let Some(addr) = registry.config.metrics_listen {
        let scraped = registry.clone();
        let refresh: shoal_metrics::Refresh = std::sync::Arc::new(move || {
            let registry = scraped.clone();
            Box::pin(async move { registry.refresh_metrics().await })
        });
        shoal_metrics::serve(addr, metrics_registry, Some(refresh), shutdown.clone()).await?;
    }
    let service = api::start(registry.clone(), &client).await?;
    info!("registry running");
    tasks.spawn(liveness::watch(registry.clone(), shutdown.clone()));
    tasks.spawn(reconcile::watch(registry.clone(), shutdown.clone()));
    tasks.spawn(dead::watch(registry.clone(), shutdown.clone()));
    tasks.spawn(dispatch::watch(registry.clone(), shutdown.clone()));
    shutdown.cancelled().await;
    tasks.close();
    tasks.wait().await;
    api::stop(service).await;
    info!("registry stopped");
    Ok(())
}
