//! A real nats-server on free loopback ports with a temporary store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::eventually;

/// The folder of the repository.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free loopback port (the listener is closed before a process takes it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// The nats-server binary: `SHOAL_NATS_SERVER`, the tools folder, or PATH.
pub fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SHOAL_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let tools = repo_dir().join(".tools/bin/nats-server");
    if tools.exists() {
        tools
    } else {
        PathBuf::from("nats-server")
    }
}

/// The `nats` CLI binary: `SHOAL_NATS_CLI`, the tools folder, or PATH.
pub fn nats_cli() -> PathBuf {
    if let Ok(path) = std::env::var("SHOAL_NATS_CLI") {
        return PathBuf::from(path);
    }
    let tools = repo_dir().join(".tools/bin/nats");
    if tools.exists() {
        tools
    } else {
        PathBuf::from("nats")
    }
}

/// A temporary folder removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder under the system's temp dir.
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("shoal-test-{label}-{}", nuid::next()));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A nats-server child, killed and cleaned up on drop.
pub struct NatsServer {
    child: Child,
    /// Its folder: config, store, ports file, log; removed with it.
    dir: TempDir,
    /// Client URL.
    pub url: String,
    /// Monitoring URL (`http://127.0.0.1:<port>`).
    pub monitoring: String,
}

impl NatsServer {
    /// Starts a server with the repository's `nats.conf` and waits until it takes connections.
    pub fn start() -> Self {
        let dir = TempDir::new("nats");
        let conf = dir.path().join("nats.conf");
        std::fs::copy(repo_dir().join("nats.conf"), &conf).expect("copy nats.conf");
        Self::launch(dir, &conf, &[])
    }

    /// Starts a server with a configuration of the repository (read in
    /// place, so that its includes resolve) and `env` for its variables.
    pub fn start_with(config: &Path, env: &[(String, String)]) -> Self {
        Self::launch(TempDir::new("nats"), config, env)
    }

    fn launch(dir: TempDir, conf: &Path, env: &[(String, String)]) -> Self {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let child = Command::new(server_binary())
            .envs(env.iter().map(|(name, value)| (name, value)))
            .arg("-c")
            .arg(conf)
            .args(["-a", "127.0.0.1", "-p", "-1", "-m", "-1"])
            .arg("--store_dir")
            .arg(dir.path().join("store"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server (run deploy/tools.sh first)");
        let ports_file = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let mut server = Self {
            child,
            dir,
            url: String::new(),
            monitoring: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.url.is_empty() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start within 20s"
            );
            if let Ok(text) = std::fs::read_to_string(&ports_file) {
                let ports: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(url) = ports["nats"][0].as_str() {
                    server.url = url.to_string();
                }
                if let Some(url) = ports["monitoring"][0].as_str() {
                    server.monitoring = url.to_string();
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        server
    }

    /// What the monitoring endpoint `path` (e.g. `/connz`) answers, as JSON.
    pub fn monitor(&self, path: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let address = self.monitoring.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("reach the monitoring port");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("ask");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("the answer");
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        serde_json::from_str(body).unwrap_or_else(|err| panic!("{path}: {err}: {body}"))
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A client connected to the server.
    pub async fn client(&self) -> async_nats::Client {
        let what = "a connection to the test server";
        eventually(Duration::from_secs(10), what, || {
            async_nats::connect(&self.url)
        })
        .await
    }

    /// Runs the `nats` CLI against the server and returns what it printed and how it exited.
    pub fn nats_output(&self, args: &[&str]) -> std::process::Output {
        Command::new(nats_cli())
            .args(["--server", &self.url])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the nats CLI (run deploy/tools.sh first)")
    }

    /// Runs the `nats` CLI against the server and returns its stdout; panics on failure.
    pub fn nats(&self, args: &[&str]) -> String {
        let output = self.nats_output(args);
        assert!(
            output.status.success(),
            "nats {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
