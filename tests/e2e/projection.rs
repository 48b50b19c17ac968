//! The projector is stateless and idempotent: KV folded again from every
//! stream by two projectors at once is the KV one projector made.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use shoal_protocol::{JobState, WorkerStatus};

use crate::support::{wait_for_job, wait_for_worker, Fleet, NatsServer, ShoalProcess};

pub(crate) async fn snapshot(store: &kv::Store) -> BTreeMap<String, serde_json::Value> {
    let mut keys = store.keys().await.expect("keys");
    let mut names = Vec::new();
    while let Some(key) = keys.next().await {
        names.push(key.expect("key"));
    }
    let mut out = BTreeMap::new();
    for key in names {
        if let Some(value) = store.get(&key).await.expect("get") {
            out.insert(key, serde_json::from_slice(&value).expect("json record"));
        }
    }
    out
}

pub(crate) async fn clear(store: &kv::Store) {
    let mut keys = store.keys().await.expect("keys");
    let mut names = Vec::new();
    while let Some(key) = keys.next().await {
        names.push(key.expect("key"));
    }
    for key in names {
        store.purge(&key).await.expect("purge");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_replaying_every_stream_twice_give_the_kv_of_one_projector() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let mut projector = ShoalProcess::projector(&server);
    let mut worker = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--name",
            "w-replay",
            "--concurrency",
            "4",
            "--allow-exec",
            "true",
        ],
    );
    for index in 0..20 {
        let body = match index % 4 {
            0 => format!(r#"{{"id":"r{index}","entrypoint":"noop"}}"#),
            1 => format!(r#"{{"id":"r{index}","command":["sh","-c","exit 2"]}}"#),
            2 => format!(r#"{{"id":"r{index}","entrypoint":"sleep","args":["50ms"]}}"#),
            _ => format!(r#"{{"id":"r{index}","entrypoint":"no-such-thing"}}"#),
        };
        fleet.publish_job("acme", "default", &body).await;
    }
    fleet.publish_job("acme", "default", "{broken").await;
    for index in 0..20 {
        wait_for_job(&fleet, &format!("acme.r{index}"), "done", |job| job.done).await;
    }
    worker.signal(libc::SIGTERM);
    assert_eq!(
        worker
            .wait_exit(Duration::from_secs(30))
            .and_then(|status| status.code()),
        Some(0)
    );
    wait_for_worker(
        &fleet,
        &format!("acme.{}", fleet.worker_id("acme", "w-replay").await),
        "offline",
        |worker| worker.status == Some(WorkerStatus::Offline),
    )
    .await;
    projector.signal(libc::SIGTERM);
    assert_eq!(
        projector
            .wait_exit(Duration::from_secs(30))
            .and_then(|status| status.code()),
        Some(0)
    );

    let jobs_before = snapshot(&fleet.jobs).await;
    let workers_before = snapshot(&fleet.workers).await;
    assert_eq!(jobs_before.len(), 21, "20 jobs and one rejected submission");
    assert_eq!(jobs_before["acme.r1"]["state"], "failed");
    assert!(jobs_before
        .values()
        .any(|job| job["state"] == JobState::Dead.as_str()));

    clear(&fleet.jobs).await;
    clear(&fleet.workers).await;
    let mut first = ShoalProcess::start(
        &server,
        &["projector", "run", "--replay", "--batch-size", "7"],
    );
    let mut second = ShoalProcess::start(
        &server,
        &["projector", "run", "--replay", "--batch-size", "3"],
    );
    for replay in [&mut first, &mut second] {
        let status = replay
            .wait_exit(Duration::from_secs(60))
            .expect("a replay ends when it has caught up");
        assert_eq!(status.code(), Some(0), "log: {}", replay.log());
    }

    assert_eq!(snapshot(&fleet.jobs).await, jobs_before);
    assert_eq!(snapshot(&fleet.workers).await, workers_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_whose_consumer_is_deleted_opens_it_again_and_folds_on() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let mut projector = ShoalProcess::projector(&server);
    fleet
        .publish_job("acme", "idle", r#"{"id":"before","entrypoint":"noop"}"#)
        .await;
    wait_for_job(&fleet, "acme.before", "queued", |job| job.state.is_some()).await;
    let jobs = fleet
        .js
        .get_stream(crate::support::names().jobs_stream())
        .await
        .expect("jobs stream");
    jobs.delete_consumer("projector").await.expect("deleted");
    fleet
        .publish_job("acme", "idle", r#"{"id":"after","entrypoint":"noop"}"#)
        .await;
    wait_for_job(&fleet, "acme.after", "queued", |job| job.state.is_some()).await;
    assert!(projector.is_running(), "log: {}", projector.log());
}
