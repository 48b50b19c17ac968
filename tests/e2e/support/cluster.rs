//! Three real nats-servers clustered on loopback, each with its own store;
//! one can be killed and restarted with its store and ports.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::eventually;
use super::server::{free_port, server_binary, TempDir};

struct Node {
    conf: std::path::PathBuf,
    client_port: u16,
    child: Option<Child>,
}

/// A cluster of nats-servers, killed and cleaned up on drop.
pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` clustered servers with JetStream.
    pub fn start(size: usize) -> Self {
        let dir = TempDir::new("cluster");
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (index, (client_port, cluster_port)) in ports.iter().enumerate() {
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, (_, port))| format!("\"nats-route://127.0.0.1:{port}\""))
                .collect();
            let store = dir.path().join(format!("n{index}"));
            let conf = dir.path().join(format!("n{index}.conf"));
            let text = format!(
                "server_name: n{index}\nlisten: \"127.0.0.1:{client_port}\"\njetstream {{ store_dir: \"{}\" }}\ncluster {{\n  name: shoal\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            std::fs::write(&conf, text).expect("write a node's config");
            nodes.push(Node {
                conf,
                client_port: *client_port,
                child: None,
            });
        }
        let mut cluster = Self { nodes, _dir: dir };
        for index in 0..size {
            cluster.restart(index);
        }
        cluster
    }

    /// The client URLs of every node, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills node `index` (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again, with its store and ports.
    pub fn restart(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.conf.with_extension("log"))
            .expect("a log file");
        let child = Command::new(server_binary())
            .arg("-c")
            .arg(&node.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server (run deploy/tools.sh first)");
        node.child = Some(child);
    }

    /// Waits until JetStream can place a stream on every node of the cluster.
    pub async fn wait_ready(&self) -> async_nats::Client {
        let conf = &self.nodes[0].conf;
        let unready = || {
            let log = std::fs::read_to_string(conf.with_extension("log")).unwrap_or_default();
            format!("{}: {log}", conf.display())
        };
        eventually(Duration::from_secs(60), "the cluster is ready", || async {
            let Ok(client) =
                async_nats::connect(shoal_client::connect::server_urls(&self.urls())).await
            else {
                return Err(unready());
            };
            // Ready once a stream can be placed on every node.
            let js = async_nats::jetstream::new(client.clone());
            let probe = async_nats::jetstream::stream::Config {
                name: "READY_PROBE".into(),
                subjects: vec!["ready.probe".into()],
                num_replicas: self.nodes.len(),
                ..Default::default()
            };
            if js.create_stream(probe).await.is_err() {
                return Err(unready());
            }
            let _ = js.delete_stream("READY_PROBE").await;
            Ok(client)
        })
        .await
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
