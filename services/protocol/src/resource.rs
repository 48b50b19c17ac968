//! Workers and pools as declared resources in YAML, applied with `shoal apply`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::duration::Duration;
use crate::token::validate_token;

/// The only resource version so far.
pub const RESOURCE_VERSION: &str = "v1";

/// The largest resource file read: far more than any pool or worker needs,
/// small enough that a hostile file costs little to refuse.
pub const MAX_RESOURCE_BYTES: usize = 256 * 1024;

/// A `Worker` or `Pool` resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Resource")]
pub struct Resource {
    /// Its name, unique per type in its group.
    pub name: String,
    /// Resource version: `v1`.
    pub version: String,
    /// `worker` or `pool`.
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    /// Free tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The spec of a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerSection>,
    /// The spec of a pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolSection>,
}

/// The types of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// One worker.
    Worker,
    /// A set of identical worker replicas.
    Pool,
}

impl ResourceKind {
    /// The name used in YAML and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Worker => "worker",
            Self::Pool => "pool",
        }
    }
}

/// Scaling bounds and targets of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Autoscaling {
    /// Whether the replica count follows the load.
    pub enabled: bool,
    /// Fewest replicas.
    #[serde(default = "one")]
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// CPU use per replica to aim for, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "targetCPUUtilizationPercentage")]
    pub target_cpu_utilization_percentage: Option<u32>,
    /// Memory use per replica to aim for, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_memory_utilization_percentage: Option<u32>,
}

fn one() -> u32 {
    1
}

/// CPU and memory amounts, as Kubernetes writes them (`500m`, `512Mi`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Amounts {
    /// CPU, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, e.g. `512Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// Requests and limits of a replica.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// What a replica is guaranteed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Amounts>,
    /// What a replica may use at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Amounts>,
}

/// A secret a worker gets as a variable: a reference, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The variable it is given as.
    pub name: String,
    /// Where the value lives, e.g. `k8s:shoal/video-api-key` or `file:/run/secrets/key`.
    #[serde(rename = "ref")]
    pub reference: String,
}

/// The spec of a worker resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkerSection {
    /// A human title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Routing tags of the worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Queues it serves.
    pub queues: Vec<String>,
    /// Its group (or `-w GROUP`, or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether it serves `_system`.
    #[serde(default)]
    pub system: bool,
    /// Log level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Variables for its jobs' processes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub envs: BTreeMap<String, String>,
    /// Secrets, by reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    /// CPU and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Jobs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Lifetime, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Duration>,
    /// Validate and show what would change, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The spec of a pool resource: a worker spec, replicated.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolSection {
    /// A human title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Routing tags of its workers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Replicas when autoscaling is off (the start when on).
    #[serde(default = "one")]
    pub replicas: u32,
    /// Scaling from the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Queues its workers serve.
    pub queues: Vec<String>,
    /// Its group (or `-w GROUP`, or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether its workers serve `_system`.
    #[serde(default)]
    pub system: bool,
    /// Log level of its workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Variables for its jobs' processes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub envs: BTreeMap<String, String>,
    /// Secrets, by reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    /// CPU and memory per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Jobs at once per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Lifetime of a replica, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Duration>,
    /// Validate and show what would change, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl PoolSection {
    /// The settings a replica of this pool runs with, as the variables of
    /// `shoal worker run` (`SHOAL_WORKER_*`), followed by the pool's `envs`.
    /// Kubernetes manifests and the local supervisor both start workers so.
    pub fn worker_env(&self, group: &str, grace_period: Duration) -> Vec<(String, String)> {
        // The pool's own variables first: Shoal's settings, set last, win.
        let mut vars: Vec<(String, String)> = self
            .envs
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        vars.extend([
            ("SHOAL_WORKER_GROUP".to_string(), group.to_string()),
            ("SHOAL_WORKER_QUEUES".to_string(), self.queues.join(",")),
            ("SHOAL_WORKER_SYSTEM".to_string(), self.system.to_string()),
            (
                "SHOAL_WORKER_GRACE_PERIOD".to_string(),
                grace_period.to_string(),
            ),
        ]);
        if !self.tags.is_empty() {
            vars.push(("SHOAL_WORKER_TAGS".to_string(), self.tags.join(",")));
        }
        if let Some(concurrency) = self.concurrency {
            vars.push((
                "SHOAL_WORKER_CONCURRENCY".to_string(),
                concurrency.to_string(),
            ));
        }
        if let Some(lifetime) = self.lifetime {
            vars.push(("SHOAL_WORKER_LIFETIME".to_string(), lifetime.to_string()));
        }
        if let Some(level) = &self.log_level {
            vars.push(("SHOAL_WORKER_LOG_LEVEL".to_string(), level.clone()));
        }
        vars
    }
}

