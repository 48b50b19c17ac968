//! `shoal schedule ls|rm`: delayed and recurring jobs, kept as message
//! schedules in the schedules stream under `shoal.sched.<group>.<queue>.<id>`.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use shoal_client::streams::Layout;
use shoal_protocol::JobSpec;

use crate::connection::ConnectionArgs;
use crate::output::print_table;

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

/// The subjects of the schedules matching `filter`.
async fn schedule_subjects(
    stream: &async_nats::jetstream::stream::Stream,
    filter: String,
) -> anyhow::Result<Vec<String>> {
    let mut found = stream.info_with_subjects(filter).await?;
    let mut subjects = Vec::new();
    while let Some(entry) = found.next().await {
        subjects.push(entry?.0);
    }
    subjects.sort();
    Ok(subjects)
}

/// The installation's layout and its jobs stream, where schedules live.
async fn open_jobs_stream(
    connection: &ConnectionArgs,
) -> anyhow::Result<(Layout, async_nats::jetstream::stream::Stream)> {
    let client = connection.connect("shoal-cli").await?;
    let layout = connection.layout()?;
    let js = async_nats::jetstream::new(client);
    let stream = js
        .get_stream(layout.schedules_stream())
        .await
        .context("no schedules stream")?;
    Ok((layout, stream))
}

/// Runs `shoal schedule`.
pub async fn run(command: ScheduleCommand) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::Ls(args) => {
            let (layout, stream) = open_jobs_stream(&args.connection).await?;
            let group = args.group.as_deref().unwrap_or("*");
            let filter = format!("{}.sched.{group}.*.*", layout.subjects.prefix());
            let mut rows = Vec::new();
            for subject in schedule_subjects(&stream, filter).await? {
                let Some((group, queue, id)) = layout.subjects.parse_schedule(&subject) else {
                    continue;
                };
                let Ok(message) = stream.direct_get_last_for_subject(&subject).await else {
                    continue;
                };
                let when = message
                    .headers
                    .get("Nats-Schedule")
                    .map(|value| value.to_string())
                    .unwrap_or_default();
                let job = serde_json::from_slice::<JobSpec>(&message.payload)
                    .map(|spec| {
                        spec.entrypoint
                            .or_else(|| spec.command.map(|argv| argv.join(" ")))
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                rows.push(vec![id, group, queue, when, job]);
            }
            print_table(&["ID", "GROUP", "QUEUE", "SCHEDULE", "JOB"], &rows);
            Ok(())
        }
        ScheduleCommand::Rm(args) => {
            shoal_protocol::token::validate_token("id", &args.id)?;
            let (layout, stream) = open_jobs_stream(&args.connection).await?;
            let group = args.group.as_deref().unwrap_or("*");
            let subjects = schedule_subjects(
                &stream,
                format!("{}.sched.{group}.*.{}", layout.subjects.prefix(), args.id),
            )
            .await?;
            let [subject] = subjects.as_slice() else {
                if subjects.is_empty() {
                    bail!("no schedule {}", args.id);
                }
                bail!(
                    "schedule {} exists in several groups or queues; name the group with --group",
                    args.id
                );
            };
            stream
                .purge()
                .filter(subject.as_str())
                .await
                .context("cannot remove the schedule")?;
            println!("schedule {} removed", args.id);
            Ok(())
        }
    }
}
