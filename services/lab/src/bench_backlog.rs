//! `shoal bench --backlog N`: N no-op jobs queued before any worker runs,
//! then drained by one worker, with a projector and a registry beside it,
//! each a process of its own; prints the resident memory of each process
//! at every quarter of the drain, to show that it stays flat, and that of a
//! worker of another group, idle through the run.

use std::time::{Duration, Instant};

use serde::Serialize;
use shoal_client::connect::{connect, ConnectSettings};
use shoal_client::streams::Layout;
use shoal_protocol::{JobSpec, Subjects};
use tokio::process::Child;

use crate::bail;
use crate::error::{Context, Result};

/// What a backlog run is asked to do.
pub struct BacklogRun {
    /// Jobs queued before the worker starts.
    pub jobs: usize,
    /// Print one JSON object instead of lines.
    pub json: bool,
}

/// Resident memory of each process, in MiB, when a share of the backlog was done.
#[derive(Debug, Serialize)]
struct Quarter {
    done: usize,
    worker_mib: f64,
    projector_mib: f64,
    registry_mib: f64,
}

/// The figures of one backlog run.
#[derive(Debug, Serialize)]
struct BacklogFigures {
    jobs: usize,
    seconds: f64,
    quarters: Vec<Quarter>,
    /// Resident memory of a worker of another group, idle through the run.
    idle_worker_mib: f64,
    /// Of it, the worker's own (anonymous) memory.
    idle_worker_own_mib: f64,
    /// Of it, pages of the binary and its libraries, shared with every
    /// process that runs them.
    idle_worker_shared_mib: f64,
    /// CPU each process used while the backlog drained, in % of a core.
    worker_cpu_percent: f64,
    projector_cpu_percent: f64,
    registry_cpu_percent: f64,
}

/// How often the drain is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Longest the drain may take.
const DRAIN_BOUND: Duration = Duration::from_secs(600);

/// Runs the backlog benchmark against the server at `url`.
pub async fn measure(run: &BacklogRun, url: &str) -> Result<()> {
    let settings = ConnectSettings {
        url: url.to_string(),
        name: "shoal-bench-backlog".into(),
        ..ConnectSettings::default()
    };
    let client = connect(&settings).await?;
    let js = async_nats::jetstream::new(client.clone());
    let layout = Layout::new(Subjects::default());
    layout.set_up_as_operator(&js).await?;
    let group = format!("bl{}", nuid::next().to_string().to_lowercase());
    let projector = crate::bench_heartbeats::service(url, &["projector", "run"])?;
    let registry = crate::bench_heartbeats::service(url, &["registry", "run"])?;
    let idle_group = format!("{group}idle");
    let idle_output = std::env::temp_dir().join(format!("shoal-backlog-{idle_group}"));
    let idle = crate::bench_heartbeats::service(
        url,
        &[
            "worker",
            "run",
            "--group",
            &idle_group,
            "--output-dir",
            &idle_output.display().to_string(),
        ],
    )?;
    let idle_queue =
        layout.queue_consumer_name(&idle_group, "default", shoal_protocol::Priority::default());
    wait_for_consumer(&js, &layout, &idle_queue).await?;
    let mut idle_memory = Resident::of(idle.id().context("the idle worker ended early")?)?;
    submit(&js, &layout.subjects, &group, run.jobs).await?;
    let output = std::env::temp_dir().join(format!("shoal-backlog-{group}"));
    let output_arg = output.display().to_string();
    let worker = crate::bench_heartbeats::service(
        url,
        &[
            "worker",
            "run",
            "--group",
            &group,
            "--concurrency",
            "64",
            "--output-dir",
            &output_arg,
        ],
    )?;
    let started = Instant::now();
    let pid_of = |child: &Child| {
        child
            .id()
            .context("a process of the backlog run ended early")
    };
    let pids = [pid_of(&worker)?, pid_of(&projector)?, pid_of(&registry)?];
    let cpu_before = pids.map(crate::cost::process_cpu_seconds);
    let queue = layout.queue_consumer_name(&group, "default", shoal_protocol::Priority::default());
    let quarters = watch_drain(
        &js,
        &layout,
        &queue,
        run.jobs,
        [&worker, &projector, &registry],
    )
    .await;
    let _ = std::fs::remove_dir_all(&output);
    let seconds = started.elapsed().as_secs_f64();
    let mut cpu_percent = [0.0; 3];
    for ((percent, pid), before) in cpu_percent.iter_mut().zip(pids).zip(cpu_before) {
        *percent = (crate::cost::process_cpu_seconds(pid)? - before?) / seconds * 100.0;
    }
    idle_memory = idle_memory.max(Resident::of(
        idle.id().context("the idle worker ended early")?,
    )?);
    let figures = BacklogFigures {
        jobs: run.jobs,
        seconds,
        quarters: quarters?,
        idle_worker_mib: idle_memory.total,
        idle_worker_own_mib: idle_memory.own,
        idle_worker_shared_mib: idle_memory.shared,
        worker_cpu_percent: cpu_percent[0],
        projector_cpu_percent: cpu_percent[1],
        registry_cpu_percent: cpu_percent[2],
    };
    drop((worker, projector, registry, idle));
    let _ = std::fs::remove_dir_all(&idle_output);
    print(&figures, run.json)
}

