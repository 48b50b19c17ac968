//! `shoal bench --fair`: what fair share costs and what it buys. One
//! worker, a projector and a registry (processes, as deployed) run no-op
//! jobs plain and with a fairness key (one of 16); then a backlog of jobs
//! of one key (10,000 unless told), and behind it, one after another, lone
//! jobs of other keys: each one's wait from submission to start, beside the
//! time the backlog takes to drain (what a lone job would wait without
//! turns).

use std::time::Duration;

use serde::Serialize;
use shoal_client::streams::Layout;
use shoal_protocol::key::Key;
use shoal_protocol::{JobRecord, JobSpec};

use crate::bail;
use crate::bench::throughput_of;
use crate::bench_group::BenchGroup;
use crate::error::Result;

/// Lone jobs submitted behind the backlog, one after another.
const LONE_JOBS: usize = 5;

/// What `shoal bench --fair` measures.
pub(crate) struct FairRun {
    /// Jobs of each kind of the throughput runs.
    pub(crate) jobs: usize,
    /// Jobs of the one key that the lone jobs come behind.
    pub(crate) backlog: usize,
    /// The worker's slots.
    pub(crate) concurrency: u32,
    /// One JSON object instead of a table.
    pub(crate) json: bool,
}

/// The figures of one run.
#[derive(Debug, Default, Serialize)]
struct FairFigures {
    jobs: usize,
    plain_jobs_per_s: f64,
    fair_jobs_per_s: f64,
    fair_ratio: f64,
    backlog: usize,
    backlog_drain_s: f64,
    lone_wait_p50_ms: f64,
    lone_wait_max_ms: f64,
}

/// Runs the throughputs and the lone jobs and prints their figures.
pub(crate) async fn measure(run: &FairRun, url: &str) -> Result<()> {
    let fleet = BenchGroup::start(url, "fair", run.concurrency, &[]).await?;
    let (js, jobs, place) = (&fleet.js, &fleet.jobs, fleet.place());
    let plain = throughput_of(js, jobs, place, run.jobs, |id, _| noop(id, None)).await?;
    let fair = throughput_of(js, jobs, place, run.jobs, |id, index| {
        noop(id, Some(format!("k{}", index % 16)))
    })
    .await?;
    let drain = {
        let backlog = run.backlog;
        let (js, jobs, layout, group) = (
            js.clone(),
            jobs.clone(),
            fleet.layout.clone(),
            fleet.group.clone(),
        );
        tokio::spawn(async move {
            let place = (&layout, group.as_str());
            throughput_of(&js, &jobs, place, backlog, |id, _| {
                noop(id, Some("big".into()))
            })
            .await
        })
    };
    let mut waits = Vec::with_capacity(LONE_JOBS);
    for trial in 0..LONE_JOBS {
        tokio::time::sleep(Duration::from_millis(500)).await;
        waits.push(lone_wait(js, jobs, place, trial).await?);
    }
    let drained = drain.await??;
    waits.sort_by(f64::total_cmp);
    let rate = |elapsed: Duration| run.jobs as f64 / elapsed.as_secs_f64();
    let figures = FairFigures {
        jobs: run.jobs,
        plain_jobs_per_s: rate(plain),
        fair_jobs_per_s: rate(fair),
        fair_ratio: plain.as_secs_f64() / fair.as_secs_f64(),
        backlog: run.backlog,
        backlog_drain_s: drained.as_secs_f64(),
        lone_wait_p50_ms: waits[waits.len() / 2],
        lone_wait_max_ms: waits.last().copied().unwrap_or_default(),
    };
    print(&figures, run);
    fleet.stop().await;
    Ok(())
}

/// A no-op job, with a fairness key or without.
fn noop(id: String, fairness_key: Option<String>) -> JobSpec {
    JobSpec {
        id: Some(id),
        fairness_key,
        ..JobSpec::entrypoint("noop", vec![])
    }
}

/// Submits a lone job of a key of its own and gives its wait from
/// submission to start, in milliseconds (from its record).
async fn lone_wait(
    js: &async_nats::jetstream::Context,
    jobs: &async_nats::jetstream::kv::Store,
    (layout, group): (&Layout, &str),
    trial: usize,
) -> Result<f64> {
    let id = format!("lone-{}-{trial}", nuid::next().to_string().to_lowercase());
    let key = format!("lone{trial}");
    let spec = noop(id.clone(), Some(key.clone()));
    let subject = layout.subjects.fair(group, "default", &key);
    js.publish(subject, serde_json::to_vec(&spec)?.into())
        .await?
        .await?;
    let record_key = Key::new(group, &id).to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while tokio::time::Instant::now() < deadline {
        if let Some(value) = jobs.get(&record_key).await? {
            let record: JobRecord = serde_json::from_slice(&value)?;
            if let (Some(submitted), Some(started)) = (record.submitted_at, record.started_at) {
                let nanos = (started.unix_nanos() - submitted.unix_nanos()).max(0);
                return Ok(nanos as f64 / 1e6);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("the lone job {id} did not start within 120 s")
}

fn print(figures: &FairFigures, run: &FairRun) {
    if run.json {
        match serde_json::to_string(figures) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("error: {err}"),
        }
        return;
    }
    println!(
        "shoal bench --fair: {} no-op jobs of each kind, 1 worker (concurrency {})",
        run.jobs, run.concurrency
    );
    println!(
        "plain                          {:>9.0} jobs/s",
        figures.plain_jobs_per_s
    );
    println!(
        "with a fairness key (of 16)    {:>9.0} jobs/s   {:>5.1} % of plain",
        figures.fair_jobs_per_s,
        100.0 * figures.fair_ratio
    );
    println!(
        "a lone key's job behind another key's {} jobs: waits {:.0} ms (median of {LONE_JOBS}, at most {:.0} ms); the backlog took {:.1} s to drain",
        figures.backlog, figures.lone_wait_p50_ms, figures.lone_wait_max_ms, figures.backlog_drain_s
    );
}
