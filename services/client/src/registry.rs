//! Requests to the `shoal-registry` micro service, typed by operation, with
//! its errors read back as one sentence.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_protocol::api::{ApiOp, Scope};
use shoal_protocol::registry::{
    ApplyRequest, ApplyResult, CreateWorker, ListWorkers, ResourceRef, UpdateWorker, WorkerIdentity,
};
use shoal_protocol::resource::Resource;

use crate::client::Client;
use crate::error::ClientError;

/// How long the registry has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

impl Client {
    /// Sends `body` to the registry's operation `op` and reads the answer.
    pub async fn request<B: Serialize, R: DeserializeOwned>(
        &self,
        op: &ApiOp,
        body: &B,
    ) -> Result<R, ClientError> {
        let answer = self.request_raw(op, body).await?;
        let subject = op.subject(&self.layout().subjects);
        serde_json::from_slice(&answer.payload).map_err(|err| {
            ClientError::nats(
                format!("the registry's answer on {subject} is not what was expected"),
                err,
            )
        })
    }

    /// Sends `body` to the registry's operation `op` and returns its answer
    /// as it came (headers and bytes), or its error.
    pub async fn request_raw<B: Serialize>(
        &self,
        op: &ApiOp,
        body: &B,
    ) -> Result<async_nats::Message, ClientError> {
        let subject = op.subject(&self.layout().subjects);
        let payload = serde_json::to_vec(body).map_err(|err| {
            ClientError::nats(format!("cannot write the request to {subject}"), err)
        })?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(ANSWER_WITHIN));
        let answer = self
            .nats()
            .send_request(subject.clone(), request)
            .await
            .map_err(|err| match err.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    ClientError::NoRegistry(subject.clone())
                }
                async_nats::RequestErrorKind::TimedOut => {
                    ClientError::RegistryTimedOut(subject.clone())
                }
                _ => ClientError::nats(format!("request to {subject} failed"), err),
            })?;
        if let Some(headers) = &answer.headers {
            if let Some(code) = headers.get("Nats-Service-Error-Code") {
                return Err(ClientError::Refused {
                    code: code.as_str().parse().unwrap_or(500),
                    description: headers
                        .get("Nats-Service-Error")
                        .map(|value| value.to_string())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(answer)
    }

    /// Creates a worker identity (in its group's scope).
    pub async fn create_worker(
        &self,
        request: &CreateWorker,
    ) -> Result<WorkerIdentity, ClientError> {
        let op = ApiOp::WorkerCreate(Some(request.group.clone()));
        self.request(&op, request).await
    }

    /// The worker identity `id`, in `scope`'s group or any.
    pub async fn get_worker(&self, scope: Scope, id: &str) -> Result<WorkerIdentity, ClientError> {
        self.request(&ApiOp::WorkerGet(scope, id.to_string()), &())
            .await
    }

    /// The worker identities of `scope`'s group, or of every group.
    pub async fn list_workers(&self, scope: Scope) -> Result<Vec<WorkerIdentity>, ClientError> {
        let body = ListWorkers {
            group: scope.clone(),
        };
        self.request(&ApiOp::WorkerList(scope), &body).await
    }

    /// Changes the worker identity `id`.
    pub async fn update_worker(
        &self,
        scope: Scope,
        id: &str,
        change: &UpdateWorker,
    ) -> Result<WorkerIdentity, ClientError> {
        self.request(&ApiOp::WorkerUpdate(scope, id.to_string()), change)
            .await
    }

    /// Deletes the worker identity `id`.
    pub async fn delete_worker(
        &self,
        scope: Scope,
        id: &str,
    ) -> Result<WorkerIdentity, ClientError> {
        self.request(&ApiOp::WorkerDelete(scope, id.to_string()), &())
            .await
    }

    /// Creates or updates a resource (in `scope`'s group, or as an operator).
    pub async fn apply(
        &self,
        scope: Scope,
        request: &ApplyRequest,
    ) -> Result<ApplyResult, ClientError> {
        self.request(&ApiOp::ResourceApply(scope), request).await
    }

    /// The resources `which` names.
    pub async fn list_resources(&self, which: &ResourceRef) -> Result<Vec<Resource>, ClientError> {
        self.request(&ApiOp::ResourceList(which.group.clone()), which)
            .await
    }

    /// Deletes the resource `which` names.
    pub async fn delete_resource(&self, which: &ResourceRef) -> Result<ApplyResult, ClientError> {
        self.request(&ApiOp::ResourceDelete(which.group.clone()), which)
            .await
    }
}
