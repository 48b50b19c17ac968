//! The worker: registers, heartbeats, pulls the jobs of its group's queues
//! from their durable consumers, runs up to `concurrency` of them at once,
//! reports every step as events, and drains on shutdown or at the end of its
//! lifetime: stop pulling, let running jobs finish within the grace period
//! (then hand them back), deregister, exit.

pub mod action;
mod admission;
mod cancel;
pub mod config;
mod control;
mod delivery;
mod heartbeat;
mod holds;
mod identity;
mod job;
mod metrics;
mod output;
pub mod policy;
pub mod process;
mod progress;
mod pull;
mod pulls;
mod rate;
pub mod refusal;
mod result_file;
mod retry;
pub mod settings;
mod start;
mod trace;

use shoal_protocol::key::Key;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, kv};
use shoal_client::streams::{Layout, SetupError, SetupRetry, START_WINDOW};
use shoal_protocol::rejection::Rejection;
use shoal_protocol::{JobEvent, Timestamp, WorkerEvent, WorkerEventType, WorkerInfo};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

pub use config::WorkerConfig;
pub use settings::{ConfigError, WorkerArgs, WorkerSettings};

/// Why a worker could not run.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// Streams, buckets or consumers could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// An event that must be stored was not.
    #[error("cannot publish the {what} event: {reason}")]
    Publish { what: &'static str, reason: String },
    /// The identity given with `worker_id` cannot be taken.
    #[error("{0}")]
    Identity(String),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] shoal_metrics::MetricsError),
    /// Spans cannot be exported as set.
    #[error(transparent)]
    Traces(#[from] shoal_traces::TracesError),
    /// The worker's micro-service instance could not start.
    #[error("cannot start the worker's micro service: {0}")]
    Service(String),
    /// The server refused what the worker must do to start: its user may
    /// not serve this group or these queues.
    #[error("the NATS server denied the worker's start ({0}): its user may not serve this group or these queues, or the streams do not exist yet (the projector and registry, as operators, create them)")]
    Denied(String),
}

