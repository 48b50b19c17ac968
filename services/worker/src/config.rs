//! The worker's configuration, resolved and checked: what it runs with.
//! Its settings, and how they are read and layered, are in `settings`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use shoal_client::connect::ConnectSettings;
use shoal_protocol::token::validate_token;
use shoal_protocol::{Duration, Subjects, SYSTEM_GROUP};

use crate::settings::{invalid, ConfigError, WorkerSettings};

/// A command a job may run by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrypoint {
    /// The program and its first arguments; the job's arguments follow.
    pub command: Vec<String>,
}

/// An entrypoint that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InvalidEntrypoint {
    /// Its name is no token.
    #[error(transparent)]
    Name(#[from] shoal_protocol::token::InvalidToken),
    /// Its command names no program.
    #[error("entrypoint {0}: must name a program")]
    NoProgram(String),
}

impl Entrypoint {
    /// The entrypoint `name` running `command`: a valid name, and a program.
    pub fn new(name: &str, command: Vec<String>) -> Result<Self, InvalidEntrypoint> {
        validate_token("entrypoint", name)?;
        if command.first().is_none_or(String::is_empty) {
            return Err(InvalidEntrypoint::NoProgram(name.to_string()));
        }
        Ok(Self { command })
    }
}

/// The variables a job's env may not set unless the worker allows it: they
/// change which programs and libraries run.
pub const DEFAULT_PROTECTED_ENV: &[&str] = &["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"];

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
    /// The guard each job's program runs under, so that the whole job dies
    /// with the worker; the binary that runs the worker sets it beside itself.
    pub job_guard: Option<shoal_guard::Guard>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The OTLP collector that takes a span of each attempt, if any.
    pub otlp_endpoint: Option<String>,
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

/// Where a setting's value came from, as errors name it.
type Source<'a> = &'a dyn Fn(&str) -> String;

