//! `shoal bench`: jobs per second end to end (submit until the last record
//! is terminal in KV) and submit→started latency at a fixed rate, through a
//! local nats-server, one worker and one projector.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context, Result};
use async_nats::jetstream;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use shoal_client::connect::{connect, ConnectSettings};
use shoal_client::streams::Layout;
use shoal_projector::ProjectorConfig;
use shoal_protocol::{JobEvent, JobEventType, JobRecord, JobSpec, Subjects};
use shoal_worker::config::Entrypoint;
use shoal_worker::{WorkerArgs, WorkerSettings};
use tokio_util::sync::CancellationToken;

use crate::nats_server::LocalServer;

/// Flags of `shoal bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Use this server instead of starting one.
    #[arg(long, env = "SHOAL_NATS_URL")]
    nats_url: Option<String>,
    /// Jobs of the throughput run, per kind of job.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Jobs of the latency run, per kind of job.
    #[arg(long, default_value_t = 500)]
    latency_jobs: usize,
    /// Submissions per second of the latency run.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Job slots of the worker.
    #[arg(long, default_value_t = 256)]
    concurrency: u32,
    /// Longest a run may take before it is given up.
    #[arg(long, default_value = "5m")]
    deadline: String,
    /// Measure the local supervisor instead: time to scale up on a backlog, and back down.
    #[arg(long)]
    scaling: bool,
    /// Jobs of the backlog of the scaling run.
    #[arg(long, default_value_t = 300)]
    scaling_jobs: usize,
    /// Most replicas of the scaling run's pool.
    #[arg(long, default_value_t = 4)]
    scaling_max: u32,
    /// How long each job of the scaling run sleeps.
    #[arg(long, default_value = "200ms")]
    scaling_job_time: shoal_protocol::Duration,
    /// The supervisor's cooldown in the scaling run.
    #[arg(long, default_value = "3s")]
    scaling_cooldown: shoal_protocol::Duration,
    /// The supervisor's poll interval in the scaling run.
    #[arg(long, default_value = "1s")]
    scaling_poll_interval: shoal_protocol::Duration,
    /// Measure a projector and a registry under this many simulated workers
    /// heartbeating once a second instead (0: no).
    #[arg(long, default_value_t = 0)]
    heartbeats: usize,
    /// Measure the memory of a worker, a projector and a registry instead,
    /// while they drain this many queued no-op jobs (0: no).
    #[arg(long, default_value_t = 0)]
    backlog: usize,
    /// Measure throughput at each of these worker concurrencies instead
    /// (e.g. 1,8,32,128,256), beside the bare spawn rate at each.
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<u32>,
    /// Draw the sweep as an SVG chart into this file.
    #[arg(long, requires = "sweep")]
    plot: Option<std::path::PathBuf>,
    /// Measure the cost of a concurrency key and of a dependency instead:
    /// no-op jobs per second with each, beside plain ones in the same run.
    #[arg(long)]
    holds: bool,
    /// Measure fair share instead: no-op jobs per second with a fairness
    /// key beside plain ones, and how long a lone key's job waits behind
    /// another key's backlog (`--fair-backlog`).
    #[arg(long)]
    fair: bool,
    /// The other key's backlog the lone jobs of the fair run come behind.
    #[arg(long, default_value_t = 10_000)]
    fair_backlog: usize,
    /// Seconds of heartbeats measured in the heartbeat run.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// table, or json: one object with every figure, to compare runs.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// The figures of one run, each beside its floor measured in the same run.
#[derive(Debug, Default, Serialize)]
struct Figures {
    jobs: usize,
    concurrency: u32,
    noop_jobs_per_s: f64,
    raw_round_trip_jobs_per_s: f64,
    noop_ratio: f64,
    process_jobs_per_s: f64,
    spawn_floor_per_s: f64,
    process_ratio: f64,
    latency_rate: u32,
    start_p50_ms: f64,
    start_p99_ms: f64,
    process_start_p50_ms: f64,
    process_start_p99_ms: f64,
    terminal_p50_ms: f64,
    terminal_p99_ms: f64,
    process_terminal_p50_ms: f64,
    process_terminal_p99_ms: f64,
    noop_cost: crate::cost::JobCost,
    process_cost: crate::cost::JobCost,
}

