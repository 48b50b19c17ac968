//! `shoal dashboard`: its flags, and the server they start.

use std::net::SocketAddr;

use clap::Args;
use shoal_client::login::ConnectionArgs;
use shoal_client::Client;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::hosts::{guard, KnownHosts};
use crate::live::{follow, Followed, Live};
use crate::metrics::DashboardMetrics;
use crate::routes::{router, Shared};
use crate::scope::Scope;
use crate::DashboardError;

/// Flags of `shoal dashboard`.
#[derive(Debug, Args)]
#[command(after_help = "\
The page shows the workers, pools, queues and jobs of the groups given with --group \
(every group by default) as far as the login may read them, kept up to date by KV watches; \
its Cancel and Retry buttons act with the same login. It answers only to localhost names, \
the address it listens on and the names of --allowed-host.")]
pub struct DashboardArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Address to serve the dashboard on.
    #[arg(long, env = "SHOAL_DASHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Groups to show, comma-separated or repeated [default: every group].
    #[arg(
        short,
        long = "group",
        visible_short_alias = 'w',
        env = "SHOAL_DASHBOARD_GROUP",
        value_delimiter = ','
    )]
    groups: Vec<String>,
    /// Another host name the page is reached by (behind a proxy, say), comma-separated or repeated.
    #[arg(
        long = "allowed-host",
        env = "SHOAL_DASHBOARD_ALLOWED_HOST",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    #[command(flatten)]
    metrics: shoal_metrics::MetricsArgs,
}

/// Serves the dashboard until `shutdown`.
pub async fn run(args: DashboardArgs, shutdown: CancellationToken) -> Result<(), DashboardError> {
    let scope = Scope::of(&args.groups)?;
    let layout = args
        .connection
        .layout()
        .map_err(|err| DashboardError::Setting {
            field: "prefix",
            reason: err.to_string(),
        })?;
    let settings = args.connection.settings("shoal-dashboard");
    let denials = settings.denials.clone();
    let nats = shoal_client::connect::connect(&settings)
        .await
        .map_err(shoal_client::ClientError::from)?;
    let client = Client::over(nats.clone(), layout.clone());
    let mut registry = shoal_metrics::Registry::default();
    let metrics = DashboardMetrics::new(&mut registry);
    if let Some(addr) = args.metrics.metrics_listen {
        shoal_metrics::serve(addr, registry, None, shutdown.clone()).await?;
    }
    let live = Live::new(scope, metrics);
    let bucket = |name: String| {
        let js = client.jetstream().clone();
        async move {
            js.get_key_value(&name).await.map_err(|err| {
                shoal_client::ClientError::nats(
                    format!("no bucket {name}: has a Shoal service run yet?"),
                    err,
                )
            })
        }
    };
    let jobs = bucket(layout.jobs_bucket()).await?;
    let workers = bucket(layout.workers_bucket()).await?;
    let supervisors = bucket(layout.supervisors_bucket()).await?;
    let through_registry = !may_watch(&workers, &live.scope, &denials).await;
    if through_registry {
        let Scope::Groups(groups) = live.scope.clone() else {
            return Err(DashboardError::Setting {
                field: "group",
                reason: "this login may not follow the buckets (KV watches): name the groups it \
                         may read with --group, and they are read through the registry"
                    .into(),
            });
        };
        info!("this login may not follow the buckets: reading its groups every second instead");
        let stores = crate::poll::Stores::new(workers, supervisors);
        let polling = crate::poll::follow(
            live.clone(),
            client.clone(),
            stores,
            groups,
            shutdown.clone(),
        );
        tokio::spawn(polling);
    } else {
        for (bucket, followed) in [
            (jobs, Followed::Jobs),
            (workers, Followed::Workers),
            (supervisors, Followed::Supervisors),
        ] {
            tokio::spawn(follow(live.clone(), bucket, followed, shutdown.clone()));
        }
        tokio::spawn(crate::queues::follow(
            live.clone(),
            client.clone(),
            shutdown.clone(),
        ));
    }
    let shared = Shared {
        live,
        client,
        through_registry,
        denials,
        shutdown: shutdown.clone(),
    };
    serve(args.listen, &args.allowed_hosts, shared, shutdown).await?;
    // Best effort: the process ends next.
    let _ = nats.drain().await;
    Ok(())
}

/// Whether the login may open a watch of the bucket (a consumer), as an
/// operator may and a group's roles may not: the server's denial says so
/// at once, a request it never answers within 5 s.
async fn may_watch(
    bucket: &async_nats::jetstream::kv::Store,
    scope: &Scope,
    denials: &shoal_client::connect::Denials,
) -> bool {
    let mut denied = denials.subscribe();
    denied.mark_unchanged();
    tokio::select! {
        watch = bucket.watch_many(scope.key_filters()) => watch.is_ok(),
        _ = denied.changed() => false,
        () = tokio::time::sleep(std::time::Duration::from_secs(5)) => false,
    }
}

async fn serve(
    addr: SocketAddr,
    allowed_hosts: &[String],
    shared: Shared,
    shutdown: CancellationToken,
) -> Result<(), DashboardError> {
    let bind_error = |source| DashboardError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let app = router(shared).layer(axum::middleware::from_fn_with_state(
        KnownHosts::new(bound, allowed_hosts),
        guard,
    ));
    info!(url = %format!("http://{bound}/"), "serving the dashboard");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(bind_error)
}