impl WorkerConfig {
    /// Checks every setting and applies the defaults of those left out.
    pub fn from_settings(
        settings: WorkerSettings,
        entrypoints: BTreeMap<String, Entrypoint>,
        source: Source<'_>,
    ) -> Result<Self, ConfigError> {
        let refuse = |setting: &str, value: &str, reason: String| {
            invalid(setting, value, source(setting), reason)
        };
        let connection = &settings.connection;
        let subjects = Subjects::new(connection.prefix())
            .map_err(|err| refuse("prefix", connection.prefix(), err.reason()))?;
        let token = |setting: &str, value: &str| {
            validate_token(setting, value).map_err(|err| refuse(setting, value, err.reason()))
        };
        if let Some(id) = &settings.worker_id {
            token("worker_id", id)?;
        }
        let group = settings
            .group
            .clone()
            .unwrap_or_else(|| shoal_protocol::DEFAULT_GROUP.to_string());
        token("group", &group)?;
        let system = settings.system.unwrap_or(false);
        if group == SYSTEM_GROUP && !system {
            return Err(refuse(
                "group",
                &group,
                "the _system group is served only by workers with system = true".into(),
            ));
        }
        let queues = settings
            .queues
            .clone()
            .unwrap_or_else(|| vec![shoal_protocol::DEFAULT_QUEUE.to_string()]);
        if queues.is_empty() {
            return Err(refuse(
                "queues",
                "",
                "a worker serves at least one queue".into(),
            ));
        }
        for queue in &queues {
            token("queues", queue)?;
        }
        let tags = settings.tags.clone().unwrap_or_default();
        for tag in &tags {
            token("tags", tag)?;
        }
        let protected_env = match &settings.protected_env {
            Some(names) => names.clone(),
            None => DEFAULT_PROTECTED_ENV
                .iter()
                .map(|name| name.to_string())
                .collect(),
        };
        for name in &protected_env {
            let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && !name.is_empty();
            if !valid {
                return Err(refuse(
                    "protected_env",
                    name,
                    "not an environment variable name".into(),
                ));
            }
        }
        let within = |setting: &str, value: Option<u32>, default: u32, most: u32| {
            let value = value.unwrap_or(default);
            match (1..=most).contains(&value) {
                true => Ok(value),
                false => Err(refuse(
                    setting,
                    &value.to_string(),
                    format!("expected a whole number from 1 to {most}"),
                )),
            }
        };
        let positive = |setting: &str, value: Option<Duration>, default: u64| {
            let value = value.unwrap_or(Duration::from_secs(default));
            match value.get().is_zero() {
                true => Err(refuse(
                    setting,
                    &value.to_string(),
                    "must be longer than zero".into(),
                )),
                false => Ok(value),
            }
        };
        let some_time =
            |value: Option<Duration>| value.map(Duration::get).filter(|time| !time.is_zero());
        if (connection.user.is_some()) != (connection.password.is_some()) {
            let setting = if connection.user.is_some() {
                "password"
            } else {
                "user"
            };
            return Err(refuse(setting, "", "user and password go together".into()));
        }
        let output_dir = settings
            .output_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("shoal"));
        let log_path = settings
            .log_path
            .clone()
            .unwrap_or_else(|| output_dir.join("worker.log"));
        Ok(Self {
            connect: ConnectSettings {
                name: "shoal-worker".to_string(),
                ..connection.settings("shoal-worker")
            },
            subjects,
            replicas: within("replicas", connection.replicas.map(u32::from), 1, 5)? as usize,
            worker_id: settings.worker_id.clone(),
            name: settings.name.clone().unwrap_or_else(default_name),
            group,
            queues,
            tags,
            labels: settings.labels.clone().unwrap_or_default(),
            system,
            concurrency: within("concurrency", settings.concurrency, 1, 1024)?,
            polling_interval: positive("polling_interval", settings.polling_interval, 5)?.get(),
            heartbeat_interval: positive("heartbeat_interval", settings.heartbeat_interval, 5)?,
            lifetime: some_time(settings.lifetime),
            grace_period: settings
                .grace_period
                .unwrap_or(Duration::from_secs(30))
                .get(),
            ack_wait: positive("ack_wait", settings.ack_wait, 30)?.get(),
            max_deliver: i64::from(within("max_deliver", settings.max_deliver, 5, 1000)?),
            default_timeout: some_time(settings.default_timeout),
            allow_exec: settings.allow_exec.unwrap_or(false),
            protected_env,
            allow_protected_env: settings.allow_protected_env.unwrap_or(false),
            allow_any_working_dir: settings.allow_any_working_dir.unwrap_or(false),
            entrypoints,
            output_dir,
            output_retention: some_time(Some(
                settings
                    .output_retention
                    .unwrap_or(Duration::from_secs(7 * 86_400)),
            )),
            file_log: settings.file_log.unwrap_or(false),
            log_path,
            log_level: settings
                .log_level
                .clone()
                .unwrap_or_else(|| "info".to_string()),
            job_guard: None,
            metrics_listen: settings.metrics_listen,
            otlp_endpoint: settings.otlp_endpoint.clone(),
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
    use crate::settings::WorkerArgs;

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

    fn with(settings: WorkerSettings) -> WorkerArgs {
        WorkerArgs {
            settings,
            ..WorkerArgs::default()
        }
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
        let file = "[worker]\ngroup = \"acme\"\nconcurrency = 3\nqueues = [\"a\", \"b\"]\nlabels = { zone = \"eu\" }\nsystem = true\n\n[entrypoints.hello]\ncommand = [\"echo\", \"hi\"]\n";
        let args = with(WorkerSettings {
            concurrency: Some(5),
            ..WorkerSettings::default()
        });
        let config = resolve_file(file, args).expect("valid");
        assert_eq!(config.group, "acme");
        assert_eq!(config.concurrency, 5);
        assert_eq!(config.queues, vec!["a", "b"]);
        assert!(config.system);
        assert_eq!(config.labels.get("zone").map(String::as_str), Some("eu"));
        assert_eq!(config.entrypoints["hello"].command, vec!["echo", "hi"]);
    }

    #[test]
    fn the_metrics_address_comes_from_the_file_and_a_bad_one_is_named() {
        let config = resolve_file(
            "[worker]\nmetrics_listen = \"127.0.0.1:9100\"\n",
            WorkerArgs::default(),
        )
        .expect("valid");
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9100".parse().expect("an address"))
        );
        let err = resolve_file(
            "[worker]\nmetrics_listen = \"everywhere\"\n",
            WorkerArgs::default(),
        )
        .expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("invalid worker setting `metrics_listen` = `everywhere`"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_value_names_the_setting_the_value_and_where_it_came_from() {
        let err = resolve_file("[worker]\nconcurrency = \"many\"\n", WorkerArgs::default())
            .expect_err("bad");
        let text = err.to_string();
        assert!(
            text.starts_with("invalid worker setting `concurrency` = `many` (from ")
                && text.contains("worker.toml"),
            "{text}"
        );
        let err =
            resolve_file("[worker]\nconcurrency = 0\n", WorkerArgs::default()).expect_err("bad");
        assert!(
            err.to_string()
                .contains("expected a whole number from 1 to 1024"),
            "{err}"
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
        let err = with(WorkerSettings {
            heartbeat_interval: Some(Duration::from_secs(0)),
            ..WorkerSettings::default()
        })
        .resolve()
        .expect_err("bad");
        assert!(
            err.to_string()
                .contains("`heartbeat_interval` = `0s` (from a flag or SHOAL_* variable)"),
            "{err}"
        );
    }

    #[test]
    fn an_entrypoint_flag_splits_its_command_as_a_shell_would() {
        let args = WorkerArgs {
            entrypoints: vec![r#"rec=sh -c "echo $SHOAL_JOB_ID >> runs""#.to_string()],
            ..WorkerArgs::default()
        };
        let config = args.resolve().expect("valid");
        assert_eq!(
            config.entrypoints["rec"].command,
            vec!["sh", "-c", "echo $SHOAL_JOB_ID >> runs"]
        );
        let unclosed = WorkerArgs {
            entrypoints: vec![r#"rec=sh -c "echo"#.to_string()],
            ..WorkerArgs::default()
        };
        assert!(unclosed.resolve().is_err());
    }

    #[test]
    fn a_secret_is_never_echoed_in_an_error() {
        let err = with(WorkerSettings {
            connection: shoal_client::login::ConnectionArgs {
                password: Some("hunter2".parse().expect("secret")),
                ..Default::default()
            },
            ..WorkerSettings::default()
        })
        .resolve()
        .expect_err("bad");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
