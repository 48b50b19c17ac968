//! `shoal job submit|get|wait`: the submitter's side.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use clap::{Args, Subcommand};
use shoal_client::streams::Layout;
use shoal_protocol::job::{Backoff, RetryPolicy};
use shoal_protocol::token::validate_token;
use shoal_protocol::{JobRecord, JobSpec, JobState, SYSTEM_GROUP};

use crate::connection::ConnectionArgs;
use crate::output::{print_document, print_table, Format};
use crate::submission;

/// Commands of `shoal job`.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job and print its id.
    Submit(SubmitArgs),
    /// Print a job's record.
    Get(GetArgs),
    /// Wait until a job ends; the exit code mirrors its outcome.
    Wait(WaitArgs),
    /// Cancel a job: a queued one never starts, a running one is stopped.
    Cancel(CancelArgs),
    /// Print a job's output (stdout and stderr as they came); -f follows it live.
    Logs(LogsArgs),
    /// Submit an ended job (dead, failed, cancelled...) again, as a new job; prints its id.
    Retry(RetryArgs),
}

/// Flags of `shoal job retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    job: JobRef,
}

/// Flags of `shoal job logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    job: JobRef,
    /// Follow the output until the job ends.
    #[arg(short, long)]
    follow: bool,
}

/// Flags of `shoal job cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    job: JobRef,
}

/// Flags of `shoal job submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Group of the job [default: _system, served by system workers].
    #[arg(short, long)]
    group: Option<String>,
    /// Queue of the job.
    #[arg(short, long, default_value = shoal_protocol::DEFAULT_QUEUE)]
    queue: String,
    /// Id of the job (idempotency key); the stream sequence when absent.
    #[arg(long)]
    id: Option<String>,
    /// high, normal or low: under a backlog, higher priorities start first.
    #[arg(long, default_value = "normal", value_parser = ["high", "normal", "low"])]
    priority: String,
    /// Environment variable `KEY=VALUE` for the job, repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working dir of the job's process.
    #[arg(long)]
    working_dir: Option<String>,
    /// Longest the job may run, e.g. 90s.
    #[arg(long)]
    timeout: Option<String>,
    /// Tag of the job, repeatable.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Label `KEY=VALUE`, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Run ENTRYPOINT ARGS as a raw command (the worker must allow it).
    #[arg(long)]
    exec: bool,
    /// Attempts in all (1 = no retry); retried after a failure or a timeout.
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    /// How the delay between attempts grows.
    #[arg(long, value_enum, default_value = "exponential")]
    backoff: BackoffArg,
    /// The first delay between attempts.
    #[arg(long, default_value = "1s")]
    retry_initial: String,
    /// The longest delay between attempts.
    #[arg(long, default_value = "5m")]
    retry_max: String,
    /// Up to this many percent added to each delay at random.
    #[arg(long, default_value_t = 0)]
    retry_jitter: u8,
    /// Submit at this time (RFC 3339, e.g. 2026-12-01T08:00:00Z); `scheduled` until then.
    #[arg(long, conflicts_with_all = ["run_in", "every", "cron"])]
    at: Option<String>,
    /// Submit after this long, e.g. 90s.
    #[arg(long = "in", conflicts_with_all = ["every", "cron"])]
    run_in: Option<String>,
    /// Submit again and again at this interval (1s or more); prints the schedule's id.
    #[arg(long, conflicts_with = "cron")]
    every: Option<String>,
    /// Submit on this cron schedule (6 fields, seconds first); prints the schedule's id.
    #[arg(long)]
    cron: Option<String>,
    /// Entrypoint name (or, with --exec, the program).
    entrypoint: String,
    /// Arguments for the entrypoint.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// How the delay between attempts grows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BackoffArg {
    /// The same delay every time.
    Fixed,
    /// Twice as long each time.
    Exponential,
}

fn retry_of(args: &SubmitArgs) -> anyhow::Result<Option<RetryPolicy>> {
    let Some(max_attempts) = args.max_attempts else {
        return Ok(None);
    };
    Ok(Some(RetryPolicy {
        max_attempts,
        backoff: match args.backoff {
            BackoffArg::Fixed => Backoff::Fixed,
            BackoffArg::Exponential => Backoff::Exponential,
        },
        initial: args.retry_initial.parse().context("retry_initial")?,
        max: args.retry_max.parse().context("retry_max")?,
        jitter: args.retry_jitter,
    }))
}

