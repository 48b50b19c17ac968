//! `shoal supervise`: a pool's replicas as real processes, scaled on the
//! queue's backlog and drained after a cooldown without losing or repeating
//! a job; a replica killed outright is restarted and its job runs again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shoal_protocol::supervisor::{PoolEvent, PoolEventType, ReplicaStatus, SupervisorRecord};
use shoal_protocol::{JobRecord, JobState};

use crate::support::kv::wait_for_supervisor;
use crate::support::server::TempDir;
use crate::support::{
    eventually, names, shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess,
};

/// Worker settings the replicas inherit from the supervisor's environment:
/// short polls and heartbeats, so that a test runs in seconds.
const QUICK_WORKERS: &[(&str, &str)] = &[
    ("SHOAL_WORKER_POLLING_INTERVAL", "1s"),
    ("SHOAL_WORKER_HEARTBEAT_INTERVAL", "1s"),
];

/// As [`QUICK_WORKERS`], with a short ack wait so that a killed replica's
/// job is delivered again within seconds.
const QUICK_REDELIVERY: &[(&str, &str)] = &[
    ("SHOAL_WORKER_POLLING_INTERVAL", "1s"),
    ("SHOAL_WORKER_HEARTBEAT_INTERVAL", "1s"),
    ("SHOAL_WORKER_ACK_WAIT", "2s"),
];

fn running(record: &SupervisorRecord) -> usize {
    record.running_replicas()
}

/// Every running replica has registered: its worker id is known.
fn all_registered(record: &SupervisorRecord) -> bool {
    record
        .replicas
        .iter()
        .all(|replica| replica.worker_id.is_some())
}

/// The pool events stored for `acme`/`pool`, in order.
async fn pool_events(fleet: &Fleet, pool: &str) -> Vec<PoolEvent> {
    fleet
        .stored(
            &names().events_stream(),
            &subjects().pool_event("acme", pool),
        )
        .await
        .iter()
        .map(|message| serde_json::from_slice(&message.payload).expect("a pool event"))
        .collect()
}

/// Waits until `count` job records of `acme` are done, at most `timeout`.
async fn wait_until_done(fleet: &Fleet, count: usize, timeout: Duration) -> Vec<JobRecord> {
    let store = shoal_client::RecordStore::<JobRecord>::new(fleet.jobs.clone());
    let what = format!("{count} jobs of acme done");
    eventually(timeout, &what, || async {
        let records = store.read_all("acme.*").await.expect("job records");
        let done = records.iter().filter(|record| record.done).count();
        if done >= count {
            Ok(records)
        } else {
            Err(format!("{done} done"))
        }
    })
    .await
}

