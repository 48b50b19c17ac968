//! `shoal limit get|set`: the limits the whole fleet keeps for a key of a
//! group, read and changed in `shoal_limits` (jobs waiting for a slot go
//! as soon as a raised limit leaves room).

use clap::{Args, Subcommand};
use shoal_client::limits::Limits;
use shoal_protocol::limits::LimitKind;
use shoal_protocol::token::validate_token;
use shoal_protocol::DEFAULT_GROUP;

use crate::connection::ConnectionArgs;
use crate::output::{print_document, Format};

/// Commands of `shoal limit`.
#[derive(Debug, Subcommand)]
pub enum LimitCommand {
    /// Print a key's concurrency slots (who holds them, until when) and rate-limit starts.
    Get(KeyArgs),
    /// Set how many jobs holding a concurrency key run at once, over the jobs' own limit.
    Set(SetArgs),
}

/// Flags naming one key.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The key (`customer-42`).
    key: String,
    /// Its group.
    #[arg(short, long, default_value = DEFAULT_GROUP)]
    group: String,
}

/// Flags of `shoal limit set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Jobs holding the key that may run at once (1 to 1000).
    #[arg(long, value_name = "N", required_unless_present = "clear")]
    concurrency: Option<u32>,
    /// Drop the key's own limit: each job's own applies again.
    #[arg(long, conflicts_with = "concurrency")]
    clear: bool,
}

/// Runs `shoal limit`.
pub async fn run(command: LimitCommand) -> anyhow::Result<()> {
    let (args, set) = match command {
        LimitCommand::Get(args) => (args, None),
        LimitCommand::Set(args) => (args.key, Some(args.concurrency)),
    };
    validate_token("key", &args.key)?;
    validate_token("group", &args.group)?;
    if let Some(Some(limit)) = set {
        if limit == 0 || limit > shoal_protocol::hold::MAX_LIMIT {
            anyhow::bail!(
                "concurrency: must be from 1 to {}",
                shoal_protocol::hold::MAX_LIMIT
            );
        }
    }
    let client = args.connection.client().await?;
    let bucket = client.layout().limits_bucket();
    let store = client.jetstream().get_key_value(&bucket).await?;
    let limits = Limits::new(store);
    if let Some(limit) = set {
        limits.set_limit(&args.group, &args.key, limit).await?;
    }
    let concurrency = limits
        .get(&args.group, LimitKind::Concurrency, &args.key)
        .await?;
    let rate = limits.get(&args.group, LimitKind::Rate, &args.key).await?;
    let document = serde_json::json!({ "concurrency": concurrency, "rate": rate });
    print_document(&document, Format::Yaml)
}