/// The most replicas a pool may ask for.
pub const MAX_REPLICAS: u32 = 1000;

/// A resource's own variables may not be Shoal's: those are the worker's
/// settings and login, which the resource's other fields and whoever runs
/// it decide (a pool could otherwise serve another group, or read a login).
fn validate_variables(
    section: &str,
    envs: &BTreeMap<String, String>,
    secrets: &[SecretRef],
) -> Result<(), InvalidResource> {
    let names = envs
        .keys()
        .map(|name| (format!("{section}.envs.{name}"), name.as_str()))
        .chain(secrets.iter().enumerate().map(|(index, secret)| {
            (
                format!("{section}.secrets[{index}].name"),
                secret.name.as_str(),
            )
        }));
    for (path, name) in names {
        if name.starts_with("SHOAL_") {
            return Err(field(
                &path,
                format!("{name} is a Shoal setting; set it through the resource's fields or where the workers run"),
            ));
        }
    }
    for (index, secret) in secrets.iter().enumerate() {
        if let Some(variable) = secret.reference.strip_prefix("env:") {
            if variable.starts_with("SHOAL_") {
                return Err(field(
                    &format!("{section}.secrets[{index}].ref"),
                    "a secret may not be read from a SHOAL_ variable",
                ));
            }
        }
    }
    Ok(())
}

/// A resource that cannot be accepted; the text starts with the field's path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidResource(pub String);

fn field(path: &str, reason: impl std::fmt::Display) -> InvalidResource {
    InvalidResource(format!("{path}: {reason}"))
}

impl Resource {
    /// Reads every resource of a YAML text (documents separated by `---`).
    pub fn from_yaml(text: &str) -> Result<Vec<Self>, InvalidResource> {
        if text.len() > MAX_RESOURCE_BYTES {
            return Err(InvalidResource(format!(
                "file: {} bytes is more than the {MAX_RESOURCE_BYTES} a resource file may take",
                text.len()
            )));
        }
        let mut out = Vec::new();
        for document in serde_yaml::Deserializer::from_str(text) {
            let resource = Option::<Self>::deserialize(document)
                .map_err(|err| InvalidResource(readable(&err.to_string())))?;
            if let Some(resource) = resource {
                resource.validate()?;
                out.push(resource);
            }
        }
        Ok(out)
    }

