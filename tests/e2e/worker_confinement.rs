//! A worker and its jobs kept to what they are given: a worker's login
//! takes only its own group's jobs, no job sees it and it is written
//! nowhere; a job sets no protected variable and leaves its output folder
//! only when the worker allows it.

use std::time::{Duration, Instant};

use shoal_protocol::JobState;

use crate::support::process::shoal_with_env;
use crate::support::secure::{
    assert_no_secret_written, declare_queues, services, waiting_job, SecureServer,
};
use crate::support::{wait_for_job, Fleet, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_its_groups_login_runs_its_jobs_and_cannot_take_another_groups() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    let url = secure.server.url.clone();
    waiting_job(&services.fleet, "globex").await;

    // Told to serve globex with acme's login: the server denies it, and the
    // worker says so and exits instead of waiting.
    let started = Instant::now();
    let mut stray =
        ShoalProcess::worker_with_env(&url, &["--group", "globex"], &secure.login("acme-worker"));
    let status = stray
        .wait_exit(Duration::from_secs(30))
        .expect("the misconfigured worker exits");
    assert!(!status.success());
    let log = stray.log();
    assert!(
        log.contains("denied") && log.contains("Permissions Violation"),
        "{log}"
    );
    eprintln!("misconfigured worker exited after {:?}", started.elapsed());
    let job = crate::support::job_record(&services.fleet, "globex.waiting")
        .await
        .expect("the globex job");
    assert_eq!(
        job.state,
        Some(JobState::Queued),
        "the globex job was not taken"
    );

    // The same login serving its own group runs its jobs, once an admin
    // of the group has declared its queues (a worker may not create them).
    declare_queues(&url, "acme", &secure.login("acme-admin"));
    let worker = ShoalProcess::worker_with_env(
        &url,
        &[
            "--group",
            "acme",
            "--entrypoint",
            "hello=echo hello",
            "--entrypoint",
            "env=env",
        ],
        &secure.login("acme-worker"),
    );
    let (submitted, logs) = run_in_acme(&secure, &services.fleet, "hi", "hello").await;
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "hello\n",
        "{}",
        worker.log()
    );
    // A job sees none of the worker's own variables: its login stays its own.
    let (dumped, env_output) = run_in_acme(&secure, &services.fleet, "env", "env").await;
    let env_text = String::from_utf8_lossy(&env_output.stdout).into_owned();
    assert!(env_text.contains("SHOAL_JOB_ID=env"), "{env_text}");
    assert!(!env_text.contains("SHOAL_PASSWORD"), "{env_text}");

    let help = shoal_with_env(
        Some(&url),
        &["worker", "run", "--help"],
        &secure.login("acme-worker"),
    );
    let outputs = [submitted, logs, dumped, env_output, help]
        .iter()
        .map(|output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .collect::<Vec<_>>();
    let mut texts = vec![stray.log(), worker.log()];
    texts.extend(outputs);
    assert_no_secret_written(&secure, &services, &texts).await;
}

/// Submits job `id` running `entrypoint` in acme as acme-write, waits for
/// it to succeed, and reads its output as acme-read.
async fn run_in_acme(
    secure: &SecureServer,
    fleet: &Fleet,
    id: &str,
    entrypoint: &str,
) -> (std::process::Output, std::process::Output) {
    let url = secure.server.url.as_str();
    let submitted = shoal_with_env(
        Some(url),
        &["job", "submit", "--group", "acme", "--id", id, entrypoint],
        &secure.login("acme-write"),
    );
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let record = wait_for_job(fleet, &format!("acme.{id}"), "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    let logs = shoal_with_env(
        Some(url),
        &["job", "logs", "--group", "acme", id],
        &secure.login("acme-read"),
    );
    (submitted, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_may_not_set_protected_variables_or_leave_the_output_dir_unless_the_worker_allows_it()
{
    let server = crate::support::NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let strict = ShoalProcess::worker(&server, &["--group", "strict", "--allow-exec", "true"]);
    let lenient = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "lenient",
            "--allow-exec",
            "true",
            "--allow-protected-env",
            "true",
            "--allow-any-working-dir",
            "true",
        ],
    );
    let outside = crate::support::server::TempDir::new("outside");
    let outside_dir = outside.path().display().to_string();
    let jobs = [
        (
            "preload",
            serde_json::json!({"env": {"LD_PRELOAD": "/tmp/x.so"}}),
        ),
        ("path", serde_json::json!({"env": {"PATH": "/tmp"}})),
        ("elsewhere", serde_json::json!({"working_dir": outside_dir})),
        ("climb", serde_json::json!({"working_dir": "../../../.."})),
    ];
    for group in ["strict", "lenient"] {
        for (id, extra) in &jobs {
            let mut body = serde_json::json!({"id": id, "command": ["/bin/sh", "-c", "pwd"]});
            for (key, value) in extra.as_object().expect("object") {
                body[key] = value.clone();
            }
            fleet.publish_job(group, "default", &body.to_string()).await;
        }
    }
    for (id, _) in &jobs {
        let refused = wait_for_job(&fleet, &format!("strict.{id}"), "failed", |job| job.done).await;
        assert_eq!(refused.state, Some(JobState::Failed), "{}", strict.log());
        let reason = refused.error_text.unwrap_or_default();
        assert!(
            reason.starts_with("env:") || reason.starts_with("working_dir:"),
            "{id}: {reason}"
        );
        let allowed = wait_for_job(&fleet, &format!("lenient.{id}"), "succeeded", |job| {
            job.done
        })
        .await;
        assert_eq!(
            allowed.state,
            Some(JobState::Succeeded),
            "{id}: {}",
            lenient.log()
        );
    }
}
