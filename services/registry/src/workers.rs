//! Worker identities: created, read, changed and deleted by admins. Names
//! are unique in a group, held in the `shoal_names` bucket.

use async_nats::jetstream::kv;
use shoal_client::streams::find_key_by_id;
use shoal_protocol::event::IdentityChange;
use shoal_protocol::fold::{fold_worker, WorkerInput};
use shoal_protocol::key::Key;
use shoal_protocol::registry::{CreateWorker, ListWorkers, UpdateWorker, WorkerIdentity};
use shoal_protocol::resource::Resource;
use shoal_protocol::token::validate_token;
use shoal_protocol::{WorkerEvent, WorkerEventType, WorkerRecord, WorkerStatus};

use crate::{ApiError, Registry};

fn checked(field: &str, value: &str) -> Result<(), ApiError> {
    validate_token(field, value).map_err(|err| ApiError::bad_request(err.to_string()))
}

impl Registry {
    /// The answer for a record: its identity and a stable reference to it.
    pub(crate) fn identity(&self, record: &WorkerRecord) -> WorkerIdentity {
        WorkerIdentity {
            id: record.id.clone(),
            group: record.group.clone(),
            labels: record.labels.clone(),
            name: record.name.clone(),
            user: record.user.clone(),
            system: record.system,
            self_ref: format!(
                "{}.api.worker.get.{}",
                self.config.layout.subjects.prefix(),
                record.id
            ),
            status: record.status,
        }
    }

    /// Stores a worker event and folds it into the worker's record at once.
    pub(crate) async fn record_worker_event(
        &self,
        event: WorkerEvent,
    ) -> Result<WorkerRecord, ApiError> {
        let subject = self
            .config
            .layout
            .subjects
            .worker_event(&event.group, &event.worker_id);
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        self.publish(subject, None, body).await?;
        let key = Key::new(&event.group, &event.worker_id).to_string();
        let input = WorkerInput::Event(Box::new(event));
        self.workers
            .update(&key, |record| fold_worker(record, &input), |_, _| true)
            .await
            .map_err(ApiError::internal)
    }

