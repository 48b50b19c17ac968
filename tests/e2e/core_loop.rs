//! The core loop: jobs submitted with `shoal` or published with `nats pub`
//! run on the workers of their group and queue, and their life is in KV.

use std::time::Duration;

use shoal_protocol::{JobState, WorkerStatus};

use crate::support::{
    job_record, names, shoal, wait_for_job, wait_for_worker, Fleet, NatsServer, ShoalProcess,
};

fn stdout_of(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "shoal failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_from_the_cli_and_one_from_nats_pub_both_succeed_and_are_readable_with_nats_kv() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--name", "w-acme"]);

    let acme_id = fleet.worker_id("acme", "w-acme").await;
    let cli_id = stdout_of(&shoal(
        Some(&server),
        &["job", "submit", "--group", "acme", "noop"],
    ));
    server.nats(&[
        "pub",
        "shoal.jobs.acme.default",
        r#"{"id":"from-nats","entrypoint":"sleep","args":["100ms"]}"#,
    ]);
    server.nats(&["pub", "shoal.jobs.acme.default", r#"{"entrypoint":"noop"}"#]);
    let mut stream = fleet
        .js
        .get_stream(names().jobs_stream())
        .await
        .expect("jobs stream");
    let sequence_id = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence
        .to_string();

    for id in [cli_id.as_str(), "from-nats", sequence_id.as_str()] {
        let key = format!("acme.{id}");
        let record = wait_for_job(&fleet, &key, "succeeded", |job| {
            job.state == Some(JobState::Succeeded)
        })
        .await;
        assert_eq!(record.worker_id.as_deref(), Some(acme_id.as_str()));
        assert_eq!(record.attempts, 1);
        let raw = server.nats(&["kv", "get", "shoal_jobs", &key, "--raw"]);
        let read: serde_json::Value = serde_json::from_str(&raw).expect("nats kv get gives JSON");
        assert_eq!(read["state"], "succeeded", "{raw}");
        assert_eq!(read["done"], true, "{raw}");
    }

    let keys = server.nats(&["kv", "ls", "shoal_workers"]);
    assert!(keys.contains(&format!("acme.{acme_id}")), "{keys}");
    let table = stdout_of(&shoal(Some(&server), &["get", "workers", "-g", "acme"]));
    assert!(
        table.contains("w-acme") && table.contains("online"),
        "{table}"
    );
    let jobs = stdout_of(&shoal(Some(&server), &["get", "jobs", "-g", "acme"]));
    assert_eq!(jobs.matches("succeeded").count(), 3, "{jobs}");
    let yaml = stdout_of(&shoal(
        Some(&server),
        &["job", "get", &cli_id, "-o", "yaml"],
    ));
    assert!(yaml.contains("state: succeeded"), "{yaml}");
    let waited = shoal(
        Some(&server),
        &["job", "wait", "from-nats", "--group", "acme"],
    );
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_go_only_to_workers_of_their_group_and_queue() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _a = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "ga",
            "--queues",
            "work",
            "--name",
            "w-a",
            "--concurrency",
            "4",
        ],
    );
    let _b = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "gb",
            "--queues",
            "work",
            "--name",
            "w-b",
            "--concurrency",
            "4",
        ],
    );

    let (a_id, b_id) = (
        fleet.worker_id("ga", "w-a").await,
        fleet.worker_id("gb", "w-b").await,
    );
    for index in 0..6 {
        for group in ["ga", "gb"] {
            let body = format!(r#"{{"id":"{group}-{index}","entrypoint":"noop"}}"#);
            fleet.publish_job(group, "work", &body).await;
        }
    }
    fleet
        .publish_job("ga", "other", r#"{"id":"unserved","entrypoint":"noop"}"#)
        .await;

    for index in 0..6 {
        for (group, worker) in [("ga", a_id.as_str()), ("gb", b_id.as_str())] {
            let key = format!("{group}.{group}-{index}");
            let record = wait_for_job(&fleet, &key, "succeeded", |job| job.done).await;
            assert_eq!(record.state, Some(JobState::Succeeded));
            assert_eq!(
                record.worker_id.as_deref(),
                Some(worker),
                "{key} ran on the wrong worker"
            );
        }
    }
    let unserved = wait_for_job(&fleet, "ga.unserved", "queued", |job| job.state.is_some()).await;
    assert_eq!(
        unserved.state,
        Some(JobState::Queued),
        "a job of a queue no worker serves stays queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_concurrency_3_runs_three_slow_jobs_at_once_and_the_fourth_waits() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "w-3", "--concurrency", "3"],
    );
    wait_for_worker(
        &fleet,
        &format!("acme.{}", fleet.worker_id("acme", "w-3").await),
        "online",
        |worker| worker.status == Some(WorkerStatus::Online),
    )
    .await;

    for index in 0..4 {
        fleet
            .publish_job(
                "acme",
                "default",
                &format!(r#"{{"id":"slow-{index}","entrypoint":"sleep","args":["3s"]}}"#),
            )
            .await;
    }
    let mut running = Vec::new();
    for index in 0..3 {
        running.push(
            wait_for_job(&fleet, &format!("acme.slow-{index}"), "running", |job| {
                job.state.is_some_and(|s| s != JobState::Queued)
            })
            .await,
        );
    }
    let fourth = job_record(&fleet, "acme.slow-3")
        .await
        .expect("the fourth job is recorded");
    assert_eq!(
        fourth.state,
        Some(JobState::Queued),
        "the fourth job must wait for a free slot"
    );
    let first_end = running
        .iter()
        .map(|job| job.started_at.expect("started").0 + Duration::from_secs(3))
        .min()
        .expect("three jobs");

    let fourth = wait_for_job(&fleet, "acme.slow-3", "succeeded", |job| job.done).await;
    assert_eq!(fourth.state, Some(JobState::Succeeded));
    assert!(
        fourth.started_at.expect("started").0 >= first_end,
        "the fourth job started before a slot was free"
    );
    for index in 0..3 {
        let record = wait_for_job(&fleet, &format!("acme.slow-{index}"), "succeeded", |job| {
            job.done
        })
        .await;
        assert_eq!(
            record.attempts, 1,
            "progress acks kept the job past its 2s ack wait"
        );
        assert!(
            record.started_at.expect("started").0 < first_end,
            "the first three jobs ran at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_with_its_env_and_working_dir_and_its_whole_output_is_kept_in_a_file() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let work = worker.dir.path().join("output/acme/somewhere");
    std::fs::create_dir_all(&work).expect("working dir");
    let script = "echo \"greeting=$GREETING\"; pwd; seq 1 20000";
    let body = serde_json::json!({
        "id": "env",
        "command": ["sh", "-c", script],
        "env": {"GREETING": "hello"},
        "working_dir": work,
    });
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;

    let record = wait_for_job(&fleet, "acme.env", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    assert_eq!(
        record.env_names,
        vec!["GREETING"],
        "variable names are kept, values never"
    );
    let tail = record.stdout_tail.expect("stdout tail");
    assert!(tail.ends_with("19999\n20000\n"), "{tail}");
    assert!(
        tail.len() <= shoal_protocol::event::MAX_OUTPUT_TAIL_BYTES,
        "the tail is bounded"
    );
    let log = std::fs::read_to_string(worker.dir.path().join("output/acme/env/attempt-1.log"))
        .expect("the output file");
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some("greeting=hello"));
    assert_eq!(
        lines.next().map(std::path::PathBuf::from),
        Some(work.canonicalize().expect("canonical"))
    );
    assert_eq!(lines.count(), 20_000, "the file holds the whole output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_buckets_are_created_once_with_the_same_settings_by_whoever_comes_first() {
    let server = NatsServer::start();
    let (first, second) = tokio::join!(server.client(), server.client());
    let layout = shoal_client::streams::Layout::new(shoal_protocol::Subjects::default());
    let (first_js, second_js) = (
        async_nats::jetstream::new(first.clone()),
        async_nats::jetstream::new(second),
    );
    let (a, b) = tokio::join!(layout.ensure(&first_js), layout.ensure(&second_js));
    a.expect("first setup");
    b.expect("second setup");
    layout
        .ensure(&async_nats::jetstream::new(first.clone()))
        .await
        .expect("a third setup changes nothing");
    let js = async_nats::jetstream::new(first);
    for want in layout.stream_configs() {
        let mut stream = js.get_stream(&want.name).await.expect("stream exists");
        let have = stream.info().await.expect("info").config.clone();
        assert_eq!(have.subjects, want.subjects, "{}", want.name);
        assert_eq!(have.max_age, want.max_age, "{}", want.name);
        assert_eq!(
            have.duplicate_window, want.duplicate_window,
            "{}",
            want.name
        );
        assert_eq!(
            have.max_messages_per_subject, want.max_messages_per_subject,
            "{}",
            want.name
        );
        assert_eq!(have.storage, want.storage, "{}", want.name);
    }
    for bucket in [
        layout.jobs_bucket(),
        layout.workers_bucket(),
        layout.pools_bucket(),
    ] {
        js.get_key_value(bucket).await.expect("bucket exists");
    }
}