impl Figures {
    fn print_table(&self) {
        let pair = |what: &str, shoal: f64, floor_name: &str, floor: f64| {
            println!(
                "{what:<28} {shoal:>9.0} jobs/s   {floor_name:<34} {floor:>9.0}/s   ratio {:>5.1} %",
                100.0 * shoal / floor.max(f64::EPSILON)
            )
        };
        pair(
            "no-op jobs end to end",
            self.noop_jobs_per_s,
            "bare JetStream round trip",
            self.raw_round_trip_jobs_per_s,
        );
        pair(
            "/bin/true jobs end to end",
            self.process_jobs_per_s,
            "bare spawn of /bin/true",
            self.spawn_floor_per_s,
        );
        println!(
            "no-op submit->started at {}/s: p50 {:.3} ms, p99 {:.3} ms; /bin/true: p50 {:.3} ms, p99 {:.3} ms",
            self.latency_rate,
            self.start_p50_ms,
            self.start_p99_ms,
            self.process_start_p50_ms,
            self.process_start_p99_ms
        );
        for (kind, cost) in [
            ("no-op", &self.noop_cost),
            ("/bin/true", &self.process_cost),
        ] {
            println!(
                "one {kind} job: CPU worker {:.0} us, projector {:.0} us, processes {:.0} us, nats-server {}, bench {:.0} us; stored: {:.2} submissions, {:.2} events, {:.2} record writes, {:.2} log messages",
                cost.worker_us,
                cost.projector_us,
                cost.processes_us,
                cost.server_us
                    .map_or("unknown (not started by the bench)".to_string(), |us| format!("{us:.0} us")),
                cost.bench_us,
                cost.submissions,
                cost.events,
                cost.record_writes,
                cost.log_messages
            );
        }
        println!(
            "no-op submit->terminal in KV at {}/s: p50 {:.3} ms, p99 {:.3} ms; /bin/true: p50 {:.3} ms, p99 {:.3} ms",
            self.latency_rate,
            self.terminal_p50_ms,
            self.terminal_p99_ms,
            self.process_terminal_p50_ms,
            self.process_terminal_p99_ms
        );
    }
}

/// The kinds of job measured: in-process and a real process.
const KINDS: [(&str, &str); 2] = [
    ("noop", "in-process no-op"),
    ("true", "/bin/true as a process"),
];

/// Runs `shoal bench`.
pub async fn run(args: BenchArgs) -> Result<()> {
    let deadline: shoal_protocol::Duration = args.deadline.parse().context("deadline")?;
    let (server, url) = LocalServer::unless_given(args.nats_url.clone()).await?;
    let result = if !args.sweep.is_empty() {
        let run = crate::bench_sweep::SweepRun {
            concurrencies: args.sweep.clone(),
            jobs: args.jobs,
            plot: args.plot.clone(),
            json: args.output == "json",
        };
        tokio::time::timeout(deadline.get(), crate::bench_sweep::measure(&run, &url)).await
    } else if args.backlog > 0 {
        let run = crate::bench_backlog::BacklogRun {
            jobs: args.backlog,
            json: args.output == "json",
        };
        tokio::time::timeout(deadline.get(), crate::bench_backlog::measure(&run, &url)).await
    } else if args.heartbeats > 0 {
        let run = crate::bench_heartbeats::HeartbeatRun {
            workers: args.heartbeats,
            seconds: args.heartbeat_seconds,
            server_pid: server.as_ref().and_then(LocalServer::pid),
            json: args.output == "json",
        };
        tokio::time::timeout(deadline.get(), crate::bench_heartbeats::measure(&run, &url)).await
    } else if args.holds {
        let run = crate::bench_holds::HoldsRun {
            jobs: args.jobs,
            concurrency: args.concurrency,
            json: args.output == "json",
        };
        tokio::time::timeout(deadline.get(), crate::bench_holds::measure(&run, &url)).await
    } else if args.fair {
        let run = crate::bench_fair::FairRun {
            jobs: args.jobs,
            backlog: args.fair_backlog.max(1),
            concurrency: args.concurrency,
            json: args.output == "json",
        };
        tokio::time::timeout(deadline.get(), crate::bench_fair::measure(&run, &url)).await
    } else if args.scaling {
        let run = crate::bench_scaling::ScalingRun {
            jobs: args.scaling_jobs.max(1),
            max_replicas: args.scaling_max.max(2),
            job_time: args.scaling_job_time,
            cooldown: args.scaling_cooldown,
            poll_interval: args.scaling_poll_interval,
        };
        tokio::time::timeout(deadline.get(), crate::bench_scaling::measure(&run, &url)).await
    } else {
        let server_pid = server.as_ref().and_then(LocalServer::pid);
        tokio::time::timeout(deadline.get(), measure(&args, &url, server_pid)).await
    };
    if let Some(server) = server {
        server.stop().await;
    }
    result.context("the benchmark ran past its deadline")?
}

