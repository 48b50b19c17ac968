//! Resources applied from YAML: pools kept in `shoal_pools` under
//! `<group>.<name>`, workers as identities that carry their resource.

use shoal_client::streams::{DEFAULT_ACK_WAIT, DEFAULT_MAX_DELIVER};
use shoal_client::RecordStore;
use shoal_protocol::event::IdentityChange;
use shoal_protocol::key::Key;
use shoal_protocol::registry::{ApplyRequest, ApplyResult, Change, CreateWorker, ResourceRef};
use shoal_protocol::resource::{Resource, ResourceKind};
use shoal_protocol::tags::{tag_set_key, UNTAGGED_KEY};
use shoal_protocol::token::validate_token;
use shoal_protocol::{Priority, WorkerStatus};

use crate::{ApiError, Registry};

use shoal_protocol::DEFAULT_GROUP;

fn kind_of(name: &str) -> Result<ResourceKind, ApiError> {
    match name {
        "worker" => Ok(ResourceKind::Worker),
        "pool" => Ok(ResourceKind::Pool),
        other => Err(ApiError::bad_request(format!(
            "type: `{other}` is not a resource type (worker or pool)"
        ))),
    }
}

/// The resource as it is stored: its group written out, never a dry run.
fn normalized(mut resource: Resource, group: &str) -> Resource {
    if let Some(worker) = resource.worker.as_mut() {
        worker.group = Some(group.to_string());
        worker.dry_run = false;
    }
    if let Some(pool) = resource.pool.as_mut() {
        pool.group = Some(group.to_string());
        pool.dry_run = false;
    }
    resource
}

/// What the workers of a resource serve.
struct Served {
    groups: Vec<String>,
    queues: Vec<String>,
    tag_key: String,
}

impl Served {
    fn of(resource: &Resource, group: &str) -> Self {
        let (queues, tags, system) = match (&resource.worker, &resource.pool) {
            (Some(worker), _) => (worker.queues.clone(), worker.tags.clone(), worker.system),
            (_, Some(pool)) => (pool.queues.clone(), pool.tags.clone(), pool.system),
            _ => (Vec::new(), Vec::new(), false),
        };
        let mut groups = vec![group.to_string()];
        if system && group != shoal_protocol::SYSTEM_GROUP {
            groups.push(shoal_protocol::SYSTEM_GROUP.to_string());
        }
        let queues = if queues.is_empty() {
            vec!["default".to_string()]
        } else {
            queues
        };
        let tag_key = if tags.is_empty() {
            UNTAGGED_KEY.to_string()
        } else {
            tag_set_key(&tags)
        };
        Self {
            groups,
            queues,
            tag_key,
        }
    }
}

impl Registry {
    fn pool_store(&self) -> RecordStore<Resource> {
        RecordStore::new(self.pools.clone())
    }

    /// `resource.apply`: creates or updates; with `dryRun`, says what it would do.
    pub(crate) async fn apply(&self, request: ApplyRequest) -> Result<ApplyResult, ApiError> {
        request
            .resource
            .validate()
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
        let group = request
            .resource
            .group(request.group.as_deref().unwrap_or(DEFAULT_GROUP));
        validate_token("group", &group).map_err(|err| ApiError::bad_request(err.to_string()))?;
        let dry_run = request.resource.dry_run();
        let resource = normalized(request.resource, &group);
        let served = Served::of(&resource, &group);
        let mut result = ApplyResult {
            kind: resource.kind.as_str().to_string(),
            name: resource.name.clone(),
            group: group.clone(),
            change: Change::Unchanged,
            dry_run,
            id: None,
        };
        match resource.kind {
            ResourceKind::Pool => {
                let key = Key::new(&group, &resource.name).to_string();
                let existing = self
                    .pool_store()
                    .get(&key)
                    .await
                    .map_err(ApiError::internal)?;
                result.change = match existing {
                    None => Change::Created,
                    Some(existing) if existing == resource => Change::Unchanged,
                    Some(_) => Change::Updated,
                };
                if !dry_run && result.change != Change::Unchanged {
                    let body = serde_json::to_vec(&resource).map_err(ApiError::internal)?;
                    self.pools
                        .put(key, body.into())
                        .await
                        .map_err(ApiError::internal)?;
                }
            }
            ResourceKind::Worker => {
                let system = resource.worker.as_ref().is_some_and(|worker| worker.system);
                match self.holder_of(&group, &resource.name).await? {
                    None => {
                        result.change = Change::Created;
                        if !dry_run {
                            let request = CreateWorker {
                                name: resource.name.clone(),
                                group: group.clone(),
                                system,
                                ..CreateWorker::default()
                            };
                            result.id =
                                Some(self.create_identity(request, Some(resource)).await?.id);
                        }
                    }
                    Some(id) => {
                        let record = self.find_worker(&id).await?;
                        result.id = Some(id);
                        let same = record.resource.as_deref() == Some(&resource)
                            && record.system == system;
                        result.change = if same {
                            Change::Unchanged
                        } else {
                            Change::Updated
                        };
                        if !dry_run && !same {
                            let change = IdentityChange {
                                system: Some(system),
                                resource: Some(Box::new(resource)),
                                ..IdentityChange::default()
                            };
                            self.change_identity(&record, change).await?;
                        }
                    }
                }
            }
        }
        if !dry_run {
            self.open_queues(&served).await?;
        }
        Ok(result)
    }

