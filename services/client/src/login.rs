//! The connection settings every command shares, and a worker's file too:
//! one struct that derives clap (flags and `SHOAL_*` variables) and serde
//! (a TOML table). A setting left out is `None`, so that a layer above or
//! below can give it; its default is applied only when it is used.

use std::fmt;
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};
use shoal_protocol::token::InvalidToken;
use shoal_protocol::Subjects;

use crate::connect::{redacted, ConnectSettings};
use crate::streams::Layout;

/// The server a connection reaches when none is given.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The subject prefix of an installation when none is given.
pub const DEFAULT_PREFIX: &str = "shoal";

/// The settings whose values are secrets, never echoed back in an error.
pub const SECRET_SETTINGS: &[&str] = &["password", "token"];

/// A password or token: its `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_string()))
    }
}

/// Server URLs, which may hold a login (`nats://user:pass@host`): its
/// `Debug` shows them without it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerUrls(String);

impl ServerUrls {
    /// The URLs as given.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ServerUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redacted(&self.0))
    }
}

impl std::str::FromStr for ServerUrls {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_string()))
    }
}

/// How to reach NATS, and which installation: flags, `SHOAL_*` variables
/// (the same names in every part), or a worker's TOML file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Args)]
#[group(skip)]
pub struct ConnectionArgs {
    /// NATS server URL(s), comma-separated [default: nats://127.0.0.1:4222].
    #[arg(long, env = "SHOAL_NATS_URL", hide_env_values = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<ServerUrls>,
    /// NATS credentials (.creds) file.
    #[arg(long, env = "SHOAL_CREDENTIALS", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PathBuf>,
    /// NATS user name.
    #[arg(long, env = "SHOAL_USER")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// NATS password.
    #[arg(long, env = "SHOAL_PASSWORD", hide_env_values = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// NATS token.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// File with the NKey seed of the NATS user.
    #[arg(long, env = "SHOAL_NKEY", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<PathBuf>,
    /// CA certificate file to trust for the server's TLS certificate.
    #[arg(long, env = "SHOAL_TLS_CA", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate file, with --tls-key.
    #[arg(long, env = "SHOAL_TLS_CERT", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Client certificate key file, with --tls-cert.
    #[arg(long, env = "SHOAL_TLS_KEY", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Prefix of reply subjects, e.g. _INBOX.<user> [default: _INBOX].
    #[arg(long, env = "SHOAL_INBOX_PREFIX")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_prefix: Option<String>,
    /// Subject prefix of the installation [default: shoal].
    #[arg(long, env = "SHOAL_PREFIX")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Replicas of the streams, buckets and consumers it creates; 3 in a cluster [default: 1].
    #[arg(long, env = "SHOAL_REPLICAS", value_parser = clap::value_parser!(u8).range(1..=5))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u8>,
}

impl ConnectionArgs {
    /// The server URLs, or the default.
    pub fn url(&self) -> &str {
        self.nats_url
            .as_ref()
            .map_or(DEFAULT_NATS_URL, ServerUrls::expose)
    }

    /// The subject prefix, or the default.
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(DEFAULT_PREFIX)
    }

    /// The replicas, or one.
    pub fn replicas(&self) -> u8 {
        self.replicas.unwrap_or(1)
    }

    /// The settings of a connection named `name` in the server's monitoring.
    pub fn settings(&self, name: &str) -> ConnectSettings {
        ConnectSettings {
            url: self.url().to_string(),
            credentials: self.credentials.clone(),
            user: self.user.clone(),
            password: self
                .password
                .as_ref()
                .map(|secret| secret.expose().to_string()),
            token: self
                .token
                .as_ref()
                .map(|secret| secret.expose().to_string()),
            nkey: self.nkey.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            inbox_prefix: self.inbox_prefix.clone(),
            name: name.to_string(),
            denials: Default::default(),
        }
    }

    /// The layout of the installation.
    pub fn layout(&self) -> Result<Layout, InvalidToken> {
        let mut layout = Layout::new(Subjects::new(self.prefix())?);
        layout.replicas = usize::from(self.replicas());
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_or_a_login_in_a_url_never_shows_in_debug() {
        let args = ConnectionArgs {
            nats_url: Some("nats://alice:hunter2@127.0.0.1:4222".parse().expect("urls")),
            password: Some("hunter2".parse().expect("secret")),
            token: Some("t0ken".parse().expect("secret")),
            ..Default::default()
        };
        let shown = format!("{args:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken"),
            "{shown}"
        );
        assert_eq!(args.settings("x").password.as_deref(), Some("hunter2"));
    }

    #[test]
    fn what_is_left_out_takes_its_default_where_it_is_used() {
        let args = ConnectionArgs::default();
        assert_eq!(
            (args.url(), args.prefix(), args.replicas()),
            (DEFAULT_NATS_URL, "shoal", 1)
        );
        assert_eq!(args.layout().expect("layout").jobs_stream(), "SHOAL_JOBS");
    }
}