/// Which job, for `get` and `wait`.
#[derive(Debug, Args)]
pub struct JobRef {
    /// The job's id.
    pub id: String,
    /// The job's group; looked up when absent.
    #[arg(short, long)]
    pub group: Option<String>,
}

/// Flags of `shoal job get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    job: JobRef,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

/// Flags of `shoal job wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    job: JobRef,
    /// Give up after this long (exit 3).
    #[arg(long, default_value = "1h")]
    timeout: String,
}

/// Runs a `shoal job` command.
pub async fn run(command: JobCommand) -> ExitCode {
    let result = match command {
        JobCommand::Submit(args) => submit(args).await.map(|()| ExitCode::SUCCESS),
        JobCommand::Get(args) => get(args).await.map(|()| ExitCode::SUCCESS),
        JobCommand::Wait(args) => wait(args).await,
        JobCommand::Cancel(args) => cancel(args).await,
        JobCommand::Retry(args) => retry(args).await.map(|()| ExitCode::SUCCESS),
        JobCommand::Logs(args) => crate::logs::run(args.connection, args.job, args.follow)
            .await
            .map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {}", crate::one_sentence(&err));
        ExitCode::FAILURE
    })
}

fn key_values(field: &str, pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => bail!("{field}: `{pair}` is not KEY=VALUE"),
        })
        .collect()
}

fn spec_of(args: &SubmitArgs) -> anyhow::Result<JobSpec> {
    let (entrypoint, command) = if args.exec {
        (
            None,
            Some(
                std::iter::once(args.entrypoint.clone())
                    .chain(args.args.clone())
                    .collect(),
            ),
        )
    } else {
        (Some(args.entrypoint.clone()), None)
    };
    let spec = JobSpec {
        id: args.id.clone(),
        entrypoint,
        args: if args.exec {
            Vec::new()
        } else {
            args.args.clone()
        },
        command,
        env: key_values("env", &args.env)?,
        working_dir: args.working_dir.clone(),
        timeout: args
            .timeout
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("timeout")?,
        tags: args.tags.clone(),
        labels: key_values("label", &args.labels)?,
        retry: retry_of(args)?,
    };
    spec.validate()?;
    Ok(spec)
}

/// When a scheduled submission runs, as the `Nats-Schedule` header says it.
fn schedule_of(args: &SubmitArgs) -> anyhow::Result<Option<(String, bool)>> {
    use time::format_description::well_known::Rfc3339;
    let at = |moment: shoal_protocol::Timestamp| -> anyhow::Result<String> {
        Ok(format!(
            "@at {}",
            moment.0.replace_nanosecond(0)?.format(&Rfc3339)?
        ))
    };
    if let Some(text) = &args.at {
        let moment: shoal_protocol::Timestamp = text.parse().context("at")?;
        return Ok(Some((at(moment)?, true)));
    }
    if let Some(text) = &args.run_in {
        let delay: shoal_protocol::Duration = text.parse().context("in")?;
        // A schedule fires on whole seconds: round up so that it never runs early.
        let moment = shoal_protocol::Timestamp::now()
            .checked_add(delay.get() + std::time::Duration::from_secs(1))
            .with_context(|| format!("in: `{text}` is too far ahead"))?;
        return Ok(Some((at(moment)?, true)));
    }
    if let Some(text) = &args.every {
        let interval: shoal_protocol::Duration = text.parse().context("every")?;
        if interval.get() < std::time::Duration::from_secs(1) || interval.get().subsec_nanos() != 0
        {
            bail!("every: `{text}` must be whole seconds, 1s or more");
        }
        return Ok(Some((
            format!("@every {}s", interval.get().as_secs()),
            false,
        )));
    }
    if let Some(expression) = &args.cron {
        if expression.split_whitespace().count() != 6 {
            bail!("cron: `{expression}` needs 6 fields: seconds minutes hours day-of-month month day-of-week");
        }
        return Ok(Some((expression.clone(), false)));
    }
    Ok(None)
}

