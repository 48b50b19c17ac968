//! Connecting to NATS the same way in every part: credentials, a bounded
//! connect, and a check that the server is recent enough.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// The oldest nats-server Shoal works with; older ones silently ignore settings it relies on.
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 12, 0);

/// How to reach and log in to NATS.
#[derive(Clone, Default)]
pub struct ConnectSettings {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// A `.creds` file (JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// User name, with `password`.
    pub user: Option<String>,
    /// Password, with `user`.
    pub password: Option<String>,
    /// Token.
    pub token: Option<String>,
    /// Name the connection shows in the server's monitoring.
    pub name: String,
}

impl std::fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        f.debug_struct("ConnectSettings")
            .field("url", &redacted(&self.url))
            .field("credentials", &self.credentials)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("name", &self.name)
            .finish()
    }
}

/// Why a connection could not be made.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The credentials file could not be read.
    #[error("cannot read the credentials file {path}: {reason}")]
    Credentials { path: String, reason: String },
    /// The server could not be reached or refused the login.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The server is older than Shoal supports.
    #[error("nats-server {version} at {url} is too old: Shoal needs 2.12.0 or newer")]
    ServerTooOld { url: String, version: String },
}

/// Connects, failing within a few seconds rather than retrying forever.
pub async fn connect(settings: &ConnectSettings) -> Result<async_nats::Client, ConnectError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(&settings.name)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)));
    if let Some(path) = &settings.credentials {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|err| ConnectError::Credentials {
                    path: path.display().to_string(),
                    reason: err.to_string(),
                })?;
    }
    if settings.user.is_some() != settings.password.is_some() {
        return Err(ConnectError::Connect {
            url: redacted(&settings.url),
            reason: "user and password go together".into(),
        });
    }
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &settings.token {
        options = options.token(token.clone());
    }
    let client = options
        .connect(server_urls(&settings.url))
        .await
        .map_err(|err| ConnectError::Connect {
            url: redacted(&settings.url),
            reason: err.to_string(),
        })?;
    let version = client.server_info().version;
    if !is_supported_version(&version) {
        return Err(ConnectError::ServerTooOld {
            url: redacted(&settings.url),
            version,
        });
    }
    Ok(client)
}

/// The URLs with any `user:password@` or `token@` part replaced by `***@`,
/// so that no secret reaches a log line or an error message.
pub fn redacted(urls: &str) -> String {
    server_urls(urls)
        .iter()
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The URLs of a comma-separated list, each trimmed.
pub fn server_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether a server version string is at least [`MIN_SERVER_VERSION`].
pub fn is_supported_version(version: &str) -> bool {
    let core = version
        .trim_start_matches('v')
        .split(['-', '+'])
        .next()
        .unwrap_or_default();
    let mut parts = core.split('.').map(|part| part.parse::<u64>().unwrap_or(0));
    let found = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    found >= MIN_SERVER_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_never_reach_messages() {
        assert_eq!(
            redacted("nats://alice:hunter2@127.0.0.1:4222, nats://s3cret@h:4223"),
            "nats://***@127.0.0.1:4222,nats://***@h:4223"
        );
        assert_eq!(redacted("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    #[test]
    fn servers_from_2_12_on_are_supported() {
        assert!(is_supported_version("2.12.0"));
        assert!(is_supported_version("2.15.2"));
        assert!(is_supported_version("3.0.0-beta.1"));
        assert!(!is_supported_version("2.9.25"));
        assert!(!is_supported_version("2.11.9"));
        assert!(!is_supported_version("garbage"));
    }
}
