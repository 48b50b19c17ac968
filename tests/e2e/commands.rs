//! The commands agree, as a newcomer tries them: one default group, flags
//! recognised wherever they stand, `-g` wherever a group is taken, values
//! of enumerated flags checked, `apply -f` as kubectl users expect it, and
//! exit codes of the command's own failures that no job's outcome takes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use shoal_protocol::JobState;

use crate::support::process::{shoal_binary, wait_for_service};
use crate::support::server::TempDir;
use crate::support::{job_record, shoal, wait_for_job, Fleet, NatsServer, ShoalProcess};

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_job_a_newcomer_submits_runs_on_the_worker_they_started() {
    let server = NatsServer::start();
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &[]);
    let submitted = shoal(Some(&server), &["job", "submit", "noop"]);
    assert!(submitted.status.success(), "{}", stderr_of(&submitted));
    let id = stdout_of(&submitted);
    let waited = shoal(Some(&server), &["job", "wait", &id, "--timeout", "30s"]);
    assert_eq!(waited.status.code(), Some(0), "{}", stderr_of(&waited));
    let listed = stdout_of(&shoal(Some(&server), &["get", "jobs"]));
    assert!(
        listed
            .lines()
            .any(|line| line.starts_with("default") && line.contains(&id)),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_after_the_entrypoint_are_flags_and_arguments_like_flags_go_after_a_double_dash() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let late_flags = [
        "job", "submit", "-g", "tools", "show", "a", "--env", "FOO=bar", "--id", "late",
    ];
    let submitted = shoal(Some(&server), &late_flags);
    assert!(submitted.status.success(), "{}", stderr_of(&submitted));
    let record = wait_for_job(&fleet, "tools.late", "queued", |job| job.state.is_some()).await;
    assert_eq!(record.args, vec!["a".to_string()]);
    assert_eq!(record.env_names, vec!["FOO".to_string()]);

    let dashed = [
        "job",
        "submit",
        "-g",
        "tools",
        "--id",
        "dashed",
        "show",
        "--",
        "--verbose",
    ];
    let submitted = shoal(Some(&server), &dashed);
    assert!(submitted.status.success(), "{}", stderr_of(&submitted));
    let record = wait_for_job(&fleet, "tools.dashed", "queued", |job| job.state.is_some()).await;
    assert_eq!(record.args, vec!["--verbose".to_string()]);

    let unknown = shoal(
        Some(&server),
        &["job", "submit", "-g", "tools", "show", "--bogus"],
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr_of(&unknown).contains("--bogus"),
        "{}",
        stderr_of(&unknown)
    );
    assert!(job_record(&fleet, "tools.bogus").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_no_record_can_be_in_is_refused_with_the_states_there_are() {
    let server = NatsServer::start();
    let typo = shoal(Some(&server), &["get", "jobs", "--state", "deadd"]);
    assert_eq!(typo.status.code(), Some(64));
    let stderr = stderr_of(&typo);
    assert!(
        stderr.contains("state: `deadd` is no job state") && stderr.contains("dead, missing"),
        "{stderr}"
    );
    let workers = shoal(Some(&server), &["get", "workers", "--state", "dead"]);
    assert_eq!(workers.status.code(), Some(64));
    assert!(stderr_of(&workers).contains("online, draining"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_wait_exits_75_when_it_gives_up_and_an_invalid_id_is_said_once() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let submitted = shoal(
        Some(&server),
        &[
            "job", "submit", "-g", "acme", "-q", "nobody", "--id", "idle", "noop",
        ],
    );
    assert!(submitted.status.success(), "{}", stderr_of(&submitted));
    wait_for_job(&fleet, "acme.idle", "queued", |job| {
        job.state == Some(JobState::Queued)
    })
    .await;
    let waited = shoal(
        Some(&server),
        &["job", "wait", "idle", "-g", "acme", "--timeout", "1s"],
    );
    assert_eq!(waited.status.code(), Some(75), "{}", stderr_of(&waited));
    assert!(stderr_of(&waited).contains("did not end within 1s"));

    let missing = shoal(Some(&server), &["job", "get", "nothing-here"]);
    assert_eq!(missing.status.code(), Some(66), "{}", stderr_of(&missing));
    let invalid = shoal(Some(&server), &["job", "submit", "--id", "a b", "noop"]);
    assert_eq!(invalid.status.code(), Some(64), "{}", stderr_of(&invalid));
    let stderr = stderr_of(&invalid);
    assert_eq!(stderr.matches("id:").count(), 1, "{stderr}");
}

const POOL: &str = "name: NAME\nversion: v1\ntype: pool\npool:\n  queues: [video]\n";

fn apply_from_stdin(server: &NatsServer, yaml: &str) -> Output {
    let mut child = Command::new(shoal_binary())
        .args(["apply", "-g", "acme", "-f", "-"])
        .env("SHOAL_NATS_URL", &server.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shoal apply");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write the resource");
    child.wait_with_output().expect("shoal apply ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_takes_files_folders_and_standard_input_and_a_dry_run_changes_nothing() {
    let server = NatsServer::start();
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::start(&server, &["registry", "run"]);
    wait_for_service(&server, "shoal-registry").await;
    let dir = TempDir::new("apply");
    let folder = dir.path().to_path_buf();
    for name in ["one", "two"] {
        let file = folder.join(format!("{name}.yaml"));
        std::fs::write(&file, POOL.replace("NAME", name)).expect("resource file");
    }
    std::fs::write(folder.join("notes.txt"), "not a resource").expect("other file");
    let single = folder.join("single.yml");
    std::fs::write(&single, POOL.replace("NAME", "three")).expect("resource file");
    let folder_text = folder.to_str().expect("utf-8");

    let dry = shoal(
        Some(&server),
        &["apply", "-g", "acme", "-f", folder_text, "--dry-run"],
    );
    assert!(dry.status.success(), "{}", stderr_of(&dry));
    assert_eq!(
        stdout_of(&dry)
            .matches("would be created (dry run)")
            .count(),
        3
    );
    let pools =
        |server: &NatsServer| stdout_of(&shoal(Some(server), &["get", "-t", "pool", "-g", "acme"]));
    assert!(!pools(&server).contains("one"), "a dry run stored nothing");

    let applied = shoal(Some(&server), &["apply", "-g", "acme", "-f", folder_text]);
    assert!(applied.status.success(), "{}", stderr_of(&applied));
    assert_eq!(stdout_of(&applied).matches(": created").count(), 3);
    let from_stdin = apply_from_stdin(&server, &POOL.replace("NAME", "four"));
    assert!(from_stdin.status.success(), "{}", stderr_of(&from_stdin));
    let listed = pools(&server);
    for name in ["one", "two", "three", "four"] {
        assert!(listed.contains(name), "{name} in {listed}");
    }
    let deleted = shoal(
        Some(&server),
        &[
            "delete",
            "-g",
            "acme",
            "-f",
            single.to_str().expect("utf-8"),
        ],
    );
    assert!(deleted.status.success(), "{}", stderr_of(&deleted));
    assert!(!pools(&server).contains("three"));
}
