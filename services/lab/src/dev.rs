//! `shoal dev`: everything on one machine, in one command: a nats-server
//! child (unless `--nats-url` names one), the projector, the registry, one worker with a
//! demo entrypoint, and a demo job; stopped cleanly by Ctrl-C.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bail;
use crate::error::{Context, Result};
use clap::Args;
use shoal_client::connect::{connect, ConnectSettings};
use shoal_client::streams::Layout;
use shoal_projector::ProjectorConfig;
use shoal_protocol::{JobRecord, JobSpec, Subjects};
use shoal_worker::config::Entrypoint;
use shoal_worker::{WorkerArgs, WorkerSettings};
use tokio_util::sync::CancellationToken;

use crate::nats_server::LocalServer;
use crate::signals::shutdown_on_signal;

/// The group of the demo.
const DEMO_GROUP: &str = "demo";

/// Flags of `shoal dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Use this server instead of starting one.
    #[arg(long, env = "SHOAL_NATS_URL")]
    nats_url: Option<String>,
    /// Stop once the demo job has ended (exit 0 if it succeeded).
    #[arg(long)]
    once: bool,
}

/// Where the services run.
struct Services {
    projector: tokio::task::JoinHandle<Result<()>>,
    registry: tokio::task::JoinHandle<Result<()>>,
    worker: tokio::task::JoinHandle<Result<()>>,
    stop: CancellationToken,
}

async fn start_services(url: &str) -> Result<Services> {
    let stop = CancellationToken::new();
    let settings = ConnectSettings {
        url: url.to_string(),
        name: "shoal-dev".into(),
        ..ConnectSettings::default()
    };
    let projector_client = connect(&settings).await?;
    let projector_config = ProjectorConfig {
        layout: Layout::new(Subjects::default()),
        replay: false,
        batch_size: 2048,
        max_waiting_per_group: shoal_projector::DEFAULT_MAX_WAITING_PER_GROUP,
        metrics_listen: None,
    };
    let projector = tokio::spawn({
        let stop = stop.clone();
        async move { Ok(shoal_projector::run(projector_config, projector_client, stop).await?) }
    });
    let registry_config = shoal_registry::RegistryConfig {
        layout: Layout::new(Subjects::default()),
        lost_after: 3,
        check_interval: Duration::from_secs(1),
        reconcile_interval: Duration::from_secs(10),
        metrics_listen: None,
    };
    let registry_client = connect(&settings).await?;
    let registry = tokio::spawn({
        let stop = stop.clone();
        async move { Ok(shoal_registry::run(registry_config, registry_client, stop).await?) }
    });
    let settings = WorkerSettings {
        connection: shoal_client::login::ConnectionArgs {
            nats_url: Some(url.parse()?),
            ..Default::default()
        },
        group: Some(DEMO_GROUP.to_string()),
        name: Some("dev-worker".to_string()),
        system: Some(true),
        concurrency: Some(4),
        polling_interval: Some(shoal_protocol::Duration::from_secs(1)),
        ..WorkerSettings::default()
    };
    let mut worker_config = WorkerArgs {
        settings,
        ..WorkerArgs::default()
    }
    .resolve()?;
    worker_config.entrypoints = BTreeMap::from([(
        "hello".to_string(),
        Entrypoint {
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo \"hello from shoal on $(hostname), args: $*\"".into(),
                "hello".into(),
            ],
        },
    )]);
    worker_config.job_guard = shoal_guard::Guard::of_current_exe();
    let worker_client = connect(&worker_config.connect).await?;
    let worker = tokio::spawn({
        let stop = stop.clone();
        async move { Ok(shoal_worker::run(worker_config, worker_client, stop).await?) }
    });
    Ok(Services {
        projector,
        registry,
        worker,
        stop,
    })
}

async fn submit_demo(url: &str) -> Result<(String, JobRecord)> {
    let client = shoal_client::Client::connect_to(url).await?;
    client.ensure().await?;
    let spec = JobSpec::entrypoint("hello", vec!["world".into()]);
    let target = shoal_client::Target::new(DEMO_GROUP, shoal_protocol::DEFAULT_QUEUE)?;
    let submitted = client.submit(&target, &spec).await?;
    let record = client
        .wait(&submitted.key, Duration::from_secs(30))
        .await
        .context("the demo job did not end")?;
    Ok((submitted.key.to_string(), record))
}

/// The line that lets another shell run the hints: this `shoal` and the
/// `nats` CLI on its PATH, and both pointed at the server.
fn hints_environment(url: &str) -> String {
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    let this = std::env::current_exe().ok();
    // The `nats` CLI beside the nats-server this runs, else on PATH.
    let beside_server = crate::nats_server::server_binary()
        .canonicalize()
        .ok()
        .and_then(|server| server.parent().map(std::path::Path::to_path_buf))
        .filter(|dir| dir.join("nats").is_file());
    let nats = beside_server.or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("nats").is_file()))
    });
    for dir in [
        this.as_deref().and_then(std::path::Path::parent),
        nats.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        if !dirs.iter().any(|seen| seen == dir) {
            dirs.push(dir.to_path_buf());
        }
    }
    let mut path: Vec<String> = dirs.iter().map(|dir| dir.display().to_string()).collect();
    path.push("$PATH".into());
    format!(
        "export PATH=\"{}\" NATS_URL={url} SHOAL_NATS_URL={url}",
        path.join(":")
    )
}

/// Runs `shoal dev`.
pub async fn run(args: DevArgs) -> Result<()> {
    let shutdown = shutdown_on_signal()?;
    let (server, url) = LocalServer::unless_given(args.nats_url.clone()).await?;
    let services = start_services(&url).await?;
    let demo = submit_demo(&url).await;
    match &demo {
        Ok((key, record)) => {
            let state = record.state.map_or("unknown", |state| state.as_str());
            println!("Shoal is running on {url}");
            println!(
                "demo job {key}: {state}; its output: {}",
                record.stdout_tail.as_deref().unwrap_or("").trim()
            );
            println!();
            println!("Look around (another terminal):");
            println!("  {}", hints_environment(&url));
            println!("  nats kv get shoal_jobs {key}");
            println!("  nats kv ls shoal_workers");
            println!("  shoal get workers -g {DEMO_GROUP}");
            println!("  shoal job submit -g {DEMO_GROUP} hello again");
            println!("  nats pub shoal.jobs.{DEMO_GROUP}.default '{{\"entrypoint\":\"sleep\",\"args\":[\"2s\"]}}'");
            println!("  shoal get jobs -g {DEMO_GROUP}");
            if !args.once {
                println!("Ctrl-C stops everything.");
            }
        }
        Err(err) => eprintln!(
            "error: the demo job failed: {}",
            shoal_client::error_chain(err.as_ref())
        ),
    }
    if !args.once && demo.is_ok() {
        shutdown.cancelled().await;
    }
    services.stop.cancel();
    let (worker, projector, registry) =
        tokio::join!(services.worker, services.projector, services.registry);
    if let Some(server) = server {
        server.stop().await;
    }
    worker.context("worker task")??;
    projector.context("projector task")??;
    registry.context("registry task")??;
    let (_, record) = demo?;
    if !record.error {
        Ok(())
    } else {
        bail!(
            "the demo job ended {}",
            record.state.map_or("unknown", |state| state.as_str())
        )
    }
}
