//! `shoal chaos`: the proof under faults. It starts its own servers (one,
//! or three clustered), a projector, a registry and workers, submits jobs
//! whose program records each execution, and meanwhile kills with SIGKILL
//! random workers, the projector, the registry and the servers (a cluster
//! loses the jobs stream's leader, then another node), starting each again.
//! Then it counts: nothing may be lost, and no job recorded as succeeded
//! twice; a job may have run twice (a worker killed after its job ended but
//! before its outcome was stored), which the report counts and explains.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Context, Result};
use async_nats::jetstream;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use shoal_protocol::{JobRecord, JobState};

use crate::chaos_fleet::{Part, Servers};

/// The fault of a worker killed.
const WORKER_KILLED: &str = "worker killed";

/// The group the chaos run's jobs belong to.
const GROUP: &str = "chaos";

/// The id of job `index` of run `run` (a run's own ids: runs against the
/// same servers do not share them).
fn job_id(run: &str, index: u64) -> String {
    format!("c{run}-{index}")
}

/// Flags of `shoal chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Jobs to submit.
    #[arg(long, default_value_t = 2000)]
    jobs: u64,
    /// Workers at once.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Seed of the faults' order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Three clustered servers (streams with three replicas) instead of one.
    #[arg(long)]
    cluster: bool,
    /// Use these servers instead of starting some (they are not killed;
    /// with `--cluster`, streams get three replicas).
    #[arg(long)]
    nats_url: Option<String>,
    /// Faults to cause (at least; they go on while jobs are still submitted).
    #[arg(long, default_value_t = 8)]
    faults: usize,
    /// Time between two faults.
    #[arg(long, default_value = "2s")]
    fault_interval: shoal_protocol::Duration,
    /// Longest the run may take.
    #[arg(long, default_value = "20m")]
    deadline: shoal_protocol::Duration,
    /// Give the jobs concurrency keys (4 keys, 3 at once each) and make
    /// every tenth depend on the one before; check both from the jobs' own
    /// records of each execution.
    #[arg(long)]
    holds: bool,
    /// Output: `table` or `json`.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// What a chaos run found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Jobs submitted.
    pub submitted: u64,
    /// Jobs whose record says succeeded.
    pub succeeded: u64,
    /// Jobs with no terminal record when the run ended.
    pub lost: u64,
    /// Jobs whose record was taken by a later attempt's success than the
    /// first one reported: a success recorded twice (must be 0).
    pub double_success: u64,
    /// Jobs whose success was reported by two attempts (a job run again
    /// after its outcome was stored but not acknowledged; the record keeps
    /// the first).
    pub repeated_success_reports: u64,
    /// Executions of the jobs' program, counted by the program itself.
    pub executions: u64,
    /// Jobs whose program ran more than once.
    pub duplicate_executions: u64,
    /// Faults caused, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Seconds from the last fault until every job was terminal.
    pub drain_after_last_fault_s: f64,
    /// Seconds of the whole run.
    pub run_s: f64,
    /// With `--holds`: limits and dependencies, as the executions show them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holds: Option<crate::chaos_holds::HoldsReport>,
}

/// A small deterministic generator (xorshift64*): the seed gives the faults' order.
struct Dice(u64);

impl Dice {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        usize::try_from(value % bound.max(1) as u64).unwrap_or(0)
    }
}

/// The fleet's parts.
struct Fleet {
    /// The servers, when the run started them (then they are faulted too).
    servers: Option<Servers>,
    projector: Part,
    registry: Part,
    workers: Vec<Part>,
}

