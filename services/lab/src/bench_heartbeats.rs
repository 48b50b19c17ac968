//! `shoal bench --heartbeats N`: N simulated workers, each heartbeating once
//! a second, against one projector and one registry run as processes of
//! their own; prints the CPU each of them (and the server) uses, read from
//! `/proc`, and checks that every simulated worker is still online.

use std::time::{Duration, Instant};

use serde::Serialize;
use shoal_client::connect::{connect, ConnectSettings};
use shoal_client::streams::Layout;
use shoal_protocol::{
    Heartbeat, Subjects, Timestamp, WorkerEvent, WorkerEventType, WorkerInfo, WorkerRecord,
    WorkerStatus,
};
use tokio::process::{Child, Command};

use crate::bail;
use crate::error::{Context, Result};

/// What a heartbeat run is asked to do.
pub struct HeartbeatRun {
    /// Simulated workers.
    pub workers: usize,
    /// Seconds of heartbeats measured, after the warm-up.
    pub seconds: u64,
    /// The server's process, to measure its CPU too (none for a given server).
    pub server_pid: Option<u32>,
    /// Print one JSON object instead of lines.
    pub json: bool,
}

/// The figures of one heartbeat run.
#[derive(Debug, Serialize)]
struct HeartbeatFigures {
    workers: usize,
    seconds: f64,
    heartbeats_per_s: f64,
    projector_cores: f64,
    registry_cores: f64,
    services_cores: f64,
    server_cores: Option<f64>,
    workers_online: usize,
}

/// Heartbeats are sent in this many slices a second, spread evenly.
const SLICES_PER_SECOND: usize = 50;

/// Time for the services to start and fold every registration.
const WARM_UP: Duration = Duration::from_secs(4);

/// Runs the heartbeat benchmark against the server at `url`.
pub async fn measure(run: &HeartbeatRun, url: &str) -> Result<()> {
    let settings = ConnectSettings {
        url: url.to_string(),
        name: "shoal-bench-heartbeats".into(),
        ..ConnectSettings::default()
    };
    let client = connect(&settings).await?;
    let js = async_nats::jetstream::new(client.clone());
    let layout = Layout::new(Subjects::default());
    let buckets = layout.set_up_as_operator(&js).await?;
    let mut projector = service(url, &["projector", "run"])?;
    let mut registry = service(url, &["registry", "run"])?;
    let group = format!("hb{}", nuid::next().to_string().to_lowercase());
    let ids: Vec<String> = (0..run.workers)
        .map(|index| format!("sim-{index}"))
        .collect();
    register(&js, &layout.subjects, &group, &ids).await?;
    let deadline = Instant::now() + WARM_UP;
    beat_until(&client, &layout.subjects, &group, &ids, deadline).await?;
    let (projector_pid, registry_pid) = (pid_of(&projector)?, pid_of(&registry)?);
    let before = [
        crate::cost::process_cpu_seconds(projector_pid),
        crate::cost::process_cpu_seconds(registry_pid),
        run.server_pid
            .map(crate::cost::process_cpu_seconds)
            .unwrap_or(Ok(0.0)),
    ];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(run.seconds.max(1));
    let sent = beat_until(&client, &layout.subjects, &group, &ids, deadline).await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = [
        crate::cost::process_cpu_seconds(projector_pid),
        crate::cost::process_cpu_seconds(registry_pid),
        run.server_pid
            .map(crate::cost::process_cpu_seconds)
            .unwrap_or(Ok(0.0)),
    ];
    let cores = |index: usize| -> Result<f64> {
        let (before, after) = (&before[index], &after[index]);
        match (before, after) {
            (Ok(before), Ok(after)) => Ok((after - before) / seconds),
            _ => bail!("cannot read the CPU time of a process from /proc"),
        }
    };
    let online = online_workers(&buckets.workers, &group).await?;
    let figures = HeartbeatFigures {
        workers: run.workers,
        seconds,
        heartbeats_per_s: sent as f64 / seconds,
        projector_cores: cores(0)?,
        registry_cores: cores(1)?,
        services_cores: cores(0)? + cores(1)?,
        server_cores: run.server_pid.map(|_| cores(2)).transpose()?,
        workers_online: online,
    };
    let _ = projector.kill().await;
    let _ = registry.kill().await;
    print(&figures, run.json)?;
    if online < run.workers {
        bail!(
            "{} of {} simulated workers were not online at the end",
            run.workers - online,
            run.workers
        );
    }
    Ok(())
}

