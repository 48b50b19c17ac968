//! The worker's configuration, layered: defaults < TOML file (`[worker]`,
//! `[entrypoints.NAME]`) < `SHOAL_*` environment < command-line flags.
//!
//! Every layer is read as text first, so that a bad value in any of them is
//! reported the same way: one line naming the setting and the value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use shoal_client::connect::ConnectSettings;
use shoal_protocol::token::validate_token;
use shoal_protocol::{Duration, Subjects, SYSTEM_GROUP};
use thiserror::Error;

/// A setting that cannot be used; the worker exits 64 with this line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A setting holds a value it cannot take.
    #[error("invalid worker setting `{setting}` = `{value}`: {reason}")]
    Invalid {
        setting: String,
        value: String,
        reason: String,
    },
    /// The config file names a setting that does not exist.
    #[error("unknown worker setting `{0}` in the config file")]
    Unknown(String),
    /// The config file cannot be read or is not TOML.
    #[error("cannot read the worker config file {path}: {reason}")]
    File { path: String, reason: String },
}

fn invalid(setting: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    // Secrets are never echoed back.
    let value = if SECRET_SETTINGS.contains(&setting) {
        "***".to_string()
    } else {
        value.to_string()
    };
    ConfigError::Invalid {
        setting: setting.to_string(),
        value,
        reason: reason.into(),
    }
}

const SECRET_SETTINGS: &[&str] = &["password", "token"];

/// A command a job may run by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrypoint {
    /// The program and its first arguments; the job's arguments follow.
    pub command: Vec<String>,
}

