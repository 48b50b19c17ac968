//! Kubernetes manifests for pools (`shoal render k8s`): a Deployment of each
//! pool's workers, a KEDA ScaledObject for a pool with autoscaling (its
//! triggers in [`crate::keda`]), and Deployments for the projector and the
//! registry.

use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use shoal_protocol::resource::{PoolSection, Resource, ResourceKind};

use crate::keda;
use crate::SupervisorError;

/// Jobs waiting or running per replica that autoscaling aims for, by default,
/// both in `supervise` and in the rendered ScaledObject.
pub const DEFAULT_TARGET_BACKLOG: u64 = 5;

/// Port the pods serve `/metrics` on when Prometheus scales them.
const DEFAULT_METRICS_PORT: u16 = 9464;

/// Time a worker gets to finish its jobs on SIGTERM (its `grace_period`).
const DRAIN_SECONDS: u64 = 30;

/// What KEDA reads a pool's backlog from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scaler {
    /// The NATS monitoring endpoint (`/jsz`), one trigger per consumer.
    NatsJetstream,
    /// Prometheus, the sum of the registry's `shoal_queue_depth` over the pool's consumers.
    Prometheus,
}

/// Settings of the rendered manifests.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// Group of pools that name none.
    #[arg(short = 'w', long = "workspace", default_value = shoal_protocol::DEFAULT_GROUP)]
    pub group: String,
    /// The container image with the `shoal` binary.
    #[arg(long, default_value = "shoal:0.1.0")]
    pub image: String,
    /// Namespace of the manifests.
    #[arg(long, default_value = "shoal")]
    pub namespace: String,
    /// NATS URL the pods connect to.
    #[arg(long, default_value = "nats://nats:4222")]
    pub nats_url: String,
    /// What KEDA reads the backlog from.
    #[arg(long, value_enum, default_value = "nats-jetstream")]
    pub scaler: Scaler,
    /// The NATS monitoring endpoint KEDA reads consumer lag from (host:port), with `--scaler nats-jetstream`.
    #[arg(long, default_value = "nats:8222")]
    pub monitoring_endpoint: String,
    /// The Prometheus KEDA queries, with `--scaler prometheus`.
    #[arg(long, default_value = "http://prometheus:9090")]
    pub prometheus_address: String,
    /// Jobs waiting or running per replica before KEDA adds one (as `supervise --target-backlog`).
    #[arg(long, alias = "lag-threshold", default_value_t = DEFAULT_TARGET_BACKLOG)]
    pub target_backlog: u64,
    /// Port every pod serves Prometheus metrics on (9464 with `--scaler prometheus`; none otherwise).
    #[arg(long)]
    pub metrics_port: Option<u16>,
}

impl RenderArgs {
    /// The port pods serve metrics on, if any.
    fn metrics_port(&self) -> Option<u16> {
        match self.scaler {
            Scaler::Prometheus => Some(self.metrics_port.unwrap_or(DEFAULT_METRICS_PORT)),
            Scaler::NatsJetstream => self.metrics_port,
        }
    }
}

/// The manifests of `resources`, which must all be pools, and of the services.
pub fn manifests(args: &RenderArgs, resources: &[Resource]) -> Result<Vec<Value>, SupervisorError> {
    if args.target_backlog == 0 {
        return Err(SupervisorError::Pool(
            "target_backlog: must be at least 1".into(),
        ));
    }
    let mut documents = Vec::new();
    for resource in resources {
        if resource.kind != ResourceKind::Pool {
            return Err(SupervisorError::Pool(format!(
                "{}: only pools are rendered (this is a {})",
                resource.name,
                resource.kind.as_str()
            )));
        }
        documents.extend(pool_manifests(args, resource)?);
    }
    documents.push(service_deployment(args, "projector", &["projector", "run"]));
    documents.push(service_deployment(args, "registry", &["registry", "run"]));
    Ok(documents)
}

fn labels(component: &str, pool: Option<&str>) -> Value {
    let mut labels =
        json!({"app.kubernetes.io/name": "shoal", "app.kubernetes.io/component": component});
    if let Some(pool) = pool {
        labels["shoal.io/pool"] = json!(pool);
    }
    labels
}

