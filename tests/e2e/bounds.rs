//! What one group or one job may take of what all share: a full jobs stream
//! refuses instead of forgetting, a group past its quota of waiting jobs has
//! its new jobs rejected, and a chatty job streams bounded output and
//! progress while its output file keeps everything.

use std::time::Duration;

use shoal_client::streams::Layout;
use shoal_protocol::{JobState, Priority, Subjects};

use crate::support::{names, shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_jobs_stream_refuses_new_jobs_with_a_clear_error_and_keeps_every_old_one() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let mut stream = fleet
        .js
        .get_stream(names().jobs_stream())
        .await
        .expect("jobs stream");
    let mut config = stream.info().await.expect("info").config.clone();
    config.max_bytes = 16 * 1024;
    fleet
        .js
        .update_stream(config)
        .await
        .expect("a small jobs stream");

    let mut stored = 0;
    let refusal = loop {
        assert!(stored < 500, "the stream never filled up");
        let id = format!("j{stored}");
        let output = shoal(
            Some(&server),
            &["job", "submit", "-g", "acme", "--id", &id, "sleep", "1s"],
        );
        if !output.status.success() {
            break String::from_utf8_lossy(&output.stderr).into_owned();
        }
        stored += 1;
    };
    assert!(refusal.contains("full"), "{refusal}");
    let state = stream.info().await.expect("info").state.clone();
    assert_eq!(state.first_sequence, 1, "the oldest job was kept");
    assert_eq!(state.messages, stored, "every stored job is still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_past_its_quota_of_waiting_jobs_has_its_new_ones_rejected_and_another_goes_on() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let layout = Layout::new(Subjects::default());
    layout
        .open_queue_consumer(
            &fleet.js,
            "acme",
            "default",
            Priority::Normal,
            Duration::from_secs(30),
            5,
        )
        .await
        .expect("acme's queue, with no worker");
    let _projector = ShoalProcess::start(
        &server,
        &["projector", "run", "--max-waiting-per-group", "5"],
    );
    let _globex = ShoalProcess::worker(&server, &["--group", "globex"]);
    for n in 0..5 {
        let body = format!(r#"{{"id":"early-{n}","entrypoint":"noop"}}"#);
        fleet.publish_job("acme", "default", &body).await;
        wait_for_job(&fleet, &format!("acme.early-{n}"), "queued", |job| {
            job.state == Some(JobState::Queued)
        })
        .await;
    }
    // One more every 200 ms until the count of waiting jobs (read at most
    // once a second) catches up: that one is rejected with the reason.
    let mut rejected = None;
    for n in 0..25 {
        let id = format!("late-{n}");
        fleet
            .publish_job(
                "acme",
                "default",
                &format!(r#"{{"id":"{id}","entrypoint":"noop"}}"#),
            )
            .await;
        let record = wait_for_job(&fleet, &format!("acme.{id}"), "recorded", |job| {
            job.state.is_some()
        })
        .await;
        if record.state == Some(JobState::Dead) {
            rejected = Some(record);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rejected = rejected.expect("a submission past the quota is rejected");
    assert!(
        rejected
            .error_text
            .as_deref()
            .is_some_and(|text| text.contains("quota is 5")),
        "{rejected:?}"
    );
    fleet
        .publish_job("globex", "default", r#"{"id":"fine","entrypoint":"noop"}"#)
        .await;
    let fine = wait_for_job(&fleet, "globex.fine", "succeeded", |job| job.done).await;
    assert_eq!(fine.state, Some(JobState::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_job_streams_bounded_output_and_progress_and_its_file_keeps_all() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let script = "head -c 20000000 /dev/zero | tr '\\0' x; echo; \
                  i=0; while [ $i -le 100 ]; do echo \"::shoal progress $i step\"; i=$((i+1)); done";
    let body = serde_json::json!({"id": "chatty", "command": ["sh", "-c", script]});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    let record = wait_for_job(&fleet, "acme.chatty", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded), "{record:?}");
    assert_eq!(
        record.progress.as_ref().map(|progress| progress.percent),
        Some(100)
    );

    let ran = match (record.started_at, record.finished_at) {
        (Some(started), Some(finished)) => (finished.0 - started.0).as_seconds_f64(),
        _ => panic!("no times: {record:?}"),
    };
    let chunks = fleet
        .stored(&names().logs_stream(), &subjects().logs("acme", "chatty"))
        .await;
    let streamed: usize = chunks.iter().map(|chunk| chunk.payload.len()).sum();
    let allowed = 4.0 * 1024.0 * 1024.0 + 1024.0 * 1024.0 * (ran + 1.0) + 64.0 * 1024.0;
    assert!(
        (streamed as f64) <= allowed,
        "{streamed} bytes streamed in {ran:.2}s"
    );
    let streamed_text: String = chunks
        .iter()
        .map(|chunk| String::from_utf8_lossy(&chunk.payload).into_owned())
        .collect();
    assert!(streamed_text.contains("kept in the job's output file"));

    let file = worker.dir.path().join("output/acme/chatty/attempt-1.log");
    let kept = std::fs::metadata(&file).expect("the output file").len();
    assert!(kept > 20_000_000, "the file keeps everything: {kept} bytes");

    let progress = fleet.count_job_events("acme", "chatty", "progress").await;
    let most = (ran / 0.25).ceil() as usize + 2;
    assert!(progress <= most, "{progress} progress events in {ran:.2}s");
}