async fn measure(args: &BenchArgs, url: &str, server_pid: Option<u32>) -> Result<()> {
    let stop = CancellationToken::new();
    let group = format!("bench{}", nuid::next().to_string().to_lowercase());
    let settings = ConnectSettings {
        url: url.to_string(),
        name: "shoal-bench".into(),
        ..ConnectSettings::default()
    };
    let layout = Layout::new(Subjects::default());
    let projector_config = ProjectorConfig {
        layout: layout.clone(),
        replay: false,
        batch_size: 2048,
        max_waiting_per_group: shoal_projector::DEFAULT_MAX_WAITING_PER_GROUP,
        metrics_listen: None,
    };
    let projector = on_own_runtime(crate::cost::PROJECTOR_THREADS, {
        let (settings, stop) = (settings.clone(), stop.clone());
        async move {
            let client = connect(&settings).await?;
            Ok(shoal_projector::run(projector_config, client, stop).await?)
        }
    })?;
    let worker = start_worker(&settings, &group, args.concurrency, stop.clone())?;

    let client = connect(&settings).await?;
    let js = jetstream::new(client.clone());
    let buckets = layout.ensure(&js).await?;
    let table = args.output == "table";
    if table {
        println!(
            "shoal bench: 1 worker (concurrency {}), 1 projector, nats-server at {url}",
            args.concurrency
        );
        println!(
            "command: shoal bench --jobs {} --latency-jobs {} --rate {} --concurrency {}",
            args.jobs, args.latency_jobs, args.rate, args.concurrency
        );
    }
    let bounded = |what: &'static str| {
        move |_| crate::error::failure(format!("{what} ran past {:?}", crate::floors::FLOOR_BOUND))
    };
    let mut figures = Figures {
        jobs: args.jobs,
        concurrency: args.concurrency,
        latency_rate: args.rate,
        raw_round_trip_jobs_per_s: tokio::time::timeout(
            crate::floors::FLOOR_BOUND,
            crate::floors::round_trip_per_s(&client, args.jobs),
        )
        .await
        .map_err(bounded("the bare round trip"))??,
        spawn_floor_per_s: tokio::time::timeout(
            crate::floors::FLOOR_BOUND,
            crate::floors::spawn_per_s(args.jobs, args.concurrency as usize),
        )
        .await
        .map_err(bounded("the bare spawns"))??,
        ..Figures::default()
    };
    for (entrypoint, label) in KINDS {
        let cpu_before = crate::cost::CpuSample::now(server_pid)?;
        let marks_before = crate::cost::StreamMarks::now(&js, &layout).await?;
        let elapsed =
            throughput(&js, &buckets.jobs, &layout, &group, entrypoint, args.jobs).await?;
        let cost = crate::cost::per_job(
            args.jobs,
            (&cpu_before, &crate::cost::CpuSample::now(server_pid)?),
            (
                marks_before,
                crate::cost::StreamMarks::now(&js, &layout).await?,
            ),
        );
        let rate = args.jobs as f64 / elapsed.as_secs_f64();
        if table {
            println!(
                "{label:<24} throughput: {} jobs in {:.2}s = {rate:.0} jobs/s end to end",
                args.jobs,
                elapsed.as_secs_f64()
            );
        }
        let latencies = latency(
            &client,
            &js,
            &buckets.jobs,
            &layout,
            &group,
            (entrypoint, args.latency_jobs, args.rate),
        )
        .await?;
        let started = (
            percentile(&latencies.started, 0.50),
            percentile(&latencies.started, 0.99),
        );
        let terminal = (
            percentile(&latencies.terminal, 0.50),
            percentile(&latencies.terminal, 0.99),
        );
        if table {
            println!(
                "{label:<24} at {} jobs/s: submit->started p50 {:.3} ms, p99 {:.3} ms; submit->terminal in KV p50 {:.3} ms, p99 {:.3} ms ({} jobs)",
                args.rate,
                started.0,
                started.1,
                terminal.0,
                terminal.1,
                latencies.started.len()
            );
        }
        match entrypoint {
            "noop" => {
                figures.noop_cost = cost;
                figures.noop_jobs_per_s = rate;
                (figures.start_p50_ms, figures.start_p99_ms) = started;
                (figures.terminal_p50_ms, figures.terminal_p99_ms) = terminal;
            }
            _ => {
                figures.process_cost = cost;
                figures.process_jobs_per_s = rate;
                (figures.process_start_p50_ms, figures.process_start_p99_ms) = started;
                (
                    figures.process_terminal_p50_ms,
                    figures.process_terminal_p99_ms,
                ) = terminal;
            }
        }
    }
    figures.noop_ratio =
        figures.noop_jobs_per_s / figures.raw_round_trip_jobs_per_s.max(f64::EPSILON);
    figures.process_ratio =
        figures.process_jobs_per_s / figures.spawn_floor_per_s.max(f64::EPSILON);
    match table {
        true => figures.print_table(),
        false => println!("{}", serde_json::to_string(&figures)?),
    }
    stop.cancel();
    // Their runtimes end when their work has: wait off this runtime's threads.
    let _ = tokio::task::spawn_blocking(move || (worker.join(), projector.join())).await;
    Ok(())
}

