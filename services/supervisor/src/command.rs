//! `shoal supervise`: runs the worker replicas of one pool on this machine,
//! restarts them, scales them on the queue backlog (and CPU and memory), and
//! drains them when told to stop. Its flags, and what they make.

use std::path::PathBuf;

use clap::Args;
use shoal_client::connect::connect;
use shoal_client::login::{ConnectionArgs, Secret};
use shoal_protocol::Duration;
use tokio_util::sync::CancellationToken;

use crate::{PoolPlan, SupervisorConfig, SupervisorError};

const AFTER_HELP: &str = "\
Replicas run `shoal worker run` with the pool's settings, inherit this environment \
(so SHOAL_WORKER_* settings the pool does not declare can be set here) and are named <pool>-<n>.
Autoscaling: wanted = ceil(backlog / target backlog), or ceil(replicas x use / target) for a \
CPU or memory target; up at once, down after the cooldown.
Secrets: `env:NAME` (this environment) and `file:PATH` (only for a pool given with -f); \
`k8s:` references are refused.
Logins: replicas log in with the --replica-* settings when any is given, else as the supervisor; \
they never inherit a login from this environment.
State: KV shoal_supervisors <group>.<pool>. Events: shoal.evt.pool.<group>.<pool>.
SIGTERM or SIGINT drains every replica, then exits 0.";

/// Flags of `shoal supervise`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["file", "pool"]))]
pub struct SuperviseArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// YAML file with the Pool resource to run.
    #[arg(short, long, env = "SHOAL_SUPERVISOR_FILE", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Name of a pool applied with `shoal apply`, read from the shoal_pools bucket.
    #[arg(long, env = "SHOAL_SUPERVISOR_POOL", value_name = "NAME")]
    pool: Option<String>,
    /// Group of the pool (the pool's own `group` wins for a file).
    #[arg(
        short,
        long,
        visible_short_alias = 'w',
        env = "SHOAL_SUPERVISOR_GROUP",
        default_value = shoal_protocol::DEFAULT_GROUP
    )]
    group: String,
    /// Time between two reads of the backlog, CPU and memory.
    #[arg(long, env = "SHOAL_SUPERVISOR_POLL_INTERVAL", default_value = "1s")]
    poll_interval: Duration,
    /// Jobs waiting or running per replica that autoscaling aims for.
    #[arg(
        long,
        env = "SHOAL_SUPERVISOR_TARGET_BACKLOG",
        default_value_t = crate::kubernetes::DEFAULT_TARGET_BACKLOG
    )]
    target_backlog: u64,
    /// Time fewer replicas must be wanted before some are drained.
    #[arg(long, env = "SHOAL_SUPERVISOR_COOLDOWN", default_value = "30s")]
    cooldown: Duration,
    /// First delay before a replica that ended is started again; it doubles with each quick failure.
    #[arg(long, env = "SHOAL_SUPERVISOR_RESTART_BACKOFF", default_value = "1s")]
    restart_backoff: Duration,
    /// Longest delay before a restart.
    #[arg(
        long,
        env = "SHOAL_SUPERVISOR_RESTART_BACKOFF_MAX",
        default_value = "30s"
    )]
    restart_backoff_max: Duration,
    /// NATS user of the replicas (with --replica-password); without any
    /// --replica-* login, replicas log in as the supervisor does.
    #[arg(long, env = "SHOAL_SUPERVISOR_REPLICA_USER")]
    replica_user: Option<String>,
    /// NATS password of the replicas.
    #[arg(
        long,
        env = "SHOAL_SUPERVISOR_REPLICA_PASSWORD",
        hide_env_values = true
    )]
    replica_password: Option<Secret>,
    /// NATS token of the replicas.
    #[arg(long, env = "SHOAL_SUPERVISOR_REPLICA_TOKEN", hide_env_values = true)]
    replica_token: Option<Secret>,
    /// File with the NKey seed of the replicas' NATS user.
    #[arg(long, env = "SHOAL_SUPERVISOR_REPLICA_NKEY", value_name = "FILE")]
    replica_nkey: Option<PathBuf>,
    /// NATS credentials (.creds) file of the replicas.
    #[arg(
        long,
        env = "SHOAL_SUPERVISOR_REPLICA_CREDENTIALS",
        value_name = "FILE"
    )]
    replica_credentials: Option<PathBuf>,
    /// Reply-subject prefix of the replicas' user, e.g. _INBOX.<user>.
    #[arg(long, env = "SHOAL_SUPERVISOR_REPLICA_INBOX_PREFIX")]
    replica_inbox_prefix: Option<String>,
    /// Longest a replica may take to drain (it has 30s for its jobs) before it is killed.
    #[arg(long, env = "SHOAL_SUPERVISOR_DRAIN_TIMEOUT", default_value = "60s")]
    drain_timeout: Duration,
    #[command(flatten)]
    metrics: shoal_metrics::MetricsArgs,
}

