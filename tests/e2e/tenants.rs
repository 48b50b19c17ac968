//! One group against another through what permissions do not see: the
//! headers the server acts on, and the deduplication ids it remembers
//! across subjects. Tried as acme's `write` and `worker` users against
//! globex, on a server with the roles of `shoal auth`.

use std::time::Duration;

use shoal_protocol::JobState;

use crate::support::process::shoal_with_env;
use crate::support::secure::{
    declare_queues, publish_as, services, waiting_job, SecureServer, WAITING_JOB,
};
use crate::support::{eventually, names, subjects, wait_for_job, Fleet, ShoalProcess};

/// Headers the pinned server acts on, each as a hostile tenant would send it.
fn hostile_headers() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let globex = "shoal.jobs.globex.default".to_string();
    vec![
        (
            "rollup of the whole stream",
            vec![("Nats-Rollup", "all".into())],
        ),
        ("rollup of the subject", vec![("Nats-Rollup", "sub".into())]),
        (
            "a schedule aimed at globex's queue",
            vec![
                ("Nats-Schedule", "@every 1s".into()),
                ("Nats-Schedule-Target", globex.clone()),
            ],
        ),
        (
            "a schedule aimed at the fired submissions of globex",
            vec![
                ("Nats-Schedule", "@every 1s".into()),
                ("Nats-Schedule-Target", "shoal.due.globex.default".into()),
            ],
        ),
        (
            "a schedule copying globex's latest job",
            vec![
                ("Nats-Schedule", "@every 1s".into()),
                ("Nats-Schedule-Target", "shoal.jobs.acme.copies".into()),
                ("Nats-Schedule-Source", globex.clone()),
            ],
        ),
        (
            "a purge of a schedule",
            vec![
                ("Nats-Schedule-Next", "purge".into()),
                (
                    "Nats-Scheduler",
                    "shoal.sched.globex.default.nightly".into(),
                ),
            ],
        ),
        ("a message TTL", vec![("Nats-TTL", "1s".into())]),
        ("a counter increment", vec![("Nats-Incr", "1".into())]),
        (
            "an atomic batch",
            vec![
                ("Nats-Batch-Id", "b1".into()),
                ("Nats-Batch-Sequence", "1".into()),
                ("Nats-Batch-Commit", "1".into()),
            ],
        ),
        (
            "an expectation on globex's subject",
            vec![
                ("Nats-Expected-Last-Subject-Sequence", "0".into()),
                (
                    "Nats-Expected-Last-Subject-Sequence-Subject",
                    globex.clone(),
                ),
            ],
        ),
        (
            "a stream-source header",
            vec![("Nats-Stream-Source", "SHOAL_SCHEDULES 1 > >".into())],
        ),
        (
            "a deduplication id of globex's",
            vec![("Nats-Msg-Id", "globex.nightly".into())],
        ),
    ]
}

/// The subjects each of acme's users may publish to, with a body that is
/// what a careless or hostile user of that role would send there.
fn writable_subjects(user: &str) -> Vec<(String, String)> {
    let job = r#"{"entrypoint":"noop"}"#.to_string();
    match user {
        "acme-write" => vec![("shoal.jobs.acme.default".into(), job)],
        "acme-worker" => vec![
            ("shoal.evt.job.acme.forged".into(), job.clone()),
            ("shoal.evt.worker.acme.forged".into(), job.clone()),
            ("shoal.hb.acme.forged".into(), job.clone()),
            ("shoal.logs.acme.forged".into(), "a line\n".into()),
            ("shoal.dead.acme.default".into(), job.clone()),
            ("shoal.evt.rejected".into(), job),
        ],
        other => panic!("no subjects for {other}"),
    }
}

