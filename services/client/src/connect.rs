//! Connecting to NATS the same way in every part: credentials, a bounded
//! connect, and a check that the server is recent enough.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

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
    /// A file holding the NKey seed of a user the server knows by public key.
    pub nkey: Option<PathBuf>,
    /// CA certificate(s) to trust for the server's TLS certificate.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate, with `tls_key`, for servers that verify clients.
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub tls_key: Option<PathBuf>,
    /// Prefix of reply subjects, so that a user's permissions can allow
    /// replies to it alone (`_INBOX.<user>`); NATS's `_INBOX` when unset.
    pub inbox_prefix: Option<String>,
    /// Name the connection shows in the server's monitoring.
    pub name: String,
    /// Where the connection reports the permission violations the server
    /// sends it; every clone of the settings shares it.
    pub denials: Denials,
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
            .field("nkey", &self.nkey)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("inbox_prefix", &self.inbox_prefix)
            .field("name", &self.name)
            .finish()
    }
}

/// Why a connection could not be made.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The credentials file could not be read.
    #[error("cannot read the credentials file {path}: {reason}")]
    Credentials {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A setting is missing its partner or names a file that cannot be used.
    #[error("{setting}: {reason}")]
    Setting {
        /// The setting.
        setting: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// The server refused the credentials.
    #[error("NATS at {url} refused the credentials (authorization violation): check the user, password, token, nkey or credentials file")]
    Refused {
        /// The server (without any secret).
        url: String,
    },
    /// The server could not be reached or refused the login.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The server (without any secret).
        url: String,
        /// Why.
        reason: String,
    },
    /// The server is older than Shoal supports.
    #[error("nats-server {version} at {url} is too old: Shoal needs 2.12.0 or newer")]
    ServerTooOld {
        /// The server (without any secret).
        url: String,
        /// Its version.
        version: String,
    },
}

/// Connects, failing within a few seconds rather than retrying forever.
/// Permission violations the server reports later are logged and kept in
/// the settings' [`Denials`].
pub async fn connect(settings: &ConnectSettings) -> Result<async_nats::Client, ConnectError> {
    let options = async_nats::ConnectOptions::new()
        .name(&settings.name)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .event_callback({
            let denials = settings.denials.clone();
            move |event| {
                let denials = denials.clone();
                async move { note_event(&denials, event) }
            }
        });
    let options = with_tls(with_login(options, settings).await?, settings)?;
    let options = match &settings.inbox_prefix {
        Some(prefix) => options.custom_inbox_prefix(prefix),
        None => options,
    };
    let client = options
        .connect(server_urls(&settings.url))
        .await
        .map_err(|err| match err.kind() {
            async_nats::ConnectErrorKind::AuthorizationViolation => ConnectError::Refused {
                url: redacted(&settings.url),
            },
            _ => ConnectError::Connect {
                url: redacted(&settings.url),
                reason: err.to_string(),
            },
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

/// The login: a credentials file, an NKey seed file, user and password, or a token.
async fn with_login(
    mut options: async_nats::ConnectOptions,
    settings: &ConnectSettings,
) -> Result<async_nats::ConnectOptions, ConnectError> {
    let logins: Vec<&str> = [
        ("credentials", settings.credentials.is_some()),
        ("nkey", settings.nkey.is_some()),
        (
            "user",
            settings.user.is_some() || settings.password.is_some(),
        ),
        ("token", settings.token.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    if logins.len() > 1 {
        // The server would pick one silently: a login meant to narrow what
        // a process may do must not lose to another one left in its env.
        return Err(ConnectError::Setting {
            setting: "credentials",
            reason: format!("give one login, not several ({})", logins.join(", ")),
        });
    }
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
    if let Some(path) = &settings.nkey {
        options = options.nkey(read_seed(path)?);
    }
    if settings.user.is_some() != settings.password.is_some() {
        return Err(ConnectError::Setting {
            setting: if settings.user.is_some() {
                "password"
            } else {
                "user"
            },
            reason: "user and password go together".into(),
        });
    }
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &settings.token {
        options = options.token(token.clone());
    }
    Ok(options)
}

/// The NKey seed in `path`, checked so that a wrong file fails here with
/// its name rather than later as a refused login. The seed itself never
/// reaches a message.
fn read_seed(path: &Path) -> Result<String, ConnectError> {
    let unusable = |reason: String| ConnectError::Setting {
        setting: "nkey",
        reason: format!("{}: {reason}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|err| unusable(err.to_string()))?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with('S') && !line.is_empty())
        .ok_or_else(|| unusable("no NKey seed (a line starting with S) in it".into()))?;
    nkeys::KeyPair::from_seed(seed)
        .map_err(|_| unusable("the NKey seed in it is not valid".into()))?;
    Ok(seed.to_string())
}

/// TLS when the URL says `tls://` or a TLS file is given.
fn with_tls(
    mut options: async_nats::ConnectOptions,
    settings: &ConnectSettings,
) -> Result<async_nats::ConnectOptions, ConnectError> {
    let wants_tls = server_urls(&settings.url)
        .iter()
        .any(|url| url.starts_with("tls://"));
    for (setting, path) in [
        ("tls_ca", &settings.tls_ca),
        ("tls_cert", &settings.tls_cert),
        ("tls_key", &settings.tls_key),
    ] {
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConnectError::Setting {
                    setting,
                    reason: format!("{} is not a readable file", path.display()),
                });
            }
        }
    }
    if let Some(ca) = &settings.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        (cert, _) => {
            return Err(ConnectError::Setting {
                setting: if cert.is_some() {
                    "tls_key"
                } else {
                    "tls_cert"
                },
                reason: "a client certificate and its key go together".into(),
            })
        }
    }
    let any_file = settings.tls_ca.is_some() || settings.tls_cert.is_some();
    Ok(options.require_tls(wants_tls || any_file))
}

/// The permission violations the server reported to the connections made
/// with one [`ConnectSettings`]: the latest explains the failure that
/// follows it (a request the server never forwarded).
#[derive(Clone, Default)]
pub struct Denials(std::sync::Arc<watch::Sender<Option<String>>>);

impl Denials {
    /// A fresh record of denials.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes to the latest denial.
    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.0.subscribe()
    }

    /// The latest denial, if there was one.
    pub fn latest(&self) -> Option<String> {
        self.0.borrow().clone()
    }
}

impl std::fmt::Debug for Denials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Denials").field(&self.latest()).finish()
    }
}

fn note_event(denials: &Denials, event: async_nats::Event) {
    match event {
        async_nats::Event::ServerError(async_nats::ServerError::Other(text))
            if text.to_ascii_lowercase().contains("permissions violation") =>
        {
            tracing::warn!(denial = %text, "the NATS server denied an operation");
            denials.0.send_replace(Some(text));
        }
        async_nats::Event::ServerError(err) => tracing::warn!(error = %err, "NATS server error"),
        async_nats::Event::Disconnected => tracing::debug!("disconnected from NATS"),
        async_nats::Event::Connected => tracing::debug!("connected to NATS"),
        other => tracing::debug!(event = %other, "NATS connection event"),
    }
}

/// The URLs with any `user:password@` or `token@` part replaced by `***@`,
/// so that no secret reaches a log line or an error message.
pub fn redacted(urls: &str) -> String {
    server_urls(urls)
        .iter()
        .map(|url| {
            let start = url.find("://").map_or(0, |scheme| scheme + 3);
            match url.rfind('@') {
                Some(at) if at >= start => format!("{}***{}", &url[..start], &url[at..]),
                _ => url.clone(),
            }
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
        assert_eq!(redacted("alice:hunter2@h:4222"), "***@h:4222");
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