/// The flags of `shoal worker run`, each also read from its `SHOAL_*` variable.
/// A flag left out keeps the file's value, or the default.
#[derive(Clone, Default, Args)]
pub struct WorkerArgs {
    /// TOML file with a `[worker]` section and `[entrypoints.NAME]` tables.
    #[arg(long, env = "SHOAL_WORKER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// NATS server URL(s), comma-separated [default: nats://127.0.0.1:4222].
    #[arg(long, env = "SHOAL_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// NATS credentials (.creds) file.
    #[arg(long, env = "SHOAL_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<String>,
    /// NATS user name.
    #[arg(long, env = "SHOAL_USER")]
    pub user: Option<String>,
    /// NATS password.
    #[arg(long, env = "SHOAL_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// NATS token.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File with the NKey seed of the worker's NATS user.
    #[arg(long, env = "SHOAL_NKEY", value_name = "FILE")]
    pub nkey: Option<String>,
    /// CA certificate file to trust for the server's TLS certificate.
    #[arg(long, env = "SHOAL_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<String>,
    /// Client certificate file, with tls_key.
    #[arg(long, env = "SHOAL_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// Client certificate key file, with tls_cert.
    #[arg(long, env = "SHOAL_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<String>,
    /// Prefix of reply subjects, e.g. _INBOX.<user> [default: _INBOX].
    #[arg(long, env = "SHOAL_INBOX_PREFIX")]
    pub inbox_prefix: Option<String>,
    /// Subject prefix of the installation [default: shoal].
    #[arg(long, env = "SHOAL_PREFIX")]
    pub prefix: Option<String>,
    /// Replicas of the streams, buckets and consumers it creates; 3 in a cluster [default: 1].
    #[arg(long, env = "SHOAL_REPLICAS")]
    pub replicas: Option<String>,
    /// Id to run as; a new one is made when absent.
    #[arg(long, env = "SHOAL_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Human name of the worker [default: <host>-<pid>].
    #[arg(long, env = "SHOAL_WORKER_NAME")]
    pub name: Option<String>,
    /// Group (tenant) whose jobs it takes [default: default].
    #[arg(short, long, env = "SHOAL_WORKER_GROUP")]
    pub group: Option<String>,
    /// Queues it serves, comma-separated [default: default].
    #[arg(long, env = "SHOAL_WORKER_QUEUES")]
    pub queues: Option<String>,
    /// Its tags, comma-separated: it takes jobs whose tags include all of them [default: none].
    #[arg(long, env = "SHOAL_WORKER_TAGS")]
    pub tags: Option<String>,
    /// Labels, `key=value` comma-separated [default: none].
    #[arg(long, env = "SHOAL_WORKER_LABELS")]
    pub labels: Option<String>,
    /// Also serve the `_system` group's queues [default: false].
    #[arg(long, env = "SHOAL_WORKER_SYSTEM")]
    pub system: Option<String>,
    /// Jobs run at once [default: 1].
    #[arg(long, env = "SHOAL_WORKER_CONCURRENCY")]
    pub concurrency: Option<String>,
    /// Long-poll time of a pull for jobs [default: 5s].
    #[arg(long, env = "SHOAL_WORKER_POLLING_INTERVAL")]
    pub polling_interval: Option<String>,
    /// Time between heartbeats [default: 5s].
    #[arg(long, env = "SHOAL_WORKER_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<String>,
    /// Time after which the worker drains and exits, e.g. 7d; 0s runs forever [default: 0s].
    #[arg(long, env = "SHOAL_WORKER_LIFETIME")]
    pub lifetime: Option<String>,
    /// Time running jobs get to finish on SIGTERM before they are handed back [default: 30s].
    #[arg(long, env = "SHOAL_WORKER_GRACE_PERIOD")]
    pub grace_period: Option<String>,
    /// Ack wait of a queue consumer this worker creates [default: 30s].
    #[arg(long, env = "SHOAL_WORKER_ACK_WAIT")]
    pub ack_wait: Option<String>,
    /// Deliveries of a job before it is given up, for a queue consumer this worker creates [default: 5].
    #[arg(long, env = "SHOAL_WORKER_MAX_DELIVER")]
    pub max_deliver: Option<String>,
    /// Timeout of jobs that set none; 0s means none [default: 0s].
    #[arg(long, env = "SHOAL_WORKER_DEFAULT_TIMEOUT")]
    pub default_timeout: Option<String>,
    /// Allow jobs to run raw commands, not just entrypoints [default: false].
    #[arg(long, env = "SHOAL_WORKER_ALLOW_EXEC")]
    pub allow_exec: Option<String>,
    /// Variables a job's env may not set, comma-separated [default: PATH,LD_PRELOAD,LD_LIBRARY_PATH,LD_AUDIT].
    #[arg(long, env = "SHOAL_WORKER_PROTECTED_ENV")]
    pub protected_env: Option<String>,
    /// Allow jobs to set the protected variables [default: false].
    #[arg(long, env = "SHOAL_WORKER_ALLOW_PROTECTED_ENV")]
    pub allow_protected_env: Option<String>,
    /// Allow jobs to run in any working dir, not only under output_dir [default: false].
    #[arg(long, env = "SHOAL_WORKER_ALLOW_ANY_WORKING_DIR")]
    pub allow_any_working_dir: Option<String>,
    /// Entrypoint `NAME=PROGRAM ARG...`, repeatable; `;`-separated in the variable.
    #[arg(
        long = "entrypoint",
        env = "SHOAL_WORKER_ENTRYPOINTS",
        value_delimiter = ';'
    )]
    pub entrypoints: Vec<String>,
    /// Folder for job output and working dirs [default: <temp>/shoal].
    #[arg(long, env = "SHOAL_WORKER_OUTPUT_DIR")]
    pub output_dir: Option<String>,
    /// How long a job's folder under output_dir is kept once nothing
    /// changes in it; 0s keeps it for ever [default: 7d].
    #[arg(long, env = "SHOAL_WORKER_OUTPUT_RETENTION")]
    pub output_retention: Option<String>,
    /// Also write logs to a file [default: false].
    #[arg(long, env = "SHOAL_WORKER_FILE_LOG")]
    pub file_log: Option<String>,
    /// The log file, with file_log [default: <output_dir>/worker.log].
    #[arg(long, env = "SHOAL_WORKER_LOG_PATH")]
    pub log_path: Option<String>,
    /// Log level or filter, e.g. debug or shoal_worker=debug [default: info].
    #[arg(long, env = "SHOAL_WORKER_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// Everything a worker needs to run, resolved and checked.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How to reach NATS.
    pub connect: ConnectSettings,
    /// The subjects of the installation.
    pub subjects: Subjects,
    /// Replicas of what it creates.
    pub replicas: usize,
    /// Id to run as, if one was given.
    pub worker_id: Option<String>,
    /// Human name.
    pub name: String,
    /// Group whose jobs it takes.
    pub group: String,
    /// Queues it serves.
    pub queues: Vec<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Whether it also serves `_system`.
    pub system: bool,
    /// Jobs run at once.
    pub concurrency: u32,
    /// Long-poll time.
    pub polling_interval: std::time::Duration,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Time after which it drains and exits.
    pub lifetime: Option<std::time::Duration>,
    /// Time running jobs get to finish when it drains.
    pub grace_period: std::time::Duration,
    /// Ack wait of consumers it creates.
    pub ack_wait: std::time::Duration,
    /// Max deliveries of consumers it creates.
    pub max_deliver: i64,
    /// Timeout of jobs that set none.
    pub default_timeout: Option<std::time::Duration>,
    /// Whether raw commands may run.
    pub allow_exec: bool,
    /// Variables a job's env may not set.
    pub protected_env: Vec<String>,
    /// Whether jobs may set them anyway.
    pub allow_protected_env: bool,
    /// Whether a job's working dir may lie outside `output_dir`.
    pub allow_any_working_dir: bool,
    /// Commands jobs may run by name.
    pub entrypoints: BTreeMap<String, Entrypoint>,
    /// Folder for job output.
    pub output_dir: PathBuf,
    /// How long an untouched job folder is kept; `None`: for ever.
    pub output_retention: Option<std::time::Duration>,
    /// Whether logs also go to a file.
    pub file_log: bool,
    /// The log file.
    pub log_path: PathBuf,
    /// Log filter.
    pub log_level: String,
    /// The `shoal` binary that runs each job's program under a guard
    /// (`shoal __job-guard`), so that the whole job dies with the worker;
    /// the binary that runs the worker sets it to itself.
    pub job_guard: Option<PathBuf>,
}