fn env(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

/// A secret reference `k8s:<secret>/<key>` as a variable read from that secret.
fn secret_env(name: &str, reference: &str) -> Result<Value, SupervisorError> {
    let Some((secret, key)) = reference
        .strip_prefix("k8s:")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Err(SupervisorError::Pool(format!(
            "secrets: `{reference}` is not a Kubernetes secret reference (k8s:<secret>/<key>)"
        )));
    };
    Ok(json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}))
}

fn worker_env(
    args: &RenderArgs,
    group: &str,
    pool: &PoolSection,
) -> Result<Vec<Value>, SupervisorError> {
    let mut vars = vec![env("SHOAL_NATS_URL", &args.nats_url)];
    let grace = shoal_protocol::Duration::from_secs(DRAIN_SECONDS);
    for (name, value) in pool.worker_env(group, grace) {
        vars.push(env(&name, value));
    }
    for secret in &pool.secrets {
        vars.push(secret_env(&secret.name, &secret.reference)?);
    }
    Ok(vars)
}

fn resources_of(pool: &PoolSection) -> Value {
    pool.resources.as_ref().map_or_else(
        || json!({}),
        |resources| serde_json::to_value(resources).unwrap_or_else(|_| json!({})),
    )
}

/// A container and its pod template, serving metrics when `args` asks.
fn pod_template(args: &RenderArgs, labels: Value, mut container: Value) -> Value {
    let mut metadata = json!({"labels": labels});
    if let Some(port) = args.metrics_port() {
        // Prometheus's usual pod discovery scrapes what these annotations name.
        metadata["annotations"] = json!({
            "prometheus.io/scrape": "true",
            "prometheus.io/port": port.to_string(),
            "prometheus.io/path": "/metrics",
        });
        container["ports"] = json!([{"name": "metrics", "containerPort": port}]);
        if let Some(vars) = container["env"].as_array_mut() {
            vars.push(env("SHOAL_METRICS_LISTEN", format!("0.0.0.0:{port}")));
        }
    }
    json!({"metadata": metadata, "spec": {"containers": [container]}})
}

fn pool_manifests(args: &RenderArgs, resource: &Resource) -> Result<Vec<Value>, SupervisorError> {
    let Some(pool) = &resource.pool else {
        return Err(SupervisorError::Pool(format!(
            "{}: no pool section",
            resource.name
        )));
    };
    let group = resource.group(&args.group);
    let name = format!("shoal-pool-{}", resource.name);
    let pod_labels = labels("worker", Some(&resource.name));
    let container = json!({
        "name": "worker",
        "image": args.image,
        "args": ["worker", "run"],
        "env": worker_env(args, &group, pool)?,
        "resources": resources_of(pool),
    });
    let mut template = pod_template(args, pod_labels.clone(), container);
    // Longer than the drain, so that Kubernetes never kills a draining worker.
    template["spec"]["terminationGracePeriodSeconds"] = json!(DRAIN_SECONDS + 30);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": args.namespace, "labels": pod_labels},
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": pod_labels},
            "template": template,
        },
    });
    let mut manifests = vec![deployment];
    if let Some(scaling) = pool.autoscaling.as_ref().filter(|scaling| scaling.enabled) {
        manifests.push(json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": args.namespace, "labels": pod_labels},
            "spec": {
                "scaleTargetRef": {"name": name},
                "minReplicaCount": scaling.min_replicas,
                "maxReplicaCount": scaling.max_replicas,
                "triggers": keda::triggers(args, &resource.name, &group, pool)?,
            },
        }));
    }
    Ok(manifests)
}

fn service_deployment(args: &RenderArgs, component: &str, command: &[&str]) -> Value {
    let name = format!("shoal-{component}");
    let container = json!({
        "name": component,
        "image": args.image,
        "args": command,
        "env": [env("SHOAL_NATS_URL", &args.nats_url)],
    });
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": args.namespace, "labels": labels(component, None)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels(component, None)},
            "template": pod_template(args, labels(component, None), container),
        },
    })
}
