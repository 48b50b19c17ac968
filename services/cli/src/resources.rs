//! `shoal apply`, `shoal get -t`, `shoal delete`: workers and pools as YAML
//! resources, through the registry.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use shoal_protocol::registry::{ApplyRequest, ApplyResult, Change, ResourceRef};
use shoal_protocol::resource::Resource;

/// The group of resources that name none.
const DEFAULT_GROUP: &str = "default";
use crate::connection::ConnectionArgs;
use crate::output::{print_document, print_table, Format};

/// Flags of `shoal apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// YAML file with one or more resources (separated by `---`).
    #[arg(short, long)]
    file: PathBuf,
    /// Group of resources that name none.
    #[arg(short = 'w', long = "workspace", alias = "group")]
    group: Option<String>,
}

/// Flags of `shoal delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Delete the resources of this YAML file.
    #[arg(short, long, conflicts_with_all = ["kind", "identifier"])]
    file: Option<PathBuf>,
    /// Type of the resource to delete: worker or pool.
    #[arg(short = 't', long = "type", requires = "name")]
    kind: Option<String>,
    /// Name of the resource to delete.
    #[arg(short, long)]
    name: Option<String>,
    /// Group of the resource.
    #[arg(short = 'w', long = "workspace", alias = "group")]
    group: Option<String>,
    /// The resource as `get` prints it: "NAME | VERSION | TYPE | GROUP".
    #[arg(short = 'i', long = "identifier", conflicts_with_all = ["kind", "name"])]
    identifier: Option<String>,
}

fn read_resources(path: &PathBuf) -> anyhow::Result<Vec<Resource>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let resources = Resource::from_yaml(&text)
        .with_context(|| format!("{} is not a valid resource", path.display()))?;
    if resources.is_empty() {
        bail!("{} holds no resource", path.display());
    }
    Ok(resources)
}

fn describe(result: &ApplyResult) -> String {
    let change = match (result.change, result.dry_run) {
        (Change::Created, false) => "created",
        (Change::Created, true) => "would be created (dry run)",
        (Change::Updated, false) => "updated",
        (Change::Updated, true) => "would be updated (dry run)",
        (Change::Unchanged, _) => "unchanged",
        (Change::Deleted, _) => "deleted",
    };
    let id = result
        .id
        .as_ref()
        .map(|id| format!(" (id {id})"))
        .unwrap_or_default();
    format!(
        "{} {} in group {}{id}: {change}",
        result.kind, result.name, result.group
    )
}

/// Runs `shoal apply`.
pub async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let resources = read_resources(&args.file)?;
    let client = args.connection.client().await?;
    for resource in resources {
        let group = resource.group(args.group.as_deref().unwrap_or(DEFAULT_GROUP));
        // Workers that serve `_system` reach every group's jobs: only the
        // unscoped operation, which only operators may use, declares them.
        let system = resource.worker.as_ref().is_some_and(|worker| worker.system)
            || resource.pool.as_ref().is_some_and(|pool| pool.system);
        let scope = (!system).then_some(group.as_str());
        let body = ApplyRequest {
            resource,
            group: Some(group.clone()),
        };
        let result = client.apply(scope.map(str::to_string), &body).await?;
        println!("{}", describe(&result));
    }
    Ok(())
}

/// The resources to delete, from whichever of the three forms was given.
fn targets(args: &DeleteArgs) -> anyhow::Result<Vec<ResourceRef>> {
    if let Some(file) = &args.file {
        let fallback = args.group.as_deref().unwrap_or(DEFAULT_GROUP);
        return Ok(read_resources(file)?
            .into_iter()
            .map(|resource| ResourceRef {
                kind: resource.kind.as_str().into(),
                group: Some(resource.group(fallback)),
                name: Some(resource.name),
            })
            .collect());
    }
    if let Some(identifier) = &args.identifier {
        let parts: Vec<&str> = identifier.split('|').map(str::trim).collect();
        let [name, _version, kind, group] = parts.as_slice() else {
            bail!("identifier: expected \"NAME | VERSION | TYPE | GROUP\", got \"{identifier}\"");
        };
        return Ok(vec![ResourceRef {
            kind: kind.to_string(),
            name: Some(name.to_string()),
            group: Some(group.to_string()),
        }]);
    }
    match (&args.kind, &args.name) {
        (Some(kind), Some(name)) => Ok(vec![ResourceRef { kind: kind.clone(), name: Some(name.clone()), group: args.group.clone() }]),
        _ => bail!("say what to delete: -f FILE, -t TYPE -n NAME [-w GROUP], or -i \"NAME | VERSION | TYPE | GROUP\""),
    }
}

/// Runs `shoal delete`.
pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let targets = targets(&args)?;
    let client = args.connection.client().await?;
    for target in targets {
        let result = client.delete_resource(&target).await?;
        println!("{}", describe(&result));
    }
    Ok(())
}

/// Prints the resources of a type, as `shoal get -t TYPE`.
pub async fn list(
    connection: &ConnectionArgs,
    kind: &str,
    group: Option<String>,
    format: Format,
) -> anyhow::Result<()> {
    let client = connection.client().await?;
    let body = ResourceRef {
        kind: kind.to_string(),
        name: None,
        group,
    };
    let resources = client.list_resources(&body).await?;
    match format {
        Format::Table => {
            let rows: Vec<Vec<String>> = resources
                .iter()
                .map(|resource| {
                    let (queues, replicas) = match (&resource.worker, &resource.pool) {
                        (Some(worker), _) => (worker.queues.join(","), "1".to_string()),
                        (_, Some(pool)) => (pool.queues.join(","), pool.replicas.to_string()),
                        _ => (String::new(), String::new()),
                    };
                    let identifier = format!(
                        "{} | {} | {} | {}",
                        resource.name,
                        resource.version,
                        resource.kind.as_str(),
                        resource.group("default")
                    );
                    vec![
                        identifier,
                        queues,
                        replicas,
                        resource.owner.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME | VERSION | TYPE | GROUP",
                    "QUEUES",
                    "REPLICAS",
                    "OWNER",
                ],
                &rows,
            );
            Ok(())
        }
        format => print_document(&resources, format),
    }
}
