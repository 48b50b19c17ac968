//! Everything a job can go through: retries with backoff, and more.

use std::time::Duration;

use shoal_protocol::api::ApiOp;
use shoal_protocol::key::Key;
use shoal_protocol::{JobEventType, JobState, Priority};

use crate::support::{
    eventually, names, shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess,
};

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
    assert_eq!(done.result.as_deref(), Some("{\"rows\":12}"));

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

fn submitted_id(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_in_2s_is_scheduled_until_then_and_not_started_before() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    let submitted_at = time::OffsetDateTime::now_utc();
    let id = submitted_id(&shoal(
        Some(&server),
        &["job", "submit", "-g", "acme", "--in", "2s", "noop"],
    ));

    let waiting = wait_for_job(&fleet, &format!("acme.{id}"), "scheduled", |job| {
        job.state.is_some()
    })
    .await;
    assert_eq!(waiting.state, Some(JobState::Scheduled));
    let listed =
        String::from_utf8_lossy(&shoal(Some(&server), &["schedule", "ls", "-g", "acme"]).stdout)
            .into_owned();
    assert!(listed.contains(&id) && listed.contains("@at "), "{listed}");
    let done = wait_for_job(&fleet, &format!("acme.{id}"), "succeeded", |job| job.done).await;
    assert_eq!(done.state, Some(JobState::Succeeded));
    let started = done.started_at.expect("started").0;
    assert!(
        started - submitted_at >= Duration::from_secs(2),
        "started {} after submission",
        started - submitted_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_every_1s_runs_again_and_again_until_its_schedule_is_removed() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    let submitted_at = time::OffsetDateTime::now_utc();
    let schedule = submitted_id(&shoal(
        Some(&server),
        &["job", "submit", "-g", "acme", "--every", "1s", "noop"],
    ));

    let jobs = shoal_client::RecordStore::<shoal_protocol::JobRecord>::new(fleet.jobs.clone());
    let succeeded = || async {
        jobs.read_all("acme.*")
            .await
            .expect("records")
            .iter()
            .filter(|job| job.state == Some(JobState::Succeeded))
            .count()
    };
    // Runs that started within 4 s of the submission, read as they are recorded.
    let started_in_4s = |records: &[shoal_protocol::JobRecord]| {
        records
            .iter()
            .filter(|job| {
                job.started_at
                    .is_some_and(|at| at.0 - submitted_at <= Duration::from_secs(4))
            })
            .count()
    };
    let what = "3 runs started within 4s of the submission";
    eventually(Duration::from_secs(20), what, || async {
        let runs = started_in_4s(&jobs.read_all("acme.*").await.expect("records"));
        if runs >= 3 {
            Ok(())
        } else {
            Err(format!("{runs} runs"))
        }
    })
    .await;

    let removed = shoal(Some(&server), &["schedule", "rm", &schedule]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let listed =
        String::from_utf8_lossy(&shoal(Some(&server), &["schedule", "ls"]).stdout).into_owned();
    assert!(!listed.contains(&schedule), "{listed}");
    // Runs already submitted when the schedule went finish first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut after_removal = succeeded().await;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = succeeded().await;
        if now == after_removal {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runs did not settle"
        );
        after_removal = now;
    }
    // Nothing can show that a removed schedule stays silent but time without runs.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        succeeded().await,
        after_removal,
        "the removed schedule ran again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_from_the_stream_before_any_worker_took_it_shows_as_missing() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let sequence = fleet
        .publish_job(
            "acme",
            "nobody-serves-this",
            r#"{"id":"vanishing","entrypoint":"noop"}"#,
        )
        .await;
    wait_for_job(&fleet, "acme.vanishing", "queued", |job| {
        job.state == Some(JobState::Queued)
    })
    .await;

    let jobs_stream = names().jobs_stream();
    server.nats(&["stream", "rmm", &jobs_stream, &sequence.to_string(), "-f"]);
    let record = wait_for_job(&fleet, "acme.vanishing", "missing", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Missing));
    assert!(record
        .error_text
        .unwrap_or_default()
        .contains("no longer in the jobs stream"));
    let listed = String::from_utf8_lossy(
        &shoal(
            Some(&server),
            &["get", "jobs", "-g", "acme", "--state", "missing"],
        )
        .stdout,
    )
    .into_owned();
    assert!(listed.contains("vanishing"), "{listed}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_backlog_of_low_priority_jobs_a_high_priority_one_submitted_last_starts_among_the_first(
) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    for index in 0..200 {
        let body = format!(r#"{{"id":"low{index}","entrypoint":"sleep","args":["10ms"]}}"#);
        fleet
            .js
            .publish(
                subjects().jobs_with_priority("acme", "default", Priority::Low),
                body.into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    let urgent = submitted_id(&shoal(
        Some(&server),
        &[
            "job",
            "submit",
            "-g",
            "acme",
            "--id",
            "urgent",
            "--priority",
            "high",
            "sleep",
            "10ms",
        ],
    ));
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "2"]);

    let urgent = wait_for_job(&fleet, &format!("acme.{urgent}"), "succeeded", |job| {
        job.done
    })
    .await;
    assert_eq!(urgent.priority, shoal_protocol::Priority::High);
    let jobs = shoal_client::RecordStore::<shoal_protocol::JobRecord>::new(fleet.jobs.clone());
    let mut starts: Vec<(time::OffsetDateTime, String)> = jobs
        .read_all("acme.*")
        .await
        .expect("records")
        .into_iter()
        .filter_map(|job| job.started_at.map(|at| (at.0, job.id)))
        .collect();
    starts.sort();
    let place = starts
        .iter()
        .position(|(_, id)| id == "urgent")
        .expect("the urgent job started");
    assert!(
        place < 4,
        "the high-priority job started {}th of {}",
        place + 1,
        starts.len()
    );
}