/// Why an event of a job was not stored.
#[derive(Debug, Error)]
pub(crate) enum NotStored {
    /// It could not be written as JSON.
    #[error("cannot write the event")]
    Encode(#[source] serde_json::Error),
    /// JetStream did not take it, or did not acknowledge it.
    #[error("JetStream did not store the event")]
    Publish(#[source] async_nats::jetstream::context::PublishError),
}

/// One running worker, shared by its tasks.
pub(crate) struct Worker {
    config: WorkerConfig,
    id: String,
    client: async_nats::Client,
    js: jetstream::Context,
    jobs_bucket: kv::Store,
    workers_bucket: kv::Store,
    /// The concurrency slots and rate limits the fleet shares.
    limits: shoal_client::limits::Limits,
    /// The jobs it runs, each with the token that stops it.
    running: Mutex<BTreeMap<String, CancellationToken>>,
    jobs_run: AtomicU64,
    jobs_failed: AtomicU64,
    /// Time spent running jobs, in microseconds.
    job_micros: AtomicU64,
    /// Jobs it held back since it started: the registry lets them go on
    /// the routed consumers, which its idle pull loops then wait on.
    held_back: AtomicU64,
    /// Cancelled when the grace period is over: running jobs stop and go back.
    abort: CancellationToken,
    /// The folders its running jobs use.
    folders: Arc<output::Folders>,
    /// Its metrics.
    metrics: metrics::WorkerMetrics,
    /// Where each attempt's span goes, with `otlp_endpoint`.
    spans: Option<Arc<shoal_traces::OtlpExporter>>,
}

impl Worker {
    fn running_jobs<T>(
        &self,
        with: impl FnOnce(&mut BTreeMap<String, CancellationToken>) -> T,
    ) -> T {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        with(&mut running)
    }

    /// Sets the slot gauges: `busy` jobs run.
    fn count_slots(&self, busy: usize) {
        self.metrics
            .slots(&self.config.group, busy, self.config.concurrency);
    }

    async fn publish_job_event(&self, event: &JobEvent) -> Result<PublishAckFuture, NotStored> {
        let subject = self.config.subjects.job_event(&event.group, &event.job_id);
        let body = serde_json::to_vec(event).map_err(NotStored::Encode)?;
        let mut headers = async_nats::HeaderMap::new();
        if let Some(trace) = &event.traceparent {
            headers.insert(shoal_protocol::trace::TRACEPARENT, trace.as_str());
        }
        self.js
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(NotStored::Publish)
    }

    async fn publish_worker_event(
        &self,
        kind: WorkerEventType,
        info: Option<WorkerInfo>,
    ) -> Result<(), WorkerError> {
        let what = kind.as_str();
        let event = WorkerEvent {
            kind,
            worker_id: self.id.clone(),
            group: self.config.group.clone(),
            at: Timestamp::now(),
            info,
            identity: None,
            jobs_run: self.jobs_run.load(Ordering::Relaxed),
            jobs_failed: self.jobs_failed.load(Ordering::Relaxed),
        };
        let failed = |err: String| WorkerError::Publish { what, reason: err };
        let body = serde_json::to_vec(&event).map_err(|err| failed(err.to_string()))?;
        let subject = self
            .config
            .subjects
            .worker_event(&self.config.group, &self.id);
        self.js
            .publish(subject, body.into())
            .await
            .map_err(|err| failed(err.to_string()))?
            .await
            .map_err(|err| failed(err.to_string()))?;
        Ok(())
    }

    async fn publish_rejection(
        &self,
        rejection: &Rejection,
    ) -> Result<(), shoal_client::publish::PublishError> {
        // A worker may not read the streams by sequence; the projector,
        // which rejects the same message, checks whose message holds the id.
        shoal_client::rejection::publish_rejection(
            &self.js,
            rejection,
            shoal_client::publish::Check::Trust,
        )
        .await
    }

    /// The worker's own record, if the projector has written it.
    async fn own_record(&self) -> Option<shoal_protocol::WorkerRecord> {
        let key = Key::new(&self.config.group, &self.id).to_string();
        let value = self.workers_bucket.get(key).await.ok()??;
        serde_json::from_slice(&value).ok()
    }

    fn info(&self) -> WorkerInfo {
        WorkerInfo {
            name: self.config.name.clone(),
            queues: self.config.queues.clone(),
            tags: self.config.tags.clone(),
            labels: self.config.labels.clone(),
            system: self.config.system,
            concurrency: self.config.concurrency,
            host: config::host_name(),
            pid: std::process::id(),
            version: shoal_protocol::VERSION.to_string(),
            heartbeat_interval: self.config.heartbeat_interval,
        }
    }
}

/// Runs a worker until `shutdown` is cancelled or its lifetime is over, then drains.
/// A permission the server denies while the worker starts ends it at once,
/// with the denial, instead of a wait for a reply that never comes.
pub async fn run(
    config: WorkerConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    // A job inherits none of the worker's settings: none is left to read.
    shoal_client::secrecy::hide_from_children(|name| {
        name.starts_with(shoal_client::secrecy::WORKER_VARIABLES)
    });
    let mut denials = config.connect.denials.subscribe();
    denials.borrow_and_update();
    let denied = async {
        while denials.changed().await.is_ok() {
            if let Some(denial) = denials.borrow_and_update().clone() {
                return denial;
            }
        }
        std::future::pending().await
    };
    let started = tokio::select! {
        denial = denied => return Err(WorkerError::Denied(denial)),
        started = start(config, client, shutdown) => started?,
    };
    serve(started).await
}

/// A worker that has registered and takes jobs.
struct Started {
    worker: Arc<Worker>,
    pulls: pulls::Pulls,
    jobs: TaskTracker,
    stop_pulling: CancellationToken,
    cancels: tokio::task::JoinHandle<()>,
    control: control::Control,
    client: async_nats::Client,
    span: tracing::Span,
}

/// Sets up, takes its identity, starts pulling and registers.
async fn start(
    config: WorkerConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<Started, WorkerError> {
    let js = jetstream::new(client.clone());
    let layout = Layout {
        replicas: config.replicas,
        ..Layout::new(config.subjects.clone())
    };
    let buckets = layout.set_up(&js).await?;
    let (config, id) = identity::take(config, &js, &layout).await?;
    let span = tracing::info_span!("worker", worker_id = %id, group = %config.group);
    let mut registry = shoal_metrics::Registry::default();
    let metrics = metrics::WorkerMetrics::new(&mut registry);
    metrics.slots(&config.group, 0, config.concurrency);
    if let Some(addr) = config.metrics_listen {
        shoal_metrics::serve(addr, registry, None, shutdown.clone()).await?;
    }
    let spans = match &config.otlp_endpoint {
        Some(endpoint) => Some(shoal_traces::OtlpExporter::start(endpoint, "shoal-worker")?),
        None => None,
    };
    let worker = Arc::new(Worker {
        id,
        client: client.clone(),
        js,
        jobs_bucket: buckets.jobs,
        workers_bucket: buckets.workers,
        limits: shoal_client::limits::Limits::new(buckets.limits),
        running: Mutex::new(BTreeMap::new()),
        jobs_run: AtomicU64::new(0),
        jobs_failed: AtomicU64::new(0),
        job_micros: AtomicU64::new(0),
        held_back: AtomicU64::new(0),
        abort: CancellationToken::new(),
        folders: Arc::default(),
        metrics,
        spans,
        config,
    });
    let instrumented = span.clone();
    register(worker, layout, client, shutdown, span)
        .instrument(instrumented)
        .await
}

async fn register(
    worker: Arc<Worker>,
    layout: Layout,
    client: async_nats::Client,
    shutdown: CancellationToken,
    span: tracing::Span,
) -> Result<Started, WorkerError> {
    let stop_pulling = shutdown.child_token();
    let jobs = TaskTracker::new();
    let mut pulls = pulls::Pulls::new(worker.clone(), layout, jobs.clone(), stop_pulling.clone());
    let mut retry = SetupRetry::new(START_WINDOW);
    for group in worker.config.served_groups() {
        while let Err(err) = pulls.start(&group).await {
            retry.after(err).await?;
        }
    }
    let cancels = tokio::spawn(
        cancel::listen(worker.clone(), worker.config.served_groups()).in_current_span(),
    );
    let control = control::start(worker.clone(), stop_pulling.clone())
        .await
        .map_err(|err| WorkerError::Service(err.to_string()))?;
    worker
        .publish_worker_event(WorkerEventType::Registered, Some(worker.info()))
        .await?;
    info!(name = %worker.config.name, queues = ?worker.config.queues, concurrency = worker.config.concurrency, "worker registered");
    Ok(Started {
        worker,
        pulls,
        jobs,
        stop_pulling,
        cancels,
        control,
        client,
        span,
    })
}

async fn serve(started: Started) -> Result<(), WorkerError> {
    let span = started.span.clone();
    serve_until_drained(started).instrument(span).await
}

async fn serve_until_drained(started: Started) -> Result<(), WorkerError> {
    let Started {
        worker,
        mut pulls,
        jobs,
        stop_pulling,
        cancels,
        control,
        client,
        span: _,
    } = started;

    let stop_beating = CancellationToken::new();
    let beating =
        tokio::spawn(heartbeat::beat(worker.clone(), stop_beating.clone()).in_current_span());
    if let Some(retention) = worker.config.output_retention {
        tokio::spawn(
            output::sweep_every(
                worker.config.output_dir.clone(),
                retention,
                worker.folders.clone(),
                stop_beating.clone(),
            )
            .in_current_span(),
        );
    }
    if let Some(lifetime) = worker.config.lifetime {
        let stop = stop_pulling.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(lifetime) => {
                    info!("lifetime over; draining");
                    stop.cancel();
                }
                _ = stop.cancelled() => {}
            }
        });
    }
    follow_own_record(&worker, &mut pulls, &stop_pulling).await;