/// The settings of the `[worker]` section, each with its text value.
type Layer = BTreeMap<String, String>;

/// The names of the `[worker]` settings, as in the file, the flags and the variables.
pub const SETTINGS: &[&str] = &[
    "nats_url",
    "credentials",
    "user",
    "password",
    "token",
    "nkey",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "inbox_prefix",
    "prefix",
    "replicas",
    "worker_id",
    "name",
    "group",
    "queues",
    "tags",
    "labels",
    "system",
    "concurrency",
    "polling_interval",
    "heartbeat_interval",
    "lifetime",
    "grace_period",
    "ack_wait",
    "max_deliver",
    "default_timeout",
    "allow_exec",
    "protected_env",
    "allow_protected_env",
    "allow_any_working_dir",
    "output_dir",
    "output_retention",
    "file_log",
    "log_path",
    "log_level",
];

impl WorkerArgs {
    fn layer(&self) -> Layer {
        let values = [
            ("nats_url", &self.nats_url),
            ("credentials", &self.credentials),
            ("user", &self.user),
            ("password", &self.password),
            ("token", &self.token),
            ("nkey", &self.nkey),
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("inbox_prefix", &self.inbox_prefix),
            ("prefix", &self.prefix),
            ("replicas", &self.replicas),
            ("worker_id", &self.worker_id),
            ("name", &self.name),
            ("group", &self.group),
            ("queues", &self.queues),
            ("tags", &self.tags),
            ("labels", &self.labels),
            ("system", &self.system),
            ("concurrency", &self.concurrency),
            ("polling_interval", &self.polling_interval),
            ("heartbeat_interval", &self.heartbeat_interval),
            ("lifetime", &self.lifetime),
            ("grace_period", &self.grace_period),
            ("ack_wait", &self.ack_wait),
            ("max_deliver", &self.max_deliver),
            ("default_timeout", &self.default_timeout),
            ("allow_exec", &self.allow_exec),
            ("protected_env", &self.protected_env),
            ("allow_protected_env", &self.allow_protected_env),
            ("allow_any_working_dir", &self.allow_any_working_dir),
            ("output_dir", &self.output_dir),
            ("output_retention", &self.output_retention),
            ("file_log", &self.file_log),
            ("log_path", &self.log_path),
            ("log_level", &self.log_level),
        ];
        values
            .into_iter()
            .filter_map(|(name, value)| {
                value
                    .as_ref()
                    .map(|value| (name.to_string(), value.clone()))
            })
            .collect()
    }