    /// Checks what serde cannot: names, versions, the section matching the type, bounds.
    pub fn validate(&self) -> Result<(), InvalidResource> {
        validate_token("name", &self.name)
            .map_err(|err| field("name", err.to_string().trim_start_matches("name: ")))?;
        if self.version != RESOURCE_VERSION {
            return Err(field(
                "version",
                format!(
                    "`{}` is not supported (use {RESOURCE_VERSION})",
                    self.version
                ),
            ));
        }
        let section = self.kind.as_str();
        match (self.kind, &self.worker, &self.pool) {
            (ResourceKind::Worker, Some(worker), None) => {
                validate_common(
                    section,
                    &worker.queues,
                    worker.group.as_deref(),
                    &worker.tags,
                    worker.concurrency,
                )?;
                validate_variables(section, &worker.envs, &worker.secrets)?;
                validate_amounts(section, worker.resources.as_ref())
            }
            (ResourceKind::Pool, None, Some(pool)) => {
                validate_common(
                    section,
                    &pool.queues,
                    pool.group.as_deref(),
                    &pool.tags,
                    pool.concurrency,
                )?;
                validate_variables(section, &pool.envs, &pool.secrets)?;
                validate_amounts(section, pool.resources.as_ref())?;
                if pool.replicas > MAX_REPLICAS {
                    return Err(field(
                        "pool.replicas",
                        format!("must not be more than {MAX_REPLICAS}"),
                    ));
                }
                if let Some(scaling) = &pool.autoscaling {
                    if scaling.max_replicas > MAX_REPLICAS {
                        return Err(field(
                            "pool.autoscaling.maxReplicas",
                            format!("must not be more than {MAX_REPLICAS}"),
                        ));
                    }
                    if scaling.min_replicas > scaling.max_replicas {
                        return Err(field(
                            "pool.autoscaling.minReplicas",
                            "must not be more than maxReplicas",
                        ));
                    }
                    if scaling.max_replicas == 0 {
                        return Err(field("pool.autoscaling.maxReplicas", "must be at least 1"));
                    }
                }
                Ok(())
            }
            (_, _, _) => Err(field(
                section,
                format!("a resource of type {section} needs a `{section}:` section and no other"),
            )),
        }
    }

    /// The group of the resource: its section's, else `fallback`.
    pub fn group(&self, fallback: &str) -> String {
        let declared = match self.kind {
            ResourceKind::Worker => self.worker.as_ref().and_then(|worker| worker.group.clone()),
            ResourceKind::Pool => self.pool.as_ref().and_then(|pool| pool.group.clone()),
        };
        declared.unwrap_or_else(|| fallback.to_string())
    }

    /// Whether the resource asks only to be validated.
    pub fn dry_run(&self) -> bool {
        self.worker.as_ref().is_some_and(|worker| worker.dry_run)
            || self.pool.as_ref().is_some_and(|pool| pool.dry_run)
    }

    /// Asks only to be validated: nothing is stored.
    pub fn set_dry_run(&mut self) {
        if let Some(worker) = &mut self.worker {
            worker.dry_run = true;
        }
        if let Some(pool) = &mut self.pool {
            pool.dry_run = true;
        }
    }
}

/// Every CPU and memory amount of a section's `resources`.
fn validate_amounts(section: &str, resources: Option<&Resources>) -> Result<(), InvalidResource> {
    let Some(resources) = resources else {
        return Ok(());
    };
    for (kind, amounts) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        let Some(amounts) = amounts else { continue };
        if let Some(cpu) = &amounts.cpu {
            crate::amounts::parse_cpu(&format!("{section}.resources.{kind}.cpu"), cpu)
                .map_err(|err| InvalidResource(err.to_string()))?;
        }
        if let Some(memory) = &amounts.memory {
            crate::amounts::parse_memory(&format!("{section}.resources.{kind}.memory"), memory)
                .map_err(|err| InvalidResource(err.to_string()))?;
        }
    }
    Ok(())
}

fn validate_common(
    section: &str,
    queues: &[String],
    group: Option<&str>,
    tags: &[String],
    concurrency: Option<u32>,
) -> Result<(), InvalidResource> {
    if queues.is_empty() {
        return Err(field(
            &format!("{section}.queues"),
            "at least one queue is needed",
        ));
    }
    for (index, queue) in queues.iter().enumerate() {
        validate_token("queue", queue).map_err(|_| {
            field(
                &format!("{section}.queues[{index}]"),
                format!("`{queue}` is not a valid token"),
            )
        })?;
    }
    for (index, tag) in tags.iter().enumerate() {
        validate_token("tag", tag).map_err(|_| {
            field(
                &format!("{section}.tags[{index}]"),
                format!("`{tag}` is not a valid token"),
            )
        })?;
    }
    if let Some(group) = group {
        validate_token("group", group).map_err(|_| {
            field(
                &format!("{section}.group"),
                format!("`{group}` is not a valid token"),
            )
        })?;
    }
    if concurrency == Some(0) {
        return Err(field(
            &format!("{section}.concurrency"),
            "must be at least 1",
        ));
    }
    Ok(())
}

