//! What operators scrape: every long-running part serves Prometheus metrics
//! at `--metrics-listen` (`SHOAL_METRICS_LISTEN`), and the figures count
//! what the fleet really did.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::server::free_port;
use crate::support::{
    eventually, kv::wait_for_supervisor, names, wait_for_job, Fleet, NatsServer, ShoalProcess,
};

const WAIT: Duration = Duration::from_secs(30);

/// The body of `GET /metrics` at `addr`, or why there is none yet.
async fn scrape(addr: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| err.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|err| err.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {response}"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {head}"));
    }
    if !head
        .to_lowercase()
        .contains("content-type: application/openmetrics-text")
    {
        return Err(format!("not OpenMetrics text: {head}"));
    }
    Ok(body.to_string())
}

/// The value of the sample `series` (name and labels, as written) in `body`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

/// Scrapes `addr` until `series` has a value that `wanted` accepts.
async fn wait_for_sample(addr: &str, series: &str, wanted: impl Fn(f64) -> bool) -> f64 {
    eventually(WAIT, &format!("{series} at {addr}"), || async {
        let body = scrape(addr).await?;
        match sample(&body, series) {
            Some(value) if wanted(value) => Ok(value),
            seen => Err(format!("{series} is {seen:?} in\n{body}")),
        }
    })
    .await
}

fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_projector_and_registry_serve_what_the_fleet_did() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let (worker_at, projector_at, registry_at) = (loopback(), loopback(), loopback());
    let _projector = ShoalProcess::start(
        &server,
        &["projector", "run", "--metrics-listen", &projector_at],
    );
    let _registry =
        ShoalProcess::registry_with(&server, "10s", &[("SHOAL_METRICS_LISTEN", &registry_at)])
            .await;
    let _worker = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--concurrency",
            "2",
            "--metrics-listen",
            &worker_at,
        ],
    );
    // A worker of queue `later` registers its consumer, then leaves: jobs
    // of that queue wait.
    let mut leaving = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--queues", "later", "--name", "leaving"],
    );
    fleet.worker_id("acme", "leaving").await;
    leaving.signal(libc::SIGTERM);
    assert!(leaving.wait_exit(WAIT).is_some(), "the worker drained");

    for index in 0..3 {
        let body = format!(r#"{{"id":"ok-{index}","entrypoint":"sleep","args":["10ms"]}}"#);
        fleet.publish_job("acme", "default", &body).await;
    }
    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"doomed","entrypoint":"nope","retry":{"max_attempts":2,"backoff":"fixed","initial":"100ms"}}"#,
        )
        .await;
    for index in 0..2 {
        let body = format!(r#"{{"id":"wait-{index}","entrypoint":"sleep","args":["10ms"]}}"#);
        fleet.publish_job("acme", "later", &body).await;
    }
    for index in 0..3 {
        wait_for_job(&fleet, &format!("acme.ok-{index}"), "succeeded", |job| {
            job.done
        })
        .await;
    }
    wait_for_job(&fleet, "acme.doomed", "failed", |job| job.done).await;

    let acme = r#"group="acme",queue="default""#;
    // The worker counts an attempt once its outcome is stored, which the
    // record may show first: each figure is waited for.
    let counted = [
        (format!("shoal_jobs_started_total{{{acme}}}"), 5.0),
        (
            format!(r#"shoal_jobs_finished_total{{{acme},state="succeeded"}}"#),
            3.0,
        ),
        (
            format!(r#"shoal_jobs_finished_total{{{acme},state="failed"}}"#),
            1.0,
        ),
        (format!("shoal_jobs_retried_total{{{acme}}}"), 1.0),
        (format!("shoal_job_run_seconds_count{{{acme}}}"), 5.0),
        (format!("shoal_job_pickup_seconds_count{{{acme}}}"), 4.0),
        (
            r#"shoal_worker_slots{group="acme",state="free"}"#.to_string(),
            2.0,
        ),
        (
            r#"shoal_worker_slots{group="acme",state="busy"}"#.to_string(),
            0.0,
        ),
    ];
    for (series, expected) in counted {
        wait_for_sample(&worker_at, &series, |value| value == expected).await;
    }

    let later = r#"group="acme",queue="later",priority="normal""#;
    wait_for_sample(
        &registry_at,
        &format!("shoal_queue_depth{{{later}}}"),
        |depth| depth == 2.0,
    )
    .await;
    wait_for_sample(
        &registry_at,
        &format!("shoal_queue_oldest_age_seconds{{{later}}}"),
        |age| age > 0.0,
    )
    .await;
    wait_for_sample(
        &registry_at,
        &format!(r#"shoal_queue_depth{{{acme},priority="normal"}}"#),
        |depth| depth == 0.0,
    )
    .await;
    wait_for_sample(
        &registry_at,
        r#"shoal_workers{group="acme",status="online"}"#,
        |online| online == 1.0,
    )
    .await;

    let events = format!(
        r#"shoal_projector_folded_total{{stream="{}"}}"#,
        names().events_stream()
    );
    wait_for_sample(&projector_at, &events, |folded| folded >= 4.0).await;
    let submissions = format!(
        r#"shoal_projector_folded_total{{stream="{}"}}"#,
        names().jobs_stream()
    );
    wait_for_sample(&projector_at, &submissions, |folded| folded == 6.0).await;
    let lag = format!(
        r#"shoal_projector_lag_messages{{stream="{}"}}"#,
        names().jobs_stream()
    );
    wait_for_sample(&projector_at, &lag, |lag| lag == 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_serves_its_replicas_and_keeps_its_address_from_them() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let at = loopback();
    let pool = "name: metered\nversion: v1\ntype: pool\npool:\n  queues: [default]\n  group: acme\n  replicas: 2\n";
    let _supervisor = ShoalProcess::supervisor(
        &server,
        pool,
        &[],
        &[
            ("SHOAL_METRICS_LISTEN", &at),
            ("SHOAL_WORKER_HEARTBEAT_INTERVAL", "1s"),
        ],
    );
    // Replicas that inherited the address could not serve on it and would
    // end; both register and stay.
    wait_for_supervisor(
        &fleet,
        "acme.metered",
        "two registered replicas",
        WAIT,
        |record| {
            record.running_replicas() == 2
                && record
                    .replicas
                    .iter()
                    .all(|replica| replica.worker_id.is_some())
        },
    )
    .await;
    let series = |state: &str| {
        format!(r#"shoal_pool_replicas{{group="acme",pool="metered",state="{state}"}}"#)
    };
    wait_for_sample(&at, &series("desired"), |desired| desired == 2.0).await;
    wait_for_sample(&at, &series("running"), |running| running == 2.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_address_that_cannot_be_used_stops_the_part_with_the_setting_named() {
    let server = NatsServer::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken_at = taken.local_addr().expect("its address").to_string();
    let mut worker = ShoalProcess::worker(&server, &["--metrics-listen", &taken_at]);
    let status = worker.wait_exit(WAIT).expect("the worker stops");
    assert!(!status.success());
    let log = worker.log();
    assert!(
        log.contains(&format!(
            "cannot serve metrics on {taken_at} (metrics_listen)"
        )),
        "{log}"
    );

    let mut projector = ShoalProcess::start(
        &server,
        &["projector", "run", "--metrics-listen", "nowhere"],
    );
    let status = projector.wait_exit(WAIT).expect("the projector stops");
    assert!(!status.success());
    assert!(
        projector.log().contains("--metrics-listen"),
        "{}",
        projector.log()
    );
}
