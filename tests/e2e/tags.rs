//! Tags: every job runs only on workers whose tags are a subset of its own,
//! routed without a loop of deliveries and refusals; a job no live worker
//! may take waits, says why, and runs when such a worker comes.

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_protocol::{JobState, WorkerStatus};

use crate::support::{
    names, shoal, subjects, wait_for_job, wait_for_worker, Fleet, NatsServer, ShoalProcess,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_only_on_workers_whose_tags_they_include_with_one_delivery_each() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let mut plain = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "plain", "--concurrency", "4"],
    );
    let _gpu = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--name",
            "gpu",
            "--tags",
            "gpu",
            "--concurrency",
            "4",
        ],
    );
    let _a100 = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--name",
            "a100",
            "--tags",
            "gpu,a100",
            "--concurrency",
            "4",
        ],
    );
    let mut tags_of = BTreeMap::new();
    for (name, tags) in [
        ("plain", vec![]),
        ("gpu", vec!["gpu"]),
        ("a100", vec!["gpu", "a100"]),
    ] {
        tags_of.insert(fleet.worker_id("acme", name).await, tags);
    }

    let kinds: [&[&str]; 3] = [&[], &["gpu"], &["gpu", "a100", "x"]];
    let mut jobs = Vec::new();
    for index in 0..10 {
        for (kind, tags) in kinds.iter().enumerate() {
            let id = format!("t{kind}-{index}");
            let body = serde_json::json!({"id": id, "entrypoint": "sleep", "args": ["20ms"], "tags": tags});
            fleet
                .publish_job("acme", "default", &body.to_string())
                .await;
            jobs.push((id, tags.to_vec()));
        }
    }
    // Each run ends with an outcome (a 20 ms job reports its start with it).
    let mut ran = 0;
    for (id, tags) in &jobs {
        let record = wait_for_job(&fleet, &format!("acme.{id}"), "succeeded", |job| job.done).await;
        assert_eq!(record.state, Some(JobState::Succeeded));
        let worker_tags = &tags_of[record.worker_id.as_deref().expect("a worker")];
        assert!(
            worker_tags.iter().all(|tag| tags.contains(tag)),
            "job {id} {tags:?} ran on a worker tagged {worker_tags:?}"
        );
        ran += fleet.count_job_events("acme", id, "succeeded").await;
    }
    assert!(
        ran as f64 <= jobs.len() as f64 * 1.05,
        "{ran} runs for {} jobs",
        jobs.len()
    );

    // Without the untagged worker, every job goes through the dispatcher.
    plain.signal(libc::SIGTERM);
    plain
        .wait_exit(Duration::from_secs(20))
        .expect("the plain worker leaves");
    let plain_id = tags_of
        .iter()
        .find(|(_, tags)| tags.is_empty())
        .map(|(id, _)| id.clone())
        .expect("plain");
    wait_for_worker(&fleet, &format!("acme.{plain_id}"), "offline", |worker| {
        worker.status == Some(WorkerStatus::Offline)
    })
    .await;
    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"specific","entrypoint":"noop","tags":["gpu","a100","x"]}"#,
        )
        .await;
    let specific = wait_for_job(&fleet, "acme.specific", "succeeded", |job| job.done).await;
    assert_eq!(
        tags_of[specific.worker_id.as_deref().expect("a worker")],
        vec!["gpu", "a100"],
        "the most specific tag set takes it"
    );

    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"cpu-only","entrypoint":"noop","tags":["cpu"]}"#,
        )
        .await;
    let waiting = wait_for_job(&fleet, "acme.cpu-only", "waiting", |job| {
        job.waiting_for.is_some()
    })
    .await;
    assert_eq!(waiting.state, Some(JobState::Queued));
    let shown = String::from_utf8_lossy(
        &shoal(Some(&server), &["job", "get", "cpu-only", "-o", "yaml"]).stdout,
    )
    .into_owned();
    assert!(
        shown.contains("waiting for a worker with tags among [cpu]"),
        "{shown}"
    );

    let _cpu = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "cpu", "--tags", "cpu"],
    );
    let cpu_id = fleet.worker_id("acme", "cpu").await;
    let ran = wait_for_job(&fleet, "acme.cpu-only", "succeeded", |job| job.done).await;
    assert_eq!(ran.worker_id.as_deref(), Some(cpu_id.as_str()));
    assert_eq!(ran.waiting_for, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_job_is_routed_once_however_often_the_live_tag_sets_change() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    // A worker with tags, so that the queue is dispatched and gpu jobs park.
    let _cpu = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "cpu", "--tags", "cpu"],
    );
    fleet.worker_id("acme", "cpu").await;
    let mut sequences = Vec::new();
    for id in ["first", "second"] {
        let body =
            format!(r#"{{"id":"{id}","entrypoint":"sleep","args":["3s"],"tags":["gpu","fast"]}}"#);
        sequences.push(fleet.publish_job("acme", "default", &body).await);
        wait_for_job(&fleet, &format!("acme.{id}"), "parked", |job| {
            job.waiting_for.is_some()
        })
        .await;
    }
    // One gpu slot: the first runs, the second waits in its route while the
    // live tag sets change twice more.
    let _gpu = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--name",
            "gpu",
            "--tags",
            "gpu",
            "--concurrency",
            "1",
        ],
    );
    wait_for_job(&fleet, "acme.first", "running", |job| {
        job.state == Some(JobState::Running)
    })
    .await;
    // A more specific tag set comes: a job routed already stays where it is.
    let _fast = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--name",
            "fast",
            "--tags",
            "gpu,fast",
            "--concurrency",
            "1",
        ],
    );
    fleet.worker_id("acme", "fast").await;
    let _other = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "other", "--tags", "other"],
    );
    fleet.worker_id("acme", "other").await;
    let second = wait_for_job(&fleet, "acme.second", "succeeded", |job| job.done).await;
    assert_eq!(second.state, Some(JobState::Succeeded));
    assert_eq!(second.attempts, 1);
    let routes = fleet
        .stored(
            &names().jobs_stream(),
            &subjects().route("acme", "default", ">"),
        )
        .await;
    for sequence in sequences {
        let copies = routes
            .iter()
            .filter(|route| {
                route
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get("Shoal-Stream-Sequence"))
                    .is_some_and(|value| value.as_str() == sequence.to_string())
            })
            .count();
        assert_eq!(copies, 1, "submission {sequence} was routed {copies} times");
    }
}
