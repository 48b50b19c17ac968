//! `shoal get jobs|workers`: tables of records.

use clap::{Args, ValueEnum};
use shoal_protocol::{JobRecord, JobState, WorkerRecord, WorkerStatus, DEFAULT_GROUP};

use crate::connection::ConnectionArgs;
use crate::output::{print_document, print_table, Format};

/// What `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Job records.
    Jobs,
    /// Worker records.
    Workers,
}

/// Flags of `shoal get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// What to list: jobs or workers (their records).
    #[arg(required_unless_present = "resource")]
    kind: Option<Kind>,
    /// List resources of this type instead: worker or pool.
    #[arg(short = 't', long = "type", conflicts_with = "kind")]
    resource: Option<String>,
    /// Group to list.
    #[arg(short, long, visible_short_alias = 'w', visible_alias = "workspace", default_value = DEFAULT_GROUP)]
    group: String,
    /// List every group, and the workers that left long ago too.
    #[arg(short, long)]
    all: bool,
    /// Workers that left (offline after running, or deleted) this long ago
    /// are not listed, unless with -a or asked for with --state.
    #[arg(long, default_value = "10m")]
    gone_after: shoal_protocol::Duration,
    /// Only records in this state (e.g. running, failed, online).
    #[arg(long)]
    state: Option<String>,
    /// Most jobs listed, those changed last first (0: every one, oldest submission first).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Only jobs whose last change came before this revision: the next page,
    /// as the last one said.
    #[arg(long)]
    before: Option<u64>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

/// Columns of a job table.
pub const JOB_HEADER: [&str; 8] = [
    "GROUP", "ID", "QUEUE", "STATE", "ATTEMPTS", "WORKER", "EXIT", "ERROR",
];

/// A job as a table row.
pub fn job_row(record: &JobRecord) -> Vec<String> {
    vec![
        record.group.clone(),
        record.id.clone(),
        record.queue.clone(),
        record.state.map_or("", |state| state.as_str()).to_string(),
        record.attempts.to_string(),
        record.worker_id.clone().unwrap_or_default(),
        record
            .exit_code
            .map(|code| code.to_string())
            .unwrap_or_default(),
        record
            .error_text
            .clone()
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect(),
    ]
}

const WORKER_HEADER: [&str; 9] = [
    "GROUP",
    "ID",
    "NAME",
    "STATUS",
    "QUEUES",
    "TAGS",
    "RUNNING",
    "JOBS",
    "LAST SEEN",
];

fn worker_row(record: &WorkerRecord) -> Vec<String> {
    vec![
        record.group.clone(),
        record.id.clone(),
        record.name.clone(),
        record
            .status
            .map_or("", |status| status.as_str())
            .to_string(),
        record.queues.join(","),
        record.tags.join(","),
        record.running.len().to_string(),
        record.jobs_run.to_string(),
        record
            .last_seen
            .map(|at| at.to_string())
            .unwrap_or_default(),
    ]
}

/// Refuses a `--state` that no record of `kind` can be in, listing those it can.
fn check_state(kind: Kind, state: &str) -> anyhow::Result<()> {
    let known: Vec<&str> = match kind {
        Kind::Jobs => JobState::ALL.iter().map(|state| state.as_str()).collect(),
        Kind::Workers => WorkerStatus::ALL
            .iter()
            .map(|status| status.as_str())
            .collect(),
    };
    if known.contains(&state) {
        return Ok(());
    }
    let what = match kind {
        Kind::Jobs => "job state",
        Kind::Workers => "worker status",
    };
    let known = known.join(", ");
    Err(crate::exit::Usage(format!("state: `{state}` is no {what} (one of {known})")).into())
}

/// The jobs to list, in `state` if given: a page of `--limit`, those changed
/// last first, and the `--before` of the next page; or, with `--limit 0`,
/// every one, oldest submission first.
async fn job_page(
    client: &shoal_client::Client,
    filter: &str,
    state: Option<&str>,
    args: &GetArgs,
) -> anyhow::Result<(Vec<JobRecord>, Option<u64>)> {
    let in_state =
        |job: &JobRecord| state.is_none_or(|state| job.state.is_some_and(|s| s.as_str() == state));
    if args.limit == 0 {
        let mut jobs: Vec<JobRecord> = client.list(filter).await?;
        jobs.retain(in_state);
        jobs.sort_by_key(|job| (job.group.clone(), job.stream_sequence, job.id.clone()));
        return Ok((jobs, None));
    }
    let mut jobs = Vec::new();
    let mut before = args.before;
    loop {
        let page = client.newest(filter, args.limit, before).await?;
        let mut records = page.records.into_iter();
        while let Some((revision, job)) = records.next() {
            if in_state(&job) {
                jobs.push(job);
                if jobs.len() == args.limit {
                    let more = page.next_before.is_some() || records.any(|(_, job)| in_state(&job));
                    return Ok((jobs, more.then_some(revision)));
                }
            }
        }
        match page.next_before {
            Some(next) => before = Some(next),
            None => return Ok((jobs, None)),
        }
    }
}

/// Runs `shoal get`.
pub async fn run(args: GetArgs) -> anyhow::Result<()> {
    if let Some(resource) = &args.resource {
        let group = (!args.all).then(|| args.group.clone());
        return crate::resources::list(&args.connection, resource, group, args.output).await;
    }
    let kind = args.kind.unwrap_or(Kind::Jobs);
    let state = args.state.as_deref();
    if let Some(state) = state {
        check_state(kind, state)?;
    }
    let client = args.connection.client().await?;
    let filter = if args.all {
        ">".to_string()
    } else {
        format!("{}.*", args.group)
    };
    match kind {
        Kind::Jobs => {
            let (jobs, next_before) = job_page(&client, &filter, state, &args).await?;
            match args.output {
                Format::Table => {
                    print_table(&JOB_HEADER, &jobs.iter().map(job_row).collect::<Vec<_>>());
                    if let Some(before) = next_before {
                        eprintln!("more: add --before {before}");
                    }
                }
                format => print_document(&jobs, format)?,
            }
        }
        Kind::Workers => {
            let mut workers: Vec<WorkerRecord> = client.worker_records(&filter).await?;
            let now = shoal_protocol::Timestamp::now();
            let hide_gone = !args.all && state.is_none();
            workers.retain(|worker| {
                state.is_none_or(|state| worker.status.is_some_and(|s| s.as_str() == state))
                    && !(hide_gone && worker.is_gone(now, args.gone_after.0))
            });
            workers.sort_by_key(|worker| {
                (
                    worker.group.clone(),
                    worker.registered_at,
                    worker.id.clone(),
                )
            });
            match args.output {
                Format::Table => print_table(
                    &WORKER_HEADER,
                    &workers.iter().map(worker_row).collect::<Vec<_>>(),
                ),
                format => print_document(&workers, format)?,
            }
        }
    }
    Ok(())
}