/// How many events of each type every job of `acme` has.
async fn job_event_counts(fleet: &Fleet) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let all_of_acme = subjects().job_event("acme", ">");
    for message in fleet.stored(&names().events_stream(), &all_of_acme).await {
        let event: shoal_protocol::JobEvent =
            serde_json::from_slice(&message.payload).expect("a job event");
        let kind = serde_json::to_value(event.kind).expect("a kind");
        *counts
            .entry(event.job_id)
            .or_default()
            .entry(kind.as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    counts
}

/// Stops the supervisor with SIGTERM: it drains its replicas and exits 0,
/// leaving a final state with no replica.
async fn stop(fleet: &Fleet, supervisor: &mut ShoalProcess, key: &str) {
    supervisor.signal(libc::SIGTERM);
    let status = supervisor
        .wait_exit(Duration::from_secs(60))
        .expect("the supervisor exits after its drain");
    assert!(status.success(), "{status:?}\n{}", supervisor.log());
    let last = wait_for_supervisor(fleet, key, "stopped", Duration::from_secs(5), |record| {
        !record.running
    })
    .await;
    assert!(last.replicas.is_empty(), "{last:?}");
    assert_eq!(last.desired, 0);
}

const BULK_POOL: &str = "name: bulk\nversion: v1\ntype: pool\npool:\n  queues: [default]\n  group: acme\n  concurrency: 2\n  replicas: 1\n  autoscaling:\n    enabled: true\n    minReplicas: 1\n    maxReplicas: 6\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_scales_up_with_its_backlog_and_back_down_after_the_cooldown() {
    let started = Instant::now();
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let mut supervisor = ShoalProcess::supervisor(
        &server,
        BULK_POOL,
        &[
            "--cooldown",
            "3s",
            "--poll-interval",
            "500ms",
            "--target-backlog",
            "5",
        ],
        QUICK_WORKERS,
    );
    let key = "acme.bulk";
    let wait = Duration::from_secs(30);
    wait_for_supervisor(&fleet, key, "one registered replica", wait, |record| {
        running(record) == 1 && all_registered(record)
    })
    .await;

    let jobs = 500;
    let mut acks = Vec::with_capacity(jobs);
    for index in 0..jobs {
        let body = format!(r#"{{"id":"bulk-{index}","entrypoint":"sleep","args":["200ms"]}}"#);
        let ack = fleet
            .js
            .publish(subjects().jobs("acme", "default"), body.into())
            .await
            .expect("publish");
        acks.push(ack);
    }
    for ack in acks {
        ack.await.expect("stored");
    }

    let full = wait_for_supervisor(&fleet, key, "6 replicas", wait, |record| {
        running(record) == 6
    })
    .await;
    eprintln!(
        "6 replicas after {:?}: {:?}",
        started.elapsed(),
        full.last_decision
    );
    let records = wait_until_done(&fleet, jobs, Duration::from_secs(120)).await;
    let back = wait_for_supervisor(
        &fleet,
        key,
        "back to 1 replica",
        Duration::from_secs(60),
        |record| record.desired == 1 && record.replicas.len() == 1 && running(record) == 1,
    )
    .await;
    assert_eq!(back.restarts, 0, "a drained replica is not a restart");

    assert_eq!(records.len(), jobs);
    assert!(records
        .iter()
        .all(|record| record.state == Some(JobState::Succeeded)));
    let counts = job_event_counts(&fleet).await;
    assert_eq!(counts.len(), jobs, "every job has events");
    for (job, kinds) in &counts {
        assert_eq!(
            kinds.get("succeeded"),
            Some(&1),
            "{job} succeeded once: {kinds:?}"
        );
        assert_eq!(kinds.get("started"), Some(&1), "{job} ran once: {kinds:?}");
    }

    let events = pool_events(&fleet, "bulk").await;
    let scaled: Vec<&PoolEvent> = events
        .iter()
        .filter(|event| event.kind == PoolEventType::Scaled)
        .collect();
    let up = scaled
        .iter()
        .position(|event| event.to == Some(6))
        .unwrap_or_else(|| panic!("no scale-up to 6: {scaled:#?}"));
    assert!(
        scaled[up].why.starts_with("backlog "),
        "{:?}",
        scaled[up].why
    );
    let down = scaled[up..]
        .iter()
        .find(|event| event.to == Some(1))
        .unwrap_or_else(|| panic!("no scale-down to 1: {scaled:#?}"));
    assert!(down.why.contains("cooldown passed"), "{:?}", down.why);
    assert!(!events
        .iter()
        .any(|event| event.kind == PoolEventType::ReplicaRestarted));
    let rejected = fleet
        .stored(&names().events_stream(), &subjects().rejected())
        .await;
    assert!(
        rejected.is_empty(),
        "the projector read every event: {:?}",
        rejected
            .iter()
            .map(|message| String::from_utf8_lossy(&message.payload).into_owned())
            .collect::<Vec<_>>()
    );

    stop(&fleet, &mut supervisor, key).await;
    eprintln!("scaled up, drained and down in {:?}", started.elapsed());
}

const TOUGH_POOL: &str = "name: tough\nversion: v1\ntype: pool\npool:\n  queues: [default]\n  group: acme\n  replicas: 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_by_sigkill_is_restarted_and_its_job_runs_again() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let mut supervisor = ShoalProcess::supervisor(
        &server,
        TOUGH_POOL,
        &["--restart-backoff", "200ms"],
        QUICK_REDELIVERY,
    );
    let key = "acme.tough";
    let wait = Duration::from_secs(30);
    let first = wait_for_supervisor(&fleet, key, "one registered replica", wait, |record| {
        running(record) == 1 && all_registered(record)
    })
    .await;
    let doomed = first.replicas[0].clone();
    let doomed_id = doomed.worker_id.clone().expect("registered");
    let doomed_pid = doomed.pid.expect("a pid");

    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"survivor","entrypoint":"sleep","args":["3s"]}"#,
        )
        .await;
    wait_for_job(&fleet, "acme.survivor", "running on the replica", |job| {
        job.state == Some(JobState::Running) && job.worker_id.as_deref() == Some(doomed_id.as_str())
    })
    .await;
    crate::support::process::send_signal(doomed_pid, libc::SIGKILL);

    let restarted = wait_for_supervisor(&fleet, key, "restarted", wait, |record| {
        record.restarts == 1
            && record.replicas.len() == 1
            && record.replicas[0].status == ReplicaStatus::Running
            && record.replicas[0].worker_id.is_some()
    })
    .await;
    let replica = &restarted.replicas[0];
    assert_ne!(replica.pid, Some(doomed_pid));
    assert_eq!(replica.restarts, 1);
    let rescuer_id = replica.worker_id.clone().expect("registered");

    let record = wait_for_job(&fleet, "acme.survivor", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    assert_eq!(record.attempts, 2);
    assert_eq!(record.worker_id.as_deref(), Some(rescuer_id.as_str()));
    assert_eq!(
        fleet
            .count_job_events("acme", "survivor", "succeeded")
            .await,
        1
    );

    let restarts: Vec<PoolEvent> = pool_events(&fleet, "tough")
        .await
        .into_iter()
        .filter(|event| event.kind == PoolEventType::ReplicaRestarted)
        .collect();
    assert_eq!(restarts.len(), 1, "{restarts:#?}");
    assert_eq!(restarts[0].pid, Some(doomed_pid));
    assert_eq!(restarts[0].worker_id.as_deref(), Some(doomed_id.as_str()));
    assert!(
        restarts[0].why.contains("killed by signal 9"),
        "{:?}",
        restarts[0].why
    );

    stop(&fleet, &mut supervisor, key).await;
}

