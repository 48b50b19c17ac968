//! A worker with a bad configuration exits 64 with one line naming the setting.

use crate::support::server::TempDir;
use crate::support::shoal;

fn run_worker_with_file(contents: &str, extra: &[&str]) -> std::process::Output {
    let dir = TempDir::new("badconfig");
    let path = dir.path().join("worker.toml");
    std::fs::write(&path, contents).expect("write config");
    let mut args = vec![
        "worker",
        "run",
        "--config",
        path.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    shoal(None, &args)
}

fn assert_one_line_exit_64(output: &std::process::Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(expected), "`{expected}` not in: {stderr}");
}

#[test]
fn a_bad_value_in_the_config_file_exits_64_naming_the_setting_and_value() {
    let output = run_worker_with_file("[worker]\nconcurrency = \"lots\"\n", &[]);
    assert_one_line_exit_64(&output, "`concurrency` = `lots`");
}

#[test]
fn an_unknown_setting_in_the_config_file_exits_64_naming_it() {
    let output = run_worker_with_file("[worker]\npolling_intervall = \"5s\"\n", &[]);
    assert_one_line_exit_64(&output, "worker.polling_intervall");
}

#[test]
fn a_file_that_is_not_toml_exits_64() {
    let output = run_worker_with_file("[worker\n", &[]);
    assert_one_line_exit_64(&output, "worker.toml");
}

#[test]
fn a_bad_flag_value_exits_64_naming_the_setting() {
    let output = run_worker_with_file("[worker]\n", &["--heartbeat-interval", "often"]);
    assert_one_line_exit_64(&output, "`heartbeat_interval` = `often`");
}

#[test]
fn booleans_are_bare_flags_that_also_take_a_value() {
    let bare = shoal(
        None,
        &[
            "worker",
            "run",
            "--allow-exec",
            "--system",
            "--concurrency",
            "0",
        ],
    );
    assert_one_line_exit_64(&bare, "`concurrency` = `0`");
    let valued = shoal(
        None,
        &["worker", "run", "--file-log=false", "--system=maybe"],
    );
    assert_one_line_exit_64(&valued, "`system` = `maybe`");
}

#[test]
fn an_entrypoint_flag_with_an_unclosed_quote_exits_64_naming_it() {
    let output = shoal(
        None,
        &["worker", "run", "--entrypoint", r#"rec=sh -c "echo"#],
    );
    assert_one_line_exit_64(&output, "unclosed quote");
}
