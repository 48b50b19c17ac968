//! `shoal render k8s -f pool.yaml`: Kubernetes manifests for a pool: a
//! Deployment of workers, a KEDA ScaledObject on the backlog of the pool's
//! queue consumers, and Deployments for the projector and the registry.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use shoal_client::streams::Layout;
use shoal_protocol::resource::{PoolSection, Resource, ResourceKind};
use shoal_protocol::Subjects;

/// Commands of `shoal render`.
#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// Print Kubernetes manifests (with a KEDA ScaledObject) for the pools of a file.
    K8s(K8sArgs),
}

/// Flags of `shoal render k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// YAML file with one or more Pool resources.
    #[arg(short, long)]
    file: PathBuf,
    /// Group of pools that name none.
    #[arg(short = 'w', long = "workspace", default_value = "default")]
    group: String,
    /// The container image with the `shoal` binary.
    #[arg(long, default_value = "shoal:0.1.0")]
    image: String,
    /// Namespace of the manifests.
    #[arg(long, default_value = "shoal")]
    namespace: String,
    /// NATS URL the pods connect to.
    #[arg(long, default_value = "nats://nats:4222")]
    nats_url: String,
    /// The NATS monitoring endpoint KEDA reads consumer lag from (host:port).
    #[arg(long, default_value = "nats:8222")]
    monitoring_endpoint: String,
    /// Jobs waiting per replica before KEDA adds one.
    #[arg(long, default_value_t = 10)]
    lag_threshold: u32,
}

/// Time a worker gets to finish its jobs on SIGTERM (its `grace_period`).
const DRAIN_SECONDS: u64 = 30;

/// Runs `shoal render`.
pub fn run(command: RenderCommand) -> anyhow::Result<()> {
    let RenderCommand::K8s(args) = command;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let resources = Resource::from_yaml(&text)
        .with_context(|| format!("{} is not a valid resource", args.file.display()))?;
    let mut documents = Vec::new();
    for resource in &resources {
        if resource.kind != ResourceKind::Pool {
            bail!(
                "{}: only pools are rendered (this is a {})",
                resource.name,
                resource.kind.as_str()
            );
        }
        documents.extend(pool_manifests(&args, resource)?);
    }
    documents.push(service_deployment(
        &args,
        "projector",
        &["projector", "run"],
    ));
    documents.push(service_deployment(&args, "registry", &["registry", "run"]));
    for document in documents {
        print!("---\n{}", serde_yaml::to_string(&document)?);
    }
    Ok(())
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
fn secret_env(name: &str, reference: &str) -> anyhow::Result<Value> {
    let Some((secret, key)) = reference
        .strip_prefix("k8s:")
        .and_then(|rest| rest.split_once('/'))
    else {
        bail!("secrets: `{reference}` is not a Kubernetes secret reference (k8s:<secret>/<key>)");
    };
    Ok(json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}))
}

fn worker_env(args: &K8sArgs, group: &str, pool: &PoolSection) -> anyhow::Result<Vec<Value>> {
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

fn pool_manifests(args: &K8sArgs, resource: &Resource) -> anyhow::Result<Vec<Value>> {
    let Some(pool) = &resource.pool else {
        bail!("{}: no pool section", resource.name)
    };
    let group = resource.group(&args.group);
    let name = format!("shoal-pool-{}", resource.name);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": args.namespace, "labels": labels("worker", Some(&resource.name))},
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": labels("worker", Some(&resource.name))},
            "template": {
                "metadata": {"labels": labels("worker", Some(&resource.name))},
                "spec": {
                    // Longer than the drain, so that Kubernetes never kills a draining worker.
                    "terminationGracePeriodSeconds": DRAIN_SECONDS + 30,
                    "containers": [{
                        "name": "worker",
                        "image": args.image,
                        "args": ["worker", "run"],
                        "env": worker_env(args, &group, pool)?,
                        "resources": resources_of(pool),
                    }],
                },
            },
        },
    });
    let mut manifests = vec![deployment];
    if let Some(scaling) = pool.autoscaling.as_ref().filter(|scaling| scaling.enabled) {
        let layout = Layout::new(Subjects::default());
        // One trigger per consumer the pool's workers read (KEDA scales on
        // the largest): every priority, and the route of a tagged pool.
        let triggers: Vec<Value> = layout
            .pool_consumers(&group, pool)
            .into_iter()
            .map(|consumer| {
                json!({
                    "type": "nats-jetstream",
                    "metadata": {
                        "natsServerMonitoringEndpoint": args.monitoring_endpoint,
                        "account": "$G",
                        "stream": layout.jobs_stream(),
                        "consumer": consumer,
                        "lagThreshold": args.lag_threshold.to_string(),
                    },
                })
            })
            .collect();
        manifests.push(json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": args.namespace, "labels": labels("worker", Some(&resource.name))},
            "spec": {
                "scaleTargetRef": {"name": name},
                "minReplicaCount": scaling.min_replicas,
                "maxReplicaCount": scaling.max_replicas,
                "triggers": triggers,
            },
        }));
    }
    Ok(manifests)
}

fn service_deployment(args: &K8sArgs, component: &str, command: &[&str]) -> Value {
    let name = format!("shoal-{component}");
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": args.namespace, "labels": labels(component, None)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels(component, None)},
            "template": {
                "metadata": {"labels": labels(component, None)},
                "spec": {
                    "containers": [{
                        "name": component,
                        "image": args.image,
                        "args": command,
                        "env": [env("SHOAL_NATS_URL", &args.nats_url)],
                    }],
                },
            },
        },
    })
}
