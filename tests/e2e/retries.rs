//! A failing job is tried again: with delays that grow between attempts,
//! until its last attempt ends it failed; a job that kills every worker
//! running it is given up to the dead letters, and `job retry` runs it again.

use std::time::Duration;

use shoal_protocol::{JobEventType, JobState};

use crate::support::process::submitted_id;
use crate::support::{names, shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_fails_twice_then_succeeds_is_retried_with_growing_delays() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let dir = worker.dir.path().join("output/acme/flaky");
    std::fs::create_dir_all(&dir).expect("dir");
    let script = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo attempt $n >&2; [ $n -ge 3 ]";
    let dir_text = dir.to_str().expect("utf-8");
    let submitted = shoal(
        Some(&server),
        &[
            "job",
            "submit",
            "-g",
            "acme",
            "--id",
            "flaky",
            "--working-dir",
            dir_text,
            "--max-attempts",
            "3",
            "--backoff",
            "exponential",
            "--retry-initial",
            "700ms",
            "--exec",
            "sh",
            "--",
            "-c",
            script,
        ],
    );
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );

    let record = wait_for_job(&fleet, "acme.flaky", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    assert_eq!(record.attempts, 3);
    let events = fleet.job_events("acme", "flaky").await;
    let ended = |attempt: u32| {
        events
            .iter()
            .find(|event| event.kind != JobEventType::Started && event.attempt == attempt)
            .unwrap_or_else(|| panic!("no end of attempt {attempt}: {events:?}"))
    };
    // A quick attempt's start comes with its end, which says when it started.
    let started = |attempt: u32| ended(attempt).started_at.expect("a start").0;
    let first_delay = started(2) - ended(1).at.0;
    let second_delay = started(3) - ended(2).at.0;
    eprintln!("delays between attempts: {first_delay}, {second_delay}");
    assert!(
        first_delay >= Duration::from_millis(700),
        "the first retry waited {first_delay}"
    );
    assert!(
        second_delay >= Duration::from_millis(1400),
        "the second retry waited {second_delay}"
    );
    assert!(second_delay > first_delay, "the delays grow");
    let retried = events
        .iter()
        .filter(|event| event.kind == JobEventType::Retrying)
        .count();
    assert_eq!(retried, 2);
    assert!(events
        .iter()
        .any(|event| event.stderr_tail.as_deref() == Some("attempt 1\n")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_ends_failed_after_its_last_attempt() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    fleet
        .publish_job("acme", "default", r#"{"id":"doomed","entrypoint":"nope","retry":{"max_attempts":2,"backoff":"fixed","initial":"100ms"}}"#)
        .await;
    let record = wait_for_job(&fleet, "acme.doomed", "failed", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Failed));
    assert_eq!(record.attempts, 2);
}

/// The dead letters stored for a group and queue: (job id, reason) each.
async fn dead_letters(fleet: &Fleet, group: &str, queue: &str) -> Vec<(String, String)> {
    let letters = fleet
        .stored(&names().dead_stream(), &subjects().dead(group, queue))
        .await;
    letters
        .iter()
        .map(|message| {
            let headers = message.headers.clone().unwrap_or_default();
            let header = |name: &str| {
                headers
                    .get(name)
                    .map(|value| value.to_string())
                    .unwrap_or_default()
            };
            (header("Shoal-Job-Id"), header("Shoal-Reason"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_worker_every_time_ends_dead_in_the_dead_letters_and_retry_runs_it_again(
) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let marker = crate::support::server::TempDir::new("killer");
    let healed = marker.path().join("healed");
    // The job's parent is its guard; the guard's parent is the worker.
    let script = format!(
        "[ -f {} ] || kill -9 $(cut -d' ' -f4 /proc/$PPID/stat)",
        healed.display()
    );
    fleet
        .publish_job(
            "acme",
            "default",
            &serde_json::json!({"id": "killer", "command": ["sh", "-c", script]}).to_string(),
        )
        .await;

    // Each attempt kills the worker running it; a new one comes up each time, as a supervisor would.
    for _ in 0..2 {
        let mut worker = ShoalProcess::worker(
            &server,
            &[
                "--group",
                "acme",
                "--allow-exec",
                "true",
                "--max-deliver",
                "2",
            ],
        );
        let status = worker
            .wait_exit(Duration::from_secs(30))
            .expect("the job kills its worker");
        assert_eq!(status.code(), None, "killed by a signal");
    }
    // JetStream gives the job up when a worker asks for more after the last delivery.
    let _survivor = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let record = wait_for_job(&fleet, "acme.killer", "dead", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Dead));
    assert!(
        record
            .error_text
            .as_deref()
            .unwrap_or_default()
            .contains("given up after 2 deliveries"),
        "{record:?}"
    );
    let letters = dead_letters(&fleet, "acme", "default").await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].0, "killer");
    assert!(letters[0].1.contains("max_deliver"), "{letters:?}");
    let listed = String::from_utf8_lossy(
        &shoal(
            Some(&server),
            &["get", "jobs", "-g", "acme", "--state", "dead"],
        )
        .stdout,
    )
    .into_owned();
    assert!(listed.contains("killer"), "{listed}");

    std::fs::write(&healed, "").expect("marker");
    let retried = submitted_id(&shoal(Some(&server), &["job", "retry", "killer"]));
    assert_eq!(retried, "killer-retry1");
    let again = wait_for_job(&fleet, "acme.killer-retry1", "succeeded", |job| job.done).await;
    assert_eq!(again.state, Some(JobState::Succeeded));
    assert_eq!(
        again.labels.get("retry_of").map(String::as_str),
        Some("killer")
    );
}
