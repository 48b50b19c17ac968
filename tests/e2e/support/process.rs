//! `shoal` processes: services that are stopped on drop, and one-shot commands.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::eventually;
use super::server::{NatsServer, TempDir};

/// The `shoal` binary under test.
pub fn shoal_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shoal"))
}

/// A long-running `shoal` process (worker, projector), killed on drop.
pub struct ShoalProcess {
    child: Child,
    /// Its folder: output dir and log.
    pub dir: TempDir,
}

/// Sends a signal to a process.
#[allow(unsafe_code)]
pub fn send_signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) only sends a signal; it touches no memory of ours.
    let result = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}

impl ShoalProcess {
    /// Starts `shoal ARGS...` against `server` (by `SHOAL_NATS_URL`), logging to a file in its folder.
    pub fn start(server: &NatsServer, args: &[&str]) -> Self {
        Self::start_in(TempDir::new("shoal"), &server.url, args, &[])
    }

    /// Starts `shoal ARGS...` against the server(s) at `url`.
    pub fn start_at(url: &str, args: &[&str]) -> Self {
        Self::start_in(TempDir::new("shoal"), url, args, &[])
    }

    /// Starts `shoal ARGS...` against `url` with more variables (a login).
    pub fn start_with_env(url: &str, args: &[&str], env: &[(String, String)]) -> Self {
        Self::start_in(TempDir::new("shoal"), url, args, env)
    }

    /// Starts `shoal ARGS...` against `server` with the variables `env` added.
    pub fn start_with(server: &NatsServer, args: &[&str], env: &[(&str, &str)]) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Self::start_in(TempDir::new("shoal"), &server.url, args, &env)
    }

    fn start_in(dir: TempDir, url: &str, args: &[&str], env: &[(String, String)]) -> Self {
        let log = std::fs::File::create(dir.path().join("shoal.log")).expect("log file");
        let child = Command::new(shoal_binary())
            .args(args)
            .env("SHOAL_NATS_URL", url)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .env(
                "RUST_LOG",
                std::env::var("SHOAL_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shoal");
        Self { child, dir }
    }

    /// A worker with a short polling interval and ack wait, in its own output dir.
    pub fn worker(server: &NatsServer, args: &[&str]) -> Self {
        Self::worker_at(&server.url, args)
    }

    /// A worker against the server(s) at `url`.
    pub fn worker_at(url: &str, args: &[&str]) -> Self {
        Self::worker_with_env(url, args, &[])
    }

    /// A worker against `url` with more variables (a login).
    pub fn worker_with_env(url: &str, args: &[&str], env: &[(String, String)]) -> Self {
        let dir = TempDir::new("worker");
        let output_dir = dir.path().join("output").display().to_string();
        let mut all = vec![
            "worker",
            "run",
            "--polling-interval",
            "1s",
            "--heartbeat-interval",
            "1s",
            "--ack-wait",
            "2s",
        ];
        all.extend_from_slice(&["--output-dir", &output_dir]);
        all.extend_from_slice(args);
        Self::start_in(dir, url, &all, env)
    }

    /// `shoal supervise` of the pool `yaml` (written to its folder), with
    /// `args` and variables `env` (which its replicas inherit).
    pub fn supervisor(
        server: &NatsServer,
        yaml: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = TempDir::new("supervisor");
        let file = dir.path().join("pool.yaml");
        std::fs::write(&file, yaml).expect("pool file");
        let file = file.display().to_string();
        let mut all = vec!["supervise", "-f", &file];
        all.extend_from_slice(args);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Self::start_in(dir, &server.url, &all, &env)
    }

    /// A projector.
    pub fn projector(server: &NatsServer) -> Self {
        Self::start(server, &["projector", "run"])
    }

    /// A registry that checks liveness twice a second, once it answers.
    pub async fn registry(server: &NatsServer) -> Self {
        Self::registry_with(server, "1s", &[]).await
    }

    /// A registry that reconciles every `reconcile_interval`, with more
    /// variables `env`, once it answers.
    pub async fn registry_with(
        server: &NatsServer,
        reconcile_interval: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let args = [
            "registry",
            "run",
            "--check-interval",
            "500ms",
            "--reconcile-interval",
            reconcile_interval,
        ];
        let registry = Self::start_with(server, &args, env);
        wait_for_service(server, "shoal-registry").await;
        registry
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it a signal.
    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("shoal.log")).unwrap_or_default()
    }
}

impl Drop for ShoalProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a one-shot `shoal` command against `server` (when given); it is
/// killed if it runs past a minute.
pub fn shoal(server: Option<&NatsServer>, args: &[&str]) -> Output {
    let url = server.map(|server| server.url.clone());
    shoal_with_env(url.as_deref(), args, &[])
}

/// Runs a one-shot `shoal` command against `url` (when given) with more
/// variables (a login); it is killed if it runs past a minute.
pub fn shoal_with_env(url: Option<&str>, args: &[&str], env: &[(String, String)]) -> Output {
    let dir = TempDir::new("cli");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut command = Command::new(shoal_binary());
    command.args(args);
    if let Some(url) = url {
        command.env("SHOAL_NATS_URL", url);
    }
    command.envs(env.iter().map(|(name, value)| (name, value)));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("run shoal");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for shoal") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait for shoal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read(&stderr_path).unwrap_or_default(),
    }
}

/// The id a `shoal job submit` printed, once it succeeded.
pub fn submitted_id(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Waits until an instance of the micro service `name` answers a ping.
pub async fn wait_for_service(server: &NatsServer, name: &str) {
    let client = server.client().await;
    let what = format!("the {name} service answers");
    eventually(Duration::from_secs(20), &what, || async {
        let ping = client.request(format!("$SRV.PING.{name}"), "".into());
        matches!(
            tokio::time::timeout(Duration::from_secs(1), ping).await,
            Ok(Ok(_))
        )
    })
    .await;
}
