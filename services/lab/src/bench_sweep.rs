//! `shoal bench --sweep 1,8,...,256`: jobs per second at each worker
//! concurrency, no-op and `/bin/true`, beside the bare spawn rate at the
//! same concurrency; `--plot FILE.svg` draws them, to show where they flatten.

use std::path::PathBuf;

use serde::Serialize;
use shoal_client::connect::{connect, ConnectSettings};
use shoal_client::streams::Layout;
use shoal_projector::ProjectorConfig;
use shoal_protocol::Subjects;
use tokio_util::sync::CancellationToken;

use crate::bench::{on_own_runtime, start_worker, throughput};
use crate::error::Result;
use crate::plot::{line_chart, Series};

/// What a sweep is asked to do.
pub struct SweepRun {
    /// The worker concurrencies measured, in order.
    pub concurrencies: Vec<u32>,
    /// Jobs of each kind at each concurrency.
    pub jobs: usize,
    /// Where to write the chart, if anywhere.
    pub plot: Option<PathBuf>,
    /// Print one JSON object instead of lines.
    pub json: bool,
}

/// The figures at one concurrency.
#[derive(Debug, Serialize)]
struct SweepPoint {
    concurrency: u32,
    noop_jobs_per_s: f64,
    process_jobs_per_s: f64,
    spawn_floor_per_s: f64,
    process_ratio: f64,
}

/// Runs the sweep against the server at `url`.
pub async fn measure(run: &SweepRun, url: &str) -> Result<()> {
    let stop = CancellationToken::new();
    let settings = ConnectSettings {
        url: url.to_string(),
        name: "shoal-bench-sweep".into(),
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
    let js = async_nats::jetstream::new(connect(&settings).await?);
    let buckets = layout.ensure(&js).await?;
    let mut points = Vec::new();
    for &concurrency in &run.concurrencies {
        let group = format!(
            "sweep{concurrency}x{}",
            nuid::next().to_string().to_lowercase()
        );
        let stop_worker = stop.child_token();
        let worker = start_worker(&settings, &group, concurrency, stop_worker.clone())?;
        let rate = |elapsed: std::time::Duration| run.jobs as f64 / elapsed.as_secs_f64();
        let noop = throughput(&js, &buckets.jobs, &layout, &group, "noop", run.jobs).await?;
        let process = throughput(&js, &buckets.jobs, &layout, &group, "true", run.jobs).await?;
        stop_worker.cancel();
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        let floor = tokio::time::timeout(
            crate::floors::FLOOR_BOUND,
            crate::floors::spawn_per_s(run.jobs, concurrency as usize),
        )
        .await
        .map_err(|_| crate::error::failure("the bare spawns ran past their bound"))??;
        let point = SweepPoint {
            concurrency,
            noop_jobs_per_s: rate(noop),
            process_jobs_per_s: rate(process),
            spawn_floor_per_s: floor,
            process_ratio: rate(process) / floor.max(f64::EPSILON),
        };
        if !run.json {
            println!(
                "concurrency {:>4}: no-op {:>7.0} jobs/s, /bin/true {:>6.0} jobs/s, bare spawn {:>6.0}/s, ratio {:>5.1} %",
                point.concurrency,
                point.noop_jobs_per_s,
                point.process_jobs_per_s,
                point.spawn_floor_per_s,
                100.0 * point.process_ratio
            );
        }
        points.push(point);
    }
    stop.cancel();
    let _ = tokio::task::spawn_blocking(move || projector.join()).await;
    if let Some(path) = &run.plot {
        std::fs::write(path, chart(&points))?;
        if !run.json {
            println!("chart written to {}", path.display());
        }
    }
    if run.json {
        println!(
            "{}",
            serde_json::json!({ "jobs": run.jobs, "points": points })
        );
    }
    Ok(())
}

fn chart(points: &[SweepPoint]) -> String {
    let series = |name: &str, colour: &'static str, value: fn(&SweepPoint) -> f64| Series {
        name: name.to_string(),
        colour,
        points: points
            .iter()
            .map(|point| (f64::from(point.concurrency), value(point)))
            .collect(),
    };
    line_chart(
        "shoal bench --sweep: jobs per second by worker concurrency",
        "worker concurrency (job slots)",
        "jobs per second",
        &[
            series("no-op jobs", "#1f77b4", |point| point.noop_jobs_per_s),
            series("/bin/true jobs", "#d62728", |point| {
                point.process_jobs_per_s
            }),
            series("bare spawn of /bin/true", "#7f7f7f", |point| {
                point.spawn_floor_per_s
            }),
        ],
    )
}
