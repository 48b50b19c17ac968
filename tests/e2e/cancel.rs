//! Cancelling a job: a queued one never starts, a running one stops with
//! its process, and a finished one stays as it ended.

use std::time::Duration;

use shoal_protocol::api::ApiOp;
use shoal_protocol::key::Key;
use shoal_protocol::JobState;

use crate::support::{eventually, shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_queued_job_never_starts_a_cancelled_running_one_stops_and_a_finished_one_stays(
) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _registry = ShoalProcess::registry(&server).await;
    let _projector = ShoalProcess::projector(&server);

    fleet
        .publish_job("acme", "default", r#"{"id":"waiting","entrypoint":"noop"}"#)
        .await;
    wait_for_job(&fleet, "acme.waiting", "queued", |job| {
        job.state == Some(JobState::Queued)
    })
    .await;
    let cancelled = shoal(Some(&server), &["job", "cancel", "waiting"]);
    assert!(
        cancelled.status.success(),
        "{}",
        String::from_utf8_lossy(&cancelled.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&cancelled.stdout).trim(),
        "job waiting cancelled (it was queued)"
    );

    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let pid_file = worker.dir.path().join("running.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let body = serde_json::json!({"id": "busy", "command": ["sh", "-c", script]});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    wait_for_job(&fleet, "acme.busy", "running", |job| {
        job.state == Some(JobState::Running)
    })
    .await;
    let pid = read_when_written(&pid_file).await;
    let raw = server.nats(&["req", &subjects().cancel("acme", "busy"), ""]);
    let answer: serde_json::Value = serde_json::from_str(raw.trim()).expect("JSON answer");
    assert_eq!(answer["cancelled"], true, "{raw}");
    assert_eq!(answer["was"], "running");
    let record = wait_for_job(&fleet, "acme.busy", "cancelled", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Cancelled));
    fleet.wait_until_queue_is_settled("acme", "default").await;
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists() || is_zombie(pid.trim()),
        "the cancelled job's process still runs"
    );

    fleet
        .publish_job("acme", "default", r#"{"id":"quick","entrypoint":"noop"}"#)
        .await;
    wait_for_job(&fleet, "acme.quick", "succeeded", |job| job.done).await;
    let late = shoal(Some(&server), &["job", "cancel", "quick", "-g", "acme"]);
    assert_eq!(late.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&late.stdout).trim(),
        "job quick already succeeded: nothing to cancel"
    );
    let record = wait_for_job(&fleet, "acme.quick", "still succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));

    assert_eq!(
        fleet.count_job_events("acme", "waiting", "started").await,
        0,
        "the cancelled queued job never started"
    );
    let waiting = wait_for_job(&fleet, "acme.waiting", "cancelled", |job| job.done).await;
    assert_eq!(waiting.state, Some(JobState::Cancelled));

    let get_quick = ApiOp::JobGet(Key::new("acme", "quick")).subject(&subjects());
    let queried = server.nats(&["req", &get_quick, ""]);
    let queried: serde_json::Value = serde_json::from_str(queried.trim()).expect("JSON record");
    assert_eq!(
        (queried["done"].as_bool(), queried["error"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(queried["state"], "succeeded");
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

/// The contents of a file once a job has written it.
async fn read_when_written(path: &std::path::Path) -> String {
    let what = format!("{} written", path.display());
    eventually(Duration::from_secs(20), &what, || async {
        std::fs::read_to_string(path)
            .ok()
            .filter(|text| text.ends_with('\n'))
    })
    .await
}