    /// Reads the file (if any), lays the flags and variables over it, and checks every value.
    ///
    /// (Its `Debug` shows every setting given, secrets as `***`.)
    pub fn resolve(&self) -> Result<WorkerConfig, ConfigError> {
        let (mut layer, mut entrypoints) = match &self.config {
            Some(path) => read_file(path)?,
            None => (Layer::new(), BTreeMap::new()),
        };
        layer.extend(self.layer());
        for text in &self.entrypoints {
            let (name, entrypoint) = parse_entrypoint_flag(text)?;
            entrypoints.insert(name, entrypoint);
        }
        WorkerConfig::from_layer(&layer, entrypoints)
    }
}

impl std::fmt::Debug for WorkerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        let mut settings = self.layer();
        for secret in SECRET_SETTINGS {
            if let Some(value) = settings.get_mut(*secret) {
                *value = "***".to_string();
            }
        }
        if let Some(url) = settings.get_mut("nats_url") {
            *url = shoal_client::connect::redacted(url);
        }
        f.debug_struct("WorkerArgs")
            .field("config", &self.config)
            .field("settings", &settings)
            .field("entrypoints", &self.entrypoints)
            .finish()
    }
}

fn read_file(path: &Path) -> Result<(Layer, BTreeMap<String, Entrypoint>), ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|err| file_error(err.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| file_error(one_line(err.message())))?;
    let mut layer = Layer::new();
    let mut entrypoints = BTreeMap::new();
    for (section, value) in table {
        match (section.as_str(), value) {
            ("worker", toml::Value::Table(worker)) => {
                for (key, value) in worker {
                    if !SETTINGS.contains(&key.as_str()) {
                        return Err(ConfigError::Unknown(format!("worker.{key}")));
                    }
                    let text = toml_to_text(&format!("worker.{key}"), &value)?;
                    layer.insert(key, text);
                }
            }
            ("entrypoints", toml::Value::Table(table)) => {
                for (name, value) in table {
                    entrypoints.insert(name.clone(), parse_entrypoint_table(&name, &value)?);
                }
            }
            (other, _) => return Err(ConfigError::Unknown(other.to_string())),
        }
    }
    Ok((layer, entrypoints))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn toml_to_text(setting: &str, value: &toml::Value) -> Result<String, ConfigError> {
    let text = match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_string).ok_or_else(|| {
                    invalid(setting, &item.to_string(), "expected a list of strings")
                })
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        toml::Value::Table(table) => table
            .iter()
            .map(|(key, item)| {
                item.as_str()
                    .map(|item| format!("{key}={item}"))
                    .ok_or_else(|| {
                        invalid(
                            &format!("{setting}.{key}"),
                            &item.to_string(),
                            "expected a string",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        other => {
            return Err(invalid(
                setting,
                &other.to_string(),
                "unexpected kind of value",
            ))
        }
    };
    Ok(text)
}

fn parse_entrypoint_table(name: &str, value: &toml::Value) -> Result<Entrypoint, ConfigError> {
    let setting = format!("entrypoints.{name}.command");
    validate_token("entrypoint", name)
        .map_err(|err| invalid(&format!("entrypoints.{name}"), name, err.to_string()))?;
    let command = value
        .get("command")
        .and_then(toml::Value::as_array)
        .ok_or_else(|| {
            invalid(
                &setting,
                &value.to_string(),
                "expected `command = [\"program\", \"arg\", ...]`",
            )
        })?;
    let command: Vec<String> = command
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(&setting, &item.to_string(), "expected a string"))
        })
        .collect::<Result<_, _>>()?;
    if command.first().is_none_or(String::is_empty) {
        return Err(invalid(&setting, "[]", "must name a program"));
    }
    if let Some(table) = value.as_table() {
        if let Some(unknown) = table.keys().find(|key| key.as_str() != "command") {
            return Err(ConfigError::Unknown(format!(
                "entrypoints.{name}.{unknown}"
            )));
        }
    }
    Ok(Entrypoint { command })
}

