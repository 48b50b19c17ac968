//! The connection flags every command shares.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use shoal_protocol::connect::{connect, ConnectSettings};
use shoal_protocol::streams::Layout;
use shoal_protocol::Subjects;

/// How to reach NATS, from flags or `SHOAL_*` variables.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "SHOAL_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// NATS credentials (.creds) file.
    #[arg(long, env = "SHOAL_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// NATS user name.
    #[arg(long, env = "SHOAL_USER")]
    pub user: Option<String>,
    /// NATS password.
    #[arg(long, env = "SHOAL_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// NATS token.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Subject prefix of the installation.
    #[arg(long, env = "SHOAL_PREFIX", default_value = "shoal")]
    pub prefix: String,
    /// Replicas of the streams and buckets this command creates (3 in a cluster).
    #[arg(long, env = "SHOAL_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
}

impl ConnectionArgs {
    /// The settings, named `name` in the server's monitoring.
    pub fn settings(&self, name: &str) -> ConnectSettings {
        ConnectSettings {
            url: self.nats_url.clone(),
            credentials: self.credentials.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            token: self.token.clone(),
            name: name.to_string(),
        }
    }

    /// The layout of the installation.
    pub fn layout(&self) -> anyhow::Result<Layout> {
        let mut layout = Layout::new(Subjects::new(&self.prefix)?);
        layout.replicas = usize::from(self.replicas);
        Ok(layout)
    }

    /// Connects, failing within seconds.
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        connect(&self.settings(name)).await.context("no connection")
    }
}
