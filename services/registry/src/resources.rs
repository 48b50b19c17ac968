//! Resources applied from YAML: pools kept in `shoal_pools` under
//! `<group>.<name>`, workers as identities that carry their resource.

use shoal_projector::RecordStore;
use shoal_protocol::event::IdentityChange;
use shoal_protocol::registry::{ApplyRequest, ApplyResult, Change, CreateWorker, ResourceRef};
use shoal_protocol::resource::{Resource, ResourceKind};
use shoal_protocol::token::validate_token;
use shoal_protocol::WorkerStatus;

use crate::{ApiError, Registry};

/// The group of resources that name none.
pub const DEFAULT_GROUP: &str = "default";

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
                let key = format!("{group}.{}", resource.name);
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
        Ok(result)
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
                let key = format!("{group}.{name}");
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