/// How many messages of `stream` sit on subjects matching `filter`.
async fn count(fleet: &Fleet, stream: &str, filter: &str) -> usize {
    let mut stream = fleet.js.get_stream(stream).await.expect("stream");
    let info = stream.info().await.expect("stream info");
    if info.state.messages == 0 {
        return 0;
    }
    let mut subjects = stream.info_with_subjects(filter).await.expect("subjects");
    let mut total = 0;
    use futures_util::StreamExt;
    while let Some(entry) = subjects.next().await {
        total += entry.expect("subject").1;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_header_from_a_write_or_worker_user_of_acme_touches_globex() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    let fleet = &services.fleet;
    waiting_job(fleet, "globex").await;
    let globex_jobs = count(fleet, "SHOAL_JOBS", "shoal.jobs.globex.>").await;
    let globex_events = count(fleet, "SHOAL_EVENTS", "shoal.evt.*.globex.>").await;
    assert_eq!(globex_jobs, 1);

    for user in ["acme-write", "acme-worker"] {
        let watched = secure.client_as(user).await;
        for (subject, body) in writable_subjects(user) {
            for (what, headers) in hostile_headers() {
                let outcome = publish_as(&watched, &subject, &headers, &body).await;
                let stored_on_acmes_subjects = match &outcome {
                    Ok(sequence) => {
                        let stream = if subject.starts_with("shoal.jobs.") {
                            "SHOAL_JOBS"
                        } else if subject.starts_with("shoal.hb.") {
                            "SHOAL_HEARTBEATS"
                        } else if subject.starts_with("shoal.logs.") {
                            "SHOAL_LOGS"
                        } else if subject.starts_with("shoal.dead.") {
                            "SHOAL_DEAD"
                        } else {
                            "SHOAL_EVENTS"
                        };
                        let stream = fleet.js.get_stream(stream).await.expect("stream");
                        let message = stream.get_raw_message(*sequence).await;
                        // A duplicate answer names an earlier message of acme's own.
                        message.is_ok_and(|message| {
                            message.subject.contains(".acme.")
                                || message.subject.as_str() == subject
                        })
                    }
                    Err(_) => true,
                };
                assert!(
                    stored_on_acmes_subjects,
                    "{user}: {what} on {subject} was stored elsewhere: {outcome:?}"
                );
                // What globex keeps must hold at once after every attempt.
                assert_eq!(
                    count(fleet, "SHOAL_JOBS", "shoal.jobs.globex.>").await,
                    globex_jobs,
                    "{user}: {what} on {subject} changed globex's queue ({outcome:?})"
                );
            }
        }
        assert!(
            watched.errors().is_empty(),
            "{user} published only to its own subjects: {:?}",
            watched.errors()
        );
    }

    // The server refused every rollup and schedule where users publish:
    // no schedule exists, and no submission was ever fired.
    assert_eq!(count(fleet, "SHOAL_SCHEDULES", ">").await, 0);
    assert_eq!(
        count(fleet, "SHOAL_EVENTS", "shoal.evt.*.globex.>").await,
        globex_events,
        "no event of globex was added or removed"
    );
    let waiting = crate::support::job_record(fleet, &format!("globex.{WAITING_JOB}"))
        .await
        .expect("globex's job");
    assert_eq!(waiting.state, Some(JobState::Queued));

    // And globex's worker still finds its job and runs it.
    let url = secure.server.url.clone();
    declare_queues(&url, "globex", &secure.login("globex-admin"));
    let _worker =
        ShoalProcess::worker_with_env(&url, &["--group", "globex"], &secure.login("globex-worker"));
    let done = wait_for_job(
        fleet,
        &format!("globex.{WAITING_JOB}"),
        "succeeded",
        |job| job.done,
    )
    .await;
    assert_eq!(done.state, Some(JobState::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_acted_header_is_refused_with_the_servers_reason() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    let watched = secure.client_as("acme-write").await;
    let subject = "shoal.jobs.acme.default";
    let body = r#"{"entrypoint":"noop"}"#;
    for (what, headers, reason) in [
        ("rollup", vec![("Nats-Rollup", "all".to_string())], "rollup"),
        (
            "schedule",
            vec![
                ("Nats-Schedule", "@every 1s".to_string()),
                (
                    "Nats-Schedule-Target",
                    "shoal.jobs.globex.default".to_string(),
                ),
            ],
            "schedul",
        ),
        ("ttl", vec![("Nats-TTL", "1s".to_string())], "ttl"),
        ("counter", vec![("Nats-Incr", "1".to_string())], "count"),
    ] {
        let refused = publish_as(&watched, subject, &headers, body)
            .await
            .expect_err(what);
        assert!(
            refused.to_lowercase().contains(reason),
            "{what}: refused, but for another reason: {refused}"
        );
    }
    drop(services);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_taken_first_by_another_group_swallows_neither_its_job_nor_a_services_event() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    let fleet = &services.fleet;
    let url = secure.server.url.clone();
    declare_queues(&url, "globex", &secure.login("globex-admin"));
    let _worker =
        ShoalProcess::worker_with_env(&url, &["--group", "globex"], &secure.login("globex-worker"));

    // acme takes the deduplication id globex's `nightly` will carry.
    let acme_write = secure.client_as("acme-write").await;
    publish_as(
        &acme_write,
        "shoal.jobs.acme.default",
        &[("Nats-Msg-Id", "globex.nightly".to_string())],
        r#"{"entrypoint":"noop"}"#,
    )
    .await
    .expect("acme's own subject takes it");
    let submitted = shoal_with_env(
        Some(&url),
        &["job", "submit", "-g", "globex", "--id", "nightly", "noop"],
        &secure.login("globex-write"),
    );
    let stderr = String::from_utf8_lossy(&submitted.stderr).into_owned();
    assert!(submitted.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&submitted.stdout).trim(), "nightly");
    assert!(stderr.contains("fresh"), "the submitter is told: {stderr}");
    let nightly = wait_for_job(fleet, "globex.nightly", "succeeded", |job| job.done).await;
    assert_eq!(nightly.state, Some(JobState::Succeeded));

    // The same job again is the same submission; another job with its id is refused.
    let again = shoal_with_env(
        Some(&url),
        &["job", "submit", "-g", "globex", "--id", "nightly", "noop"],
        &secure.login("globex-write"),
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let other = shoal_with_env(
        Some(&url),
        &[
            "job", "submit", "-g", "globex", "--id", "nightly", "sleep", "1s",
        ],
        &secure.login("globex-write"),
    );
    assert!(!other.status.success());
    let refusal = String::from_utf8_lossy(&other.stderr);
    assert!(
        refusal.contains("nightly") && refusal.contains("taken"),
        "{refusal}"
    );

    // acme's worker takes the ids of the rejection and of the dead letter
    // that globex's next (unreadable) submission will get.
    let mut jobs = fleet
        .js
        .get_stream("SHOAL_JOBS")
        .await
        .expect("jobs stream");
    let next = jobs.info().await.expect("info").state.last_sequence + 1;
    let acme_worker = secure.client_as("acme-worker").await;
    for (subject, id) in [
        (
            "shoal.evt.job.acme.squat",
            format!("rejected-SHOAL_JOBS-{next}"),
        ),
        ("shoal.dead.acme.default", format!("dead-{next}")),
    ] {
        publish_as(&acme_worker, subject, &[("Nats-Msg-Id", id)], "{}")
            .await
            .expect("acme's own subject takes it");
    }
    let globex_write = secure.client_as("globex-write").await;
    let sequence = publish_as(
        &globex_write,
        "shoal.jobs.globex.default",
        &[],
        r#"{"id":"typo-1","entrypont":"noop"}"#,
    )
    .await
    .expect("stored");
    assert_eq!(sequence, next);
    let typo = wait_for_job(fleet, "globex.typo-1", "dead", |job| job.done).await;
    assert_eq!(typo.state, Some(JobState::Dead));
    assert!(
        typo.error_text
            .as_deref()
            .is_some_and(|text| text.contains("entrypont")),
        "{typo:?}"
    );
    let letters = fleet
        .stored("SHOAL_DEAD", "shoal.dead.globex.default")
        .await;
    assert_eq!(letters.len(), 1, "globex's dead letter is stored");
}

/// A `registered` event as acme's worker login may forge it.
fn forged_registration(worker_id: &str, queues: &[String], tags: &[&str], system: bool) -> String {
    serde_json::json!({
        "type": "registered",
        "worker_id": worker_id,
        "group": "acme",
        "at": shoal_protocol::Timestamp::now(),
        "info": {
            "name": worker_id, "queues": queues, "tags": tags, "system": system,
            "concurrency": 1, "host": "forged", "pid": 1, "version": "0",
            "heartbeat_interval": "1h"
        }
    })
    .to_string()
}

/// The names of the consumers of the jobs stream.
async fn consumer_names(fleet: &Fleet) -> Vec<String> {
    use futures_util::StreamExt;
    let stream = fleet
        .js
        .get_stream("SHOAL_JOBS")
        .await
        .expect("jobs stream");
    let mut names = stream.consumer_names();
    let mut all = Vec::new();
    while let Some(name) = names.next().await {
        all.push(name.expect("consumer name"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_registration_spawns_no_dispatcher_and_claims_no_system_jobs() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    let fleet = &services.fleet;
    let url = secure.server.url.clone();
    // acme declared one queue, without tags; globex one with tags.
    declare_queues(&url, "acme", &secure.login("acme-admin"));
    let pool = crate::support::server::TempDir::new("pool");
    let file = pool.path().join("pool.yaml");
    std::fs::write(
        &file,
        "name: gpus\nversion: v1\ntype: pool\npool:\n  queues: [default]\n  tags: [gpu]\n  group: globex\n",
    )
    .expect("pool file");
    let applied = shoal_with_env(
        Some(&url),
        &["apply", "-f", &file.display().to_string()],
        &secure.login("globex-admin"),
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // acme's worker login says it serves ten queues with tags, and _system.
    let acme_worker = secure.client_as("acme-worker").await;
    let queues: Vec<String> = (0..10).map(|n| format!("q{n}")).collect();
    let mut forged = queues.clone();
    forged.push("default".into());
    let body = forged_registration("w-forged", &forged, &["gpu"], true);
    publish_as(&acme_worker, "shoal.evt.worker.acme.w-forged", &[], &body)
        .await
        .expect("acme's own subject");
    let beat = serde_json::json!({"worker_id": "w-forged", "group": "acme",
        "at": shoal_protocol::Timestamp::now(), "interval": "1h"});
    publish_as(
        &acme_worker,
        "shoal.hb.acme.w-forged",
        &[],
        &beat.to_string(),
    )
    .await
    .expect("acme's own subject");
    crate::support::wait_for_worker(fleet, "acme.w-forged", "online", |worker| {
        worker.status == Some(shoal_protocol::WorkerStatus::Online)
    })
    .await;
    // And an identity `created` as if the registry had made it, carrying a
    // system pool of tagged queues: a worker's login may publish it too. It
    // may speak for acme's own queues (zz), never for `_system`'s.
    let identity = serde_json::json!({
        "type": "created", "worker_id": "w-declared", "group": "acme",
        "at": shoal_protocol::Timestamp::now(),
        "identity": {"name": "w-declared", "system": true, "resource": {
            "name": "forged", "version": "v1", "type": "pool",
            "pool": {"queues": ["zz"], "tags": ["gpu"], "system": true, "group": "acme"}
        }}
    });
    publish_as(
        &acme_worker,
        "shoal.evt.worker.acme.w-declared",
        &[],
        &identity.to_string(),
    )
    .await
    .expect("acme's own subject");
    let zz = vec!["zz".to_string()];
    let body = forged_registration("w-declared", &zz, &["gpu"], true);
    publish_as(&acme_worker, "shoal.evt.worker.acme.w-declared", &[], &body)
        .await
        .expect("acme's own subject");
    crate::support::wait_for_worker(fleet, "acme.w-declared", "online", |worker| {
        worker.status == Some(shoal_protocol::WorkerStatus::Online) && worker.resource.is_some()
    })
    .await;

    // An honest worker with tags in globex: once its job has been routed
    // to it, the registry has dispatched with the forged record in view.
    // (The repository's globex worker login serves no tags: the operator's does.)
    let gpu = ShoalProcess::worker_with_env(
        &url,
        &["--group", "globex", "--tags", "gpu"],
        &secure.login(crate::support::secure::OPERATOR),
    );
    let globex_write = secure.client_as("globex-write").await;
    publish_as(
        &globex_write,
        &subjects().jobs("globex", "default"),
        &[],
        r#"{"id":"routed","entrypoint":"noop","tags":["gpu"]}"#,
    )
    .await
    .expect("stored");
    let routed = eventually(Duration::from_secs(30), "globex.routed done", || async {
        let routed = crate::support::job_record(fleet, "globex.routed").await;
        match routed {
            Some(job) if job.done => Ok(job),
            _ => Err(format!(
                "registry: {}\nworker: {}",
                services.registry.log(),
                gpu.log()
            )),
        }
    })
    .await;
    assert_eq!(
        routed.state,
        Some(JobState::Succeeded),
        "registry: {}\nworker: {}",
        services.registry.log(),
        gpu.log()
    );
    let consumers = consumer_names(fleet).await;
    let forged_consumers: Vec<&String> = consumers
        .iter()
        .filter(|name| {
            // What the forged report would make: the consumers of its
            // queues, of `_system`, or the route of its tag set in acme.
            name.contains("~_system~")
                || queues
                    .iter()
                    .any(|queue| name.contains(&format!("~{queue}")))
                || (name.starts_with("route~acme") && name.ends_with("~gpu"))
        })
        .collect();
    assert!(forged_consumers.is_empty(), "{forged_consumers:?}");

    // A report past the bounds is rejected outright.
    let many: Vec<String> = (0..65).map(|n| format!("q{n}")).collect();
    let body = forged_registration("w-many", &many, &[], false);
    publish_as(&acme_worker, "shoal.evt.worker.acme.w-many", &[], &body)
        .await
        .expect("acme's own subject");
    let what = "a rejection of the oversized report";
    eventually(Duration::from_secs(20), what, || async {
        let notices = fleet
            .stored(&names().events_stream(), &subjects().rejected())
            .await;
        notices.iter().any(|message| {
            let text = String::from_utf8_lossy(&message.payload);
            text.contains("shoal.evt.worker.acme.w-many") && text.contains("info.queues")
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_admin_cannot_declare_workers_that_serve_system() {
    let secure = SecureServer::start();
    let _services = services(&secure).await;
    let url = secure.server.url.clone();
    let dir = crate::support::server::TempDir::new("pool");
    let file = dir.path().join("pool.yaml");
    std::fs::write(
        &file,
        "name: sneaky\nversion: v1\ntype: pool\npool:\n  queues: [default]\n  group: acme\n  system: true\n",
    )
    .expect("pool file");
    let applied = shoal_with_env(
        Some(&url),
        &["apply", "-f", &file.display().to_string()],
        &secure.login("acme-admin"),
    );
    assert!(!applied.status.success());
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(stderr.contains("Permissions Violation"), "{stderr}");
    // Through the group's own operation, the registry refuses it.
    let admin = secure.client_as("acme-admin").await;
    let request = serde_json::json!({"group": "acme", "resource": {
        "name": "sneaky", "version": "v1", "type": "pool",
        "pool": {"queues": ["default"], "group": "acme", "system": true}
    }});
    let answer = admin
        .client
        .request("shoal.api.resource.apply.acme", request.to_string().into())
        .await
        .expect("an answer");
    let status = answer
        .headers
        .as_ref()
        .and_then(|headers| headers.get("Nats-Service-Error-Code"))
        .map(|code| code.to_string());
    assert_eq!(status.as_deref(), Some("403"), "{answer:?}");
    let operator = shoal_with_env(
        Some(&url),
        &["apply", "-f", &file.display().to_string()],
        &secure.login(crate::support::secure::OPERATOR),
    );
    assert!(
        operator.status.success(),
        "{}",
        String::from_utf8_lossy(&operator.stderr)
    );
}
