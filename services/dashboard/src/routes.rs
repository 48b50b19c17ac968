//! The HTTP routes: the page and its assets, the fleet, the live updates,
//! the jobs, and the two buttons.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use shoal_client::Client;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::jobs::{self, JobsQuery};
use crate::live::{Kind, Live};

/// What every handler reads from.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) live: Arc<Live>,
    pub(crate) client: Client,
    /// Whether jobs are listed by the registry (`job.list`), for a login
    /// that may not read the bucket's stream itself.
    pub(crate) through_registry: bool,
    /// The server's permission violations on the dashboard's connection.
    pub(crate) denials: shoal_client::connect::Denials,
    /// Ends the streams that would otherwise hold a stopping server open.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
}

/// A request the dashboard cannot serve, in one sentence.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
}

#[derive(Serialize)]
struct RefusalBody<'a> {
    error: &'a str,
}

impl Refusal {
    /// A request that names something invalid (400).
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::with(StatusCode::BAD_REQUEST, message)
    }

    /// A request the login or the dashboard's scope does not allow (403).
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::with(StatusCode::FORBIDDEN, message)
    }

    /// A request for something that is not there (404).
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::with(StatusCode::NOT_FOUND, message)
    }

    /// NATS or the registry failed (502).
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::with(StatusCode::BAD_GATEWAY, message)
    }

    fn with(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = RefusalBody {
            error: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// Every route.
pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(crate::assets::page))
        .route("/assets/{name}", get(crate::assets::asset))
        .route("/api/fleet", get(fleet))
        .route("/api/live", get(live))
        .route("/api/jobs", get(job_page))
        .route("/api/jobs/{group}/{id}", get(job))
        .route("/api/jobs/{group}/{id}/output", get(output))
        .route("/api/jobs/{group}/{id}/cancel", post(cancel))
        .route("/api/jobs/{group}/{id}/retry", post(retry))
        .route("/api/workflows/{group}/{name}", get(workflow))
        .with_state(shared)
}

async fn fleet(State(shared): State<Shared>) -> Response {
    shared.live.with_fleet(|fleet| Json(fleet).into_response())
}

/// Counts an open page while its stream lives.
struct Following(Arc<Live>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.metrics.live_pages.dec();
    }
}

async fn live(State(shared): State<Shared>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    shared.live.metrics.live_pages.inc();
    let following = Following(shared.live.clone());
    let updates = BroadcastStream::new(shared.live.subscribe()).map(move |update| {
        let _page = &following;
        Ok(match update {
            Ok(update) => Event::default()
                .event(update.kind.as_str())
                .data(update.data.as_str()),
            // The page fell behind: it reads everything again.
            Err(BroadcastStreamRecvError::Lagged(_)) => {
                Event::default().event(Kind::Resync.as_str()).data("null")
            }
        })
    });
    let hello =
        futures_util::stream::once(async { Ok(Event::default().event("hello").data("null")) });
    let stopped = shared.shutdown.clone().cancelled_owned();
    Sse::new(hello.chain(updates).take_until(stopped))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn job_page(
    State(shared): State<Shared>,
    Query(query): Query<JobsQuery>,
) -> Result<impl IntoResponse, Refusal> {
    Ok(Json(
        unless_denied(&shared, jobs::page(&shared, &query)).await?,
    ))
}

async fn job(
    State(shared): State<Shared>,
    Path((group, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, Refusal> {
    let key = jobs::key_of(&group, &id, &shared.live.scope)?;
    Ok(Json(
        unless_denied(&shared, jobs::job(&shared.client, &key)).await?,
    ))
}

async fn output(
    State(shared): State<Shared>,
    Path((group, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, Refusal> {
    let key = jobs::key_of(&group, &id, &shared.live.scope)?;
    Ok(jobs::output(&shared.client, &key, shared.shutdown.clone()))
}

async fn cancel(
    State(shared): State<Shared>,
    Path((group, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, Refusal> {
    let key = jobs::key_of(&group, &id, &shared.live.scope)?;
    Ok(Json(
        unless_denied(&shared, jobs::cancel(&shared.client, &key)).await?,
    ))
}

async fn retry(
    State(shared): State<Shared>,
    Path((group, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, Refusal> {
    let key = jobs::key_of(&group, &id, &shared.live.scope)?;
    Ok(Json(
        unless_denied(&shared, jobs::retry(&shared.client, &key)).await?,
    ))
}

async fn workflow(
    State(shared): State<Shared>,
    Path((group, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, Refusal> {
    jobs::key_of(&group, &name, &shared.live.scope)?;
    let view = crate::workflows::workflow(&shared.client, &group, &name);
    Ok(Json(unless_denied(&shared, view).await?))
}

/// What `call` answers, or 403 at once when the server denies the login a
/// request meanwhile (a denied request would otherwise only time out).
async fn unless_denied<T>(
    shared: &Shared,
    call: impl std::future::Future<Output = Result<T, Refusal>>,
) -> Result<T, Refusal> {
    let mut denied = shared.denials.subscribe();
    denied.mark_unchanged();
    tokio::select! {
        result = call => result,
        _ = denied.changed() => {
            let denial = shared.denials.latest().unwrap_or_default();
            Err(Refusal::forbidden(format!(
                "this login may not do that: the NATS server said {denial}"
            )))
        }
    }
}
