//! `shoal worker create|get|list|update|delete`: worker identities, through
//! the registry.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use shoal_protocol::registry::{CreateWorker, UpdateWorker, WorkerIdentity};

use crate::connection::ConnectionArgs;
use crate::output::{print_document, print_table, Format};

/// Admin commands on worker identities.
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create a worker identity; prints it with its id.
    Create(CreateArgs),
    /// Print a worker identity.
    Get(IdArgs),
    /// List worker identities.
    List(ListArgs),
    /// Change a worker's system flag or labels.
    Update(UpdateArgs),
    /// Delete a worker: it stops taking jobs within a heartbeat interval.
    Delete(IdArgs),
}

/// Flags of `shoal worker create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Its name, unique in its group.
    #[arg(long)]
    name: String,
    /// Its group.
    #[arg(short, long, default_value = "default")]
    group: String,
    /// Label `KEY=VALUE`, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The NATS user it connects as (its `user`).
    #[arg(long = "worker-user", value_name = "USER")]
    worker_user: Option<String>,
    /// Let it serve `_system` jobs.
    #[arg(long)]
    system: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

/// A worker by id.
#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The worker's id.
    id: String,
    /// The worker's group: asks on the group's own subject (what a user
    /// whose permissions stop at one group must do).
    #[arg(short, long)]
    group: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

/// Flags of `shoal worker list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Only this group.
    #[arg(short, long)]
    group: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

/// Flags of `shoal worker update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The worker's id.
    id: String,
    /// The worker's group: asks on the group's own subject (what a user
    /// whose permissions stop at one group must do).
    #[arg(short, long)]
    group: Option<String>,
    /// Whether it serves `_system` jobs.
    #[arg(long)]
    system: Option<bool>,
    /// Label `KEY=VALUE`, repeatable: replaces all labels.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

fn labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => anyhow::bail!("label: `{pair}` is not KEY=VALUE"),
        })
        .collect()
}

fn print_identities(identities: &[WorkerIdentity], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let rows: Vec<Vec<String>> = identities
                .iter()
                .map(|identity| {
                    vec![
                        identity.group.clone(),
                        identity.id.clone(),
                        identity.name.clone(),
                        identity
                            .status
                            .map_or("", |status| status.as_str())
                            .to_string(),
                        identity.system.to_string(),
                        identity
                            .labels
                            .iter()
                            .map(|(key, value)| format!("{key}={value}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            print_table(
                &["GROUP", "ID", "NAME", "STATUS", "SYSTEM", "LABELS"],
                &rows,
            );
            Ok(())
        }
        format => print_document(&identities, format),
    }
}

fn print_identity(identity: &WorkerIdentity, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Table => print_identities(std::slice::from_ref(identity), format),
        format => print_document(identity, format),
    }
}

/// The operation on one worker, in its group's scoped form when the group is known.
/// Runs an identity command.
pub async fn run(command: IdentityCommand) -> anyhow::Result<()> {
    match command {
        IdentityCommand::Create(args) => {
            let client = args.connection.client().await?;
            let body = CreateWorker {
                name: args.name,
                group: args.group,
                labels: labels(&args.labels)?,
                user: args.worker_user,
                system: args.system,
            };
            print_identity(&client.create_worker(&body).await?, args.output)
        }
        IdentityCommand::Get(args) => {
            let client = args.connection.client().await?;
            let identity = client.get_worker(args.group, &args.id).await?;
            print_identity(&identity, args.output)
        }
        IdentityCommand::List(args) => {
            let client = args.connection.client().await?;
            print_identities(&client.list_workers(args.group).await?, args.output)
        }
        IdentityCommand::Update(args) => {
            let client = args.connection.client().await?;
            let labels = (!args.labels.is_empty())
                .then(|| labels(&args.labels))
                .transpose()?;
            let body = UpdateWorker {
                system: args.system,
                labels,
            };
            let identity = client.update_worker(args.group, &args.id, &body).await?;
            print_identity(&identity, args.output)
        }
        IdentityCommand::Delete(args) => {
            let client = args.connection.client().await?;
            let identity = client.delete_worker(args.group, &args.id).await?;
            print_identity(&identity, args.output)
        }
    }
}