    /// Creates the consumers of every queue a resource's workers serve, so
    /// that workers whose users may not create consumers find them there.
    async fn open_queues(&self, served: &Served) -> Result<(), ApiError> {
        let layout = &self.config.layout;
        let (ack_wait, max_deliver) = (DEFAULT_ACK_WAIT, DEFAULT_MAX_DELIVER);
        for group in &served.groups {
            for queue in &served.queues {
                if served.tag_key == UNTAGGED_KEY {
                    for priority in Priority::ORDER {
                        layout
                            .open_queue_consumer(
                                &self.js,
                                group,
                                queue,
                                priority,
                                ack_wait,
                                max_deliver,
                            )
                            .await
                            .map_err(ApiError::internal)?;
                    }
                }
                layout
                    .open_route_consumer(
                        &self.js,
                        group,
                        queue,
                        &served.tag_key,
                        ack_wait,
                        max_deliver,
                    )
                    .await
                    .map_err(ApiError::internal)?;
            }
        }
        Ok(())
    }

    /// `resource.list`: the resources of a type, in one group or all.
    pub(crate) async fn list_resources(
        &self,
        request: ResourceRef,
    ) -> Result<Vec<Resource>, ApiError> {
        let kind = kind_of(&request.kind)?;
        let filter = match &request.group {
            Some(group) => {
                validate_token("group", group)
                    .map_err(|err| ApiError::bad_request(err.to_string()))?;
                format!("{group}.*")
            }
            None => ">".to_string(),
        };
        let mut resources: Vec<Resource> = match kind {
            ResourceKind::Pool => self
                .pool_store()
                .read_all(&filter)
                .await
                .map_err(ApiError::internal)?,
            ResourceKind::Worker => self
                .workers
                .read_all(&filter)
                .await
                .map_err(ApiError::internal)?
                .into_iter()
                .filter(|record| record.status != Some(WorkerStatus::Deleted))
                .filter_map(|record| record.resource.map(|resource| *resource))
                .collect(),
        };
        if let Some(name) = &request.name {
            resources.retain(|resource| &resource.name == name);
        }
        resources.sort_by(|a, b| (a.group(""), &a.name).cmp(&(b.group(""), &b.name)));
        Ok(resources)
    }

    /// `resource.delete`.
    pub(crate) async fn delete_resource(
        &self,
        request: ResourceRef,
    ) -> Result<ApplyResult, ApiError> {
        let kind = kind_of(&request.kind)?;
        let name = request
            .name
            .ok_or_else(|| ApiError::bad_request("name: which resource to delete"))?;
        let group = request.group.unwrap_or_else(|| DEFAULT_GROUP.to_string());
        validate_token("name", &name).map_err(|err| ApiError::bad_request(err.to_string()))?;
        validate_token("group", &group).map_err(|err| ApiError::bad_request(err.to_string()))?;
        let missing =
            || ApiError::not_found(format!("no {} `{name}` in group `{group}`", kind.as_str()));
        let mut result = ApplyResult {
            kind: kind.as_str().to_string(),
            name: name.clone(),
            group: group.clone(),
            change: Change::Deleted,
            dry_run: false,
            id: None,
        };
        match kind {
            ResourceKind::Pool => {
                let key = Key::new(&group, &name).to_string();
                if self
                    .pool_store()
                    .get(&key)
                    .await
                    .map_err(ApiError::internal)?
                    .is_none()
                {
                    return Err(missing());
                }
                self.pools.delete(&key).await.map_err(ApiError::internal)?;
            }
            ResourceKind::Worker => {
                let id = self.holder_of(&group, &name).await?.ok_or_else(missing)?;
                let record = self.find_worker(&id).await?;
                self.remove_worker(&record).await?;
                result.id = Some(id);
            }
        }
        Ok(result)
    }
}
