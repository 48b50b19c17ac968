//! `shoal dev`: one command runs a server, the services and a demo job, and
//! Ctrl-C stops all of it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::process::{send_signal, shoal_binary};
use crate::support::server::repo_dir;

#[test]
fn shoal_dev_runs_a_demo_job_and_stops_everything_on_ctrl_c() {
    let mut dev = Command::new(shoal_binary())
        .arg("dev")
        .current_dir(repo_dir())
        .env_remove("SHOAL_NATS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start shoal dev");
    let stdout = dev.stdout.take().expect("stdout");
    // Lines come through a channel so that reading them has a deadline.
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = received.recv_timeout(left) else {
            let _ = dev.kill();
            panic!("shoal dev did not say it runs within 60s: {printed}");
        };
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("Ctrl-C stops everything") {
            break;
        }
    }
    assert!(printed.contains("demo job demo.1: succeeded"), "{printed}");
    assert!(printed.contains("hello from shoal"), "{printed}");
    assert!(
        printed.contains("nats kv get shoal_jobs demo.1"),
        "{printed}"
    );
    let url = printed
        .lines()
        .find_map(|line| line.strip_prefix("Shoal is running on "))
        .expect("the server's URL")
        .to_string();
    let port = url.rsplit(':').next().expect("a port").to_string();

    // The hints work as printed in a shell that has neither tool on its PATH.
    let hints: Vec<&str> = printed
        .lines()
        .skip_while(|line| !line.starts_with("Look around"))
        .skip(1)
        .filter_map(|line| line.strip_prefix("  "))
        .collect();
    assert!(hints[0].starts_with("export PATH="), "{printed}");
    let script = format!("set -e\n{}", hints.join("\n"));
    let ran = Command::new("bash")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("bash");
    if !ran.status.success() {
        // Stop the server and services before failing, so that none outlives the test.
        send_signal(dev.id(), libc::SIGINT);
        let _ = dev.wait();
        panic!(
            "the printed hints failed:\n{script}\n{}",
            String::from_utf8_lossy(&ran.stderr)
        );
    }

    send_signal(dev.id(), libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = dev.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "shoal dev did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "the nats-server child outlived shoal dev"
    );
}
