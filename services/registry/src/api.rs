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
    CreateWorker, ListWorkers, ResourceRef, UpdateWorker, SERVICE_NAME,
};
use tokio::task::JoinSet;
use tracing::warn;

use crate::{ApiError, Registry, RegistryError};

/// The operations, by endpoint name and subject under `shoal.api`.
const ENDPOINTS: [(&str, &str); 9] = [
    ("job-get", "job.get.*.*"),
    ("worker-create", "worker.create"),
    ("worker-get", "worker.get.*"),
    ("worker-list", "worker.list"),
    ("worker-update", "worker.update.*"),
    ("worker-delete", "worker.delete.*"),
    ("resource-apply", "resource.apply"),
    ("resource-list", "resource.list"),
    ("resource-delete", "resource.delete"),
];

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
                let response = answer.map_err(|err| service::error::Error {
                    status: err.description,
                    code: err.code,
                });
                if let Err(err) = request.respond(response).await {
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

fn parse<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|err| ApiError::bad_request(format!("request: {err}")))
}

fn parse_required<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| ApiError::bad_request(format!("request: {err}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

/// The two tokens that name a job: `<group>.<job_id>` at the end of
/// `job.get.<group>.<job_id>`, or around `job` in `<group>.job.<job_id>.cancel`.
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
) -> Result<Bytes, ApiError> {
    let body = &message.payload;
    match endpoint {
        "job-get" => {
            let (group, job_id) = job_of(message, endpoint)?;
            reply(&registry.get_job(&group, &job_id).await?)
        }
        "job-cancel" => {
            let (group, job_id) = job_of(message, endpoint)?;
            reply(&registry.cancel_job(&group, &job_id).await?)
        }
        "worker-create" => reply(&registry.create_worker(parse::<CreateWorker>(body)?).await?),
        "worker-get" => reply(&registry.get_worker(&id_of(message)?).await?),
        "worker-list" => reply(&registry.list_workers(parse::<ListWorkers>(body)?).await?),
        "worker-update" => reply(
            &registry
                .update_worker(&id_of(message)?, parse::<UpdateWorker>(body)?)
                .await?,
        ),
        "worker-delete" => reply(&registry.delete_worker(&id_of(message)?).await?),
        "resource-apply" => reply(&registry.apply(parse_required(body)?).await?),
        "resource-list" => reply(&registry.list_resources(parse::<ResourceRef>(body)?).await?),
        "resource-delete" => reply(
            &registry
                .delete_resource(parse::<ResourceRef>(body)?)
                .await?,
        ),
        other => Err(ApiError::not_found(format!("no endpoint {other}"))),
    }
}