    /// Takes `name` in `group` for `id`; refuses a name another worker holds.
    pub(crate) async fn claim_name(
        &self,
        group: &str,
        name: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        match self
            .names
            .create(Key::new(group, name).to_string(), id.to_string().into())
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                let holder = self.holder_of(group, name).await?.unwrap_or_default();
                Err(ApiError::conflict(format!(
                    "name `{name}` is taken in group `{group}` by worker {holder}"
                )))
            }
            Err(err) => Err(ApiError::internal(err)),
        }
    }

    /// The id of the worker holding `name` in `group`.
    pub(crate) async fn holder_of(
        &self,
        group: &str,
        name: &str,
    ) -> Result<Option<String>, ApiError> {
        let value = self
            .names
            .get(Key::new(group, name).to_string())
            .await
            .map_err(ApiError::internal)?;
        Ok(value.map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    /// Creates an identity; `resource` is kept with it when it was declared by one.
    pub(crate) async fn create_identity(
        &self,
        request: CreateWorker,
        resource: Option<Resource>,
    ) -> Result<WorkerRecord, ApiError> {
        checked("name", &request.name)?;
        checked("group", &request.group)?;
        let id = nuid::next().to_string().to_lowercase();
        self.claim_name(&request.group, &request.name, &id).await?;
        let identity = IdentityChange {
            name: Some(request.name),
            labels: Some(request.labels),
            user: request.user,
            system: Some(request.system),
            resource: resource.map(Box::new),
        };
        let event = WorkerEvent {
            identity: Some(identity),
            ..WorkerEvent::about(WorkerEventType::Created, &request.group, &id)
        };
        self.record_worker_event(event).await
    }

    /// `worker.create`.
    pub(crate) async fn create_worker(
        &self,
        request: CreateWorker,
    ) -> Result<WorkerIdentity, ApiError> {
        let record = self.create_identity(request, None).await?;
        Ok(self.identity(&record))
    }

    /// The record of a worker that exists, was not deleted and, when the
    /// request was scoped to a group, is of that group (no other group's
    /// worker is even said to exist).
    pub(crate) async fn find_worker_in(
        &self,
        id: &str,
        scope: Option<&str>,
    ) -> Result<WorkerRecord, ApiError> {
        let record = self.find_worker(id).await?;
        match scope {
            Some(group) if group != record.group => Err(ApiError::not_found(format!(
                "no worker {id} in group `{group}`"
            ))),
            _ => Ok(record),
        }
    }

    /// The record of a worker that exists and was not deleted.
    pub(crate) async fn find_worker(&self, id: &str) -> Result<WorkerRecord, ApiError> {
        let bucket = self.config.layout.workers_bucket();
        let key = find_key_by_id(&self.js, &bucket, id)
            .await
            .map_err(ApiError::internal)?;
        let record = match key {
            Some(key) => self.workers.get(&key).await.map_err(ApiError::internal)?,
            None => None,
        };
        match record {
            Some(record) if record.status != Some(WorkerStatus::Deleted) => Ok(record),
            Some(_) => Err(ApiError::not_found(format!("worker {id} was deleted"))),
            None => Err(ApiError::not_found(format!("no worker {id}"))),
        }
    }

    /// `worker.get.<id>`.
    pub(crate) async fn get_worker(
        &self,
        id: &str,
        scope: Option<&str>,
    ) -> Result<WorkerIdentity, ApiError> {
        Ok(self.identity(&self.find_worker_in(id, scope).await?))
    }

    /// `worker.list`.
    pub(crate) async fn list_workers(
        &self,
        request: ListWorkers,
    ) -> Result<Vec<WorkerIdentity>, ApiError> {
        let filter = match &request.group {
            Some(group) => {
                checked("group", group)?;
                format!("{group}.*")
            }
            None => ">".to_string(),
        };
        let mut records = self
            .workers
            .read_all(&filter)
            .await
            .map_err(ApiError::internal)?;
        records.retain(|record| record.status != Some(WorkerStatus::Deleted));
        records.sort_by(|a, b| (&a.group, &a.name, &a.id).cmp(&(&b.group, &b.name, &b.id)));
        Ok(records.iter().map(|record| self.identity(record)).collect())
    }

    /// Records an `updated` event for a worker.
    pub(crate) async fn change_identity(
        &self,
        record: &WorkerRecord,
        change: IdentityChange,
    ) -> Result<WorkerRecord, ApiError> {
        let event = WorkerEvent {
            identity: Some(change),
            ..WorkerEvent::about(WorkerEventType::Updated, &record.group, &record.id)
        };
        self.record_worker_event(event).await
    }

    /// `worker.update.<id>`: the system flag and the labels.
    pub(crate) async fn update_worker(
        &self,
        id: &str,
        scope: Option<&str>,
        request: UpdateWorker,
    ) -> Result<WorkerIdentity, ApiError> {
        let record = self.find_worker_in(id, scope).await?;
        let change = IdentityChange {
            system: request.system,
            labels: request.labels,
            ..IdentityChange::default()
        };
        let record = self.change_identity(&record, change).await?;
        Ok(self.identity(&record))
    }

    /// Records a `deleted` event and frees the worker's name.
    pub(crate) async fn remove_worker(
        &self,
        record: &WorkerRecord,
    ) -> Result<WorkerRecord, ApiError> {
        let event = WorkerEvent::about(WorkerEventType::Deleted, &record.group, &record.id);
        let deleted = self.record_worker_event(event).await?;
        if self
            .holder_of(&record.group, &record.name)
            .await?
            .as_deref()
            == Some(record.id.as_str())
        {
            self.names
                .delete(Key::new(&record.group, &record.name).to_string())
                .await
                .map_err(ApiError::internal)?;
        }
        Ok(deleted)
    }

    /// `worker.delete.<id>`.
    pub(crate) async fn delete_worker(
        &self,
        id: &str,
        scope: Option<&str>,
    ) -> Result<WorkerIdentity, ApiError> {
        let record = self.find_worker_in(id, scope).await?;
        Ok(self.identity(&self.remove_worker(&record).await?))
    }
}