fn path_text(path: &Option<std::path::PathBuf>) -> Option<String> {
    path.as_ref().map(|path| path.display().to_string())
}

impl SuperviseArgs {
    /// The variables every replica gets for the connection, from these flags.
    fn connection_env(&self) -> Vec<(String, String)> {
        let connection = &self.connection;
        let mut env = vec![
            ("SHOAL_NATS_URL".to_string(), connection.url().to_string()),
            ("SHOAL_PREFIX".to_string(), connection.prefix().to_string()),
            (
                "SHOAL_REPLICAS".to_string(),
                connection.replicas().to_string(),
            ),
        ];
        let mut optional = vec![
            ("SHOAL_TLS_CA", path_text(&connection.tls_ca)),
            ("SHOAL_TLS_CERT", path_text(&connection.tls_cert)),
            ("SHOAL_TLS_KEY", path_text(&connection.tls_key)),
        ];
        optional.extend(self.replica_login());
        for (name, value) in optional {
            if let Some(value) = value {
                env.push((name.to_string(), value));
            }
        }
        env
    }

    /// The replicas' login: the --replica-* settings when any is given (a
    /// worker login of the pool's group, on a server with roles), else the
    /// supervisor's own.
    fn replica_login(&self) -> Vec<(&'static str, Option<String>)> {
        let own = [
            self.replica_user.is_some(),
            self.replica_password.is_some(),
            self.replica_token.is_some(),
            self.replica_nkey.is_some(),
            self.replica_credentials.is_some(),
        ]
        .contains(&true);
        let connection = &self.connection;
        let secret =
            |secret: &Option<Secret>| secret.as_ref().map(|secret| secret.expose().to_string());
        let choose = |replica: Option<String>, supervisor: Option<String>| {
            if own {
                replica
            } else {
                supervisor
            }
        };
        vec![
            (
                "SHOAL_USER",
                choose(self.replica_user.clone(), connection.user.clone()),
            ),
            (
                "SHOAL_PASSWORD",
                choose(secret(&self.replica_password), secret(&connection.password)),
            ),
            (
                "SHOAL_TOKEN",
                choose(secret(&self.replica_token), secret(&connection.token)),
            ),
            (
                "SHOAL_NKEY",
                choose(path_text(&self.replica_nkey), path_text(&connection.nkey)),
            ),
            (
                "SHOAL_CREDENTIALS",
                choose(
                    path_text(&self.replica_credentials),
                    path_text(&connection.credentials),
                ),
            ),
            (
                "SHOAL_INBOX_PREFIX",
                choose(
                    self.replica_inbox_prefix.clone(),
                    connection.inbox_prefix.clone(),
                ),
            ),
        ]
    }

    fn check(&self) -> Result<(), SupervisorError> {
        let invalid =
            |field: &str, reason: &str| Err(SupervisorError::Pool(format!("{field}: {reason}")));
        if self.poll_interval.get().is_zero() {
            return invalid("poll_interval", "must be more than zero");
        }
        if self.target_backlog == 0 {
            return invalid("target_backlog", "must be at least 1");
        }
        if self.drain_timeout.get().is_zero() {
            return invalid("drain_timeout", "must be more than zero");
        }
        Ok(())
    }
}

/// Runs the pool `args` names with replicas of `program` until `shutdown`;
/// a pool or setting that cannot be used is a [`SupervisorError::Pool`].
pub async fn supervise(
    args: SuperviseArgs,
    program: PathBuf,
    shutdown: CancellationToken,
) -> Result<(), SupervisorError> {
    args.check()?;
    let plan = match &args.file {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|err| {
                SupervisorError::Pool(format!("file: cannot read {}: {err}", file.display()))
            })?;
            Some(PoolPlan::from_yaml(&text, &args.group)?)
        }
        None => None,
    };
    let client = connect(&args.connection.settings("shoal-supervisor")).await?;
    let layout = args
        .connection
        .layout()
        .map_err(|err| SupervisorError::Pool(err.to_string()))?;
    let plan = match (plan, &args.pool) {
        (Some(plan), _) => plan,
        (None, Some(name)) => {
            let js = async_nats::jetstream::new(client.clone());
            let buckets = layout.ensure(&js).await?;
            PoolPlan::from_bucket(&buckets.pools, &args.group, name).await?
        }
        (None, None) => return Err(SupervisorError::Pool("file: give --file or --pool".into())),
    };
    let config = SupervisorConfig {
        layout,
        pool: plan,
        program,
        env: args.connection_env(),
        poll_interval: args.poll_interval.get(),
        target_backlog: args.target_backlog,
        cooldown: args.cooldown.get(),
        restart_backoff: args.restart_backoff.get(),
        restart_backoff_max: args.restart_backoff_max.get(),
        drain_timeout: args.drain_timeout.get(),
        metrics_listen: args.metrics.metrics_listen,
    };
    crate::run(config, client.clone(), shutdown).await?;
    client
        .drain()
        .await
        .map_err(|err| SupervisorError::Nats(format!("cannot drain the connection: {err}")))
}
