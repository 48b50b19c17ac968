//! The fleet `shoal chaos` breaks: nats-server (one, or three clustered) on
//! fixed loopback ports with stores that outlive a kill, and the projector,
//! the registry and the workers as child processes of this binary, each
//! killed with SIGKILL and started again at will.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::bail;
use crate::error::{Context, Result};
use tokio::process::{Child, Command};

use crate::nats_server::server_binary;

/// A free loopback port (the listener is closed before a server takes it).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

/// One nats-server: its config (ports and store fixed) and its process.
struct Node {
    name: String,
    conf: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// The servers of a chaos run.
pub struct Servers {
    nodes: Vec<Node>,
}

impl Servers {
    /// Starts one server, or a cluster of three, under `dir`.
    pub fn start(dir: &Path, cluster: bool) -> Result<Self> {
        let size = if cluster { 3 } else { 1 };
        let ports = (0..size)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<Result<Vec<_>>>()?;
        let mut nodes = Vec::new();
        for (index, (port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("n{index}");
            let store = dir.join(format!("{name}-store"));
            let mut text = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\nmax_payload: 1MB\njetstream {{ store_dir: \"{}\" }}\n",
                store.display()
            );
            if cluster {
                let routes: Vec<String> = ports
                    .iter()
                    .filter(|(other, _)| other != port)
                    .map(|(_, route)| format!("\"nats-route://127.0.0.1:{route}\""))
                    .collect();
                text.push_str(&format!(
                    "cluster {{\n  name: chaos\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                ));
            }
            let conf = dir.join(format!("{name}.conf"));
            std::fs::write(&conf, text).context("cannot write a server's config")?;
            nodes.push(Node {
                name,
                conf,
                port: *port,
                child: None,
            });
        }
        let mut servers = Self { nodes };
        for index in 0..size {
            servers.restart(index)?;
        }
        Ok(servers)
    }

    /// The client URLs of every server, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many servers there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The index of the server named `name` (`n0`, `n1`, ...).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// Kills server `index` with SIGKILL.
    pub async fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts server `index` again, on its store and ports.
    pub fn restart(&mut self, index: usize) -> Result<()> {
        let node = &mut self.nodes[index];
        let log = std::fs::File::create(node.conf.with_extension("log"))?;
        let child = Command::new(server_binary())
            .arg("-c")
            .arg(&node.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start nats-server (run deploy/tools.sh, or set SHOAL_NATS_SERVER)")?;
        node.child = Some(child);
        Ok(())
    }

    /// Waits until a stream can be placed on every server.
    pub async fn wait_ready(&self) -> Result<async_nats::Client> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(client) =
                async_nats::connect(shoal_client::connect::server_urls(&self.urls())).await
            {
                let js = async_nats::jetstream::new(client.clone());
                let probe = async_nats::jetstream::stream::Config {
                    name: "CHAOS_READY".into(),
                    subjects: vec!["chaos.ready".into()],
                    num_replicas: self.nodes.len(),
                    ..Default::default()
                };
                if js.create_stream(probe).await.is_ok() {
                    let _ = js.delete_stream("CHAOS_READY").await;
                    return Ok(client);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the servers were not ready within 60s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A part of the fleet run as a child process of this binary.
pub struct Part {
    args: Vec<String>,
    log: PathBuf,
    urls: String,
    child: Option<Child>,
}

impl Part {
    /// Starts `shoal ARGS...` against `urls`, its output in `log`.
    pub fn start(args: Vec<String>, log: PathBuf, urls: &str) -> Result<Self> {
        let mut part = Self {
            args,
            log,
            urls: urls.to_string(),
            child: None,
        };
        part.restart()?;
        Ok(part)
    }

    /// Kills the part with SIGKILL.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the part again.
    pub fn restart(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(std::env::current_exe()?)
            .args(&self.args)
            .env("SHOAL_NATS_URL", &self.urls)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a part of the fleet")?;
        self.child = Some(child);
        Ok(())
    }
}
