//! `shoal bench --scaling`: how fast the local supervisor follows a backlog.
//! It supervises a pool (1 to `--scaling-max` replicas) on a local
//! nats-server, submits a backlog of short jobs and reports the time from
//! the backlog appearing to the first scale-up, and from the backlog
//! clearing to the scale-down to the minimum.

use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context, Result};
use async_nats::jetstream;
use futures_util::StreamExt;
use shoal_client::streams::Layout;
use shoal_protocol::resource::{Autoscaling, PoolSection, Resource, ResourceKind};
use shoal_protocol::supervisor::{PoolEvent, PoolEventType};
use shoal_protocol::{JobSpec, Priority, Subjects};
use shoal_supervisor::{PoolPlan, SupervisorConfig};
use tokio_util::sync::CancellationToken;

/// What one scaling run is made of.
#[derive(Debug, Clone)]
pub struct ScalingRun {
    /// Jobs of the backlog.
    pub jobs: usize,
    /// Most replicas.
    pub max_replicas: u32,
    /// How long each job sleeps.
    pub job_time: shoal_protocol::Duration,
    /// The supervisor's cooldown.
    pub cooldown: shoal_protocol::Duration,
    /// The supervisor's poll interval.
    pub poll_interval: shoal_protocol::Duration,
}

const POOL: &str = "bench";
const TARGET_BACKLOG: u64 = 5;
const CONCURRENCY: u32 = 2;
/// Longest a whole scaling run may take before it is given up.
const REPORT_BOUND: Duration = Duration::from_secs(240);

fn pool_resource(group: &str, run: &ScalingRun) -> Resource {
    Resource {
        name: POOL.into(),
        version: shoal_protocol::resource::RESOURCE_VERSION.into(),
        kind: ResourceKind::Pool,
        tags: Vec::new(),
        description: None,
        owner: None,
        worker: None,
        pool: Some(PoolSection {
            queues: vec!["default".into()],
            group: Some(group.into()),
            replicas: 1,
            concurrency: Some(CONCURRENCY),
            log_level: Some("warn".into()),
            autoscaling: Some(Autoscaling {
                enabled: true,
                min_replicas: 1,
                max_replicas: run.max_replicas,
                ..Autoscaling::default()
            }),
            ..PoolSection::default()
        }),
    }
}

/// Runs the scaling report against the server at `url`.
pub async fn measure(run: &ScalingRun, url: &str) -> Result<()> {
    let group = format!("scale{}", nuid::next().to_string().to_lowercase());
    let layout = Layout::new(Subjects::default());
    let client = crate::nats_server::connect_to(url, "shoal-bench").await?;
    let js = jetstream::new(client.clone());
    let buckets = layout.ensure(&js).await?;
    let mut events = client
        .subscribe(layout.subjects.pool_event(&group, POOL))
        .await?;
    let config = SupervisorConfig {
        layout: layout.clone(),
        pool: PoolPlan::from_resource(
            &pool_resource(&group, run),
            &group,
            shoal_supervisor::SecretFiles::Allowed,
        )?,
        program: std::env::current_exe().context("cannot find the shoal binary")?,
        env: vec![
            ("SHOAL_NATS_URL".into(), url.to_string()),
            ("SHOAL_WORKER_POLLING_INTERVAL".into(), "1s".into()),
        ],
        poll_interval: run.poll_interval.get(),
        target_backlog: TARGET_BACKLOG,
        cooldown: run.cooldown.get(),
        restart_backoff: Duration::from_secs(1),
        restart_backoff_max: Duration::from_secs(30),
        drain_timeout: Duration::from_secs(60),
        metrics_listen: None,
    };
    let stop = CancellationToken::new();
    let supervisor = tokio::spawn(shoal_supervisor::run(config, client.clone(), stop.clone()));
    println!(
        "shoal bench --scaling: pool of 1..{} replicas (concurrency {CONCURRENCY}, target backlog \
         {TARGET_BACKLOG}, poll {}, cooldown {}), {} jobs of sleep {}, nats-server at {url}",
        run.max_replicas, run.poll_interval, run.cooldown, run.jobs, run.job_time
    );
    // Bounded here, so that the supervisor is drained even when the pool
    // never scales as expected.
    let result = tokio::time::timeout(
        REPORT_BOUND,
        report(run, &js, &layout, &group, &buckets.supervisors, &mut events),
    )
    .await
    .unwrap_or_else(|_| {
        Err(crate::error::failure(format!(
            "the pool did not scale up and back down within {REPORT_BOUND:?}"
        )))
    });
    stop.cancel();
    supervisor.await.context("the supervisor task")??;
    result
}

