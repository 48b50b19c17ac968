//! The HTTP endpoint: `GET /metrics` encodes the part's registry, after
//! the part refreshed the figures it reads from NATS on demand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Work a part does before each scrape, such as reading consumer counts.
pub type Refresh = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// Longest a refresh may take; a scrape then serves the figures as they are.
const REFRESH_WITHIN: Duration = Duration::from_secs(5);

/// The OpenMetrics text format, which Prometheus reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The endpoint could not start.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// The address cannot be listened on.
    #[error("cannot serve metrics on {addr} (metrics_listen): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

struct State {
    registry: Registry,
    refresh: Option<Refresh>,
}

/// Listens on `addr` and serves `registry` at `/metrics` until `shutdown`;
/// returns the address listened on (its port chosen when `addr`'s is 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    refresh: Option<Refresh>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, MetricsError> {
    let bind_error = |source| MetricsError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let state = Arc::new(State { registry, refresh });
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let state = state.clone();
            async move { scrape(&state).await }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(err) = served {
            warn!(error = %err, "the metrics endpoint stopped");
        }
    });
    info!(%bound, "serving metrics at /metrics");
    Ok(bound)
}

async fn scrape(state: &State) -> Response {
    if let Some(refresh) = &state.refresh {
        if tokio::time::timeout(REFRESH_WITHIN, refresh())
            .await
            .is_err()
        {
            warn!("refreshing the metrics took too long; serving them as they are");
        }
    }
    let body = crate::encode(&state.registry);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}
