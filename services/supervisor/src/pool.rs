//! The pool to supervise, read from a YAML file or from `shoal_pools`, and
//! what follows from it: the replicas' settings, the scaling bounds and
//! targets, and the basis of CPU and memory use.

use shoal_protocol::key::Key;
use std::time::Duration;

use async_nats::jetstream::kv;
use shoal_protocol::resource::{Amounts, PoolSection, Resource, ResourceKind};

use crate::decide::Bounds;
use crate::secrets::SecretFiles;
use crate::usage::{self, Basis};
use crate::SupervisorError;
use shoal_protocol::amounts::{parse_cpu, parse_memory};

/// Time a replica gets to finish its jobs when it is drained (its `grace_period`).
pub const WORKER_GRACE_PERIOD: Duration = Duration::from_secs(30);

/// A pool, checked and resolved for local supervision.
#[derive(Debug, Clone)]
pub struct PoolPlan {
    /// The pool's name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Its spec.
    pub section: PoolSection,
    /// Scaling bounds, when autoscaling is on.
    pub bounds: Option<Bounds>,
    /// CPU target in percent, when set and autoscaling is on.
    pub cpu_target: Option<u32>,
    /// Memory target in percent, when set and autoscaling is on.
    pub memory_target: Option<u32>,
    /// What CPU and memory use is measured against.
    pub basis: Basis,
    /// The replicas' variables: worker settings, the pool's envs, its secrets.
    pub env: Vec<(String, String)>,
}

impl PoolPlan {
    /// The one pool of a YAML text; `group` for a pool that names none.
    pub fn from_yaml(text: &str, group: &str) -> Result<Self, SupervisorError> {
        let resources =
            Resource::from_yaml(text).map_err(|err| SupervisorError::Pool(err.to_string()))?;
        let pools: Vec<&Resource> = resources
            .iter()
            .filter(|resource| resource.kind == ResourceKind::Pool)
            .collect();
        match pools.as_slice() {
            [pool] => Self::from_resource(pool, group, SecretFiles::Allowed),
            [] => Err(SupervisorError::Pool(
                "type: the file holds no resource of type pool".into(),
            )),
            _ => Err(SupervisorError::Pool(format!(
                "the file holds {} pools; a supervisor runs one (split the file)",
                pools.len()
            ))),
        }
    }

    /// The pool `name` of `group` as applied, from `shoal_pools`.
    pub async fn from_bucket(
        pools: &kv::Store,
        group: &str,
        name: &str,
    ) -> Result<Self, SupervisorError> {
        let key = Key::new(group, name).to_string();
        let value = pools
            .get(&key)
            .await
            .map_err(|err| SupervisorError::Nats(format!("cannot read pool {key}: {err}")))?
            .ok_or_else(|| {
                SupervisorError::Pool(format!(
                    "pool: no pool `{name}` in group `{group}` (apply it with shoal apply -f)"
                ))
            })?;
        let resource: Resource = serde_json::from_slice(&value)
            .map_err(|err| SupervisorError::Pool(format!("pool {key} as stored: {err}")))?;
        resource
            .validate()
            .map_err(|err| SupervisorError::Pool(err.to_string()))?;
        // Whoever may apply pools to the group wrote it: it may not make
        // the supervisor read its machine's files.
        Self::from_resource(&resource, group, SecretFiles::Refused)
    }