/// Starts a worker of `group` with `concurrency` slots on a runtime of its
/// own, serving no-op jobs and `true` (`/bin/true`) until `stop`.
pub(crate) fn start_worker(
    settings: &ConnectSettings,
    group: &str,
    concurrency: u32,
    stop: CancellationToken,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let worker_settings = WorkerSettings {
        connection: shoal_client::login::ConnectionArgs {
            nats_url: Some(settings.url.parse()?),
            ..Default::default()
        },
        group: Some(group.to_string()),
        concurrency: Some(concurrency),
        polling_interval: Some(shoal_protocol::Duration::from_secs(1)),
        log_level: Some("warn".into()),
        ..WorkerSettings::default()
    };
    let mut worker_config = WorkerArgs {
        settings: worker_settings,
        ..WorkerArgs::default()
    }
    .resolve()?;
    worker_config.entrypoints = BTreeMap::from([(
        "true".to_string(),
        Entrypoint {
            command: vec!["/bin/true".into()],
        },
    )]);
    worker_config.job_guard = shoal_guard::Guard::of_current_exe();
    let settings = settings.clone();
    on_own_runtime(crate::cost::WORKER_THREADS, async move {
        let client = connect(&settings).await?;
        Ok(shoal_worker::run(worker_config, client, stop).await?)
    })
}

/// Runs `work` on a runtime of its own whose threads are called `name`,
/// so that the CPU they use can be told apart.
pub(crate) fn on_own_runtime(
    name: &'static str,
    work: impl std::future::Future<Output = Result<()>> + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()?;
    Ok(std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || runtime.block_on(work))?)
}

/// Submits `count` jobs as fast as acks allow and waits until all are terminal in KV.
pub(crate) async fn throughput(
    js: &jetstream::Context,
    jobs: &jetstream::kv::Store,
    layout: &Layout,
    group: &str,
    entrypoint: &str,
    count: usize,
) -> Result<Duration> {
    let entrypoint = entrypoint.to_string();
    let spec_of = move |id: String, _: usize| JobSpec {
        id: Some(id),
        ..JobSpec::entrypoint(entrypoint.clone(), vec![])
    };
    throughput_of(js, jobs, (layout, group), count, spec_of).await
}

