//! `shoal`: run the services, submit and follow jobs, read the fleet's state.

// Command enums are parsed once per process: the size of their variants does not matter.
#![allow(clippy::large_enum_variant)]

mod auth;
mod connection;
mod exit;
mod get;
mod job;
mod limit;
mod logging;
mod output;
mod render;
mod resources;
mod schedule;
mod schema;
mod services;
mod spinner;
mod supervise;
mod workers;
mod workflow;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Shoal: a job-running worker fleet in which everything travels over NATS.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "SHOAL_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local nats-server, the projector, the registry and a worker, and submit a demo job.
    Dev(shoal_lab::dev::DevArgs),
    /// Run a worker, or manage worker identities through the registry.
    #[command(subcommand)]
    Worker(services::WorkerCommand),
    /// Run the projector.
    #[command(subcommand)]
    Projector(services::ProjectorCommand),
    /// Run the registry (admin API and liveness check).
    #[command(subcommand)]
    Registry(services::RegistryCommand),
    /// Create or update workers and pools from a YAML file.
    Apply(resources::ApplyArgs),
    /// Delete workers or pools.
    Delete(resources::DeleteArgs),
    /// Submit, read and wait for jobs.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// List jobs or workers.
    Get(get::GetArgs),
    /// Print deployment manifests for pools (Kubernetes with KEDA).
    #[command(subcommand)]
    Render(render::RenderCommand),
    /// Submit, read and cancel workflows: graphs of jobs that wait for their parents.
    #[command(subcommand)]
    Workflow(workflow::WorkflowCommand),
    /// Read a key's concurrency slots and rate-limit starts; set its concurrency limit.
    #[command(subcommand)]
    Limit(limit::LimitCommand),
    /// List or remove delayed and recurring jobs.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Print or write the JSON Schemas of the wire types.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Run the worker replicas of a pool here: restart them, scale them on the backlog, drain them.
    Supervise(shoal_supervisor::command::SuperviseArgs),
    /// Serve the live web dashboard: workers, pools, queues and jobs.
    Dashboard(shoal_dashboard::DashboardArgs),
    /// Measure jobs per second and start latency against a local nats-server.
    Bench(shoal_lab::bench::BenchArgs),
    /// Run jobs while killing workers, services and servers; count what was lost or run twice.
    Chaos(shoal_lab::chaos::ChaosArgs),
    /// Print NATS users for the roles of a group (nats-server configuration).
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Print shell completions: `source <(shoal completions bash)`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Output piped into a reader that stops early (`shoal get jobs | head`) ends
/// the process quietly, as with other command-line tools, instead of a panic.
#[allow(unsafe_code)]
fn quiet_on_closed_pipe() {
    // SAFETY: restores the default disposition of SIGPIPE before any thread
    // starts; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    // A worker runs each job's program through its own binary as a guard.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|arg| arg == shoal_guard::GUARD_ARG) {
        shoal_guard::main(&args[2..]);
    }
    quiet_on_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return refuse_value(err),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    let json_logs = cli.log_format == "json";
    let result = match cli.command {
        Command::Worker(services::WorkerCommand::Run(args)) => match args.resolve() {
            Ok(config) => {
                if let Err(err) = logging::init(
                    &config.log_level,
                    json_logs,
                    config.file_log.then_some(config.log_path.as_path()),
                ) {
                    eprintln!("error: {err}");
                    return ExitCode::from(exit::USAGE);
                }
                services::run_worker(config).await
            }
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(exit::USAGE);
            }
        },
        command => {
            let _ = logging::init(
                &logging::default_level(&command_log_level(&command)),
                json_logs,
                None,
            );
            match command {
                Command::Dev(args) => shoal_lab::dev::run(args)
                    .await
                    .map_err(anyhow::Error::from_boxed),
                Command::Projector(command) => services::run_projector(command).await,
                Command::Registry(command) => services::run_registry(command).await,
                Command::Apply(args) => resources::apply(args).await,
                Command::Delete(args) => resources::delete(args).await,
                Command::Worker(services::WorkerCommand::Identity(command)) => {
                    workers::run(command).await
                }
                Command::Job(command) => return job::run(command).await,
                Command::Get(args) => get::run(args).await,
                Command::Schema(command) => schema::run(command),
                Command::Schedule(command) => schedule::run(command).await,
                Command::Workflow(command) => workflow::run(command).await,
                Command::Limit(command) => limit::run(command).await,
                Command::Render(command) => render::run(command),
                Command::Bench(args) => shoal_lab::bench::run(args)
                    .await
                    .map_err(anyhow::Error::from_boxed),
                Command::Chaos(args) => shoal_lab::chaos::run(args)
                    .await
                    .map_err(anyhow::Error::from_boxed),
                Command::Auth(command) => auth::run(command),
                Command::Completions { shell } => {
                    use clap::CommandFactory;
                    let mut cli = Cli::command();
                    clap_complete::generate(shell, &mut cli, "shoal", &mut std::io::stdout());
                    Ok(())
                }
                Command::Supervise(args) => return supervise::run(args).await,
                Command::Dashboard(args) => services::run_dashboard(args).await,
                Command::Worker(services::WorkerCommand::Run(_)) => Ok(()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_sentence(&err));
            ExitCode::from(exit::of_error(&err))
        }
    }
}

/// A flag or variable whose value cannot be used ends in one line that
/// names the setting and the value, exit 64; clap says the rest itself
/// (help, an unknown flag: exit 2).
fn refuse_value(err: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        err.exit()
    }
    let text = |kind| match err.get(kind) {
        Some(ContextValue::String(text)) => text.clone(),
        Some(ContextValue::Strings(items)) => items.join(", "),
        _ => String::new(),
    };
    let flag = text(ContextKind::InvalidArg);
    let flag = flag
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let setting = flag.trim_start_matches('-').replace('-', "_");
    let value = match shoal_client::login::SECRET_SETTINGS.contains(&setting.as_str()) {
        true => "***".to_string(),
        false => text(ContextKind::InvalidValue),
    };
    let reason = match std::error::Error::source(&err) {
        Some(source) => source.to_string(),
        None => format!("expected one of {}", text(ContextKind::ValidValue)),
    };
    eprintln!("error: invalid setting `{setting}` = `{value}` (from {flag} or its SHOAL_* variable): {reason}");
    ExitCode::from(exit::USAGE)
}

/// Services log at info; one-shot commands only say what went wrong.
fn command_log_level(command: &Command) -> String {
    match command {
        Command::Dev(_)
        | Command::Projector(_)
        | Command::Registry(_)
        | Command::Supervise(_)
        | Command::Dashboard(_) => "info".into(),
        _ => "warn".into(),
    }
}

/// The denials the server sent this command's connections: a one-shot
/// command holds one connection, whose latest denial explains its failure.
pub fn denials() -> &'static shoal_client::connect::Denials {
    static DENIALS: std::sync::OnceLock<shoal_client::connect::Denials> =
        std::sync::OnceLock::new();
    DENIALS.get_or_init(Default::default)
}

/// An error and its causes as one line, with the server's latest denial
/// when there was one: a denied request otherwise looks like a timeout.
pub fn one_sentence(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err.chain().map(ToString::to_string).collect();
    let sentence = shoal_client::one_sentence(&parts);
    match denials().latest() {
        Some(denial) => format!("{sentence} (the NATS server denied it: {denial})"),
        None => sentence,
    }
}
