//! The worker's settings, typed once: [`WorkerSettings`] is the `[worker]`
//! table of its TOML file and its flags and `SHOAL_*` variables alike
//! (clap and serde derive from the one struct), and figment lays them over
//! each other: defaults < file < variables < flags. A value that cannot be
//! used is refused in one line naming the setting, the value and where it
//! came from; the worker exits 64.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize};
use shoal_client::login::ConnectionArgs;
use shoal_protocol::Duration;
use thiserror::Error;

use crate::config::{Entrypoint, WorkerConfig};

/// A setting that cannot be used; the worker exits 64 with this line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A setting holds a value it cannot take.
    #[error("invalid worker setting `{setting}` = `{value}` (from {from}): {reason}")]
    Invalid {
        /// The setting.
        setting: String,
        /// The value given (secrets as `***`).
        value: String,
        /// Where it came from: the file, or the flags and variables.
        from: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The config file names a setting that does not exist.
    #[error("unknown worker setting `{0}` in the config file")]
    Unknown(String),
    /// The config file cannot be read or is not TOML.
    #[error("cannot read the worker config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Where values of the flags and variables come from, as errors name it.
const FLAGS: &str = "a flag or SHOAL_* variable";

/// Every setting of a worker. One left out is `None`: a layer below gives
/// it, or its default does where it is used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Args)]
pub struct WorkerSettings {
    #[command(flatten)]
    #[serde(flatten)]
    pub connection: ConnectionArgs,
    /// Id to run as; a new one is made when absent.
    #[arg(long, env = "SHOAL_WORKER_ID")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Human name of the worker [default: <host>-<pid>].
    #[arg(long, env = "SHOAL_WORKER_NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Group (tenant) whose jobs it takes [default: default].
    #[arg(short, long, env = "SHOAL_WORKER_GROUP")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Queues it serves, comma-separated [default: default].
    #[arg(long, env = "SHOAL_WORKER_QUEUES", value_delimiter = ',')]
    #[serde(
        default,
        deserialize_with = "list",
        skip_serializing_if = "Option::is_none"
    )]
    pub queues: Option<Vec<String>>,
    /// Its tags, comma-separated: it takes jobs whose tags include all of them [default: none].
    #[arg(long, env = "SHOAL_WORKER_TAGS", value_delimiter = ',')]
    #[serde(
        default,
        deserialize_with = "list",
        skip_serializing_if = "Option::is_none"
    )]
    pub tags: Option<Vec<String>>,
    /// Labels, `key=value` comma-separated [default: none].
    #[arg(long, env = "SHOAL_WORKER_LABELS", value_parser = parse_labels)]
    #[serde(
        default,
        deserialize_with = "labels",
        skip_serializing_if = "Option::is_none"
    )]
    pub labels: Option<BTreeMap<String, String>>,
    /// Also serve the `_system` group's queues [default: false].
    #[arg(long, env = "SHOAL_WORKER_SYSTEM", num_args = 0..=1, default_missing_value = "true", value_parser = parse_flag)]
    #[serde(
        default,
        deserialize_with = "flag",
        skip_serializing_if = "Option::is_none"
    )]
    pub system: Option<bool>,
    /// Jobs run at once, 1 to 1024 [default: 1].
    #[arg(long, env = "SHOAL_WORKER_CONCURRENCY")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Long-poll time of a pull for jobs [default: 5s].
    #[arg(long, env = "SHOAL_WORKER_POLLING_INTERVAL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<Duration>,
    /// Time between heartbeats [default: 5s].
    #[arg(long, env = "SHOAL_WORKER_HEARTBEAT_INTERVAL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<Duration>,
    /// Time after which the worker drains and exits, e.g. 7d; 0s runs forever [default: 0s].
    #[arg(long, env = "SHOAL_WORKER_LIFETIME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Duration>,
    /// Time running jobs get to finish on SIGTERM before they are handed back [default: 30s].
    #[arg(long, env = "SHOAL_WORKER_GRACE_PERIOD")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,
    /// Ack wait of a queue consumer this worker creates [default: 30s].
    #[arg(long, env = "SHOAL_WORKER_ACK_WAIT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_wait: Option<Duration>,
    /// Deliveries of a job before it is given up, for a queue consumer this worker creates, 1 to 1000 [default: 5].
    #[arg(long, env = "SHOAL_WORKER_MAX_DELIVER")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliver: Option<u32>,
    /// Timeout of jobs that set none; 0s means none [default: 0s].
    #[arg(long, env = "SHOAL_WORKER_DEFAULT_TIMEOUT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_timeout: Option<Duration>,
    /// Allow jobs to run raw commands, not just entrypoints [default: false].
    #[arg(long, env = "SHOAL_WORKER_ALLOW_EXEC", num_args = 0..=1, default_missing_value = "true", value_parser = parse_flag)]
    #[serde(
        default,
        deserialize_with = "flag",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_exec: Option<bool>,
    /// Variables a job's env may not set, comma-separated [default: PATH,LD_PRELOAD,LD_LIBRARY_PATH,LD_AUDIT].
    #[arg(long, env = "SHOAL_WORKER_PROTECTED_ENV", value_delimiter = ',')]
    #[serde(
        default,
        deserialize_with = "list",
        skip_serializing_if = "Option::is_none"
    )]
    pub protected_env: Option<Vec<String>>,
    /// Allow jobs to set the protected variables [default: false].
    #[arg(long, env = "SHOAL_WORKER_ALLOW_PROTECTED_ENV", num_args = 0..=1, default_missing_value = "true", value_parser = parse_flag)]
    #[serde(
        default,
        deserialize_with = "flag",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_protected_env: Option<bool>,
    /// Allow jobs to run in any working dir, not only under output_dir [default: false].
    #[arg(long, env = "SHOAL_WORKER_ALLOW_ANY_WORKING_DIR", num_args = 0..=1, default_missing_value = "true", value_parser = parse_flag)]
    #[serde(
        default,
        deserialize_with = "flag",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_any_working_dir: Option<bool>,
    /// Folder for job output and working dirs [default: <temp>/shoal].
    #[arg(long, env = "SHOAL_WORKER_OUTPUT_DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<PathBuf>,
    /// How long a job's folder under output_dir is kept once nothing
    /// changes in it; 0s keeps it for ever [default: 7d].
    #[arg(long, env = "SHOAL_WORKER_OUTPUT_RETENTION")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_retention: Option<Duration>,
    /// Also write logs to a file [default: false].
    #[arg(long, env = "SHOAL_WORKER_FILE_LOG", num_args = 0..=1, default_missing_value = "true", value_parser = parse_flag)]
    #[serde(
        default,
        deserialize_with = "flag",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_log: Option<bool>,
    /// The log file, with file_log [default: <output_dir>/worker.log].
    #[arg(long, env = "SHOAL_WORKER_LOG_PATH")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<PathBuf>,
    /// Log level or filter, e.g. debug or shoal_worker=debug [default: info].
    #[arg(long, env = "SHOAL_WORKER_LOG_LEVEL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    // A field of its own, not the flattened `MetricsArgs`: a bad value in
    // the file is then refused under its own name.
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9100 [default: off].
    #[arg(long, env = "SHOAL_METRICS_LISTEN", value_name = "ADDR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Export a span of each attempt over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 [default: off].
    #[arg(long, env = "SHOAL_OTLP_ENDPOINT", value_name = "URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

