//! The registry: worker identities through the CLI and raw NATS requests,
//! pre-registered workers, and system workers.

use std::time::Duration;

use shoal_protocol::api::ApiOp;
use shoal_protocol::{JobState, WorkerStatus};

use crate::support::{
    eventually, shoal, subjects, wait_for_job, wait_for_worker, Fleet, NatsServer, ShoalProcess,
};

fn json_of(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON answer")
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_identities_are_created_read_changed_and_deleted_through_the_cli_and_raw_requests() {
    let server = NatsServer::start();
    let _registry = ShoalProcess::registry(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let create = ApiOp::WorkerCreate(None).subject(&subjects());
    let get = |id: &str| ApiOp::WorkerGet(None, id.to_string()).subject(&subjects());

    let alpha = json_of(&shoal(
        Some(&server),
        &[
            "worker",
            "create",
            "--name",
            "alpha",
            "--group",
            "acme",
            "--label",
            "team=a",
            "--worker-user",
            "acme-alpha",
        ],
    ));
    let id = alpha["id"].as_str().expect("an id").to_string();
    assert_eq!(alpha["name"], "alpha");
    assert_eq!(alpha["group"], "acme");
    assert_eq!(alpha["labels"]["team"], "a");
    assert_eq!(alpha["user"], "acme-alpha");
    assert_eq!(alpha["system"], false);
    assert_eq!(alpha["self"], get(&id));

    let raw = server.nats(&[
        "req",
        &create,
        r#"{"name":"beta","group":"acme","labels":{"team":"b"}}"#,
    ]);
    let beta: serde_json::Value = serde_json::from_str(raw.trim()).expect("JSON answer");
    assert_eq!(beta["name"], "beta");
    assert!(beta["id"].as_str().is_some_and(|beta_id| beta_id != id));

    let duplicate = shoal(
        Some(&server),
        &["worker", "create", "--name", "alpha", "--group", "acme"],
    );
    assert!(!duplicate.status.success());
    assert!(
        stderr_of(&duplicate).contains("name `alpha` is taken in group `acme`")
            && stderr_of(&duplicate).contains("code 409"),
        "{}",
        stderr_of(&duplicate)
    );
    let raw_duplicate = server.nats_output(&["req", &create, r#"{"name":"alpha","group":"acme"}"#]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&raw_duplicate.stdout),
        stderr_of(&raw_duplicate)
    );
    assert!(
        printed.contains("Nats-Service-Error-Code: 409"),
        "{printed}"
    );
    let same_name_elsewhere = json_of(&shoal(
        Some(&server),
        &["worker", "create", "--name", "alpha", "--group", "other"],
    ));
    assert_eq!(
        same_name_elsewhere["group"], "other",
        "names are unique per group only"
    );

    let got = json_of(&shoal(Some(&server), &["worker", "get", &id]));
    assert_eq!(got["name"], "alpha");
    let raw_got = server.nats(&["req", &get(&id), ""]);
    assert!(raw_got.contains("\"alpha\""), "{raw_got}");
    let listed = json_of(&shoal(
        Some(&server),
        &["worker", "list", "--group", "acme", "-o", "json"],
    ));
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|worker| worker["name"].as_str())
        .collect();
    assert_eq!(names, vec!["alpha", "beta"]);

    let updated = json_of(&shoal(
        Some(&server),
        &[
            "worker", "update", &id, "--system", "true", "--label", "team=z",
        ],
    ));
    assert_eq!(updated["system"], true);
    assert_eq!(updated["labels"]["team"], "z");

    let deleted = json_of(&shoal(Some(&server), &["worker", "delete", &id]));
    assert_eq!(deleted["status"], "deleted");
    let gone = shoal(Some(&server), &["worker", "get", &id]);
    assert!(!gone.status.success());
    assert!(
        stderr_of(&gone).contains("was deleted") && stderr_of(&gone).contains("code 404"),
        "{}",
        stderr_of(&gone)
    );
    let unknown = server.nats_output(&["req", &get("nosuchworker"), ""]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&unknown.stdout),
        stderr_of(&unknown)
    );
    assert!(
        printed.contains("Nats-Service-Error-Code: 404")
            && printed.contains("no worker nosuchworker"),
        "{printed}"
    );
    let reused = json_of(&shoal(
        Some(&server),
        &["worker", "create", "--name", "alpha", "--group", "acme"],
    ));
    assert_ne!(
        reused["id"], alpha["id"],
        "a deleted worker's name can be taken again"
    );

    let services = server.nats(&["micro", "ls"]);
    assert!(services.contains("shoal-registry"), "{services}");
    let info = server.nats(&["micro", "info", "shoal-registry"]);
    assert!(
        info.contains("worker-create") && info.contains(&create),
        "{info}"
    );
    let stats = server.nats(&["micro", "stats", "shoal-registry", "--json"]);
    assert!(stats.contains("worker-create"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_registered_worker_runs_with_its_id_and_a_deleted_one_stops_taking_jobs() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _registry = ShoalProcess::registry(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let created = json_of(&shoal(
        Some(&server),
        &[
            "worker", "create", "--name", "pre", "--group", "acme", "--label", "kind=pre",
        ],
    ));
    let id = created["id"].as_str().expect("an id").to_string();

    let mut worker = ShoalProcess::worker(&server, &["--worker-id", &id]);
    let key = format!("acme.{id}");
    let online = wait_for_worker(&fleet, &key, "online", |worker| {
        worker.status == Some(WorkerStatus::Online)
    })
    .await;
    assert_eq!(online.name, "pre", "it took the registered name");
    assert_eq!(online.labels.get("kind").map(String::as_str), Some("pre"));
    fleet
        .publish_job("acme", "default", r#"{"id":"before","entrypoint":"noop"}"#)
        .await;
    let before = wait_for_job(&fleet, "acme.before", "succeeded", |job| job.done).await;
    assert_eq!(before.worker_id.as_deref(), Some(id.as_str()));

    json_of(&shoal(Some(&server), &["worker", "delete", &id]));
    let status = worker
        .wait_exit(Duration::from_secs(20))
        .expect("a deleted worker stops");
    assert_eq!(status.code(), Some(0), "log: {}", worker.log());
    assert!(
        worker.log().contains("deleted by an admin"),
        "{}",
        worker.log()
    );
    fleet
        .publish_job("acme", "default", r#"{"id":"after","entrypoint":"noop"}"#)
        .await;
    let after = wait_for_job(&fleet, "acme.after", "recorded", |job| job.state.is_some()).await;
    assert_eq!(
        after.state,
        Some(JobState::Queued),
        "no deleted worker took it"
    );

    let again = shoal(Some(&server), &["worker", "run", "--worker-id", &id]);
    assert!(!again.status.success());
    assert!(
        stderr_of(&again).contains("was deleted"),
        "{}",
        stderr_of(&again)
    );
    let unknown = shoal(
        Some(&server),
        &["worker", "run", "--worker-id", "nosuchworker"],
    );
    assert!(!unknown.status.success());
    assert!(
        stderr_of(&unknown).contains("worker id nosuchworker: no such worker was created"),
        "{}",
        stderr_of(&unknown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_jobs_run_only_on_system_workers_and_a_promoted_worker_takes_them() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _registry = ShoalProcess::registry(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _plain = ShoalProcess::worker(&server, &["--group", "acme", "--name", "plain"]);
    let mut system = ShoalProcess::worker(
        &server,
        &["--group", "ops", "--name", "sys", "--system", "true"],
    );
    let (plain_id, system_id) = (
        fleet.worker_id("acme", "plain").await,
        fleet.worker_id("ops", "sys").await,
    );

    let mut system_jobs = Vec::new();
    for _ in 0..4 {
        let output = shoal(Some(&server), &["job", "submit", "-g", "_system", "noop"]);
        assert!(output.status.success(), "{}", stderr_of(&output));
        system_jobs.push(String::from_utf8_lossy(&output.stdout).trim().to_string());
        fleet
            .publish_job("acme", "default", r#"{"entrypoint":"noop"}"#)
            .await;
    }
    for id in &system_jobs {
        let record = wait_for_job(&fleet, &format!("_system.{id}"), "succeeded", |job| {
            job.done
        })
        .await;
        assert_eq!(
            record.worker_id.as_deref(),
            Some(system_id.as_str()),
            "a _system job ran on a worker that is not a system worker"
        );
    }
    let acme_jobs = shoal_client::RecordStore::<shoal_protocol::JobRecord>::new(fleet.jobs.clone());
    let jobs = eventually(Duration::from_secs(30), "the 4 acme jobs done", || async {
        let jobs = acme_jobs.read_all("acme.*").await.expect("acme jobs");
        (jobs.len() == 4 && jobs.iter().all(|job| job.done)).then_some(jobs)
    })
    .await;
    assert!(
        jobs.iter()
            .all(|job| job.worker_id.as_deref() == Some(plain_id.as_str())),
        "acme jobs ran outside acme"
    );

    system.signal(libc::SIGTERM);
    system
        .wait_exit(Duration::from_secs(20))
        .expect("the system worker stops");
    json_of(&shoal(
        Some(&server),
        &["worker", "update", &plain_id, "--system", "true"],
    ));
    let promoted = shoal(Some(&server), &["job", "submit", "-g", "_system", "noop"]);
    let promoted = String::from_utf8_lossy(&promoted.stdout).trim().to_string();
    let record = wait_for_job(&fleet, &format!("_system.{promoted}"), "succeeded", |job| {
        job.done
    })
    .await;
    assert_eq!(
        record.worker_id.as_deref(),
        Some(plain_id.as_str()),
        "the promoted worker serves _system"
    );
}