/// Stores a schedule the server turns into submissions; prints the job's id
/// (a delayed job) or the schedule's (a recurring one).
async fn submit_scheduled(
    js: &jetstream::Context,
    layout: &Layout,
    group: &str,
    queue: &str,
    mut spec: JobSpec,
    schedule: (String, bool),
) -> anyhow::Result<()> {
    let (when, once) = schedule;
    let schedule_id = spec
        .id
        .clone()
        .unwrap_or_else(|| nuid::next().to_string().to_lowercase());
    // A delayed job keeps the schedule's id; each run of a recurring one gets its own.
    spec.id = once.then(|| schedule_id.clone());
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Schedule", when.as_str());
    headers.insert(
        "Nats-Schedule-Target",
        layout
            .subjects
            .due(group, queue, shoal_protocol::Priority::Normal)
            .as_str(),
    );
    let body = bytes::Bytes::from(serde_json::to_vec(&spec)?);
    js.publish_with_headers(
        layout.subjects.schedule(group, queue, &schedule_id),
        headers,
        body,
    )
    .await?
    .await
    .context("the schedule was not stored")?;
    println!("{schedule_id}");
    Ok(())
}

async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let spec = spec_of(&args)?;
    let schedule = schedule_of(&args)?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| SYSTEM_GROUP.to_string());
    validate_token("group", &group)?;
    validate_token("queue", &args.queue)?;
    let client = args.connection.connect("shoal-cli").await?;
    let layout = args.connection.layout()?;
    let js = jetstream::new(client);
    layout.ensure(&js).await?;
    if let Some(schedule) = schedule {
        return submit_scheduled(&js, &layout, &group, &args.queue, spec, schedule).await;
    }
    let priority: shoal_protocol::Priority = args.priority.parse().map_err(anyhow::Error::msg)?;
    let subject = layout
        .subjects
        .jobs_with_priority(&group, &args.queue, priority);
    let records = js
        .get_key_value(layout.jobs_bucket())
        .await
        .context("no jobs bucket")?;
    let sequence = submission::store(&js, &layout, &records, &group, &subject, &spec).await?;
    println!("{}", spec.job_id(sequence));
    Ok(())
}

/// Finds the key of a job: `<group>.<id>`, looking the group up when not given.
pub async fn job_key(
    js: &jetstream::Context,
    layout: &Layout,
    job: &JobRef,
) -> anyhow::Result<Option<String>> {
    validate_token("id", &job.id)?;
    if let Some(group) = &job.group {
        validate_token("group", group)?;
        return Ok(Some(format!("{group}.{}", job.id)));
    }
    let found = shoal_client::streams::find_key_by_id(js, &layout.jobs_bucket(), &job.id).await;
    found.map_err(|err| anyhow::anyhow!("job {}: {}", job.id, err.0))
}

pub async fn open_jobs(
    connection: &ConnectionArgs,
) -> anyhow::Result<(jetstream::Context, Layout, kv::Store)> {
    let client = connection.connect("shoal-cli").await?;
    let layout = connection.layout()?;
    let js = jetstream::new(client);
    let store = js
        .get_key_value(layout.jobs_bucket())
        .await
        .context("no jobs bucket: has a Shoal service run yet?")?;
    Ok((js, layout, store))
}

async fn read_record(store: &kv::Store, key: &str) -> anyhow::Result<Option<JobRecord>> {
    match store.get(key).await? {
        Some(value) => {
            Ok(Some(serde_json::from_slice(&value).with_context(|| {
                format!("record {key} is not a job record")
            })?))
        }
        None => Ok(None),
    }
}

async fn get(args: GetArgs) -> anyhow::Result<()> {
    let (js, layout, store) = open_jobs(&args.connection).await?;
    let record = match job_key(&js, &layout, &args.job).await? {
        Some(key) => read_record(&store, &key).await?,
        None => None,
    };
    let Some(record) = record else {
        bail!("no job {} found", args.job.id);
    };
    match args.output {
        Format::Table => print_table(&crate::get::JOB_HEADER, &[crate::get::job_row(&record)]),
        format => print_document(&record, format)?,
    }
    Ok(())
}

