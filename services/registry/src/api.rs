//! The micro service: one endpoint per operation under `shoal.api.`, each
//! request answered with JSON or with a micro-service error (code and
//! description), never left to time out.

use std::sync::Arc;

use async_nats::service::{self, Service, ServiceExt};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_protocol::api::ApiOp;
use shoal_protocol::registry::{
    ApplyRequest, CreateWorker, ListJobs, ListQueues, ListWorkers, ResourceRef, UpdateWorker,
    SERVICE_NAME,
};
use tokio::task::JoinSet;
use tracing::warn;

use crate::{ApiError, Registry, RegistryError};

/// The running service and its endpoint loops.
pub(crate) struct Running {
    service: Service,
    loops: JoinSet<()>,
}

/// Starts the service with all its endpoints.
pub(crate) async fn start(
    registry: Arc<Registry>,
    client: &async_nats::Client,
) -> Result<Running, RegistryError> {
    let service_error = |err: async_nats::Error| RegistryError::Service(err.to_string());
    let service = client
        .service_builder()
        .description("Shoal admin API: workers, pools, resources")
        .start(SERVICE_NAME, shoal_protocol::VERSION)
        .await
        .map_err(service_error)?;
    let prefix = registry.config.layout.subjects.prefix();
    let mut loops = JoinSet::new();
    let mut endpoints = Vec::new();
    for endpoint in ApiOp::endpoints() {
        endpoints.push((
            service
                .group(format!("{prefix}.{}", endpoint.under))
                .endpoint_builder()
                .name(&endpoint.name)
                .add(endpoint.pattern)
                .await
                .map_err(service_error)?,
            endpoint.name,
        ));
    }
    for (mut endpoint, name) in endpoints {
        let registry = registry.clone();
        loops.spawn(async move {
            while let Some(request) = endpoint.next().await {
                let answer = handle(&registry, &request.message).await;
                let (response, headers) = match answer {
                    Ok(Reply { body, headers }) => (Ok(body), headers),
                    Err(err) => (
                        Err(service::error::Error {
                            status: err.description,
                            code: err.code,
                        }),
                        async_nats::HeaderMap::new(),
                    ),
                };
                if let Err(err) = request.respond_with_headers(response, headers).await {
                    warn!(endpoint = %name, error = %err, "could not answer a request");
                }
            }
        });
    }
    Ok(Running { service, loops })
}

/// Stops the service and its loops.
pub(crate) async fn stop(running: Running) {
    let Running { service, mut loops } = running;
    let _ = service.stop().await;
    loops.abort_all();
    while loops.join_next().await.is_some() {}
}

/// Refuses a request that names another group than the subject it came on:
/// permissions are granted on subjects, so the subject's group is the one
/// the caller may touch.
fn in_scope(scope: Option<&str>, group: &str) -> Result<(), ApiError> {
    match scope {
        Some(scope) if scope != group => Err(ApiError::forbidden(format!(
            "group: the request names group `{group}` but was sent on the subject of group `{scope}`"
        ))),
        _ => Ok(()),
    }
}

/// Whether a resource declares workers that also serve `_system`.
fn declares_system(resource: &shoal_protocol::resource::Resource) -> bool {
    resource.worker.as_ref().is_some_and(|worker| worker.system)
        || resource.pool.as_ref().is_some_and(|pool| pool.system)
}

/// The group of a scoped listing: the subject's, which the body may repeat.
fn scoped_group(scope: Option<&str>, group: Option<String>) -> Result<Option<String>, ApiError> {
    match (scope, group) {
        (Some(scope), Some(group)) => {
            in_scope(Some(scope), &group)?;
            Ok(Some(group))
        }
        (Some(scope), None) => Ok(Some(scope.to_string())),
        (None, group) => Ok(group),
    }
}

fn parse<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|err| ApiError::bad_request(format!("request: {err}")))
}

fn parse_required<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| ApiError::bad_request(format!("request: {err}")))
}

/// An answer: JSON, or raw bytes with headers that describe them.
struct Reply {
    body: Bytes,
    headers: async_nats::HeaderMap,
}

fn reply<T: Serialize>(value: &T) -> Result<Reply, ApiError> {
    serde_json::to_vec(value)
        .map(|body| Reply {
            body: Bytes::from(body),
            headers: async_nats::HeaderMap::new(),
        })
        .map_err(ApiError::internal)
}

async fn handle(registry: &Registry, message: &async_nats::Message) -> Result<Reply, ApiError> {
    let body = &message.payload;
    let op = ApiOp::parse(&registry.config.layout.subjects, &message.subject)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let scope = op.scope().map(str::to_string);
    let scope = scope.as_deref();
    match op {
        ApiOp::JobGet(key) => reply(&registry.get_job(key.group(), key.id()).await?),
        ApiOp::JobLogs(key) => {
            let answer = registry
                .job_logs(
                    key.group(),
                    key.id(),
                    parse::<crate::logs::LogsRequest>(body)?,
                )
                .await?;
            Ok(Reply {
                body: answer.body,
                headers: answer.headers,
            })
        }
        ApiOp::JobCancel(key) => reply(&registry.cancel_job(key.group(), key.id()).await?),
        ApiOp::WorkerCreate(_) => {
            let request = parse::<CreateWorker>(body)?;
            in_scope(scope, &request.group)?;
            reply(&registry.create_worker(request).await?)
        }
        ApiOp::WorkerGet(_, id) => reply(&registry.get_worker(&id, scope).await?),
        ApiOp::WorkerList(_) => {
            let mut request = parse::<ListWorkers>(body)?;
            request.group = scoped_group(scope, request.group)?;
            reply(&registry.list_workers(request).await?)
        }
        ApiOp::WorkerUpdate(_, id) => reply(
            &registry
                .update_worker(&id, scope, parse::<UpdateWorker>(body)?)
                .await?,
        ),
        ApiOp::WorkerDelete(_, id) => reply(&registry.delete_worker(&id, scope).await?),
        ApiOp::ResourceApply(_) => {
            let mut request = parse_required::<ApplyRequest>(body)?;
            if let Some(scope) = scope {
                // A resource that names no group is of the subject's.
                let group = request
                    .resource
                    .group(request.group.as_deref().unwrap_or(scope));
                in_scope(Some(scope), &group)?;
                if declares_system(&request.resource) {
                    return Err(ApiError::forbidden(
                        "system: only an operator declares workers that serve _system",
                    ));
                }
                request.group = Some(group);
            }
            reply(&registry.apply(request).await?)
        }
        ApiOp::ResourceList(_) => {
            let mut request = parse::<ResourceRef>(body)?;
            request.group = scoped_group(scope, request.group)?;
            reply(&registry.list_resources(request).await?)
        }
        ApiOp::JobList(_) => {
            let mut request = parse::<ListJobs>(body)?;
            request.group = scoped_group(scope, request.group)?;
            reply(&registry.list_jobs(request).await?)
        }
        ApiOp::QueueList(_) => {
            let request = parse::<ListQueues>(body)?;
            let group = scoped_group(scope, request.group)?;
            reply(&registry.list_queues(group.as_deref()).await?)
        }
        ApiOp::ResourceDelete(_) => {
            let mut request = parse::<ResourceRef>(body)?;
            request.group = scoped_group(scope, request.group)?;
            reply(&registry.delete_resource(request).await?)
        }
    }
}
