//! The examples a newcomer copies: examples/sh submits a job with only the
//! `nats` CLI, examples/python with nats-py, and both read its record.

use std::process::{Command, Output};

use crate::support::server::{nats_cli, repo_dir};
use crate::support::{NatsServer, ShoalProcess};

/// A fleet of group `demo` whose `hello` entrypoint echoes its arguments.
fn fleet(server: &NatsServer) -> [ShoalProcess; 2] {
    [
        ShoalProcess::projector(server),
        ShoalProcess::worker(
            server,
            &["--group", "demo", "--entrypoint", "hello=echo hello"],
        ),
    ]
}

/// The PATH with the `nats` CLI the tests use first.
fn path_with_nats() -> String {
    let cli = nats_cli();
    let dir = cli
        .canonicalize()
        .ok()
        .and_then(|cli| cli.parent().map(|dir| dir.display().to_string()));
    let path = std::env::var("PATH").unwrap_or_default();
    dir.map_or(path.clone(), |dir| format!("{dir}:{path}"))
}

fn run(server: &NatsServer, program: &str, args: &[&str]) -> Output {
    let python_tools = std::env::var("SHOAL_PYTHON_TOOLS")
        .unwrap_or_else(|_| repo_dir().join(".tools/python").display().to_string());
    Command::new(program)
        .args(args)
        .current_dir(repo_dir())
        .env("NATS_URL", &server.url)
        .env("PATH", path_with_nats())
        .env("PYTHONPATH", python_tools)
        .output()
        .expect("run the example")
}

/// The record an example printed.
fn record(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|err| {
        panic!(
            "no record ({err}) in {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Runs an example that submits `hello` with `words`, and checks that it
/// succeeded and printed the record of a job that echoed them.
fn greets(server: &NatsServer, program: &str, script: &str, words: &str) {
    let output = run(
        server,
        program,
        &[script, "demo", "default", "hello", words],
    );
    assert!(output.status.success(), "{output:?}");
    let record = record(&output);
    assert_eq!(record["state"], "succeeded");
    assert_eq!(record["group"], "demo");
    let tail = record["stdout_tail"].as_str().expect("output");
    assert!(tail.contains(&format!("hello {words}")), "{record}");
}

#[test]
fn the_shell_example_submits_with_the_nats_cli_and_reads_the_record() {
    let server = NatsServer::start();
    let _fleet = fleet(&server);
    greets(&server, "bash", "examples/sh/submit.sh", "from \"sh\"");

    // A job that fails: its record, and a failing exit.
    let script = "examples/sh/submit.sh";
    let output = run(&server, "bash", &[script, "demo", "default", "nope"]);
    assert!(!output.status.success());
    assert_ne!(record(&output)["state"], "succeeded");
}

#[test]
fn the_python_example_submits_with_nats_py_and_reads_the_record() {
    let server = NatsServer::start();
    let _fleet = fleet(&server);
    greets(
        &server,
        "python3",
        "examples/python/submit.py",
        "from python",
    );
}
