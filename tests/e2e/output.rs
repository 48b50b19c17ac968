//! What a running job tells: its output, followed live in order and kept
//! byte for byte, its progress while it runs, and a small result.

use shoal_protocol::JobState;

use crate::support::{shoal, wait_for_job, Fleet, NatsServer, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_a_running_job_live_in_order_and_stop_at_its_end() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    // Logs are read through the registry.
    let _registry = ShoalProcess::registry(&server).await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let script = "i=0; while [ $i -lt 10000 ]; do echo \"line $i\"; i=$((i+1)); if [ $((i % 1000)) -eq 0 ]; then sleep 0.3; fi; done";
    let body = serde_json::json!({"id": "chatty", "command": ["sh", "-c", script]});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    wait_for_job(&fleet, "acme.chatty", "running", |job| {
        job.state.is_some_and(|state| state != JobState::Queued)
    })
    .await;

    let followed = shoal(Some(&server), &["job", "logs", "chatty", "-f"]);
    assert!(
        followed.status.success(),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    let record = wait_for_job(&fleet, "acme.chatty", "succeeded", |job| job.done).await;
    assert_eq!(
        record.state,
        Some(JobState::Succeeded),
        "-f returned only once the job had ended"
    );
    let text = String::from_utf8(followed.stdout).expect("text output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_000);
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(index, line)| *line == format!("line {index}")),
        "lines out of order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_and_binary_output_come_back_byte_for_byte() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    // Logs are read through the registry.
    let _registry = ShoalProcess::registry(&server).await;
    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let script = "printf '%0300000d\\n' 7; head -c 200000 /dev/urandom";
    let body = serde_json::json!({"id": "noisy", "command": ["sh", "-c", script]});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    wait_for_job(&fleet, "acme.noisy", "succeeded", |job| job.done).await;

    let printed = shoal(Some(&server), &["job", "logs", "noisy", "-g", "acme"]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let kept = std::fs::read(worker.dir.path().join("output/acme/noisy/attempt-1.log"))
        .expect("the output file");
    assert_eq!(kept.len(), 300_001 + 200_000);
    assert!(
        printed.stdout == kept,
        "the streamed output differs from the file ({} vs {} bytes)",
        printed.stdout.len(),
        kept.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reports_progress_while_it_runs_and_leaves_a_small_result() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let script = "echo '::shoal progress 40 copying'; sleep 1.5; echo '::shoal progress 90 almost'; printf '{\"rows\":12}' > \"$SHOAL_RESULT_FILE\"";
    fleet
        .publish_job(
            "acme",
            "default",
            &serde_json::json!({"id": "reporter", "command": ["sh", "-c", script]}).to_string(),
        )
        .await;

    let midway = wait_for_job(&fleet, "acme.reporter", "40% done", |job| {
        job.progress
            .as_ref()
            .is_some_and(|progress| progress.percent == 40)
    })
    .await;
    assert_eq!(midway.state, Some(JobState::Running));
    assert_eq!(midway.progress.expect("progress").message, "copying");
    let done = wait_for_job(&fleet, "acme.reporter", "succeeded", |job| job.done).await;
    assert_eq!(done.state, Some(JobState::Succeeded));
    assert_eq!(done.progress.expect("progress").percent, 90);
    // A result that is JSON is stored as JSON: a client reads `result.rows`.
    let stored = fleet
        .jobs
        .get("acme.reporter")
        .await
        .expect("read")
        .expect("the record");
    let raw: serde_json::Value = serde_json::from_slice(&stored).expect("JSON");
    assert_eq!(raw["result"], serde_json::json!({"rows": 12}), "{raw}");
    assert_eq!(done.result.expect("a result").json(), "{\"rows\":12}");

    // One that is not stays its text, as a JSON string.
    fleet
        .publish_job(
            "acme",
            "default",
            &serde_json::json!({"id": "texter", "command": ["sh", "-c", "printf 'rows: 12' > \"$SHOAL_RESULT_FILE\""]})
                .to_string(),
        )
        .await;
    let text = wait_for_job(&fleet, "acme.texter", "succeeded", |job| job.done).await;
    assert_eq!(text.result.expect("a result").json(), "\"rows: 12\"");

    let oversized = "head -c 70000 /dev/zero > \"$SHOAL_RESULT_FILE\"";
    fleet
        .publish_job(
            "acme",
            "default",
            &serde_json::json!({"id": "greedy", "command": ["sh", "-c", oversized]}).to_string(),
        )
        .await;
    let refused = wait_for_job(&fleet, "acme.greedy", "failed", |job| job.done).await;
    assert_eq!(refused.state, Some(JobState::Failed));
    assert_eq!(
        refused.error_text.as_deref(),
        Some("result: 70000 bytes is more than the 65536 a result may take")
    );
    assert_eq!(refused.result, None);
}