async fn report(
    run: &ScalingRun,
    js: &jetstream::Context,
    layout: &Layout,
    group: &str,
    supervisors: &jetstream::kv::Store,
    events: &mut async_nats::Subscriber,
) -> Result<()> {
    wait_for_a_registered_replica(supervisors, group).await?;
    let appeared = submit(run, js, layout, group).await?;
    // The start (0 -> 1) came before the backlog: the first scale-up is from a running pool.
    let (up, up_event) = next_scaled(events, |event| {
        event.from.unwrap_or_default() > 0 && event.to > event.from
    })
    .await?;
    println!(
        "backlog appeared -> first scale-up ({} -> {}): {:.2} s ({})",
        up_event.from.unwrap_or_default(),
        up_event.to.unwrap_or_default(),
        up.duration_since(appeared).as_secs_f64(),
        up_event.why
    );
    let cleared = wait_until_cleared(js, layout, group).await?;
    println!(
        "backlog cleared {:.2} s after it appeared",
        cleared.duration_since(appeared).as_secs_f64()
    );
    let (down, down_event) = next_scaled(events, |event| event.to == Some(1)).await?;
    let delay = down.saturating_duration_since(cleared).as_secs_f64()
        - cleared.saturating_duration_since(down).as_secs_f64();
    println!(
        "backlog cleared -> scale-down to 1 ({} -> 1): {delay:.2} s ({})",
        down_event.from.unwrap_or_default(),
        down_event.why
    );
    Ok(())
}

/// Waits until the pool's first replica has registered (its consumer exists).
async fn wait_for_a_registered_replica(
    supervisors: &jetstream::kv::Store,
    group: &str,
) -> Result<()> {
    let mut updates = supervisors
        .watch_with_history(format!("{group}.{POOL}"))
        .await?;
    while let Some(entry) = updates.next().await {
        let entry = entry?;
        let record: shoal_protocol::supervisor::SupervisorRecord =
            serde_json::from_slice(&entry.value)?;
        if record
            .replicas
            .iter()
            .any(|replica| replica.worker_id.is_some())
        {
            return Ok(());
        }
    }
    bail!("the watch of the supervisor's state ended")
}

/// Submits the backlog; the time its first job was stored.
async fn submit(
    run: &ScalingRun,
    js: &jetstream::Context,
    layout: &Layout,
    group: &str,
) -> Result<Instant> {
    let subject = layout.subjects.jobs(group, "default");
    let spec = |index: usize| {
        let spec = JobSpec {
            id: Some(format!("s{index}")),
            ..JobSpec::entrypoint("sleep", vec![run.job_time.to_string()])
        };
        serde_json::to_vec(&spec)
    };
    js.publish(subject.clone(), spec(0)?.into()).await?.await?;
    let appeared = Instant::now();
    let mut acks = Vec::with_capacity(run.jobs);
    for index in 1..run.jobs {
        acks.push(js.publish(subject.clone(), spec(index)?.into()).await?);
    }
    for ack in acks {
        ack.await?;
    }
    Ok(appeared)
}

/// The next `pool.scaled` event that satisfies `wanted`, and when it came.
async fn next_scaled(
    events: &mut async_nats::Subscriber,
    wanted: impl Fn(&PoolEvent) -> bool,
) -> Result<(Instant, PoolEvent)> {
    while let Some(message) = events.next().await {
        let Ok(event) = serde_json::from_slice::<PoolEvent>(&message.payload) else {
            continue;
        };
        if event.kind == PoolEventType::Scaled && wanted(&event) {
            return Ok((Instant::now(), event));
        }
    }
    bail!("the pool events subscription ended")
}

/// Waits until the pool's consumer has nothing pending or unacked.
async fn wait_until_cleared(
    js: &jetstream::Context,
    layout: &Layout,
    group: &str,
) -> Result<Instant> {
    let stream = js.get_stream(layout.jobs_stream()).await?;
    let name = layout.queue_consumer_name(group, "default", Priority::Normal);
    loop {
        let info = stream.consumer_info(&name).await?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return Ok(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