fn parse_entrypoint_flag(text: &str) -> Result<(String, Entrypoint), ConfigError> {
    let (name, command) = text
        .split_once('=')
        .ok_or_else(|| invalid("entrypoint", text, "expected NAME=PROGRAM ARG..."))?;
    validate_token("entrypoint", name)
        .map_err(|err| invalid("entrypoint", text, err.to_string()))?;
    let command: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    if command.is_empty() {
        return Err(invalid("entrypoint", text, "must name a program"));
    }
    Ok((name.to_string(), Entrypoint { command }))
}

fn get<'a>(layer: &'a Layer, setting: &str) -> Option<&'a str> {
    layer.get(setting).map(String::as_str)
}

fn parse_bool(layer: &Layer, setting: &str, default: bool) -> Result<bool, ConfigError> {
    match get(layer, setting) {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(invalid(setting, other, "expected true or false")),
    }
}

fn parse_duration(layer: &Layer, setting: &str, default: &str) -> Result<Duration, ConfigError> {
    let text = get(layer, setting).unwrap_or(default);
    text.parse::<Duration>()
        .map_err(|err| invalid(setting, text, err.to_string()))
}

fn parse_positive_duration(
    layer: &Layer,
    setting: &str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let duration = parse_duration(layer, setting, default)?;
    if duration.get().is_zero() {
        return Err(invalid(
            setting,
            &duration.to_string(),
            "must be longer than zero",
        ));
    }
    Ok(duration)
}

fn optional_duration(
    layer: &Layer,
    setting: &str,
) -> Result<Option<std::time::Duration>, ConfigError> {
    let duration = parse_duration(layer, setting, "0s")?.get();
    Ok((!duration.is_zero()).then_some(duration))
}

fn parse_number(
    layer: &Layer,
    setting: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(text) = get(layer, setting) else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|number| range.contains(number))
        .ok_or_else(|| {
            invalid(
                setting,
                text,
                format!(
                    "expected a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// The variables a job's env may not set unless the worker allows it: they
/// change which programs and libraries run.
pub const DEFAULT_PROTECTED_ENV: &[&str] = &["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"];

/// A comma-separated list of environment variable names.
fn parse_names(layer: &Layer, setting: &str, default: &[&str]) -> Result<Vec<String>, ConfigError> {
    let Some(text) = get(layer, setting) else {
        return Ok(default.iter().map(|name| name.to_string()).collect());
    };
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if valid {
                Ok(name.to_string())
            } else {
                Err(invalid(setting, name, "not an environment variable name"))
            }
        })
        .collect()
}

fn parse_tokens(
    layer: &Layer,
    setting: &str,
    default: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let items: Vec<String> = match get(layer, setting) {
        None => default.iter().map(|item| item.to_string()).collect(),
        Some(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect(),
    };
    for item in &items {
        validate_token(setting, item)
            .map_err(|_| invalid(setting, item, "use letters, digits, `_` and `-` only"))?;
    }
    Ok(items)
}

fn parse_labels(layer: &Layer) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(text) = get(layer, "labels") else {
        return Ok(BTreeMap::new());
    };
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
                .filter(|(key, _)| !key.is_empty())
                .ok_or_else(|| invalid("labels", pair, "expected key=value"))
        })
        .collect()
}

