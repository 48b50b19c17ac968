//! The connection flags every command shares.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use shoal_client::connect::{connect, ConnectSettings};
use shoal_client::streams::Layout;
use shoal_protocol::Subjects;

/// How to reach NATS, from flags or `SHOAL_*` variables.
#[derive(Clone, Args)]
pub struct ConnectionArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long,
        env = "SHOAL_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true
    )]
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
    /// File with the NKey seed of the NATS user.
    #[arg(long, env = "SHOAL_NKEY", value_name = "FILE")]
    pub nkey: Option<PathBuf>,
    /// CA certificate file to trust for the server's TLS certificate.
    #[arg(long, env = "SHOAL_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate file, with --tls-key.
    #[arg(long, env = "SHOAL_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Client certificate key file, with --tls-cert.
    #[arg(long, env = "SHOAL_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Prefix of reply subjects, e.g. _INBOX.<user> [default: _INBOX].
    #[arg(long, env = "SHOAL_INBOX_PREFIX")]
    pub inbox_prefix: Option<String>,
    /// Subject prefix of the installation.
    #[arg(long, env = "SHOAL_PREFIX", default_value = "shoal")]
    pub prefix: String,
    /// Replicas of the streams and buckets this command creates (3 in a cluster).
    #[arg(long, env = "SHOAL_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
    /// How long the records of ended jobs are kept (0s: for ever); read by
    /// the projector and the registry, which write them.
    #[arg(long, env = "SHOAL_JOB_RETENTION", default_value = "7d")]
    pub job_retention: shoal_protocol::Duration,
}

impl std::fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The settings' own Debug masks the secrets.
        f.debug_struct("ConnectionArgs")
            .field("settings", &self.settings("shoal-cli"))
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas)
            .field("job_retention", &self.job_retention)
            .finish()
    }
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
            nkey: self.nkey.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            inbox_prefix: self.inbox_prefix.clone(),
            name: name.to_string(),
        }
    }

    /// The layout of the installation.
    pub fn layout(&self) -> anyhow::Result<Layout> {
        let mut layout = Layout::new(Subjects::new(&self.prefix)?);
        layout.replicas = usize::from(self.replicas);
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
