//! Faults and shutdown: a killed worker's job runs again, SIGTERM drains,
//! a lifetime ends the worker by itself.

use std::time::Duration;

use shoal_protocol::{JobState, WorkerStatus};

use crate::support::{
    eventually, subjects, wait_for_job, wait_for_worker, Fleet, NatsServer, ShoalProcess,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_worker_killed_mid_job_runs_again_elsewhere_and_succeeds_once() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let mut doomed = ShoalProcess::worker(&server, &["--group", "acme", "--name", "doomed"]);
    let doomed_id = fleet.worker_id("acme", "doomed").await;
    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"survivor","entrypoint":"sleep","args":["3s"]}"#,
        )
        .await;
    wait_for_job(
        &fleet,
        "acme.survivor",
        "running on the doomed worker",
        |job| {
            job.state == Some(JobState::Running)
                && job.worker_id.as_deref() == Some(doomed_id.as_str())
        },
    )
    .await;

    doomed.signal(libc::SIGKILL);
    doomed
        .wait_exit(Duration::from_secs(10))
        .expect("the killed worker is gone");
    let _rescuer = ShoalProcess::worker(&server, &["--group", "acme", "--name", "rescuer"]);

    let record = wait_for_job(&fleet, "acme.survivor", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    let rescuer_id = fleet.worker_id("acme", "rescuer").await;
    assert_eq!(record.worker_id.as_deref(), Some(rescuer_id.as_str()));
    assert_eq!(record.attempts, 2);
    assert_eq!(
        fleet
            .count_job_events("acme", "survivor", "succeeded")
            .await,
        1,
        "the job succeeded exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_job_lets_it_finish_then_the_worker_deregisters_and_exits_0() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let mut worker = ShoalProcess::worker(&server, &["--group", "acme", "--name", "polite"]);
    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"finish-me","entrypoint":"sleep","args":["2s"]}"#,
        )
        .await;
    wait_for_job(&fleet, "acme.finish-me", "running", |job| {
        job.state == Some(JobState::Running)
    })
    .await;

    worker.signal(libc::SIGTERM);
    let status = worker
        .wait_exit(Duration::from_secs(30))
        .expect("the worker exits after draining");
    assert_eq!(status.code(), Some(0), "log: {}", worker.log());

    let job = wait_for_job(&fleet, "acme.finish-me", "succeeded", |job| job.done).await;
    assert_eq!(job.state, Some(JobState::Succeeded));
    assert_eq!(job.attempts, 1, "the job was finished, not handed back");
    let record = wait_for_worker(
        &fleet,
        &format!("acme.{}", fleet.worker_id("acme", "polite").await),
        "offline",
        |worker| worker.status == Some(WorkerStatus::Offline),
    )
    .await;
    assert_eq!(record.jobs_run, 1);
    assert!(record.deregistered_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_lifetime_of_3s_drains_and_exits_by_itself() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let mut worker = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "mortal", "--lifetime", "3s"],
    );
    wait_for_worker(
        &fleet,
        &format!("acme.{}", fleet.worker_id("acme", "mortal").await),
        "online",
        |worker| worker.status == Some(WorkerStatus::Online),
    )
    .await;

    let status = worker
        .wait_exit(Duration::from_secs(30))
        .expect("the worker exits at the end of its lifetime");
    assert_eq!(status.code(), Some(0), "log: {}", worker.log());
    let record = wait_for_worker(
        &fleet,
        &format!("acme.{}", fleet.worker_id("acme", "mortal").await),
        "offline",
        |worker| worker.status == Some(WorkerStatus::Offline),
    )
    .await;
    let lived = record.deregistered_at.expect("deregistered").0
        - record.registered_at.expect("registered").0;
    assert!(
        lived >= Duration::from_secs(3),
        "it left after {lived}, before its lifetime"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_when_the_grace_period_ends_is_handed_back_and_runs_again() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let mut hasty = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "hasty", "--grace-period", "1s"],
    );
    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"long","entrypoint":"sleep","args":["4s"]}"#,
        )
        .await;
    wait_for_job(&fleet, "acme.long", "running", |job| {
        job.state == Some(JobState::Running)
    })
    .await;

    hasty.signal(libc::SIGTERM);
    let status = hasty
        .wait_exit(Duration::from_secs(20))
        .expect("the worker exits after its grace period");
    assert_eq!(status.code(), Some(0), "log: {}", hasty.log());
    let offline = wait_for_worker(
        &fleet,
        &format!("acme.{}", fleet.worker_id("acme", "hasty").await),
        "offline",
        |worker| worker.status == Some(WorkerStatus::Offline),
    )
    .await;
    assert_eq!(offline.jobs_run, 0, "the job was handed back, not finished");

    let _patient = ShoalProcess::worker(&server, &["--group", "acme", "--name", "patient"]);
    let record = wait_for_job(&fleet, "acme.long", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    let patient_id = fleet.worker_id("acme", "patient").await;
    assert_eq!(record.worker_id.as_deref(), Some(patient_id.as_str()));
    assert_eq!(record.attempts, 2);
}