#[test]
fn a_pool_that_cannot_run_here_is_refused_with_the_field_and_exit_64() {
    let example = crate::support::server::repo_dir().join("deploy/examples/video-pool.yaml");
    let output = shoal(
        None,
        &["supervise", "-f", example.to_str().expect("utf-8 path")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.starts_with("error: pool.secrets[0] (STORAGE_TOKEN): `k8s:acme/storage-token`"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let dir = TempDir::new("bad-pool");
    let file = dir.path().join("pool.yaml");
    std::fs::write(
        &file,
        BULK_POOL.replace("maxReplicas: 6", "maxReplicas: six"),
    )
    .expect("file");
    let output = shoal(
        None,
        &["supervise", "-f", file.to_str().expect("utf-8 path")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("pool.autoscaling.maxReplicas: invalid type"),
        "{stderr}"
    );
}

const HOT_POOL: &str = "name: hot\nversion: v1\ntype: pool\npool:\n  queues: [default]\n  group: acme\n  replicas: 1\n  concurrency: 1\n  autoscaling:\n    enabled: true\n    minReplicas: 1\n    maxReplicas: 2\n    targetCPUUtilizationPercentage: 50\n  resources:\n    requests: {cpu: 100m}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_pool_whose_job_burns_cpu_past_its_target_gets_a_replica_more() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let dir = TempDir::new("hot");
    let pool = dir.path().join("pool.yaml");
    std::fs::write(&pool, HOT_POOL).expect("pool file");
    let applied = shoal(
        Some(&server),
        &["apply", "-f", pool.to_str().expect("utf-8")],
    );
    assert!(applied.status.success(), "{applied:?}");
    // Six seconds of one busy core: far past 50% of a 100m request.
    let script = dir.path().join("burn.sh");
    std::fs::write(&script, "timeout 6 sh -c 'while :; do :; done'\nexit 0\n").expect("script");
    let entrypoint = format!("burn=sh {}", script.display());
    let mut env = QUICK_WORKERS.to_vec();
    env.push(("SHOAL_WORKER_ENTRYPOINTS", &entrypoint));
    let mut supervisor = ShoalProcess::start_with(
        &server,
        &[
            "supervise",
            "--pool",
            "hot",
            "-w",
            "acme",
            "--target-backlog",
            "1000",
            "--cooldown",
            "60s",
        ],
        &env,
    );
    let key = "acme.hot";
    let wait = Duration::from_secs(30);
    wait_for_supervisor(&fleet, key, "one registered replica", wait, |record| {
        running(record) == 1 && all_registered(record)
    })
    .await;

    fleet
        .publish_job("acme", "default", r#"{"id":"burn","entrypoint":"burn"}"#)
        .await;
    let hot = wait_for_supervisor(&fleet, key, "2 replicas", wait, |record| {
        running(record) == 2
    })
    .await;
    let decision = hot.last_decision.expect("a decision");
    eprintln!("scaled on cpu: {} (load {:?})", decision.why, hot.load);
    assert_eq!((decision.from, decision.to), (Some(1), Some(2)));
    assert!(
        decision.why.starts_with("cpu ") && decision.why.ends_with("% > 50%"),
        "{:?}",
        decision.why
    );
    let record = wait_for_job(&fleet, "acme.burn", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    stop(&fleet, &mut supervisor, key).await;
}
