//! The micro service: one endpoint per operation under `shoal.api.`, each
//! request answered with JSON or with a micro-service error (code and
//! description), never left to time out.

use std::sync::Arc;

use async_nats::service::{self, Service, ServiceExt};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_protocol::registry::{
    ApplyRequest, CreateWorker, ListWorkers, ResourceRef, UpdateWorker, SERVICE_NAME,
};
use tokio::task::JoinSet;
use tracing::warn;

use crate::{ApiError, Registry, RegistryError};

/// The operations, by endpoint name and subject under `shoal.api`. Each
/// admin operation also has a form scoped to one group (the group token
/// before the id), so that NATS permissions can fence groups apart; the
/// unscoped forms reach every group and belong to operators.
const ENDPOINTS: [(&str, &str); 18] = [
    ("job-get", "job.get.*.*"),
    ("job-logs", "job.logs.*.*"),
    ("worker-create", "worker.create"),
    ("worker-create-in-group", "worker.create.*"),
    ("worker-get", "worker.get.*"),
    ("worker-get-in-group", "worker.get.*.*"),
    ("worker-list", "worker.list"),
    ("worker-list-in-group", "worker.list.*"),
    ("worker-update", "worker.update.*"),
    ("worker-update-in-group", "worker.update.*.*"),
    ("worker-delete", "worker.delete.*"),
    ("worker-delete-in-group", "worker.delete.*.*"),
    ("resource-apply", "resource.apply"),
    ("resource-apply-in-group", "resource.apply.*"),
    ("resource-list", "resource.list"),
    ("resource-list-in-group", "resource.list.*"),
    ("resource-delete", "resource.delete"),
    ("resource-delete-in-group", "resource.delete.*"),
];

/// The suffix of the endpoints scoped to one group.
const IN_GROUP: &str = "-in-group";

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
    let group = service.group(format!("{}.api", registry.config.layout.subjects.prefix()));
    let mut loops = JoinSet::new();
    // Cancel lives where the design puts it, beside the other control subjects.
    let prefix = registry.config.layout.subjects.prefix();
    let cancel = service.group(format!("{prefix}.ctl"));
    let mut endpoints = vec![(
        cancel
            .endpoint_builder()
            .name("job-cancel")
            .add("*.job.*.cancel")
            .await
            .map_err(service_error)?,
        "job-cancel",
    )];
    for (name, subject) in ENDPOINTS {
        endpoints.push((
            group
                .endpoint_builder()
                .name(name)
                .add(subject)
                .await
                .map_err(service_error)?,
            name,
        ));
    }
    for (mut endpoint, name) in endpoints {
        let registry = registry.clone();
        loops.spawn(async move {
            while let Some(request) = endpoint.next().await {
                let answer = handle(&registry, name, &request.message).await;
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
                    warn!(endpoint = name, error = %err, "could not answer a request");
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

/// The two tokens that name a job: `<group>.<job_id>` at the end of
/// `job.get.<group>.<job_id>` and `job.logs.<group>.<job_id>`, or around
/// `job` in `<group>.job.<job_id>.cancel`.
fn job_of(message: &async_nats::Message, endpoint: &str) -> Result<(String, String), ApiError> {
    let tokens: Vec<&str> = message.subject.as_str().split('.').collect();
    let pair = match endpoint {
        "job-cancel" => tokens
            .len()
            .checked_sub(4)
            .map(|at| (tokens[at], tokens[at + 2])),
        _ => tokens
            .len()
            .checked_sub(2)
            .map(|at| (tokens[at], tokens[at + 1])),
    };
    let (group, job_id) =
        pair.ok_or_else(|| ApiError::bad_request("subject: no group and job id in it"))?;
    Ok((group.to_string(), job_id.to_string()))
}

/// The group a scoped endpoint's subject names: the token after the
/// operation (`worker.list.<group>`, `worker.get.<group>.<id>`).
fn scope_of(
    message: &async_nats::Message,
    endpoint: &str,
    with_id: bool,
) -> Result<Option<String>, ApiError> {
    if !endpoint.ends_with(IN_GROUP) {
        return Ok(None);
    }
    let mut tokens = message.subject.as_str().rsplit('.');
    if with_id {
        tokens.next();
    }
    let group = tokens.next().unwrap_or_default().to_string();
    shoal_protocol::token::validate_token("group", &group)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok(Some(group))
}

/// The last token of the subject: the id of `worker.get.<id>` and the like.
fn id_of(message: &async_nats::Message) -> Result<String, ApiError> {
    let id = message
        .subject
        .as_str()
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_string();
    shoal_protocol::token::validate_token("id", &id)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok(id)
}

async fn handle(
    registry: &Registry,
    endpoint: &str,
    message: &async_nats::Message,
) -> Result<Reply, ApiError> {
    let body = &message.payload;
    let scope = scope_of(
        message,
        endpoint,
        endpoint.starts_with("worker-get")
            || endpoint.starts_with("worker-update")
            || endpoint.starts_with("worker-delete"),
    )?;
    let scope = scope.as_deref();
    match endpoint.trim_end_matches(IN_GROUP) {
        "job-get" => {
            let (group, job_id) = job_of(message, endpoint)?;
            reply(&registry.get_job(&group, &job_id).await?)
        }
        "job-logs" => {
            let (group, job_id) = job_of(message, endpoint)?;
            let answer = registry
                .job_logs(&group, &job_id, parse::<crate::logs::LogsRequest>(body)?)
                .await?;
            Ok(Reply {
                body: answer.body,
                headers: answer.headers,
            })
        }
        "job-cancel" => {
            let (group, job_id) = job_of(message, endpoint)?;
            reply(&registry.cancel_job(&group, &job_id).await?)
        }
        "worker-create" => {
            let request = parse::<CreateWorker>(body)?;
            in_scope(scope, &request.group)?;
            reply(&registry.create_worker(request).await?)
        }
        "worker-get" => reply(&registry.get_worker(&id_of(message)?, scope).await?),
        "worker-list" => {
            let mut request = parse::<ListWorkers>(body)?;
            request.group = scoped_group(scope, request.group)?;
            reply(&registry.list_workers(request).await?)
        }
        "worker-update" => reply(
            &registry
                .update_worker(&id_of(message)?, scope, parse::<UpdateWorker>(body)?)
                .await?,
        ),
        "worker-delete" => reply(&registry.delete_worker(&id_of(message)?, scope).await?),
        "resource-apply" => {
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
        "resource-list" => {
            let mut request = parse::<ResourceRef>(body)?;
            request.group = scoped_group(scope, request.group)?;
            reply(&registry.list_resources(request).await?)
        }
        "resource-delete" => {
            let mut request = parse::<ResourceRef>(body)?;
            request.group = scoped_group(scope, request.group)?;
            reply(&registry.delete_resource(request).await?)
        }
        other => Err(ApiError::not_found(format!("no endpoint {other}"))),
    }
}
