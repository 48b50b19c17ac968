//! Everything a job can go through: retries with backoff, and more.

use std::time::Duration;

use shoal_protocol::{JobEventType, JobState};

use crate::support::{shoal, wait_for_job, Fleet, NatsServer, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_fails_twice_then_succeeds_is_retried_with_growing_delays() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let dir = worker.dir.path().join("flaky");
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
    let at = |kind: JobEventType, attempt: u32| {
        events
            .iter()
            .find(|event| event.kind == kind && event.attempt == attempt)
            .unwrap_or_else(|| panic!("no {kind:?} of attempt {attempt}: {events:?}"))
            .at
            .0
    };
    let first_delay = at(JobEventType::Started, 2) - at(JobEventType::Retrying, 1);
    let second_delay = at(JobEventType::Started, 3) - at(JobEventType::Retrying, 2);
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