/// The flags of `shoal worker run`: its settings, its file and entrypoints.
#[derive(Clone, Debug, Default, Args)]
pub struct WorkerArgs {
    /// TOML file with a `[worker]` table and `[entrypoints.NAME]` tables.
    #[arg(long, env = "SHOAL_WORKER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: WorkerSettings,
    /// Entrypoint `NAME=PROGRAM ARG...` (split as a shell would), repeatable;
    /// `;`-separated in the variable.
    #[arg(
        long = "entrypoint",
        env = "SHOAL_WORKER_ENTRYPOINTS",
        value_delimiter = ';'
    )]
    pub entrypoints: Vec<String>,
}

/// An entrypoint table of the file: `[entrypoints.NAME] command = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntrypointTable {
    command: Vec<String>,
}

/// The whole file: a `[worker]` table and `[entrypoints.NAME]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    worker: Option<Dict>,
    #[serde(default)]
    entrypoints: BTreeMap<String, EntrypointTable>,
}

/// The flags and variables given, as a layer above the file.
struct Flags<'a>(&'a WorkerSettings);

impl Provider for Flags<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(FLAGS)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self.0).data()
    }
}

impl WorkerArgs {
    /// Reads the file (if any), lays the flags and variables over it, and
    /// checks every value.
    pub fn resolve(&self) -> Result<WorkerConfig, ConfigError> {
        let (file, mut entrypoints) = match &self.config {
            Some(path) => read_file(path)?,
            None => (Figment::new(), BTreeMap::new()),
        };
        for text in &self.entrypoints {
            let (name, entrypoint) = parse_entrypoint_flag(text)?;
            entrypoints.insert(name, entrypoint);
        }
        let merged = file.merge(Flags(&self.settings));
        let settings: WorkerSettings = merged.extract().map_err(|err| invalid_in(&merged, err))?;
        let source = |setting: &str| from(&merged, setting);
        WorkerConfig::from_settings(settings, entrypoints, &source)
    }
}

/// Where `setting` came from, as errors name it.
fn from(figment: &Figment, setting: &str) -> String {
    match figment.find_metadata(setting) {
        Some(metadata) => match &metadata.source {
            Some(figment::Source::File(path)) => path.display().to_string(),
            _ => metadata.name.to_string(),
        },
        None => "its default".to_string(),
    }
}