fn default_name() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

/// The machine's host name, as the kernel reports it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

impl WorkerConfig {
    fn from_layer(
        layer: &Layer,
        entrypoints: BTreeMap<String, Entrypoint>,
    ) -> Result<Self, ConfigError> {
        let text = |setting: &str| get(layer, setting).map(str::to_string);
        let prefix = get(layer, "prefix").unwrap_or("shoal");
        let subjects =
            Subjects::new(prefix).map_err(|err| invalid("prefix", prefix, err.to_string()))?;
        let worker_id = text("worker_id");
        if let Some(id) = &worker_id {
            validate_token("worker_id", id)
                .map_err(|err| invalid("worker_id", id, err.to_string()))?;
        }
        let group = get(layer, "group")
            .unwrap_or(shoal_protocol::DEFAULT_GROUP)
            .to_string();
        validate_token("group", &group).map_err(|err| invalid("group", &group, err.to_string()))?;
        let system = parse_bool(layer, "system", false)?;
        if group == SYSTEM_GROUP && !system {
            return Err(invalid(
                "group",
                &group,
                "the _system group is served only by workers with system = true",
            ));
        }
        let queues = parse_tokens(layer, "queues", &["default"])?;
        if queues.is_empty() {
            return Err(invalid("queues", "", "a worker serves at least one queue"));
        }
        let output_dir = PathBuf::from(
            text("output_dir")
                .unwrap_or_else(|| std::env::temp_dir().join("shoal").display().to_string()),
        );
        let log_path =
            text("log_path").map_or_else(|| output_dir.join("worker.log"), PathBuf::from);
        let credentials = text("credentials").map(PathBuf::from);
        let (user, password) = (text("user"), text("password"));
        if user.is_some() != password.is_some() {
            let setting = if user.is_some() { "password" } else { "user" };
            return Err(invalid(setting, "", "user and password go together"));
        }
        Ok(Self {
            connect: ConnectSettings {
                url: text("nats_url").unwrap_or_else(|| "nats://127.0.0.1:4222".to_string()),
                credentials,
                user,
                password,
                token: text("token"),
                nkey: text("nkey").map(PathBuf::from),
                tls_ca: text("tls_ca").map(PathBuf::from),
                tls_cert: text("tls_cert").map(PathBuf::from),
                tls_key: text("tls_key").map(PathBuf::from),
                inbox_prefix: text("inbox_prefix"),
                name: "shoal-worker".to_string(),
            },
            subjects,
            replicas: parse_number(layer, "replicas", 1, 1..=5)? as usize,
            worker_id,
            name: text("name").unwrap_or_else(default_name),
            group,
            queues,
            tags: parse_tokens(layer, "tags", &[])?,
            labels: parse_labels(layer)?,
            system,
            concurrency: parse_number(layer, "concurrency", 1, 1..=1024)? as u32,
            polling_interval: parse_positive_duration(layer, "polling_interval", "5s")?.get(),
            heartbeat_interval: parse_positive_duration(layer, "heartbeat_interval", "5s")?,
            lifetime: optional_duration(layer, "lifetime")?,
            grace_period: parse_duration(layer, "grace_period", "30s")?.get(),
            ack_wait: parse_positive_duration(layer, "ack_wait", "30s")?.get(),
            max_deliver: parse_number(layer, "max_deliver", 5, 1..=1000)? as i64,
            default_timeout: optional_duration(layer, "default_timeout")?,
            allow_exec: parse_bool(layer, "allow_exec", false)?,
            protected_env: parse_names(layer, "protected_env", DEFAULT_PROTECTED_ENV)?,
            allow_protected_env: parse_bool(layer, "allow_protected_env", false)?,
            allow_any_working_dir: parse_bool(layer, "allow_any_working_dir", false)?,
            entrypoints,
            output_dir,
            output_retention: Some(parse_duration(layer, "output_retention", "7d")?.get())
                .filter(|retention| !retention.is_zero()),
            file_log: parse_bool(layer, "file_log", false)?,
            log_path,
            log_level: text("log_level").unwrap_or_else(|| "info".to_string()),
            job_guard: None,
        })
    }

