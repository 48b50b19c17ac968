//! The connection flags every command shares: those of `shoal-client`, and
//! the retention of job records, which the services that write them read.

use anyhow::Context;
use clap::Args;
use shoal_client::connect::{connect, ConnectSettings};
use shoal_client::login;
use shoal_client::streams::Layout;

/// How to reach NATS, from flags or `SHOAL_*` variables.
#[derive(Clone, Debug, Args)]
pub struct ConnectionArgs {
    #[command(flatten)]
    pub login: login::ConnectionArgs,
    /// How long the records of ended jobs are kept (0s: for ever); read by
    /// the projector and the registry, which write them.
    #[arg(long, env = "SHOAL_JOB_RETENTION", default_value = "7d")]
    pub job_retention: shoal_protocol::Duration,
}

impl ConnectionArgs {
    /// The settings, named `name` in the server's monitoring.
    pub fn settings(&self, name: &str) -> ConnectSettings {
        ConnectSettings {
            denials: crate::denials().clone(),
            ..self.login.settings(name)
        }
    }

    /// The layout of the installation.
    pub fn layout(&self) -> anyhow::Result<Layout> {
        let mut layout = self.login.layout().context("prefix")?;
        layout.job_retention = self.job_retention.get();
        Ok(layout)
    }

    /// A Shoal client of the installation, connected within seconds.
    pub async fn client(&self) -> anyhow::Result<shoal_client::Client> {
        let settings = self.settings("shoal-cli");
        shoal_client::Client::connect(&settings, self.layout()?)
            .await
            .context("no connection")
    }

    /// Connects, failing within seconds.
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        connect(&self.settings(name)).await.context("no connection")
    }
}
