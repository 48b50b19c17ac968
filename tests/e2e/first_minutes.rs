//! The first minutes with Shoal: logs meant for people, a worker that stops
//! at once when it has nothing to do, shell completions.

use std::time::Duration;

use crate::support::{eventually, shoal, wait_for_job, Fleet, NatsServer, ShoalProcess};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_stops_at_once_on_sigterm_even_in_a_long_poll() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    // A poll far longer than the wait below: the worker must end it.
    let output = crate::support::server::TempDir::new("idle");
    let output_dir = output.path().display().to_string();
    let mut idle = ShoalProcess::start(
        &server,
        &[
            "worker",
            "run",
            "--group",
            "acme",
            "--name",
            "idle",
            "--polling-interval",
            "10m",
            "--output-dir",
            &output_dir,
        ],
    );
    fleet.worker_id("acme", "idle").await;
    idle.signal(libc::SIGTERM);
    let status = idle
        .wait_exit(WAIT)
        .expect("the idle worker stopped before its poll ended");
    assert!(status.success(), "{}", idle.log());

    // Nothing was left in the ended pull: the next job runs on another worker.
    fleet
        .publish_job("acme", "default", r#"{"id":"after","entrypoint":"noop"}"#)
        .await;
    let _next = ShoalProcess::worker(&server, &["--group", "acme", "--name", "next"]);
    wait_for_job(&fleet, "acme.after", "succeeded", |job| job.done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_logs_hold_one_line_per_job_and_none_per_connection() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    let jobs = [
        ("quiet-1", r#"{"id":"quiet-1","entrypoint":"noop"}"#),
        ("quiet-2", r#"{"id":"quiet-2","entrypoint":"noop"}"#),
        (
            "quiet-3",
            r#"{"id":"quiet-3","entrypoint":"nope","retry":{"max_attempts":3,"initial":"100ms"}}"#,
        ),
    ];
    for (_, body) in jobs {
        fleet.publish_job("acme", "default", body).await;
    }
    for (id, _) in jobs {
        wait_for_job(&fleet, &format!("acme.{id}"), "ended", |job| job.done).await;
    }
    let log = eventually(WAIT, "a line for each job's end", || async {
        let log = worker.log();
        jobs.iter().all(|(id, _)| log.contains(id)).then_some(log)
    })
    .await;
    for (id, _) in jobs {
        let lines = log.lines().filter(|line| line.contains(id)).count();
        assert_eq!(lines, 1, "job {id} has {lines} lines in\n{log}");
    }
    assert!(
        !log.contains("async_nats"),
        "the NATS client's connection lines show at info:\n{log}"
    );
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef shoal"),
        ("fish", "complete -c shoal"),
    ] {
        let output = shoal(None, &["completions", shell]);
        assert!(output.status.success(), "{output:?}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("submit"), "{shell} completes subcommands");
    }
    let output = shoal(None, &["completions", "tcsh"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("tcsh"));
}

/// The names of the workers `shoal get workers -g acme` lists with `flags`.
fn listed_workers(server: &NatsServer, flags: &[&str]) -> Vec<String> {
    let mut args = vec!["get", "workers", "-g", "acme", "-o", "json"];
    args.extend_from_slice(flags);
    let output = shoal(Some(server), &args);
    assert!(output.status.success(), "{output:?}");
    let records: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("JSON records");
    let mut names: Vec<String> = records
        .iter()
        .map(|record| record["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_left_leaves_the_list_after_a_while_and_shows_with_all() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let created = shoal(
        Some(&server),
        &["worker", "create", "--group", "acme", "--name", "future"],
    );
    assert!(created.status.success(), "{created:?}");
    let mut leaver = ShoalProcess::worker(&server, &["--group", "acme", "--name", "leaver"]);
    let id = fleet.worker_id("acme", "leaver").await;
    leaver.signal(libc::SIGTERM);
    assert!(leaver.wait_exit(WAIT).is_some());
    crate::support::wait_for_worker(&fleet, &format!("acme.{id}"), "offline", |worker| {
        worker.status == Some(shoal_protocol::WorkerStatus::Offline)
    })
    .await;

    // Just left: still listed. Left longer ago than --gone-after: not,
    // unless with -a or its state asked for. One created and never
    // started has not left.
    assert_eq!(listed_workers(&server, &[]), ["future", "leaver"]);
    assert_eq!(listed_workers(&server, &["--gone-after", "0s"]), ["future"]);
    assert_eq!(
        listed_workers(&server, &["--gone-after", "0s", "-a"]),
        ["future", "leaver"]
    );
    assert_eq!(
        listed_workers(&server, &["--gone-after", "0s", "--state", "offline"]),
        ["future", "leaver"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_wait_shows_state_and_progress_on_a_terminal_and_nothing_extra_when_piped() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let slow = "slow=sh -c \"echo '::shoal progress 40 copying' && sleep 2\"";
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--entrypoint", slow]);
    for id in ["on-a-terminal", "piped"] {
        let body = format!(r#"{{"id":"{id}","entrypoint":"slow"}}"#);
        fleet.publish_job("acme", "default", &body).await;
    }

    // A terminal (script(1) gives the command a pseudo-terminal).
    let binary = crate::support::process::shoal_binary();
    let command = format!(
        "{} job wait on-a-terminal -g acme --timeout 60s --nats-url {}",
        binary.display(),
        server.url
    );
    let seen = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1)");
    let screen = String::from_utf8_lossy(&seen.stdout);
    assert!(seen.status.success(), "{screen}");
    assert!(
        screen.contains("job on-a-terminal running 40% copying"),
        "{screen}"
    );
    assert!(screen.contains("job on-a-terminal succeeded"), "{screen}");

    // Piped: the outcome line alone, and the record when asked for.
    let piped = shoal(
        Some(&server),
        &[
            "job",
            "wait",
            "piped",
            "-g",
            "acme",
            "--timeout",
            "60s",
            "-o",
            "json",
        ],
    );
    assert!(piped.status.success(), "{piped:?}");
    assert_eq!(
        String::from_utf8_lossy(&piped.stderr),
        "job piped succeeded\n"
    );
    let record: serde_json::Value = serde_json::from_slice(&piped.stdout).expect("the record");
    assert_eq!(record["state"], "succeeded");
}
