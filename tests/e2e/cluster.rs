//! Shoal on a 3-node nats-server cluster with replicated streams: losing a
//! server in the middle of a run loses no job.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use shoal_protocol::{JobRecord, JobState};

use crate::support::cluster::NatsCluster;
use crate::support::ShoalProcess;

/// Publishes a job until the cluster stores it (a publish can fail while a server is lost).
async fn publish_until_stored(js: &jetstream::Context, id: &str) {
    let body = format!(r#"{{"id":"{id}","entrypoint":"noop"}}"#);
    for _ in 0..100 {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        if let Ok(ack) = js
            .publish_with_headers("shoal.jobs.acme.default", headers, body.clone().into())
            .await
        {
            if ack.await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("job {id} could not be stored");
}

/// Waits until every job of `ids` has succeeded; the logs of `services` say why not.
async fn wait_all_succeeded(
    jobs: &shoal_client::RecordStore<JobRecord>,
    ids: &[String],
    services: &[&ShoalProcess],
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut finished = 0;
    while tokio::time::Instant::now() < deadline {
        if let Ok(records) = jobs.read_all("acme.*").await {
            let done: std::collections::BTreeMap<&str, &JobRecord> =
                records.iter().map(|job| (job.id.as_str(), job)).collect();
            finished = ids
                .iter()
                .filter(|id| done.get(id.as_str()).is_some_and(|job| job.done))
                .count();
            if finished == ids.len() {
                for id in ids {
                    assert_eq!(
                        done[id.as_str()].state,
                        Some(JobState::Succeeded),
                        "job {id}"
                    );
                }
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let logs: Vec<String> = services
        .iter()
        .map(|service| {
            service
                .log()
                .lines()
                .filter(|line| !line.contains("async_nats"))
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    panic!(
        "{finished} of {} jobs ended; logs:\n{}",
        ids.len(),
        logs.join("\n---\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_1000_jobs_loses_none_when_one_of_three_servers_dies_and_goes_on_when_it_returns()
{
    let mut cluster = NatsCluster::start(3);
    let client = cluster.wait_ready().await;
    let urls = cluster.urls();
    let js = jetstream::new(client);
    let layout = shoal_client::streams::Layout {
        replicas: 3,
        ..shoal_client::streams::Layout::new(shoal_protocol::Subjects::default())
    };
    let buckets = layout
        .ensure(&js)
        .await
        .expect("replicated streams and buckets");
    let jobs = shoal_client::RecordStore::<JobRecord>::new(buckets.jobs);
    let _projector = ShoalProcess::start_at(&urls, &["projector", "run", "--replicas", "3"]);
    let _worker = ShoalProcess::worker_at(
        &urls,
        &["--group", "acme", "--concurrency", "32", "--replicas", "3"],
    );

    let ids: Vec<String> = (0..1000).map(|index| format!("c{index}")).collect();
    for (index, id) in ids.iter().enumerate() {
        if index == 300 {
            cluster.kill(1);
        }
        publish_until_stored(&js, id).await;
    }
    wait_all_succeeded(&jobs, &ids, &[&_projector, &_worker]).await;

    cluster.restart(1);
    let more: Vec<String> = (0..100).map(|index| format!("after{index}")).collect();
    for id in &more {
        publish_until_stored(&js, id).await;
    }
    wait_all_succeeded(&jobs, &more, &[&_projector, &_worker]).await;
}

#[test]
fn the_cluster_configs_in_deploy_are_valid_server_configs() {
    for node in ["n1", "n2", "n3"] {
        let conf =
            crate::support::server::repo_dir().join(format!("deploy/nats-cluster/{node}.conf"));
        let output = std::process::Command::new(crate::support::server::server_binary())
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run nats-server -t");
        assert!(
            output.status.success(),
            "{}: {}",
            conf.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_started_while_the_cluster_has_no_quorum_wait_for_it_and_then_run_jobs() {
    let mut cluster = NatsCluster::start(3);
    let client = cluster.wait_ready().await;
    drop(client);
    let urls = cluster.urls();
    // Two of three nodes down: nothing can be set up, as in a cluster's
    // first start or a long election.
    cluster.kill(1);
    cluster.kill(2);
    let mut projector = ShoalProcess::start_at(&urls, &["projector", "run", "--replicas", "3"]);
    let mut worker = ShoalProcess::worker_at(&urls, &["--group", "acme", "--replicas", "3"]);
    // Past one request timeout (10 s) they are still waiting, saying why.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(projector.log().contains("trying again") && worker.log().contains("trying again")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "projector: {}\nworker: {}",
            projector.log(),
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(projector.is_running(), "{}", projector.log());
    assert!(worker.is_running(), "{}", worker.log());

    cluster.restart(1);
    cluster.restart(2);
    let client = cluster.wait_ready().await;
    let js = jetstream::new(client);
    let ids = vec!["after-quorum".to_string()];
    publish_until_stored(&js, &ids[0]).await;
    // The projector sets the buckets up at its next try.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let bucket = loop {
        if let Ok(bucket) = js.get_key_value("shoal_jobs").await {
            break bucket;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no jobs bucket: {}",
            projector.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let jobs = shoal_client::RecordStore::<JobRecord>::new(bucket);
    wait_all_succeeded(&jobs, &ids, &[&projector, &worker]).await;
}