    info!("draining: no new jobs are taken");
    if let Err(err) = worker
        .publish_worker_event(WorkerEventType::Draining, None)
        .await
    {
        warn!(error = %err, "draining event not stored");
    }
    pulls.join().await;
    jobs.close();
    if tokio::time::timeout(worker.config.grace_period, jobs.wait())
        .await
        .is_err()
    {
        warn!(grace_period = ?worker.config.grace_period, "grace period over; handing running jobs back");
        worker.abort.cancel();
        let _ =
            tokio::time::timeout(process::KILL_GRACE + Duration::from_secs(5), jobs.wait()).await;
    }
    stop_beating.cancel();
    let _ = beating.await;
    // The last spans go out whatever happens next.
    if let Some(spans) = &worker.spans {
        spans.stop().await;
    }
    worker
        .publish_worker_event(WorkerEventType::Deregistered, None)
        .await?;
    info!(
        jobs_run = worker.jobs_run.load(Ordering::Relaxed),
        "worker deregistered"
    );
    control::stop(control).await;
    cancels.abort();
    if let Err(err) = client.drain().await {
        warn!(error = %err, "connection drain failed");
    }
    Ok(())
}

/// Until the worker stops pulling, reads its own record at every heartbeat
/// interval: a deleted worker drains; a promoted or demoted one starts or
/// stops serving `_system`.
async fn follow_own_record(
    worker: &Arc<Worker>,
    pulls: &mut pulls::Pulls,
    stop_pulling: &CancellationToken,
) {
    let mut ticker = tokio::time::interval(worker.config.heartbeat_interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Stop requests of `_system` jobs, while a promotion lasts.
    let mut system_cancels: Option<tokio::task::JoinHandle<()>> = None;
    follow_changes(
        worker,
        pulls,
        stop_pulling,
        &mut ticker,
        &mut system_cancels,
    )
    .await;
    if let Some(listener) = system_cancels {
        listener.abort();
    }
}

async fn follow_changes(
    worker: &Arc<Worker>,
    pulls: &mut pulls::Pulls,
    stop_pulling: &CancellationToken,
    ticker: &mut tokio::time::Interval,
    system_cancels: &mut Option<tokio::task::JoinHandle<()>>,
) {
    loop {
        tokio::select! {
            _ = stop_pulling.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(record) = worker.own_record().await else {
            continue;
        };
        if record.status == Some(shoal_protocol::WorkerStatus::Deleted) {
            info!("deleted by an admin: no more jobs are taken");
            stop_pulling.cancel();
            return;
        }
        let system_group = shoal_protocol::SYSTEM_GROUP;
        if worker.config.group == system_group {
            continue;
        }
        match (record.system, pulls.serves(system_group)) {
            (true, false) => {
                if let Err(err) = pulls.start(system_group).await {
                    warn!(error = %err, "cannot serve the _system group yet");
                    continue;
                }
                let listener = cancel::listen(worker.clone(), vec![system_group.to_string()]);
                *system_cancels = Some(tokio::spawn(listener.in_current_span()));
            }
            (false, true) => {
                pulls.stop_group(system_group).await;
                if let Some(listener) = system_cancels.take() {
                    listener.abort();
                }
            }
            _ => {}
        }
    }
}