/// Whether a process is gone (or a zombie waiting to be reaped).
fn is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_ends_timed_out_and_no_process_of_it_survives() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let pids = worker.dir.path().join("output/acme/pids");
    std::fs::create_dir_all(&pids).expect("pid dir");
    // Both ignore SIGTERM: only the SIGKILL after the grace period ends them.
    let script = "trap '' TERM; sleep 60 & echo $! > child; echo $$ > parent; wait";
    let body = serde_json::json!({"id": "slow", "command": ["sh", "-c", script], "working_dir": pids, "timeout": "1s"});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;

    let record = wait_for_job(&fleet, "acme.slow", "timed out", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::TimedOut));
    assert_eq!(record.error_text.as_deref(), Some("timed out after 1s"));
    for name in ["parent", "child"] {
        let pid = std::fs::read_to_string(pids.join(name)).expect("pid file");
        assert!(
            is_gone(pid.trim()),
            "the {name} process {pid} survived its job"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_whose_stop_request_never_came_still_stops_the_running_job() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let pids = worker.dir.path().join("output/acme/pids");
    std::fs::create_dir_all(&pids).expect("pid dir");
    let body = serde_json::json!({"id": "unstoppable", "command": ["sh", "-c", "echo $$ > pid; exec sleep 60"], "working_dir": pids});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    let running = wait_for_job(&fleet, "acme.unstoppable", "running", |job| {
        job.state == Some(JobState::Running)
    })
    .await;
    let pid = eventually(Duration::from_secs(15), "the job started", || async {
        std::fs::read_to_string(pids.join("pid"))
            .ok()
            .filter(|pid| !pid.trim().is_empty())
    })
    .await;
    // The cancel as the registry records it, but no stop request: as if
    // it had been sent while the worker was reconnecting.
    let mut event = shoal_protocol::JobEvent::new(
        shoal_protocol::JobEventType::Cancelled,
        "acme",
        "default",
        "unstoppable",
        running.attempt,
        shoal_protocol::Timestamp::now(),
    );
    event.worker_id = running.worker_id.clone();
    fleet
        .js
        .publish(
            subjects().job_event("acme", "unstoppable"),
            serde_json::to_vec(&event).expect("event").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    let what = "the cancelled job stopped";
    eventually(Duration::from_secs(15), what, || async {
        if is_gone(pid.trim()) {
            Ok(())
        } else {
            Err(worker.log())
        }
    })
    .await;
    let record = crate::support::job_record(&fleet, "acme.unstoppable")
        .await
        .expect("the record");
    assert_eq!(record.state, Some(JobState::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_attempt_of_a_worker_cut_off_past_its_ack_wait_reports_nothing() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let paused = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--name",
            "paused",
            "--allow-exec",
            "true",
        ],
    );
    // Attempt 1 fails after 4 s; attempt 2 succeeds after 5 s, so that the
    // first ends while the second runs.
    let script = r#"if [ "$SHOAL_ATTEMPT" = 1 ]; then sleep 4; exit 1; fi; sleep 5"#;
    let body = serde_json::json!({"id": "stale", "command": ["sh", "-c", script]});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    wait_for_job(&fleet, "acme.stale", "running", |job| {
        job.state == Some(JobState::Running)
    })
    .await;
    // Cut off: no progress acks, so after the ack wait the job goes to another worker.
    paused.signal(libc::SIGSTOP);
    let _other = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "other", "--allow-exec", "true"],
    );
    wait_for_job(&fleet, "acme.stale", "on its second attempt", |job| {
        job.attempts >= 2
    })
    .await;
    paused.signal(libc::SIGCONT);
    let record = wait_for_job(&fleet, "acme.stale", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded), "{record:?}");
    assert_eq!(record.attempt, 2);
    // The first attempt ended (failed) after the second had started: once
    // the paused worker has settled it, it has reported nothing.
    let what = "the paused worker settled its stale attempt";
    eventually(Duration::from_secs(15), what, || async {
        let log = paused.log();
        if log.contains("a later attempt started") {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    assert_eq!(fleet.count_job_events("acme", "stale", "failed").await, 0);
    let record = crate::support::job_record(&fleet, "acme.stale")
        .await
        .expect("the record");
    assert_eq!(record.state, Some(JobState::Succeeded));
}