/// Runs `shoal chaos`; fails when a job was lost or succeeded twice.
pub async fn run(args: ChaosArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("shoal-chaos-{}", nuid::next()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let outcome = run_in(&args, &dir).await;
    let report = match outcome {
        Ok(report) => report,
        Err(err) => {
            eprintln!("the fleet's logs are in {}", dir.display());
            return Err(err);
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    print(&report, &args.output)?;
    if report.lost > 0 || report.double_success > 0 {
        crate::bail!(
            "{} jobs lost, {} recorded as succeeded twice",
            report.lost,
            report.double_success
        );
    }
    if let Some(holds) = report
        .holds
        .as_ref()
        .filter(|holds| holds.limit_exceeded > 0 || holds.started_before_parents > 0)
    {
        crate::bail!(
            "{} keys ran more than {} jobs at once, {} dependents started before their parent ended",
            holds.limit_exceeded,
            holds.limit,
            holds.started_before_parents
        );
    }
    Ok(())
}

async fn run_in(args: &ChaosArgs, dir: &Path) -> Result<Report> {
    let started = Instant::now();
    let run: String = nuid::next()
        .to_string()
        .to_lowercase()
        .chars()
        .take(8)
        .collect();
    let deadline = started + args.deadline.get();
    let (servers, client, urls) = match &args.nats_url {
        Some(urls) => {
            let client = async_nats::connect(shoal_client::connect::server_urls(urls))
                .await
                .with_context(|| format!("cannot connect to {urls}"))?;
            (None, client, urls.clone())
        }
        None => {
            let servers = Servers::start(dir, args.cluster)?;
            let client = servers.wait_ready().await?;
            let urls = servers.urls();
            (Some(servers), client, urls)
        }
    };
    let replicas = if args.cluster { "3" } else { "1" }.to_string();
    let js = jetstream::new(client);
    let part = |args: &[&str], log: &str| {
        let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        all.extend(["--replicas".to_string(), replicas.clone()]);
        Part::start(all, dir.join(log), &urls)
    };
    let executions = dir.join("executions");
    let mut fleet = Fleet {
        projector: part(&["projector", "run"], "projector.log")?,
        registry: part(
            &["registry", "run", "--check-interval", "1s"],
            "registry.log",
        )?,
        workers: (0..args.workers)
            .map(|index| {
                let output = dir.join(format!("w{index}"));
                let output = output.display().to_string();
                part(
                    &[
                        "worker",
                        "run",
                        "--group",
                        GROUP,
                        "--allow-exec",
                        "true",
                        "--concurrency",
                        "16",
                        "--ack-wait",
                        "5s",
                        "--max-deliver",
                        "20",
                        "--heartbeat-interval",
                        "1s",
                        "--polling-interval",
                        "1s",
                        "--output-dir",
                        &output,
                    ],
                    &format!("worker-{index}.log"),
                )
            })
            .collect::<Result<Vec<_>>>()?,
        servers,
    };
    let submitting = tokio::spawn(submit_all(
        js.clone(),
        run.clone(),
        (args.jobs, args.holds),
        executions.clone(),
        deadline,
    ));
    let mut report = Report {
        submitted: args.jobs,
        ..Report::default()
    };
    let mut dice = Dice(args.seed.max(1));
    let mut last_fault = Instant::now();
    let mut worker_kills = Vec::new();
    while report.faults.values().sum::<u64>() < args.faults as u64 || !submitting.is_finished() {
        if Instant::now() >= deadline {
            crate::bail!("the run passed its deadline while faulting");
        }
        tokio::time::sleep(args.fault_interval.get()).await;
        let kind = fault(&mut fleet, &mut dice, &js, args.cluster).await?;
        if kind == WORKER_KILLED {
            worker_kills.push(shoal_protocol::Timestamp::now().unix_nanos());
        }
        *report.faults.entry(kind).or_default() += 1;
        last_fault = Instant::now();
    }
    submitting.await.context("the submitter stopped")??;
    let records = wait_all_terminal(&js, &run, args.jobs, deadline).await?;
    report.drain_after_last_fault_s = last_fault.elapsed().as_secs_f64();
    count(&mut report, &records, &js, &executions, &run).await?;
    if args.holds {
        let text = std::fs::read_to_string(&executions).unwrap_or_default();
        let id_of = |index| job_id(&run, index);
        report.holds = Some(crate::chaos_holds::check(
            &text,
            args.jobs,
            id_of,
            &worker_kills,
        ));
    }
    report.run_s = started.elapsed().as_secs_f64();
    for worker in &mut fleet.workers {
        worker.kill().await;
    }
    fleet.projector.kill().await;
    fleet.registry.kill().await;
    if let Some(servers) = fleet.servers.as_mut() {
        for index in 0..servers.len() {
            servers.kill(index).await;
        }
    }
    Ok(report)
}

/// Submits jobs `c0..cN`, each stored once, trying again while the servers
/// are down.
async fn submit_all(
    js: jetstream::Context,
    run: String,
    (jobs, holds): (u64, bool),
    executions: std::path::PathBuf,
    deadline: Instant,
) -> Result<()> {
    for index in 0..jobs {
        let id = job_id(&run, index);
        let parent = index.checked_sub(1).map(|before| job_id(&run, before));
        let body = crate::chaos_holds::job_body(&id, parent.as_deref(), index, &executions, holds)
            .to_string();
        loop {
            if Instant::now() >= deadline {
                crate::bail!("jobs could not be submitted in time");
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("{GROUP}.{id}").as_str());
            let fairness_key = crate::chaos_holds::fairness_key(index).filter(|_| holds);
            let subject = shoal_protocol::Subjects::default().submission(
                GROUP,
                "default",
                shoal_protocol::Priority::Normal,
                fairness_key.as_deref(),
            );
            if let Ok(ack) = js
                .publish_with_headers(subject, headers, body.clone().into())
                .await
            {
                if tokio::time::timeout(Duration::from_secs(5), ack)
                    .await
                    .is_ok_and(|ack| ack.is_ok())
                {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Causes one fault, chosen by the dice; says which.
async fn fault(
    fleet: &mut Fleet,
    dice: &mut Dice,
    js: &jetstream::Context,
    cluster: bool,
) -> Result<String> {
    let kinds = if fleet.servers.is_some() { 4 } else { 3 };
    match dice.below(kinds) {
        0 | 1 => {
            let index = dice.below(fleet.workers.len());
            fleet.workers[index].kill().await;
            fleet.workers[index].restart()?;
            Ok(WORKER_KILLED.into())
        }
        2 => {
            if dice.below(2) == 0 {
                fleet.projector.kill().await;
                fleet.projector.restart()?;
                Ok("projector killed".into())
            } else {
                fleet.registry.kill().await;
                fleet.registry.restart()?;
                Ok("registry killed".into())
            }
        }
        _ => match fleet.servers.as_mut() {
            Some(servers) if cluster => {
                let leader = jobs_stream_leader(js).await;
                let index = leader
                    .and_then(|name| servers.index_of(&name))
                    .unwrap_or_else(|| dice.below(servers.len()));
                servers.kill(index).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                servers.restart(index)?;
                Ok("cluster node killed".into())
            }
            Some(servers) => {
                servers.kill(0).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                servers.restart(0)?;
                Ok("nats-server killed".into())
            }
            None => Ok("nothing (servers not ours)".into()),
        },
    }
}

/// The server that leads the jobs stream, when it can be asked.
async fn jobs_stream_leader(js: &jetstream::Context) -> Option<String> {
    let mut stream = js.get_stream("SHOAL_JOBS").await.ok()?;
    let info = tokio::time::timeout(Duration::from_secs(2), stream.info())
        .await
        .ok()?
        .ok()?;
    info.cluster
        .as_ref()
        .and_then(|cluster| cluster.leader.clone())
}

/// The records of the run's jobs, once every one is terminal (or the deadline passed).
async fn wait_all_terminal(
    js: &jetstream::Context,
    run: &str,
    jobs: u64,
    deadline: Instant,
) -> Result<BTreeMap<String, JobRecord>> {
    let mut records = BTreeMap::new();
    loop {
        if let Ok(bucket) = js.get_key_value("shoal_jobs").await {
            let store = shoal_client::RecordStore::<JobRecord>::new(bucket);
            if let Ok(all) = store.read_all(&format!("{GROUP}.*")).await {
                let ours = format!("c{run}-");
                records = all
                    .into_iter()
                    .filter(|job| job.id.starts_with(&ours))
                    .map(|job| (job.id.clone(), job))
                    .collect();
            }
        }
        let terminal = records.values().filter(|job| job.done).count() as u64;
        if terminal >= jobs || Instant::now() >= deadline {
            return Ok(records);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fills the report from the records, the events and the executions file.
async fn count(
    report: &mut Report,
    records: &BTreeMap<String, JobRecord>,
    js: &jetstream::Context,
    executions: &Path,
    run: &str,
) -> Result<()> {
    report.succeeded = records
        .values()
        .filter(|job| job.state == Some(JobState::Succeeded))
        .count() as u64;
    report.lost = (0..report.submitted)
        .filter(|index| {
            records
                .get(&job_id(run, *index))
                .is_none_or(|job| !job.done || job.state == Some(JobState::Missing))
        })
        .count() as u64;
    let text = std::fs::read_to_string(executions).unwrap_or_default();
    let runs = crate::chaos_holds::execution_counts(&text);
    report.executions = runs.values().sum();
    report.duplicate_executions = runs.values().filter(|count| **count > 1).count() as u64;
    let successes = successful_attempts(js, run).await?;
    report.repeated_success_reports = successes.values().filter(|set| set.len() > 1).count() as u64;
    report.double_success = successes
        .iter()
        .filter(|(id, attempts)| {
            attempts.len() > 1
                && records.get(*id).is_some_and(|job| {
                    job.state == Some(JobState::Succeeded)
                        && attempts.first().is_some_and(|first| *first != job.attempt)
                })
        })
        .count() as u64;
    Ok(())
}

/// The attempts that reported success, by job.
async fn successful_attempts(
    js: &jetstream::Context,
    run: &str,
) -> Result<BTreeMap<String, std::collections::BTreeSet<u32>>> {
    let stream = js.get_stream("SHOAL_EVENTS").await?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: format!("shoal.evt.job.{GROUP}.*"),
            ..Default::default()
        })
        .await?;
    let pending = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await?;
    let mut attempts: BTreeMap<String, std::collections::BTreeSet<u32>> = BTreeMap::new();
    for _ in 0..pending {
        let Some(message) = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .ok()
            .flatten()
        else {
            break;
        };
        let message = message?;
        if let Ok(event) = serde_json::from_slice::<shoal_protocol::JobEvent>(&message.payload) {
            if event.kind == shoal_protocol::JobEventType::Succeeded
                && event.job_id.starts_with(&format!("c{run}-"))
            {
                attempts
                    .entry(event.job_id)
                    .or_default()
                    .insert(event.attempt);
            }
        }
    }
    Ok(attempts)
}

fn print(report: &Report, output: &str) -> Result<()> {
    if output == "json" {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let faults: Vec<String> = report
        .faults
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect();
    let rows = [
        ("submitted", report.submitted.to_string()),
        ("succeeded", report.succeeded.to_string()),
        ("lost", report.lost.to_string()),
        (
            "recorded as succeeded twice",
            report.double_success.to_string(),
        ),
        (
            "success reported by 2 attempts",
            report.repeated_success_reports.to_string(),
        ),
        ("executions", report.executions.to_string()),
        (
            "jobs executed more than once",
            report.duplicate_executions.to_string(),
        ),
        ("faults", faults.join(", ")),
        (
            "drain after the last fault",
            format!("{:.1} s", report.drain_after_last_fault_s),
        ),
        ("whole run", format!("{:.1} s", report.run_s)),
    ];
    for (what, value) in rows {
        println!("{what:<30} {value}");
    }
    if let Some(holds) = &report.holds {
        let most = format!("{} (limit {})", holds.most_at_once, holds.limit);
        println!("{:<30} {most}", "most of one key at once");
        println!("{:<30} {}", "keys over their limit", holds.limit_exceeded);
        let early = format!("{} of {}", holds.started_before_parents, holds.dependents);
        println!("{:<30} {early}", "dependents started early");
        println!("{:<30} {}", "jobs taking turns by a key", holds.fair);
    }
    println!(
        "A job runs again when its worker dies after the job ended but before its outcome was \
         stored: the ack comes only after that, so the job is delivered again (at least once)."
    );
    Ok(())
}