/// [`throughput`] of the jobs `spec_of(id, index)` makes.
pub(crate) async fn throughput_of(
    js: &jetstream::Context,
    jobs: &jetstream::kv::Store,
    (layout, group): (&Layout, &str),
    count: usize,
    spec_of: impl Fn(String, usize) -> JobSpec + Send + 'static,
) -> Result<Duration> {
    let run = nuid::next().to_string().to_lowercase();
    let mut done_watch = jobs.watch(format!("{group}.*")).await?;
    let prefix = format!("t{run}-");
    let subjects = layout.subjects.clone();
    let group_name = group.to_string();
    let started = Instant::now();
    let publisher = {
        let js = js.clone();
        let run = run.clone();
        tokio::spawn(async move {
            let mut pending = Vec::with_capacity(1024);
            for index in 0..count {
                let spec = spec_of(format!("t{run}-{index}"), index);
                let subject = subjects.submission(
                    &group_name,
                    "default",
                    shoal_protocol::Priority::Normal,
                    spec.fairness_key.as_deref(),
                );
                pending.push(
                    js.publish(subject, serde_json::to_vec(&spec)?.into())
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
            Ok::<_, crate::error::BoxError>(())
        })
    };
    let mut finished = HashSet::with_capacity(count);
    while finished.len() < count {
        let Some(entry) = done_watch.next().await else {
            bail!("the watch of the job records ended");
        };
        let entry = entry?;
        if let Ok(record) = serde_json::from_slice::<JobRecord>(&entry.value) {
            if record.done && record.id.starts_with(&prefix) {
                finished.insert(record.id);
            }
        }
    }
    let elapsed = started.elapsed();
    publisher.await.context("publisher")??;
    Ok(elapsed)
}

/// Start and end of the jobs of a latency run, in milliseconds from each
/// submission: to its start (as the worker's clock saw it, reported by its
/// `started` event or, for a job that ended within the start grace, by its
/// outcome), and to its terminal record in KV; each sorted.
struct Latencies {
    started: Vec<f64>,
    terminal: Vec<f64>,
}

/// Submits `count` jobs of `entrypoint` at `rate` per second and times each
/// one's start and terminal record.
async fn latency(
    client: &async_nats::Client,
    js: &jetstream::Context,
    jobs: &jetstream::kv::Store,
    layout: &Layout,
    group: &str,
    (entrypoint, count, rate): (&str, usize, u32),
) -> Result<Latencies> {
    let run = nuid::next().to_string().to_lowercase();
    let mut events = client
        .subscribe(format!("{}.evt.job.{group}.>", layout.subjects.prefix()))
        .await?;
    let mut records = jobs.watch(format!("{group}.*")).await?;
    let subject = layout.subjects.jobs(group, "default");
    let mut unstarted: HashMap<String, i128> = HashMap::with_capacity(count);
    let mut unfinished: HashMap<String, Instant> = HashMap::with_capacity(count);
    let mut latencies = Latencies {
        started: Vec::with_capacity(count),
        terminal: Vec::with_capacity(count),
    };
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut sent = 0;
    while latencies.started.len() < count || latencies.terminal.len() < count {
        tokio::select! {
            _ = ticker.tick(), if sent < count => {
                let id = format!("l{run}-{sent}");
                let spec = JobSpec { id: Some(id.clone()), ..JobSpec::entrypoint(entrypoint, vec![]) };
                unstarted.insert(id.clone(), shoal_protocol::Timestamp::now().0.unix_timestamp_nanos());
                unfinished.insert(id, Instant::now());
                // Acks are not awaited one by one: the submitter does not wait for them either.
                drop(js.publish(subject.clone(), serde_json::to_vec(&spec)?.into()).await?);
                sent += 1;
            }
            message = events.next() => {
                let Some(message) = message else { bail!("the event subscription ended") };
                let Ok(event) = serde_json::from_slice::<JobEvent>(&message.payload) else { continue };
                let start = match event.kind {
                    JobEventType::Started => Some(event.at),
                    _ => event.started_at,
                };
                if let (Some(start), Some(submitted)) = (start, unstarted.get(&event.job_id)) {
                    let nanos = start.0.unix_timestamp_nanos() - submitted;
                    latencies.started.push(nanos as f64 / 1e6);
                    unstarted.remove(&event.job_id);
                }
            }
            entry = records.next() => {
                let Some(entry) = entry else { bail!("the watch of the job records ended") };
                let Ok(record) = serde_json::from_slice::<JobRecord>(&entry?.value) else { continue };
                if record.done {
                    if let Some(at) = unfinished.remove(&record.id) {
                        latencies.terminal.push(at.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
        }
    }
    latencies.started.sort_by(f64::total_cmp);
    latencies.terminal.sort_by(f64::total_cmp);
    Ok(latencies)
}

fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
