//! `shoal apply`, `shoal get -t`, `shoal delete`: workers and pools as YAML
//! resources, through the registry.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use shoal_protocol::registry::{ApplyRequest, ApplyResult, Change, ResourceRef};
use shoal_protocol::resource::Resource;

use crate::connection::ConnectionArgs;
use crate::output::{print_document, print_table, Format};
use shoal_protocol::DEFAULT_GROUP;

/// Flags of `shoal apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// YAML file with one or more resources (separated by `---`), a folder
    /// of `.yaml`/`.yml` files, or `-` for standard input; repeatable.
    #[arg(short, long = "file", required = true)]
    files: Vec<PathBuf>,
    /// Group of resources that name none [default: default].
    #[arg(short, long, visible_short_alias = 'w', visible_alias = "workspace")]
    group: Option<String>,
    /// Say what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Flags of `shoal delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Delete the resources of this YAML file, folder or `-`; repeatable.
    #[arg(short, long = "file", conflicts_with_all = ["kind", "identifier"])]
    files: Vec<PathBuf>,
    /// Type of the resource to delete: worker or pool.
    #[arg(short = 't', long = "type", requires = "name")]
    kind: Option<String>,
    /// Name of the resource to delete.
    #[arg(short, long)]
    name: Option<String>,
    /// Group of the resource [default: default].
    #[arg(short, long, visible_short_alias = 'w', visible_alias = "workspace")]
    group: Option<String>,
    /// The resource as `get` prints it: "NAME | VERSION | TYPE | GROUP".
    #[arg(short = 'i', long = "identifier", conflicts_with_all = ["kind", "name"])]
    identifier: Option<String>,
}

fn read_resources(path: &PathBuf) -> anyhow::Result<Vec<Resource>> {
    let text = match path.as_os_str() == "-" {
        true => std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?,
        false => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    };
    let resources = Resource::from_yaml(&text)
        .with_context(|| format!("{} is not a valid resource", path.display()))?;
    if resources.is_empty() {
        bail!("{} holds no resource", path.display());
    }
    Ok(resources)
}

/// Every resource of `paths`, each a file, `-` or a folder of YAML files
/// (read in name order); all are read and checked before any is applied.
fn read_all_resources(paths: &[PathBuf]) -> anyhow::Result<Vec<Resource>> {
    let mut resources = Vec::new();
    for path in paths {
        if !path.is_dir() {
            resources.extend(read_resources(path)?);
            continue;
        }
        let entries = std::fs::read_dir(path)
            .with_context(|| format!("cannot read the folder {}", path.display()))?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|file| {
                file.is_file()
                    && file
                        .extension()
                        .is_some_and(|extension| extension == "yaml" || extension == "yml")
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{} holds no .yaml or .yml file", path.display());
        }
        for file in &files {
            resources.extend(read_resources(file)?);
        }
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
    let mut resources = read_all_resources(&args.files)?;
    if args.dry_run {
        for resource in &mut resources {
            resource.set_dry_run();
        }
    }
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
    if !args.files.is_empty() {
        let fallback = args.group.as_deref().unwrap_or(DEFAULT_GROUP);
        return Ok(read_all_resources(&args.files)?
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
        _ => bail!("say what to delete: -f FILE, -t TYPE -n NAME [-g GROUP], or -i \"NAME | VERSION | TYPE | GROUP\""),
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
