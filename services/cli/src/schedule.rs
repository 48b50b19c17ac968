//! `shoal schedule ls|rm`: delayed and recurring jobs, kept as message
//! schedules in the schedules stream under `shoal.sched.<group>.<queue>.<id>`.

use clap::{Args, Subcommand};

use crate::connection::ConnectionArgs;
use crate::output::{print_document, print_table, Format};

/// Commands of `shoal schedule`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List the schedules.
    Ls(LsArgs),
    /// Remove a schedule: it submits nothing more.
    Rm(RmArgs),
}

/// Flags of `shoal schedule ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Only this group.
    #[arg(short, long)]
    group: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

/// Flags of `shoal schedule rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The schedule's id.
    id: String,
    /// Its group; looked up when absent.
    #[arg(short, long)]
    group: Option<String>,
}

/// Runs `shoal schedule`.
pub async fn run(command: ScheduleCommand) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::Ls(args) => {
            let client = args.connection.client().await?;
            let schedules = client.schedules(args.group.as_deref()).await?;
            if args.output != Format::Table {
                return print_document(&schedules, args.output);
            }
            let rows: Vec<Vec<String>> = schedules
                .into_iter()
                .map(|schedule| {
                    let job = schedule
                        .spec
                        .and_then(|spec| {
                            spec.entrypoint
                                .or_else(|| spec.command.map(|argv| argv.join(" ")))
                        })
                        .unwrap_or_default();
                    vec![
                        schedule.id,
                        schedule.group,
                        schedule.queue,
                        schedule.when,
                        job,
                    ]
                })
                .collect();
            print_table(&["ID", "GROUP", "QUEUE", "SCHEDULE", "JOB"], &rows);
            Ok(())
        }
        ScheduleCommand::Rm(args) => {
            let client = args.connection.client().await?;
            client
                .remove_schedule(&args.id, args.group.as_deref())
                .await?;
            println!("schedule {} removed", args.id);
            Ok(())
        }
    }
}
