//! What a job can reach of its worker: not its login, wherever the kernel
//! shows it, and not one process of it may outlive a worker killed with
//! SIGKILL, however the job spread its processes.

use std::time::Duration;

use shoal_protocol::JobState;

use crate::support::secure::{declare_queues, services, SecureServer};
use crate::support::{eventually, names, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess};

/// Prints the environment of the job's process and of every process above
/// it, up to the first one: what the job could read of its ancestors.
const READ_ANCESTORS: &str = r#"pid=$$
while [ "$pid" -gt 1 ]; do
  echo "== $pid"
  tr '\0' '\n' < /proc/$pid/environ 2>/dev/null
  pid=$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f2)
done"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reads_no_login_of_its_worker_in_the_environment_of_any_process_above_it() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    let url = secure.server.url.clone();
    declare_queues(&url, "acme", &secure.login("acme-admin"));
    let _worker = ShoalProcess::worker_with_env(
        &url,
        &["--group", "acme", "--allow-exec", "true"],
        &secure.login("acme-worker"),
    );
    let body = serde_json::json!({"id": "peek", "command": ["sh", "-c", READ_ANCESTORS]});
    let sequence = services
        .fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    assert!(sequence > 0);
    let record = wait_for_job(&services.fleet, "acme.peek", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded), "{record:?}");
    let output = job_output(&services.fleet, "acme", "peek").await;
    let ancestors = output.matches("== ").count();
    assert!(
        ancestors >= 3,
        "the job, its guard and its worker at least: {output}"
    );
    let password = secure.password("acme-worker");
    assert!(
        !output.contains(&password),
        "the worker's password is readable by its job: {output}"
    );
    assert!(!output.contains("SHOAL_PASSWORD=pw"), "{output}");
}

/// The whole output of a job, from its log stream.
async fn job_output(fleet: &Fleet, group: &str, id: &str) -> String {
    let chunks = fleet
        .stored(&names().logs_stream(), &subjects().logs(group, id))
        .await;
    chunks
        .iter()
        .map(|chunk| String::from_utf8_lossy(&chunk.payload).into_owned())
        .collect()
}

/// The pids of live processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<String> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|arg| [arg.as_bytes(), b"\0"].concat())
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| cmd == wanted))
        .filter(|pid| !is_zombie(pid))
        .collect()
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_of_a_job_dies_when_its_worker_is_killed_with_sigkill() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    // Unique durations name the job's processes: one in its group, one in
    // a session of its own, one whose parent exits at once (an orphan).
    let marks = ["3101", "3102", "3103", "3104"];
    let script = format!(
        "sleep {} & setsid sleep {} & (sleep {} &) ; echo spread; sleep {}",
        marks[0], marks[1], marks[2], marks[3]
    );
    let worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let body = serde_json::json!({"id": "spread", "command": ["sh", "-c", script]});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    eventually(Duration::from_secs(30), "the job spread", || async {
        if marks
            .iter()
            .all(|mark| !processes_running(&["sleep", mark]).is_empty())
        {
            Ok(())
        } else {
            Err(worker.log())
        }
    })
    .await;

    worker.signal(libc::SIGKILL);
    let what = "no process of the job outlives its worker";
    eventually(Duration::from_secs(10), what, || async {
        let left: Vec<(&str, Vec<String>)> = marks
            .iter()
            .map(|mark| (*mark, processes_running(&["sleep", mark])))
            .filter(|(_, pids)| !pids.is_empty())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_supervised_pool_reads_no_secret_of_its_supervisor() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let pool = "name: guarded\nversion: v1\ntype: pool\npool:\n  queues: [default]\n  group: acme\n  replicas: 1\n  secrets:\n    - name: API_KEY\n      ref: env:SUPERVISOR_SECRET\n";
    let _supervisor = ShoalProcess::supervisor(
        &server,
        pool,
        &[],
        &[
            ("SUPERVISOR_SECRET", "marker-7f2c"),
            ("SHOAL_SUPERVISOR_REPLICA_TOKEN_UNUSED", "marker-9d1e"),
            ("SHOAL_WORKER_ALLOW_EXEC", "true"),
        ],
    );
    let body = serde_json::json!({"id": "peek", "command": ["sh", "-c", READ_ANCESTORS]});
    fleet
        .publish_job("acme", "default", &body.to_string())
        .await;
    let record = wait_for_job(&fleet, "acme.peek", "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded), "{record:?}");
    let output = job_output(&fleet, "acme", "peek").await;
    assert!(
        output.matches("== ").count() >= 4,
        "job, guard, worker, supervisor: {output}"
    );
    // The secret reaches the job as the pool says (API_KEY), but not the
    // supervisor's own variables, which only it should read.
    assert!(output.contains("API_KEY=marker-7f2c"), "{output}");
    assert!(!output.contains("SUPERVISOR_SECRET=marker"), "{output}");
    assert!(!output.contains("marker-9d1e"), "{output}");
}