/// A setting that cannot be used: `value` as given, unless it is a secret.
pub(crate) fn invalid(
    setting: &str,
    value: &str,
    from: String,
    reason: impl Into<String>,
) -> ConfigError {
    let value = match shoal_client::login::SECRET_SETTINGS.contains(&setting) {
        true => "***".to_string(),
        false => value.to_string(),
    };
    ConfigError::Invalid {
        setting: setting.to_string(),
        value,
        from,
        reason: reason.into(),
    }
}

/// The figment error of a value of the wrong kind, in one line.
fn invalid_in(figment: &Figment, err: figment::Error) -> ConfigError {
    let setting = err.path.join(".");
    let value = figment
        .find_value(&setting)
        .ok()
        .map(|value| match value.as_str() {
            Some(text) => text.to_string(),
            None => value
                .to_i128()
                .map(|number| number.to_string())
                .unwrap_or_else(|| format!("{value:?}")),
        })
        .unwrap_or_default();
    let reason = match &err.kind {
        figment::error::Kind::InvalidType(_, expected) => format!("expected {expected}"),
        kind => one_line(&kind.to_string()),
    };
    invalid(&setting, &value, from(figment, &setting), reason)
}

/// The file's `[worker]` table as a layer, and its entrypoints; a key
/// that is no setting is refused.
fn read_file(path: &Path) -> Result<(Figment, BTreeMap<String, Entrypoint>), ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|err| file_error(err.to_string()))?;
    let shape: FileShape =
        Figment::from(Toml::string(&text))
            .extract()
            .map_err(|err| match &err.kind {
                figment::error::Kind::UnknownField(field, _) => ConfigError::Unknown(
                    err.path
                        .iter()
                        .chain([field])
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("."),
                ),
                _ => file_error(one_line(&err.to_string())),
            })?;
    let known = setting_names();
    if let Some(unknown) = shape
        .worker
        .iter()
        .flat_map(|table| table.keys())
        .find(|key| !known.contains(key))
    {
        return Err(ConfigError::Unknown(format!("worker.{unknown}")));
    }
    let mut entrypoints = BTreeMap::new();
    for (name, table) in shape.entrypoints {
        entrypoints.insert(
            name.clone(),
            Entrypoint::new(&name, table.command).map_err(|reason| {
                invalid(
                    &format!("entrypoints.{name}.command"),
                    &name,
                    path.display().to_string(),
                    reason.to_string(),
                )
            })?,
        );
    }
    let layer = Figment::from(Toml::file_exact(path)).focus("worker");
    Ok((layer, entrypoints))
}

/// The name of every setting, as in the file, the flags (`-` for `_`) and
/// the variables.
pub fn setting_names() -> Vec<String> {
    WorkerSettings::augment_args(clap::Command::new("worker"))
        .get_arguments()
        .map(|arg| arg.get_id().to_string())
        .collect()
}

/// `NAME=PROGRAM ARG...`, the command split as a shell would.
fn parse_entrypoint_flag(text: &str) -> Result<(String, Entrypoint), ConfigError> {
    let refused = |reason: String| invalid("entrypoint", text, FLAGS.to_string(), reason);
    let (name, command) = text
        .split_once('=')
        .ok_or_else(|| refused("expected NAME=PROGRAM ARG...".into()))?;
    let command =
        shlex::split(command).ok_or_else(|| refused("its command has an unclosed quote".into()))?;
    let entrypoint = Entrypoint::new(name, command).map_err(|err| refused(err.to_string()))?;
    Ok((name.to_string(), entrypoint))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A value that is neither true nor false.
#[derive(Debug, Error)]
#[error("`{0}`: expected true or false")]
pub struct NotAFlag(String);

/// A label that is no `key=value`.
#[derive(Debug, Error)]
#[error("`{0}`: expected key=value")]
pub struct NotALabel(String);

/// `true`, `false` (or yes/no, on/off, 1/0), as a flag's value.
fn parse_flag(text: &str) -> Result<bool, NotAFlag> {
    match text.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(NotAFlag(other.to_string())),
    }
}

/// `key=value,key=value`.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, NotALabel> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
                .filter(|(key, _)| !key.is_empty())
                .ok_or_else(|| NotALabel(pair.to_string()))
        })
        .collect()
}

/// A list in the file: an array of strings, or one comma-separated string.
fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Items(Vec<String>),
        Text(String),
    }
    Ok(
        Option::<List>::deserialize(deserializer)?.map(|list| match list {
            List::Items(items) => items,
            List::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect(),
        }),
    )
}

/// Labels in the file: a table, or one `key=value,...` string.
fn labels<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Labels {
        Table(BTreeMap<String, String>),
        Text(String),
    }
    match Option::<Labels>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Labels::Table(table)) => Ok(Some(table)),
        Some(Labels::Text(text)) => parse_labels(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// A flag in the file: a boolean, or one of the words [`parse_flag`] takes.
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Flag::Bool(value)) => Ok(Some(value)),
        Some(Flag::Text(text)) => parse_flag(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}
