//! `shoal worker run` and `shoal projector run`: the long-running services,
//! stopped by SIGTERM or SIGINT.

use anyhow::Context;
use clap::{Args, Subcommand};
use shoal_client::connect::connect;
use shoal_projector::ProjectorConfig;
use shoal_worker::{WorkerArgs, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::connection::ConnectionArgs;

/// Commands of `shoal worker`.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Run a worker until SIGTERM, SIGINT or the end of its lifetime.
    Run(WorkerArgs),
    #[command(flatten)]
    Identity(crate::workers::IdentityCommand),
}

/// Commands of `shoal registry`.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the admin API and check liveness until SIGTERM or SIGINT.
    Run(RegistryArgs),
}

/// Flags of `shoal registry run`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Heartbeat intervals without a heartbeat after which a worker is lost.
    #[arg(long, env = "SHOAL_REGISTRY_LOST_AFTER", default_value_t = 3)]
    lost_after: u32,
    /// How often liveness is checked.
    #[arg(long, env = "SHOAL_REGISTRY_CHECK_INTERVAL", default_value = "1s")]
    check_interval: String,
    /// How often submitted jobs are compared with their records (missing jobs).
    #[arg(long, env = "SHOAL_REGISTRY_RECONCILE_INTERVAL", default_value = "10s")]
    reconcile_interval: String,
    #[command(flatten)]
    metrics: shoal_metrics::MetricsArgs,
}

/// Commands of `shoal projector`.
#[derive(Debug, Subcommand)]
pub enum ProjectorCommand {
    /// Fold events into the KV buckets until SIGTERM or SIGINT.
    Run(ProjectorArgs),
}

/// Flags of `shoal projector run`.
#[derive(Debug, Args)]
pub struct ProjectorArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Read every stream again from its start with a private consumer, then exit.
    #[arg(long, env = "SHOAL_PROJECTOR_REPLAY")]
    replay: bool,
    /// Most messages folded in one batch.
    #[arg(long, env = "SHOAL_PROJECTOR_BATCH_SIZE", default_value_t = 2048)]
    batch_size: usize,
    /// Most jobs waiting in one group: its new submissions past that are
    /// rejected with the reason (0: no quota).
    #[arg(
        long,
        env = "SHOAL_PROJECTOR_MAX_WAITING_PER_GROUP",
        default_value_t = shoal_projector::DEFAULT_MAX_WAITING_PER_GROUP
    )]
    max_waiting_per_group: u64,
    #[command(flatten)]
    metrics: shoal_metrics::MetricsArgs,
}

/// A token cancelled by the first SIGTERM or SIGINT.
pub fn shutdown_on_signal() -> anyhow::Result<CancellationToken> {
    shoal_lab::signals::shutdown_on_signal().map_err(anyhow::Error::from_boxed)
}

/// Runs a worker until it has drained.
pub async fn run_worker(mut config: WorkerConfig) -> anyhow::Result<()> {
    config.job_guard = shoal_guard::Guard::of_current_exe();
    let shutdown = shutdown_on_signal()?;
    let client = connect(&config.connect)
        .await
        .context("the worker cannot start")?;
    shoal_worker::run(config, client, shutdown)
        .await
        .context("the worker stopped")
}

/// Runs the projector until it is stopped (or, with `--replay`, has caught up).
pub async fn run_projector(command: ProjectorCommand) -> anyhow::Result<()> {
    let ProjectorCommand::Run(args) = command;
    let shutdown = shutdown_on_signal()?;
    let client = args.connection.connect("shoal-projector").await?;
    let config = ProjectorConfig {
        layout: args.connection.layout()?,
        replay: args.replay,
        batch_size: args.batch_size,
        max_waiting_per_group: args.max_waiting_per_group,
        metrics_listen: args.metrics.metrics_listen,
    };
    shoal_projector::run(config, client.clone(), shutdown)
        .await
        .context("the projector stopped")?;
    client
        .drain()
        .await
        .context("cannot drain the connection")?;
    Ok(())
}

/// Runs the registry until it is stopped.
pub async fn run_registry(command: RegistryCommand) -> anyhow::Result<()> {
    let RegistryCommand::Run(args) = command;
    let check_interval: shoal_protocol::Duration =
        args.check_interval.parse().context("check_interval")?;
    if args.lost_after == 0 || check_interval.get().is_zero() {
        anyhow::bail!("lost_after and check_interval must be more than zero");
    }
    let shutdown = shutdown_on_signal()?;
    let client = args.connection.connect("shoal-registry").await?;
    let config = shoal_registry::RegistryConfig {
        layout: args.connection.layout()?,
        lost_after: args.lost_after,
        check_interval: check_interval.get(),
        reconcile_interval: args
            .reconcile_interval
            .parse::<shoal_protocol::Duration>()
            .context("reconcile_interval")?
            .get()
            .max(std::time::Duration::from_millis(100)),
        metrics_listen: args.metrics.metrics_listen,
    };
    shoal_registry::run(config, client.clone(), shutdown)
        .await
        .context("the registry stopped")?;
    client
        .drain()
        .await
        .context("cannot drain the connection")?;
    Ok(())
}

/// Serves the dashboard until it is stopped.
pub async fn run_dashboard(args: shoal_dashboard::DashboardArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal()?;
    shoal_dashboard::run(args, shutdown)
        .await
        .context("the dashboard stopped")
}
