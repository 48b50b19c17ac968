//! Outcomes and bad input: failures carry their exit code and stderr,
//! nothing runs that the worker did not allow, unreadable jobs are rejected
//! and the services go on.

use std::time::Duration;

use shoal_protocol::JobState;

use crate::support::{
    eventually, names, shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_ends_failed_with_its_exit_code_and_stderr_tail() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let config = crate::support::server::TempDir::new("config");
    let path = config.path().join("worker.toml");
    std::fs::write(
        &path,
        "[worker]\ngroup = \"acme\"\nname = \"w-fail\"\n\n[entrypoints.explode]\ncommand = [\"sh\", \"-c\", \"echo partial; echo boom: $0 >&2; exit 3\"]\n",
    )
    .expect("write config");
    let _worker = ShoalProcess::worker(&server, &["--config", path.to_str().expect("utf-8 path")]);

    let id = shoal(
        Some(&server),
        &["job", "submit", "-g", "acme", "explode", "loudly"],
    );
    assert!(
        id.status.success(),
        "{}",
        String::from_utf8_lossy(&id.stderr)
    );
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    let record = wait_for_job(&fleet, &format!("acme.{id}"), "finished", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Failed));
    assert!(record.error);
    assert_eq!(record.exit_code, Some(3));
    assert_eq!(record.error_text.as_deref(), Some("exited with code 3"));
    assert_eq!(record.stderr_tail.as_deref(), Some("boom: loudly\n"));
    assert_eq!(record.stdout_tail.as_deref(), Some("partial\n"));

    let waited = shoal(Some(&server), &["job", "wait", &id]);
    assert_eq!(
        waited.status.code(),
        Some(3),
        "shoal job wait mirrors the job's exit code"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_entrypoint_or_a_raw_command_without_allow_exec_fails_and_runs_nothing() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    let marker = worker.dir.path().join("must-not-exist");
    let marker = marker.to_str().expect("utf-8 path");

    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"unknown","entrypoint":"format-disk"}"#,
        )
        .await;
    fleet
        .publish_job(
            "acme",
            "default",
            &format!(r#"{{"id":"raw","command":["touch","{marker}"]}}"#),
        )
        .await;

    let unknown = wait_for_job(&fleet, "acme.unknown", "failed", |job| job.done).await;
    assert_eq!(unknown.state, Some(JobState::Failed));
    assert!(
        unknown
            .error_text
            .as_deref()
            .unwrap_or_default()
            .contains("unknown entrypoint `format-disk`"),
        "{unknown:?}"
    );
    let raw = wait_for_job(&fleet, "acme.raw", "failed", |job| job.done).await;
    assert_eq!(raw.state, Some(JobState::Failed));
    assert!(
        raw.error_text
            .as_deref()
            .unwrap_or_default()
            .contains("allow_exec"),
        "{raw:?}"
    );
    assert_eq!(raw.exit_code, None, "no process ran");
    assert!(
        !std::path::Path::new(marker).exists(),
        "the raw command ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_schema_breaking_jobs_are_rejected_and_the_next_good_job_runs() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let mut projector = ShoalProcess::projector(&server);
    let mut worker = ShoalProcess::worker(&server, &["--group", "acme"]);

    let malformed = fleet.publish_job("acme", "default", "{not json").await;
    let wrong_type = fleet
        .publish_job("acme", "default", r#"{"entrypoint":5}"#)
        .await;
    let unknown_field = fleet
        .publish_job("acme", "default", r#"{"entrypoint":"noop","timeot":"1s"}"#)
        .await;
    fleet
        .publish_job("acme", "default", r#"{"id":"good","entrypoint":"noop"}"#)
        .await;

    for (sequence, reason) in [
        (malformed, "job:"),
        (wrong_type, "invalid type"),
        (unknown_field, "timeot"),
    ] {
        let key = format!("acme.{sequence}");
        let record = wait_for_job(&fleet, &key, "rejected", |job| job.done).await;
        assert_eq!(record.state, Some(JobState::Dead), "poison ends dead");
        let text = record.error_text.unwrap_or_default();
        assert!(text.contains(reason), "{key}: {text}");
        assert_eq!(
            fleet
                .count_job_events("acme", &sequence.to_string(), "rejected")
                .await,
            1,
            "one rejected event for {key}"
        );
    }
    let stream = fleet
        .js
        .get_stream(names().dead_stream())
        .await
        .expect("dead-letter stream");
    let dead = stream
        .get_last_raw_message_by_subject(&subjects().dead("acme", "default"))
        .await
        .expect("a dead letter");
    let reason = dead
        .headers
        .get("Shoal-Reason")
        .map(|value| value.to_string())
        .unwrap_or_default();
    assert!(reason.starts_with("rejected: "), "{reason}");
    let mut dead_stream = fleet
        .js
        .get_stream(names().dead_stream())
        .await
        .expect("dead-letter stream");
    assert_eq!(
        dead_stream.info().await.expect("info").state.messages,
        3,
        "each poison job is copied once"
    );
    let good = wait_for_job(&fleet, "acme.good", "succeeded", |job| job.done).await;
    assert_eq!(good.state, Some(JobState::Succeeded));
    assert!(
        projector.is_running(),
        "the projector died: {}",
        projector.log()
    );
    assert!(worker.is_running(), "the worker died: {}", worker.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_submitted_three_times_runs_once() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "4"]);
    for _ in 0..3 {
        let output = shoal(
            Some(&server),
            &[
                "job", "submit", "-g", "acme", "--id", "once", "sleep", "200ms",
            ],
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "once");
    }
    let record = wait_for_job(&fleet, "acme.once", "succeeded", |job| job.done).await;
    assert_eq!(record.attempts, 1);
    let mut stream = fleet
        .js
        .get_stream(names().jobs_stream())
        .await
        .expect("jobs stream");
    assert_eq!(
        stream.info().await.expect("info").state.messages,
        1,
        "stored once"
    );
    assert_eq!(
        fleet.count_job_events("acme", "once", "started").await,
        1,
        "run once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_submission_of_a_taken_id_never_rewrites_the_first_jobs_record() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    let first = fleet
        .publish_job("acme", "default", r#"{"id":"first","entrypoint":"noop"}"#)
        .await;
    let done = wait_for_job(&fleet, "acme.first", "succeeded", |job| job.done).await;
    assert_eq!(done.state, Some(JobState::Succeeded));

    // The same id again, published raw: no deduplication id to stop it.
    let second = fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"first","entrypoint":"sleep","args":["1s"]}"#,
        )
        .await;
    let notice = eventually(
        Duration::from_secs(20),
        "a notice of the duplicate",
        || async {
            let notices = fleet
                .stored(&names().events_stream(), &subjects().rejected())
                .await;
            notices
                .iter()
                .filter_map(|message| {
                    serde_json::from_slice::<shoal_protocol::RejectedNotice>(&message.payload).ok()
                })
                .find(|notice| notice.sequence == second)
        },
    )
    .await;
    assert!(
        notice
            .reason
            .contains(&format!("taken by the submission at sequence {first}")),
        "{notice:?}"
    );
    // Once the worker has settled the duplicate, it has run nothing more.
    fleet.wait_until_queue_is_settled("acme", "default").await;
    let record = crate::support::job_record(&fleet, "acme.first")
        .await
        .expect("the record");
    assert_eq!(record, done, "the first job's record is as it was");
    // The first, a no-op, reported its start with its outcome; the second, a
    // one-second sleep, would have reported a start of its own, then an end.
    assert_eq!(fleet.count_job_events("acme", "first", "started").await, 0);
    assert_eq!(
        fleet.count_job_events("acme", "first", "succeeded").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_answer_that_cannot_be_checked_stores_nothing_twice_and_says_so() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    // No projector: no record will show whose the id is.
    let submit = || {
        shoal(
            Some(&server),
            &["job", "submit", "-g", "acme", "--id", "lonely", "noop"],
        )
    };
    let first = submit();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = submit();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("no record shows whose it is yet"), "{said}");
    let mut stream = fleet
        .js
        .get_stream(names().jobs_stream())
        .await
        .expect("jobs stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
}
