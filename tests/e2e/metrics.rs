//! What operators scrape: every long-running part serves Prometheus metrics
//! at `--metrics-listen` (`SHOAL_METRICS_LISTEN`), and the figures count
//! what the fleet really did.

use std::time::Duration;

use crate::support::scrape::{loopback, wait_for_sample};
use crate::support::{
    kv::wait_for_supervisor, names, wait_for_job, Fleet, NatsServer, ShoalProcess,
};

const WAIT: Duration = Duration::from_secs(30);

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

    let later = r#"group="acme",queue="later",priority="normal",tags="""#;
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
        &format!(r#"shoal_queue_depth{{{acme},priority="normal",tags=""}}"#),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_and_a_job_given_up_are_counted() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let (worker_at, registry_at) = (loopback(), loopback());
    let _projector = ShoalProcess::projector(&server);
    let _registry =
        ShoalProcess::registry_with(&server, "10s", &[("SHOAL_METRICS_LISTEN", &registry_at)])
            .await;
    let _worker = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--metrics-listen", &worker_at],
    );
    let dead = r#"shoal_jobs_dead_total{group="acme",queue="default"}"#;
    // The queue's count is there, at zero, before its first dead letter.
    wait_for_sample(&registry_at, dead, |count| count == 0.0).await;

    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"long","entrypoint":"sleep","args":["60s"]}"#,
        )
        .await;
    wait_for_job(&fleet, "acme.long", "running", |job| {
        job.state == Some(shoal_protocol::JobState::Running)
    })
    .await;
    let cancel = crate::support::shoal(Some(&server), &["job", "cancel", "long", "-g", "acme"]);
    assert!(cancel.status.success(), "{cancel:?}");
    let cancelled = r#"shoal_jobs_finished_total{group="acme",queue="default",state="cancelled"}"#;
    wait_for_sample(&worker_at, cancelled, |count| count == 1.0).await;

    // More attempts than the queue delivers: given up at once.
    for id in ["given-up-1", "given-up-2"] {
        let body = format!(
            r#"{{"id":"{id}","entrypoint":"noop","retry":{{"max_attempts":10,"initial":"100ms"}}}}"#
        );
        fleet.publish_job("acme", "default", &body).await;
        wait_for_job(&fleet, &format!("acme.{id}"), "dead", |job| job.done).await;
    }
    wait_for_sample(&registry_at, dead, |count| count == 2.0).await;
}