fn print(figures: &HeartbeatFigures, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(figures)?);
        return Ok(());
    }
    println!(
        "{} simulated workers, {:.0} heartbeats/s for {:.1} s",
        figures.workers, figures.heartbeats_per_s, figures.seconds
    );
    println!(
        "projector {:.1} % of a core, registry {:.1} % of a core: together {:.1} %",
        100.0 * figures.projector_cores,
        100.0 * figures.registry_cores,
        100.0 * figures.services_cores
    );
    if let Some(server) = figures.server_cores {
        println!("nats-server {:.1} % of a core", 100.0 * server);
    }
    println!(
        "{} of {} workers online at the end",
        figures.workers_online, figures.workers
    );
    Ok(())
}

/// Starts `shoal ARGS...` (this binary) against `url`, quiet but for errors.
pub(crate) fn service(url: &str, args: &[&str]) -> Result<Child> {
    Command::new(std::env::current_exe().context("cannot find the shoal binary")?)
        .args(args)
        .env("SHOAL_NATS_URL", url)
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start shoal {}", args.join(" ")))
}

fn pid_of(child: &Child) -> Result<u32> {
    match child.id() {
        Some(pid) => Ok(pid),
        None => bail!("a service of the benchmark ended early"),
    }
}

/// Registers every simulated worker, as a worker does when it starts.
async fn register(
    js: &async_nats::jetstream::Context,
    subjects: &Subjects,
    group: &str,
    ids: &[String],
) -> Result<()> {
    let mut pending = Vec::with_capacity(1024);
    for id in ids {
        let mut event = WorkerEvent::about(WorkerEventType::Registered, group, id);
        event.info = Some(WorkerInfo {
            name: id.clone(),
            queues: vec!["default".into()],
            concurrency: 1,
            host: "bench".into(),
            version: shoal_protocol::VERSION.to_string(),
            heartbeat_interval: shoal_protocol::Duration::from_secs(1),
            ..WorkerInfo::default()
        });
        let body = serde_json::to_vec(&event)?;
        pending.push(
            js.publish(subjects.worker_event(group, id), body.into())
                .await?,
        );
        if pending.len() == 1024 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    Ok(())
}

/// Sends each worker's heartbeat once a second, in even slices, until
/// `deadline`; the heartbeats sent.
async fn beat_until(
    client: &async_nats::Client,
    subjects: &Subjects,
    group: &str,
    ids: &[String],
    deadline: Instant,
) -> Result<usize> {
    let slice = ids.len().div_ceil(SLICES_PER_SECOND).max(1);
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / SLICES_PER_SECOND as u32);
    let mut sent = 0;
    for chunk in ids.chunks(slice).cycle() {
        ticker.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        for id in chunk {
            let beat = Heartbeat {
                worker_id: id.clone(),
                group: group.to_string(),
                at: Timestamp::now(),
                interval: shoal_protocol::Duration::from_secs(1),
                running: Vec::new(),
                jobs_run: 0,
                jobs_failed: 0,
            };
            let body = serde_json::to_vec(&beat)?;
            client
                .publish(subjects.heartbeat(group, id), body.into())
                .await?;
            sent += 1;
        }
    }
    client.flush().await?;
    Ok(sent)
}

/// The simulated workers whose record says they are online.
async fn online_workers(store: &async_nats::jetstream::kv::Store, group: &str) -> Result<usize> {
    let records = shoal_client::RecordStore::<WorkerRecord>::new(store.clone())
        .read_all(&format!("{group}.*"))
        .await?;
    Ok(records
        .iter()
        .filter(|record| record.status == Some(WorkerStatus::Online))
        .count())
}
