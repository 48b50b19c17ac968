//! `shoal bench` measures its floors in the same run and prints every
//! figure beside its floor; `-o json` gives one object to compare runs by.

use crate::support::{shoal, NatsServer};

#[test]
fn a_small_bench_prints_each_figure_beside_its_floor_as_json() {
    // Enough jobs that each part's CPU, read from /proc in ticks of 10 ms,
    // is more than one tick.
    let figures = figures_of(&[
        "bench",
        "--jobs",
        "1000",
        "--latency-jobs",
        "20",
        "--rate",
        "200",
        "--concurrency",
        "8",
        "-o",
        "json",
    ]);
    let figure = |key: &str| {
        figures[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {figures}"))
    };
    assert_positive(
        &figures,
        &[
            "noop_jobs_per_s",
            "raw_round_trip_jobs_per_s",
            "process_jobs_per_s",
            "spawn_floor_per_s",
            "start_p50_ms",
            "start_p99_ms",
            "terminal_p50_ms",
            "terminal_p99_ms",
        ],
    );
    assert_ratio(
        &figures,
        "noop_ratio",
        "noop_jobs_per_s",
        "raw_round_trip_jobs_per_s",
    );
    assert_ratio(
        &figures,
        "process_ratio",
        "process_jobs_per_s",
        "spawn_floor_per_s",
    );
    assert!(
        figure("start_p50_ms") <= figure("start_p99_ms"),
        "{figures}"
    );
    assert!(
        figure("start_p50_ms") <= figure("terminal_p50_ms"),
        "a job ends after it starts: {figures}"
    );
    // The cost of one job, stage by stage: every job was submitted once,
    // recorded, and cost its worker and the server some CPU.
    for kind in ["noop_cost", "process_cost"] {
        let cost = &figures[kind];
        let stage = |key: &str| {
            cost[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{kind}.{key} missing in {figures}"))
        };
        assert!((stage("submissions") - 1.0).abs() < 1e-9, "{figures}");
        assert!(stage("events") >= 1.0, "{figures}");
        assert!(stage("record_writes") >= 1.0, "{figures}");
        assert!(stage("worker_us") > 0.0, "{figures}");
        assert!(stage("projector_us") > 0.0, "{figures}");
        // The server is the test's: the bench cannot know what it costs.
        assert!(cost["server_us"].is_null(), "{figures}");
    }
    assert!(figures["process_cost"]["processes_us"].as_f64() > Some(0.0));
}

#[test]
fn a_heartbeat_bench_keeps_every_simulated_worker_online_and_prints_the_services_cpu() {
    let figures = figures_of(&[
        "bench",
        "--heartbeats",
        "300",
        "--heartbeat-seconds",
        "3",
        "-o",
        "json",
    ]);
    assert_eq!(figures["workers"], 300, "{figures}");
    assert_eq!(figures["workers_online"], 300, "{figures}");
    let figure = |key: &str| {
        figures[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {figures}"))
    };
    // One beat per worker a second, sent in slices: most of 300 a second.
    assert!(figure("heartbeats_per_s") > 200.0, "{figures}");
    assert!(figure("projector_cores") > 0.0, "{figures}");
    let both = figure("projector_cores") + figure("registry_cores");
    assert!((figure("services_cores") - both).abs() < 1e-9, "{figures}");
}

#[test]
fn a_sweep_measures_each_concurrency_and_draws_the_chart() {
    let dir = crate::support::server::TempDir::new("sweep");
    let chart = dir.path().join("sweep.svg");
    let chart_arg = chart.display().to_string();
    let figures = figures_of(&[
        "bench", "--sweep", "1,4", "--jobs", "60", "--plot", &chart_arg, "-o", "json",
    ]);
    let points = figures["points"].as_array().expect("points");
    let concurrencies: Vec<_> = points.iter().map(|point| &point["concurrency"]).collect();
    assert_eq!(concurrencies, [1, 4], "{figures}");
    for point in points {
        assert_positive(
            point,
            &["noop_jobs_per_s", "process_jobs_per_s", "spawn_floor_per_s"],
        );
    }
    let svg = std::fs::read_to_string(&chart).expect("the chart");
    assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
    assert_eq!(svg.matches("<circle").count(), 6, "{svg}");
}

#[test]
fn a_backlog_drains_with_the_memory_of_every_process_read_at_each_quarter_and_of_an_idle_worker() {
    let figures = figures_of(&["bench", "--backlog", "400", "-o", "json"]);
    let quarters = figures["quarters"].as_array().expect("quarters");
    let done: Vec<_> = quarters.iter().map(|quarter| &quarter["done"]).collect();
    assert_eq!(done, [100, 200, 300, 400], "{figures}");
    for quarter in quarters {
        for key in ["worker_mib", "projector_mib", "registry_mib"] {
            assert!(quarter[key].as_f64() > Some(1.0), "{key} in {figures}");
        }
    }
    let idle = figures["idle_worker_mib"].as_f64().unwrap_or(0.0);
    let own = figures["idle_worker_own_mib"].as_f64().unwrap_or(0.0);
    let shared = figures["idle_worker_shared_mib"].as_f64().unwrap_or(0.0);
    assert!(own > 0.0 && shared > 0.0, "{figures}");
    // Resident memory is the process's own pages and those of files it maps.
    assert!((own + shared - idle).abs() < 0.5, "{figures}");
    assert_positive(
        &figures,
        &[
            "worker_cpu_percent",
            "projector_cpu_percent",
            "registry_cpu_percent",
        ],
    );
}

#[test]
fn a_holds_bench_prints_the_rate_of_keyed_and_dependent_jobs_beside_plain_ones() {
    let figures = figures_of(&["bench", "--holds", "--jobs", "300", "-o", "json"]);
    assert_eq!(figures["jobs"], 300, "{figures}");
    assert_positive(
        &figures,
        &[
            "plain_jobs_per_s",
            "keyed_jobs_per_s",
            "dependent_jobs_per_s",
        ],
    );
    assert_ratio(
        &figures,
        "keyed_ratio",
        "keyed_jobs_per_s",
        "plain_jobs_per_s",
    );
}

#[test]
fn a_fair_bench_prints_the_rate_of_keyed_jobs_and_the_wait_of_a_lone_key_behind_a_backlog() {
    let figures = figures_of(&[
        "bench",
        "--fair",
        "--jobs",
        "300",
        "--fair-backlog",
        "2000",
        "-o",
        "json",
    ]);
    assert_eq!(figures["backlog"], 2000, "{figures}");
    assert_positive(
        &figures,
        &[
            "plain_jobs_per_s",
            "fair_jobs_per_s",
            "backlog_drain_s",
            "lone_wait_p50_ms",
        ],
    );
    assert_ratio(
        &figures,
        "fair_ratio",
        "fair_jobs_per_s",
        "plain_jobs_per_s",
    );
    let most = figures["lone_wait_max_ms"].as_f64().unwrap_or(-1.0);
    assert!(
        most >= figures["lone_wait_p50_ms"].as_f64().unwrap_or(f64::MAX),
        "{figures}"
    );
}

/// The one JSON object a bench run against a server of its own prints.
fn figures_of(args: &[&str]) -> serde_json::Value {
    let server = NatsServer::start();
    let output = shoal(Some(&server), args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    figures
}

/// Each of `keys` is a number above zero in `figures`.
fn assert_positive(figures: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        assert!(figures[key].as_f64() > Some(0.0), "{key} in {figures}");
    }
}

/// The printed `ratio` is `numerator / denominator` of the same run.
fn assert_ratio(figures: &serde_json::Value, ratio: &str, numerator: &str, denominator: &str) {
    let figure = |key: &str| {
        figures[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {figures}"))
    };
    let expected = figure(numerator) / figure(denominator);
    assert!(
        (figure(ratio) - expected).abs() < 1e-9,
        "{ratio} in {figures}"
    );
}
