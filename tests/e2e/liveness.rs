//! Liveness you can trust: workers answer as `shoal-worker` instances, and a
//! worker whose heartbeats stop is lost, its job runs elsewhere, and it is
//! online again when it comes back.

use std::time::Duration;

use shoal_protocol::{JobState, WorkerStatus};

use crate::support::{
    eventually, names, subjects, wait_for_job, wait_for_worker, Fleet, NatsServer, ShoalProcess,
};

fn instance_ids(server: &NatsServer) -> Vec<String> {
    let listed = server.nats(&["micro", "ls", "shoal-worker", "--json"]);
    let instances: serde_json::Value =
        serde_json::from_str(&listed).unwrap_or(serde_json::Value::Null);
    let mut ids: Vec<String> = instances
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|instance| {
                    instance["metadata"]["worker_id"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_micro_lists_exactly_the_live_workers_and_their_stats_count_the_jobs_they_ran() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let mut first = ShoalProcess::worker(&server, &["--group", "acme", "--name", "first"]);
    let _second = ShoalProcess::worker(&server, &["--group", "acme", "--name", "second"]);
    let (first_id, second_id) = (
        fleet.worker_id("acme", "first").await,
        fleet.worker_id("acme", "second").await,
    );
    let mut both = vec![first_id.clone(), second_id.clone()];
    both.sort();
    assert_eq!(instance_ids(&server), both);

    for index in 0..6 {
        fleet
            .publish_job(
                "acme",
                "default",
                &format!(r#"{{"id":"m{index}","entrypoint":"sleep","args":["100ms"]}}"#),
            )
            .await;
    }
    let mut ran_by = std::collections::BTreeMap::<String, u64>::new();
    for index in 0..6 {
        let record = wait_for_job(&fleet, &format!("acme.m{index}"), "succeeded", |job| {
            job.done
        })
        .await;
        *ran_by
            .entry(record.worker_id.expect("a worker"))
            .or_default() += 1;
    }
    let stats = server.nats(&["micro", "stats", "shoal-worker", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats JSON");
    let mut counted = std::collections::BTreeMap::<String, u64>::new();
    for instance in stats.as_array().expect("instances") {
        let data = &instance["endpoints"][0]["data"];
        let worker_id = data["worker_id"]
            .as_str()
            .expect("worker_id in stats")
            .to_string();
        counted.insert(worker_id, data["jobs_run"].as_u64().expect("jobs_run"));
        assert!(
            data["average_job_ms"].as_f64().expect("average_job_ms") >= 100.0,
            "{data}"
        );
    }
    counted.retain(|_, jobs| *jobs > 0);
    assert_eq!(counted, ran_by, "stats count the jobs each worker ran");

    let query = server.nats(&[
        "req",
        &format!("shoal.ctl.acme.worker.{first_id}.query"),
        "",
    ]);
    let state: serde_json::Value = serde_json::from_str(query.trim()).expect("query JSON");
    assert_eq!(state["id"], first_id.as_str());
    server.nats(&[
        "req",
        &format!("shoal.ctl.acme.worker.{first_id}.drain"),
        "",
    ]);
    let status = first
        .wait_exit(Duration::from_secs(20))
        .expect("a drained worker exits");
    assert_eq!(status.code(), Some(0));
    let only_the_second = vec![second_id.clone()];
    let what = "the drained worker is no longer listed";
    eventually(Duration::from_secs(10), what, || async {
        let listed = instance_ids(&server);
        if listed == only_the_second {
            Ok(())
        } else {
            Err(format!("{listed:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_heartbeats_stop_is_lost_its_job_runs_elsewhere_and_it_comes_back_online() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    // Two registries check liveness at once: each event is stored once all the same.
    let _registry = ShoalProcess::registry(&server).await;
    let _second_registry = ShoalProcess::registry(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let stalled = ShoalProcess::worker(&server, &["--group", "acme", "--name", "stalled"]);
    let stalled_id = fleet.worker_id("acme", "stalled").await;
    let stalled_key = format!("acme.{stalled_id}");
    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"survivor","entrypoint":"sleep","args":["4s"]}"#,
        )
        .await;
    wait_for_job(&fleet, "acme.survivor", "running", |job| {
        job.state == Some(JobState::Running)
    })
    .await;
    // The jobs marked lost with a worker are those its last heartbeat reported.
    wait_for_worker(&fleet, &stalled_key, "reporting the job", |worker| {
        worker.running == ["survivor"]
    })
    .await;

    stalled.signal(libc::SIGSTOP);
    let lost = wait_for_worker(&fleet, &stalled_key, "lost", |worker| {
        worker.status == Some(WorkerStatus::Lost)
    })
    .await;
    let beats = fleet
        .stored(
            &names().heartbeats_stream(),
            &subjects().heartbeat("acme", &stalled_id),
        )
        .await;
    let last_beat: shoal_protocol::Heartbeat =
        serde_json::from_slice(&beats.last().expect("a heartbeat").payload).expect("heartbeat");
    let silence = lost.status_at.expect("when").0 - last_beat.at.0;
    eprintln!("lost after {silence} without a heartbeat (3 intervals of 1s)");
    // 3 intervals, plus one check interval (0.5s), plus slack for a busy machine.
    assert!(
        silence <= Duration::from_millis(5_000),
        "lost only after {silence} of silence"
    );
    wait_for_job(&fleet, "acme.survivor", "lost", |job| {
        job.state == Some(JobState::Lost)
    })
    .await;
    let stalled_subject = subjects().worker_event("acme", &stalled_id);
    assert_eq!(
        fleet.count_events(&stalled_subject, "lost").await,
        1,
        "one lost event for two checkers"
    );
    assert_eq!(fleet.count_job_events("acme", "survivor", "lost").await, 1);

    let _rescuer = ShoalProcess::worker(&server, &["--group", "acme", "--name", "rescuer"]);
    let rescuer_id = fleet.worker_id("acme", "rescuer").await;
    let again = wait_for_job(&fleet, "acme.survivor", "running elsewhere", |job| {
        job.attempts == 2
    })
    .await;
    assert_eq!(again.worker_id.as_deref(), Some(rescuer_id.as_str()));

    stalled.signal(libc::SIGCONT);
    wait_for_worker(&fleet, &stalled_key, "online again", |worker| {
        worker.status == Some(WorkerStatus::Online)
    })
    .await;
    let record = wait_for_job(&fleet, "acme.survivor", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    // The rescuer's attempt ends too (its heartbeat no longer reports the
    // job); it saw the job done and reported nothing.
    let rescuer_key = format!("acme.{rescuer_id}");
    wait_for_worker(&fleet, &rescuer_key, "done with the job", |worker| {
        worker.running.is_empty() && worker.last_seen > record.finished_at
    })
    .await;
    assert_eq!(
        fleet
            .count_job_events("acme", "survivor", "succeeded")
            .await,
        1,
        "the job succeeded exactly once"
    );
}
