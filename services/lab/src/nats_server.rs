//! A nats-server child process with the repository's `nats.conf`, on free
//! ports with a temporary store, for `shoal dev` and `shoal bench`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::bail;
use crate::error::{Context, Result};
use tokio::process::{Child, Command};

/// The repository's server configuration, built in.
const NATS_CONF: &str = include_str!("../../../nats.conf");

/// A running nats-server child, stopped and cleaned up by [`LocalServer::stop`].
pub struct LocalServer {
    child: Child,
    dir: PathBuf,
    /// Client URL.
    pub url: String,
    /// Monitoring URL.
    pub monitoring_url: String,
}

/// The nats-server binary: `SHOAL_NATS_SERVER`, the tools folder, or PATH.
pub fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SHOAL_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let tools = PathBuf::from(".tools/bin/nats-server");
    if tools.exists() {
        return tools;
    }
    PathBuf::from("nats-server")
}

impl LocalServer {
    /// Starts a server and waits until it takes connections.
    pub async fn start() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("shoal-dev-{}", nuid::next()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let conf = dir.join("nats.conf");
        std::fs::write(&conf, NATS_CONF).context("cannot write nats.conf")?;
        let binary = server_binary();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", "-1", "-m", "-1"])
            .arg("--store_dir")
            .arg(dir.join("store"))
            .arg("--ports_file_dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (run deploy/tools.sh, or set SHOAL_NATS_SERVER)",
                    binary.display()
                )
            })?;
        let ports_file = dir.join(format!(
            "nats-server_{}.ports",
            child.id().unwrap_or_default()
        ));
        let mut server = Self {
            child,
            dir,
            url: String::new(),
            monitoring_url: String::new(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file) {
                let ports: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let first = |key: &str| ports[key][0].as_str().map(str::to_string);
                if let (Some(url), Some(monitoring)) = (first("nats"), first("monitoring")) {
                    server.url = url;
                    server.monitoring_url = monitoring;
                    break;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("nats-server exited at start with {status}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nats-server did not start within 15s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    /// The server at `url` when one is given; otherwise a new local one, and its URL.
    pub async fn unless_given(url: Option<String>) -> Result<(Option<Self>, String)> {
        match url {
            Some(url) => Ok((None, url)),
            None => {
                let server = Self::start().await?;
                let url = server.url.clone();
                Ok((Some(server), url))
            }
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server and removes its store.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection to the server at `url`, named `name` in its monitoring.
pub async fn connect_to(url: &str, name: &str) -> Result<async_nats::Client> {
    let settings = shoal_client::connect::ConnectSettings {
        url: url.to_string(),
        name: name.into(),
        ..Default::default()
    };
    Ok(shoal_client::connect::connect(&settings).await?)
}
