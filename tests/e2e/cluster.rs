//! Shoal on a 3-node nats-server cluster with replicated streams: losing a
//! server in the middle of a run loses no job.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use shoal_protocol::{JobRecord, JobState};

use crate::support::cluster::NatsCluster;
use crate::support::{eventually, names, subjects, ShoalProcess};

/// Publishes a job until the cluster stores it (a publish can fail while a server is lost).
async fn publish_until_stored(js: &jetstream::Context, id: &str) {
    let body = format!(r#"{{"id":"{id}","entrypoint":"noop"}}"#);
    for _ in 0..100 {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        if let Ok(ack) = js
            .publish_with_headers(
                subjects().jobs("acme", "default"),
                headers,
                body.clone().into(),
            )
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

/// The last lines each of `services` logged, but the NATS client's.
fn last_lines(services: &[&ShoalProcess]) -> String {
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
    logs.join("\n---\n")
}

/// Waits until every job of `ids` has succeeded; the logs of `services` say why not.
async fn wait_all_succeeded(
    jobs: &shoal_client::RecordStore<JobRecord>,
    ids: &[String],
    services: &[&ShoalProcess],
) {
    let what = format!("all {} jobs ended", ids.len());
    eventually(Duration::from_secs(120), &what, || async {
        let records = match jobs.read_all("acme.*").await {
            Ok(records) => records,
            Err(err) => return Err(format!("{err}; logs:\n{}", last_lines(services))),
        };
        let done: std::collections::BTreeMap<&str, &JobRecord> =
            records.iter().map(|job| (job.id.as_str(), job)).collect();
        let finished = ids
            .iter()
            .filter(|id| done.get(id.as_str()).is_some_and(|job| job.done))
            .count();
        if finished < ids.len() {
            return Err(format!(
                "{finished} of {} jobs ended; logs:\n{}",
                ids.len(),
                last_lines(services)
            ));
        }
        for id in ids {
            assert_eq!(
                done[id.as_str()].state,
                Some(JobState::Succeeded),
                "job {id}"
            );
        }
        Ok(())
    })
    .await;
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
        ..shoal_client::streams::Layout::new(subjects())
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
    let why = "the projector and the worker say they are trying again";
    eventually(Duration::from_secs(30), why, || async {
        if projector.log().contains("trying again") && worker.log().contains("trying again") {
            Ok(())
        } else {
            Err(format!(
                "projector: {}\nworker: {}",
                projector.log(),
                worker.log()
            ))
        }
    })
    .await;
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
    let bucket = eventually(Duration::from_secs(30), "a jobs bucket", || async {
        js.get_key_value(names().jobs_bucket())
            .await
            .map_err(|_| projector.log())
    })
    .await;
    let jobs = shoal_client::RecordStore::<JobRecord>::new(bucket);
    wait_all_succeeded(&jobs, &ids, &[&projector, &worker]).await;
}
