//! `shoal bench --holds`: what a concurrency key and a dependency cost.
//! One worker, a projector and a registry (processes, as deployed) run
//! three kinds of no-op jobs in turn: plain; each with a concurrency key
//! (one of 16, a limit no run reaches, so that only the slot's taking and
//! giving back is measured); and in pairs, the second depending on the
//! first (a child pulled before its parent ended waits for the registry to
//! let it go). Each figure is printed beside the plain one of the same run.

use serde::Serialize;
use shoal_protocol::hold::ConcurrencyLimit;
use shoal_protocol::JobSpec;

use crate::bench::throughput_of;
use crate::bench_group::BenchGroup;
use crate::error::Result;

/// What `shoal bench --holds` measures.
pub(crate) struct HoldsRun {
    /// Jobs of each kind.
    pub(crate) jobs: usize,
    /// The worker's slots.
    pub(crate) concurrency: u32,
    /// One JSON object instead of a table.
    pub(crate) json: bool,
}

/// The figures of one run.
#[derive(Debug, Default, Serialize)]
struct HoldsFigures {
    jobs: usize,
    plain_jobs_per_s: f64,
    keyed_jobs_per_s: f64,
    keyed_ratio: f64,
    dependent_jobs_per_s: f64,
    dependent_ratio: f64,
}

/// Runs the three kinds and prints their rates.
pub(crate) async fn measure(run: &HoldsRun, url: &str) -> Result<()> {
    let fleet = BenchGroup::start(
        url,
        "holds",
        run.concurrency,
        &["--check-interval", "200ms"],
    )
    .await?;
    let (js, jobs, place) = (&fleet.js, &fleet.jobs, fleet.place());
    let noop = |id: String| JobSpec {
        id: Some(id),
        ..JobSpec::entrypoint("noop", vec![])
    };
    let plain = throughput_of(js, jobs, place, run.jobs, move |id, _| noop(id)).await?;
    let keyed = throughput_of(js, jobs, place, run.jobs, move |id, index| JobSpec {
        concurrency: Some(ConcurrencyLimit {
            key: format!("k{}", index % 16),
            limit: shoal_protocol::hold::MAX_LIMIT,
        }),
        ..noop(id)
    })
    .await?;
    let dependent = throughput_of(js, jobs, place, run.jobs, move |id, index| {
        let parent = (index % 2 == 1).then(|| parent_of(&id));
        JobSpec {
            depends_on: parent.into_iter().collect(),
            ..noop(id)
        }
    })
    .await?;
    let rate = |elapsed: std::time::Duration| run.jobs as f64 / elapsed.as_secs_f64();
    let mut figures = HoldsFigures {
        jobs: run.jobs,
        plain_jobs_per_s: rate(plain),
        keyed_jobs_per_s: rate(keyed),
        dependent_jobs_per_s: rate(dependent),
        ..HoldsFigures::default()
    };
    figures.keyed_ratio = figures.keyed_jobs_per_s / figures.plain_jobs_per_s;
    figures.dependent_ratio = figures.dependent_jobs_per_s / figures.plain_jobs_per_s;
    if run.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "shoal bench --holds: {} no-op jobs of each kind, 1 worker (concurrency {})",
            run.jobs, run.concurrency
        );
        println!(
            "plain                      {:>9.0} jobs/s",
            figures.plain_jobs_per_s
        );
        for (what, rate, ratio) in [
            (
                "with a concurrency key",
                figures.keyed_jobs_per_s,
                figures.keyed_ratio,
            ),
            (
                "half depending on a job",
                figures.dependent_jobs_per_s,
                figures.dependent_ratio,
            ),
        ] {
            println!(
                "{what:<26} {rate:>9.0} jobs/s   {:>5.1} % of plain",
                100.0 * ratio
            );
        }
    }
    fleet.stop().await;
    Ok(())
}

/// The id of the job before `id` (`t<run>-<index>`).
fn parent_of(id: &str) -> String {
    let (run, index) = id.rsplit_once('-').unwrap_or((id, "0"));
    let index: usize = index.parse().unwrap_or(1);
    format!("{run}-{}", index.saturating_sub(1))
}