/// The exit code that mirrors a finished job: 0 for success, the job's own
/// exit code for a failure that has one, 124 for a timeout, 1 otherwise.
fn exit_code_of(record: &JobRecord) -> ExitCode {
    match record.state {
        Some(JobState::Succeeded) => ExitCode::SUCCESS,
        Some(JobState::TimedOut) => ExitCode::from(124),
        Some(JobState::Failed) => match record.exit_code {
            Some(code @ 1..=255) => ExitCode::from(code as u8),
            _ => ExitCode::FAILURE,
        },
        _ => ExitCode::FAILURE,
    }
}

/// How often `job wait` reads the record.
const WAIT_POLL: Duration = Duration::from_millis(100);

async fn wait(args: WaitArgs) -> anyhow::Result<ExitCode> {
    let timeout: shoal_protocol::Duration = args.timeout.parse().context("timeout")?;
    let (js, layout, store) = open_jobs(&args.connection).await?;
    let waited = tokio::time::timeout(timeout.get(), async {
        let key = loop {
            if let Some(key) = job_key(&js, &layout, &args.job).await? {
                break key;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // Reads of the record itself (a direct get of its key), which a
        // user's permissions can limit to its group; the bound is the timeout.
        loop {
            if let Some(record) = read_record(&store, &key).await? {
                if record.done {
                    return Ok::<_, anyhow::Error>(record);
                }
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    })
    .await;
    match waited {
        Ok(record) => {
            let record = record?;
            let state = record.state.map_or("unknown", JobState::as_str);
            eprintln!("job {} {state}", record.id);
            Ok(exit_code_of(&record))
        }
        Err(_) => {
            eprintln!("error: job {} did not end within {timeout}", args.job.id);
            Ok(ExitCode::from(3))
        }
    }
}

/// Cancels through the registry; exit 0 when cancelled, 1 when there was nothing to cancel.
async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let (js, layout, _) = open_jobs(&args.connection).await?;
    let Some(key) = job_key(&js, &layout, &args.job).await? else {
        bail!("no job {} found", args.job.id);
    };
    let group = key.split('.').next().unwrap_or_default().to_string();
    let client = args.connection.connect("shoal-cli").await?;
    let subject = layout.subjects.cancel(&group, &args.job.id);
    let result: shoal_protocol::registry::CancelResult =
        crate::api::request_subject(&client, &subject, &()).await?;
    println!("{}", result.message);
    Ok(if result.cancelled {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Submits the spec of an ended job again under a new id, `<id>-retry<N>`.
async fn retry(args: RetryArgs) -> anyhow::Result<()> {
    let (js, layout, store) = open_jobs(&args.connection).await?;
    let Some(key) = job_key(&js, &layout, &args.job).await? else {
        bail!("no job {} found", args.job.id);
    };
    let Some(record) = read_record(&store, &key).await? else {
        bail!("no job {} found", args.job.id);
    };
    if !record.done {
        bail!(
            "job {} is {}: only an ended job can be retried",
            record.id,
            record.state.map_or("unknown", JobState::as_str)
        );
    }
    let sequence = record
        .stream_sequence
        .with_context(|| format!("job {} has no submission to retry", record.id))?;
    let stream = js.get_stream(layout.jobs_stream()).await?;
    let message = stream.get_raw_message(sequence).await.with_context(|| {
        format!(
            "job {}: its submission is no longer in the jobs stream",
            record.id
        )
    })?;
    let mut spec = JobSpec::from_slice(&message.payload).with_context(|| {
        format!(
            "job {} cannot be retried: its submission is not a valid job",
            record.id
        )
    })?;
    let mut new_id = None;
    for attempt in 1..=100 {
        let candidate = format!("{}-retry{attempt}", record.id);
        if read_record(&store, &format!("{}.{candidate}", record.group))
            .await?
            .is_none()
        {
            new_id = Some(candidate);
            break;
        }
    }
    let new_id = new_id.with_context(|| format!("job {} was retried too often", record.id))?;
    spec.id = Some(new_id.clone());
    spec.labels.insert("retry_of".into(), record.id.clone());
    let subject = layout
        .subjects
        .jobs_with_priority(&record.group, &record.queue, record.priority);
    submission::store(&js, &layout, &store, &record.group, &subject, &spec).await?;
    println!("{new_id}");
    Ok(())
}
