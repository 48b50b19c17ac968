//! The supervisor's loop: start the replicas, then at every poll read the
//! load, decide, scale, write the state; restart replicas that end; on
//! shutdown drain them all within a bound and write the final state.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use shoal_protocol::supervisor::{MeasuredLoad, PoolEvent, PoolEventType, SupervisorRecord};
use shoal_protocol::{Timestamp, WorkerEvent, WorkerEventType};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::backlog::Backlog;
use crate::decide::{Decision, Load, Scaler, Targets};
use crate::events::Events;
use crate::replicas::{Exit, Launch, Replicas};
use crate::state::StateStore;
use crate::usage::UsageMeter;
use crate::{SupervisorConfig, SupervisorError};

/// What the loop works with.
struct Supervisor {
    config: SupervisorConfig,
    js: jetstream::Context,
    replicas: Replicas,
    scaler: Option<Scaler>,
    backlog: Backlog,
    meter: UsageMeter,
    events: Events,
    state: StateStore,
    desired: u32,
    load: MeasuredLoad,
    last_decision: Option<PoolEvent>,
    metrics: crate::metrics::PoolMetrics,
}

/// Runs the supervisor of `config.pool` until `shutdown` is cancelled, then
/// drains its replicas (each within `drain_timeout`) and returns.
pub async fn run(
    config: SupervisorConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<(), SupervisorError> {
    let span =
        tracing::info_span!("supervisor", group = %config.pool.group, pool = %config.pool.name);
    hide_logins_from_replicas(&config);
    supervise(config, client, shutdown).instrument(span).await
}

/// Blanks the supervisor's logins and the pool's `env:` secrets where its
/// replicas' jobs could read them (they were read into the settings).
fn hide_logins_from_replicas(config: &SupervisorConfig) {
    let secrets: Vec<String> = config
        .pool
        .section
        .secrets
        .iter()
        .filter_map(|secret| secret.reference.strip_prefix("env:").map(str::to_string))
        .collect();
    shoal_client::secrecy::hide_from_children(|name| {
        crate::replicas::is_login_variable(name)
            || secrets.iter().any(|secret| secret.as_bytes() == name)
    });
}

async fn supervise(
    config: SupervisorConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<(), SupervisorError> {
    let js = jetstream::new(client.clone());
    let buckets = config.layout.set_up(&js).await?;
    let pool = &config.pool;
    let registrations = client
        .subscribe(config.layout.subjects.worker_event(&pool.group, "*"))
        .await
        .map_err(|err| SupervisorError::Nats(format!("cannot follow worker events: {err}")))?;
    let launch = Launch {
        program: config.program.clone(),
        args: vec!["worker".into(), "run".into()],
        env: config.env.iter().chain(&pool.env).cloned().collect(),
        name_prefix: pool.name.clone(),
        backoff: config.restart_backoff,
        backoff_max: config.restart_backoff_max.max(config.restart_backoff),
        drain_timeout: config.drain_timeout,
    };
    let mut registry = shoal_metrics::Registry::default();
    let metrics = crate::metrics::PoolMetrics::new(&mut registry);
    if let Some(addr) = config.metrics_listen {
        shoal_metrics::serve(addr, registry, None, shutdown.clone()).await?;
    }
    let (replicas, exits) = Replicas::new(launch);
    let scaler = pool.bounds.map(|bounds| {
        let targets = Targets {
            backlog_per_replica: config.target_backlog,
            cpu_percent: pool.cpu_target,
            memory_percent: pool.memory_target,
        };
        Scaler::new(bounds, targets, config.cooldown)
    });
    let mut supervisor = Supervisor {
        backlog: Backlog::new(&config.layout, pool),
        meter: UsageMeter::new(pool.basis),
        events: Events::new(
            js.clone(),
            config.layout.subjects.pool_event(&pool.group, &pool.name),
        ),
        state: StateStore::new(buckets.supervisors, &pool.group, &pool.name),
        js,
        replicas,
        scaler,
        desired: 0,
        load: MeasuredLoad::default(),
        last_decision: None,
        metrics,
        config,
    };
    info!(consumers = ?supervisor.backlog.consumers(), "supervising the pool");
    supervisor.start().await;
    supervisor.watch(exits, registrations, &shutdown).await
}

impl Supervisor {
    /// Starts the first replicas.
    async fn start(&mut self) {
        let replicas = self.config.pool.section.replicas;
        let to = self
            .scaler
            .as_ref()
            .map_or(replicas, |scaler| scaler.initial(replicas));
        let why = format!("supervisor started: replicas {replicas}");
        self.scale(Decision { from: 0, to, why }).await;
    }

    /// Applies a decision: replicas, event, state.
    async fn scale(&mut self, decision: Decision) {
        info!(from = decision.from, to = decision.to, why = %decision.why, "pool scaled");
        self.desired = decision.to;
        self.replicas.scale_to(decision.to);
        let event = PoolEvent {
            from: Some(decision.from),
            to: Some(decision.to),
            ..PoolEvent::new(
                PoolEventType::Scaled,
                &self.config.pool.group,
                &self.config.pool.name,
                decision.why,
            )
        };
        self.events.publish(&event).await;
        self.last_decision = Some(event);
        self.write_state(true).await;
    }

    /// Until shutdown: polls, restarts, follows registrations; then drains.
    async fn watch(
        mut self,
        mut exits: tokio::sync::mpsc::UnboundedReceiver<Exit>,
        mut registrations: async_nats::Subscriber,
        shutdown: &CancellationToken,
    ) -> Result<(), SupervisorError> {
        let mut ticker = tokio::time::interval(self.config.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_restart = self
                .replicas
                .next_restart()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(exit) = exits.recv() => self.on_exit(exit).await,
                Some(message) = registrations.next() => {
                    if self.on_worker_event(&message.payload) {
                        self.write_state(true).await;
                    }
                }
                _ = sleep_until(next_restart) => {
                    self.replicas.restart_due(Instant::now());
                    self.write_state(true).await;
                }
                _ = ticker.tick() => self.poll().await,
            }
        }
        self.stop(&mut exits).await;
        Ok(())
    }

    async fn on_exit(&mut self, exit: Exit) {
        let Some(restart) = self.replicas.on_exit(&exit) else {
            self.write_state(true).await;
            return;
        };
        let event = PoolEvent {
            pid: Some(restart.pid),
            worker_id: restart.worker_id,
            restarts: Some(restart.restarts),
            backoff_ms: Some(u64::try_from(restart.backoff.as_millis()).unwrap_or(u64::MAX)),
            ..PoolEvent::new(
                PoolEventType::ReplicaRestarted,
                &self.config.pool.group,
                &self.config.pool.name,
                format!("replica {} {}", restart.name, restart.how),
            )
        };
        self.events.publish(&event).await;
        self.write_state(true).await;
    }

    /// Takes a replica's worker id from its `registered` event; whether it was one of ours.
    fn on_worker_event(&mut self, payload: &[u8]) -> bool {
        let Ok(event) = serde_json::from_slice::<WorkerEvent>(payload) else {
            return false;
        };
        match (event.kind, &event.info) {
            (WorkerEventType::Registered, Some(info)) => {
                self.replicas
                    .registered(info.pid, &info.name, &event.worker_id)
            }
            _ => false,
        }
    }

    /// Reads the load, decides, scales; kills overdue drains; writes the state.
    async fn poll(&mut self) {
        // A slow server must not hold up restarts and signals for long.
        let bound = self.config.poll_interval.max(Duration::from_secs(1));
        match tokio::time::timeout(bound, self.backlog.read(&self.js)).await {
            Ok(Ok(backlog)) => self.load.backlog = backlog,
            Ok(Err(err)) => warn!(error = %err, "backlog not read; keeping the last"),
            Err(_) => warn!(?bound, "backlog not read in time; keeping the last"),
        }
        let usage = self.meter.measure(&self.replicas.running_pids());
        self.load.cpu_percent = usage.cpu_percent.map(round);
        self.load.memory_percent = usage.memory_percent.map(round);
        let load = Load {
            backlog: self.load.backlog,
            cpu_percent: self.load.cpu_percent,
            memory_percent: self.load.memory_percent,
        };
        let active = self.replicas.active();
        let decision = self
            .scaler
            .as_mut()
            .and_then(|scaler| scaler.decide(active, &load, Instant::now()));
        self.replicas.kill_overdue(Instant::now());
        match decision {
            Some(decision) => self.scale(decision).await,
            None => self.write_state(true).await,
        }
    }

    /// Drains every replica, waits for them within a bound, writes the final state.
    async fn stop(&mut self, exits: &mut tokio::sync::mpsc::UnboundedReceiver<Exit>) {
        let active = self.replicas.active();
        self.scale(Decision {
            from: active,
            to: 0,
            why: "supervisor stopping".into(),
        })
        .await;
        let deadline = Instant::now() + self.config.drain_timeout + Duration::from_secs(5);
        while !self.replicas.is_empty() && Instant::now() < deadline {
            let check = tokio::time::sleep(Duration::from_millis(200));
            tokio::select! {
                Some(exit) = exits.recv() => {
                    let _ = self.replicas.on_exit(&exit);
                }
                _ = check => self.replicas.kill_overdue(Instant::now()),
            }
        }
        if !self.replicas.is_empty() {
            warn!("replicas still running after the drain bound");
        }
        self.write_state(false).await;
        info!("supervisor stopped");
    }

    async fn write_state(&self, running: bool) {
        let pool = &self.config.pool;
        let running_now = self.replicas.running_pids().len();
        self.metrics
            .replicas(&pool.group, &pool.name, self.desired, running_now);
        let record = SupervisorRecord {
            pool: self.config.pool.name.clone(),
            group: self.config.pool.group.clone(),
            host: self.state.host().to_string(),
            pid: std::process::id(),
            running,
            desired: self.desired,
            replicas: self.replicas.states(),
            restarts: self.replicas.restarts(),
            load: self.load.clone(),
            last_decision: self.last_decision.clone(),
            updated_at: Timestamp::now(),
        };
        self.state.write(&record).await;
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn round(percent: f64) -> f64 {
    (percent * 10.0).round() / 10.0
}