fn print(figures: &BacklogFigures, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(figures)?);
        return Ok(());
    }
    println!(
        "{} queued no-op jobs drained in {:.1} s; resident memory as they were done:",
        figures.jobs, figures.seconds
    );
    for quarter in &figures.quarters {
        println!(
            "{:>8} done: worker {:.1} MiB, projector {:.1} MiB, registry {:.1} MiB",
            quarter.done, quarter.worker_mib, quarter.projector_mib, quarter.registry_mib
        );
    }
    println!(
        "CPU while draining: worker {:.1} %, projector {:.1} %, registry {:.1} % of a core",
        figures.worker_cpu_percent, figures.projector_cpu_percent, figures.registry_cpu_percent
    );
    println!(
        "an idle worker (another group): {:.1} MiB resident, {:.1} MiB its own and {:.1} MiB \
         of the binary and libraries, shared with every process running them",
        figures.idle_worker_mib, figures.idle_worker_own_mib, figures.idle_worker_shared_mib
    );
    Ok(())
}

/// Waits until the consumer `queue` exists: its worker has started and pulls.
async fn wait_for_consumer(
    js: &async_nats::jetstream::Context,
    layout: &Layout,
    queue: &str,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while unsettled(js, layout, queue).await?.is_none() {
        if Instant::now() > deadline {
            bail!("the idle worker did not start pulling within 30 s");
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
    Ok(())
}

/// Queues `count` no-op jobs.
async fn submit(
    js: &async_nats::jetstream::Context,
    subjects: &Subjects,
    group: &str,
    count: usize,
) -> Result<()> {
    let subject = subjects.jobs(group, "default");
    let body = serde_json::to_vec(&JobSpec::entrypoint("noop", vec![]))?;
    let mut pending = Vec::with_capacity(1024);
    for _ in 0..count {
        pending.push(js.publish(subject.clone(), body.clone().into()).await?);
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

/// Samples each process's memory until the queue's consumer has taken and
/// settled every job: the highest at each quarter of the drain.
async fn watch_drain(
    js: &async_nats::jetstream::Context,
    layout: &Layout,
    queue: &str,
    jobs: usize,
    processes: [&Child; 3],
) -> Result<Vec<Quarter>> {
    let pids = processes.map(Child::id);
    let deadline = Instant::now() + DRAIN_BOUND;
    let mut quarters = Vec::new();
    let mut highest = [0.0f64; 3];
    let mut next_quarter = jobs.div_ceil(4);
    loop {
        if Instant::now() > deadline {
            bail!("the backlog was not drained within {DRAIN_BOUND:?}");
        }
        tokio::time::sleep(LOOK_EVERY).await;
        for (high, pid) in highest.iter_mut().zip(pids) {
            let pid = pid.context("a process of the backlog run ended early")?;
            *high = high.max(resident_mib(pid)?);
        }
        let done = jobs.saturating_sub(unsettled(js, layout, queue).await?.unwrap_or(jobs));
        while done >= next_quarter && quarters.len() < 4 {
            quarters.push(Quarter {
                done: next_quarter,
                worker_mib: highest[0],
                projector_mib: highest[1],
                registry_mib: highest[2],
            });
            next_quarter = (next_quarter + jobs.div_ceil(4)).min(jobs);
        }
        if quarters.len() == 4 {
            return Ok(quarters);
        }
    }
}

/// Jobs of the queue not yet settled (none known before its worker made
/// its consumer).
async fn unsettled(
    js: &async_nats::jetstream::Context,
    layout: &Layout,
    queue: &str,
) -> Result<Option<usize>> {
    let stream = js.get_stream(layout.jobs_stream()).await?;
    Ok(stream
        .consumer_info(queue)
        .await
        .ok()
        .map(|info| (info.num_pending + info.num_ack_pending as u64) as usize))
}

/// A process's resident memory (VmRSS) in MiB.
fn resident_mib(pid: u32) -> Result<f64> {
    Ok(Resident::of(pid)?.total)
}

/// A process's resident memory in MiB: all of it, its own (anonymous), and
/// pages of files it maps (its binary and libraries).
#[derive(Debug, Clone, Copy)]
struct Resident {
    total: f64,
    own: f64,
    shared: f64,
}

impl Resident {
    fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("cannot read /proc/{pid}/status"))?;
        let mib = |field: &str| -> Result<f64> {
            let kib = status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
            Ok(kib / 1024.0)
        };
        Ok(Self {
            total: mib("VmRSS:")?,
            own: mib("RssAnon:")?,
            shared: mib("RssFile:")?,
        })
    }

    /// The larger of two samples.
    fn max(self, other: Self) -> Self {
        if other.total > self.total {
            other
        } else {
            self
        }
    }
}