    /// The plan of a validated pool resource.
    pub fn from_resource(
        resource: &Resource,
        group: &str,
        files: SecretFiles,
    ) -> Result<Self, SupervisorError> {
        let Some(section) = resource.pool.clone() else {
            return Err(SupervisorError::Pool(format!(
                "{}: a pool needs a `pool:` section",
                resource.name
            )));
        };
        let group = resource.group(group);
        let scaling = section
            .autoscaling
            .as_ref()
            .filter(|scaling| scaling.enabled);
        let mut env = section.worker_env(&group, shoal_protocol::Duration(WORKER_GRACE_PERIOD));
        env.extend(crate::secrets::resolve(&section.secrets, files, |name| {
            std::env::var(name).ok()
        })?);
        Ok(Self {
            name: resource.name.clone(),
            basis: basis(&section)?,
            bounds: scaling.map(|scaling| Bounds {
                min: scaling.min_replicas,
                max: scaling.max_replicas,
            }),
            cpu_target: scaling.and_then(|scaling| scaling.target_cpu_utilization_percentage),
            memory_target: scaling.and_then(|scaling| scaling.target_memory_utilization_percentage),
            group,
            section,
            env,
        })
    }
}

/// The request of each resource, else its limit, else one core and the host's memory.
fn basis(section: &PoolSection) -> Result<Basis, SupervisorError> {
    let resources = section.resources.clone().unwrap_or_default();
    let amounts = [
        ("requests", resources.requests.unwrap_or_default()),
        ("limits", resources.limits.unwrap_or_default()),
    ];
    let mut cpu = None;
    let mut memory = None;
    for (kind, Amounts { cpu: c, memory: m }) in &amounts {
        if let (None, Some(text)) = (cpu, c) {
            cpu = Some(
                parse_cpu(&format!("pool.resources.{kind}.cpu"), text)
                    .map_err(|err| SupervisorError::Pool(err.to_string()))?,
            );
        }
        if let (None, Some(text)) = (memory, m) {
            memory = Some(
                parse_memory(&format!("pool.resources.{kind}.memory"), text)
                    .map_err(|err| SupervisorError::Pool(err.to_string()))?,
            );
        }
    }
    Ok(Basis {
        cpu_cores: cpu.unwrap_or(1.0),
        memory_bytes: memory.or_else(usage::host_memory_bytes).unwrap_or(1 << 30),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "name: video\nversion: v1\ntype: pool\npool:\n  queues: [video]\n  group: acme\n  concurrency: 2\n  autoscaling:\n    enabled: true\n    minReplicas: 1\n    maxReplicas: 6\n    targetCPUUtilizationPercentage: 80\n  resources:\n    requests: {cpu: 500m}\n    limits: {cpu: \"2\", memory: 2Gi}\n";

    #[test]
    fn a_pool_file_gives_bounds_targets_basis_and_the_worker_settings() {
        let plan = PoolPlan::from_yaml(POOL, "default").expect("a plan");
        assert_eq!((plan.name.as_str(), plan.group.as_str()), ("video", "acme"));
        assert_eq!(plan.bounds, Some(Bounds { min: 1, max: 6 }));
        assert_eq!((plan.cpu_target, plan.memory_target), (Some(80), None));
        assert_eq!(plan.basis.cpu_cores, 0.5);
        assert_eq!(plan.basis.memory_bytes, 2 << 30);
        assert!(plan
            .env
            .contains(&("SHOAL_WORKER_CONCURRENCY".into(), "2".into())));
        assert!(plan
            .env
            .contains(&("SHOAL_WORKER_GROUP".into(), "acme".into())));
    }

    #[test]
    fn a_bad_amount_or_a_file_without_a_pool_is_refused_naming_the_field() {
        let err =
            PoolPlan::from_yaml(&POOL.replace("500m", "fast"), "default").expect_err("bad cpu");
        assert!(
            err.to_string().starts_with("pool.resources.requests.cpu: "),
            "{err}"
        );
        let err = PoolPlan::from_yaml(
            &POOL.replace("maxReplicas: 6", "maxReplicas: six"),
            "default",
        )
        .expect_err("bad type");
        assert!(
            err.to_string()
                .starts_with("pool.autoscaling.maxReplicas: "),
            "{err}"
        );
        let worker = "name: w\nversion: v1\ntype: worker\nworker:\n  queues: [a]\n";
        let err = PoolPlan::from_yaml(worker, "default").expect_err("no pool");
        assert!(err.to_string().starts_with("type: "), "{err}");
    }
}