/// serde_yaml says `invalid type: string "six", expected u32`; people read `expected integer`.
fn readable(text: &str) -> String {
    let mut text = text.to_string();
    for (rust, yaml) in [
        ("expected u32", "expected integer"),
        ("expected i64", "expected integer"),
        ("expected a boolean", "expected true or false"),
    ] {
        text = text.replace(rust, yaml);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "name: video\nversion: v1\ntype: pool\npool:\n  queues: [video]\n  autoscaling:\n    enabled: true\n    minReplicas: 1\n    maxReplicas: MAX\n";

    #[test]
    fn a_pool_reads_with_its_autoscaling() {
        let resources = Resource::from_yaml(&POOL.replace("MAX", "6")).expect("valid");
        let pool = resources[0].pool.as_ref().expect("pool section");
        assert_eq!(
            pool.autoscaling
                .as_ref()
                .map(|scaling| scaling.max_replicas),
            Some(6)
        );
    }

    #[test]
    fn a_pool_may_not_set_shoals_own_variables_or_ask_for_endless_replicas() {
        let envs = format!("{POOL}  envs:\n    SHOAL_WORKER_GROUP: globex\n").replace("MAX", "2");
        let err = Resource::from_yaml(&envs).expect_err("refused");
        assert!(
            err.to_string().starts_with("pool.envs.SHOAL_WORKER_GROUP:"),
            "{err}"
        );
        let secret =
            format!("{POOL}  secrets:\n    - name: TOKEN\n      ref: env:SHOAL_PASSWORD\n")
                .replace("MAX", "2");
        let err = Resource::from_yaml(&secret).expect_err("refused");
        assert!(err.to_string().starts_with("pool.secrets[0].ref:"), "{err}");
        let err = Resource::from_yaml(&POOL.replace("MAX", "100000")).expect_err("refused");
        assert!(
            err.to_string().starts_with("pool.autoscaling.maxReplicas:"),
            "{err}"
        );
    }

    #[test]
    fn an_oversized_file_is_refused_before_it_is_parsed() {
        let huge = format!("{POOL}# {}\n", "x".repeat(MAX_RESOURCE_BYTES));
        let err = Resource::from_yaml(&huge).expect_err("too big");
        assert!(err.to_string().starts_with("file:"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_refused_with_the_path_of_the_field() {
        let err = Resource::from_yaml(&POOL.replace("MAX", "six")).expect_err("invalid");
        assert!(
            err.to_string()
                .starts_with("pool.autoscaling.maxReplicas: "),
            "{err}"
        );
        assert!(err.to_string().contains("expected integer"), "{err}");
    }

    #[test]
    fn unknown_and_missing_fields_are_refused_with_their_path() {
        let err = Resource::from_yaml(&POOL.replace("MAX", "6").replace("  queues", "  queuez"))
            .expect_err("invalid");
        assert!(
            err.to_string().contains("pool: unknown field `queuez`"),
            "{err}"
        );
        let err = Resource::from_yaml("version: v1\ntype: pool\npool:\n  queues: [a]\n")
            .expect_err("invalid");
        assert!(err.to_string().contains("missing field `name`"), "{err}");
    }

    #[test]
    fn an_amount_that_is_no_amount_is_refused_where_every_command_reads_resources() {
        let pool = POOL.replace("MAX", "6");
        let fast = format!("{pool}  resources:\n    requests: {{cpu: fast}}\n");
        let err = Resource::from_yaml(&fast).expect_err("no CPU amount");
        assert!(
            err.to_string()
                .starts_with("pool.resources.requests.cpu: `fast` is not a CPU amount"),
            "{err}"
        );
        let lots = format!("{pool}  resources:\n    limits: {{memory: lots}}\n");
        let err = Resource::from_yaml(&lots).expect_err("no memory amount");
        assert!(
            err.to_string()
                .starts_with("pool.resources.limits.memory: "),
            "{err}"
        );
        let fine = format!("{pool}  resources:\n    limits: {{cpu: 500m, memory: 2Gi}}\n");
        assert!(Resource::from_yaml(&fine).is_ok());
    }
}