    /// The groups whose queues the worker serves: its own, and `_system` for a system worker.
    pub fn served_groups(&self) -> Vec<String> {
        let mut groups = vec![self.group.clone()];
        if self.system && self.group != SYSTEM_GROUP {
            groups.push(SYSTEM_GROUP.to_string());
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_file(text: &str, args: WorkerArgs) -> Result<WorkerConfig, ConfigError> {
        let dir = std::env::temp_dir().join(format!("shoal-config-test-{}", nuid::next()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("worker.toml");
        std::fs::write(&path, text).expect("write config");
        let result = WorkerArgs {
            config: Some(path),
            ..args
        }
        .resolve();
        let _ = std::fs::remove_dir_all(dir);
        result
    }

    #[test]
    fn with_nothing_set_every_setting_has_its_default() {
        let config = WorkerArgs::default().resolve().expect("defaults are valid");
        assert_eq!(config.group, "default");
        assert_eq!(config.queues, vec!["default"]);
        assert_eq!(config.concurrency, 1);
        assert_eq!(config.connect.url, "nats://127.0.0.1:4222");
        assert!(!config.allow_exec);
        assert_eq!(config.lifetime, None);
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let file = "[worker]\ngroup = \"acme\"\nconcurrency = 3\nqueues = [\"a\", \"b\"]\nlabels = { zone = \"eu\" }\n\n[entrypoints.hello]\ncommand = [\"echo\", \"hi\"]\n";
        let args = WorkerArgs {
            concurrency: Some("5".into()),
            ..WorkerArgs::default()
        };
        let config = resolve_file(file, args).expect("valid");
        assert_eq!(config.group, "acme");
        assert_eq!(config.concurrency, 5);
        assert_eq!(config.queues, vec!["a", "b"]);
        assert_eq!(config.labels.get("zone").map(String::as_str), Some("eu"));
        assert_eq!(config.entrypoints["hello"].command, vec!["echo", "hi"]);
    }

    #[test]
    fn a_bad_value_names_the_setting_and_the_value() {
        let err = resolve_file("[worker]\nconcurrency = \"many\"\n", WorkerArgs::default())
            .expect_err("bad");
        assert_eq!(
            err.to_string(),
            "invalid worker setting `concurrency` = `many`: expected a whole number from 1 to 1024"
        );
        let err = resolve_file(
            "[worker]\nheartbeat_intervall = \"5s\"\n",
            WorkerArgs::default(),
        )
        .expect_err("bad");
        assert!(
            err.to_string().contains("worker.heartbeat_intervall"),
            "{err}"
        );
        let err = WorkerArgs {
            lifetime: Some("soon".into()),
            ..WorkerArgs::default()
        }
        .resolve()
        .expect_err("bad");
        assert!(err.to_string().contains("`lifetime` = `soon`"), "{err}");
    }

    #[test]
    fn a_secret_is_never_echoed_in_an_error() {
        let err = WorkerArgs {
            password: Some("hunter2".into()),
            ..WorkerArgs::default()
        }
        .resolve()
        .expect_err("bad");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
