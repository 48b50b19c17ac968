//! `shoal job submit|get|wait`: the submitter's side.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use shoal_client::{Client, Submitted, Target, When};
use shoal_protocol::hold::{ConcurrencyLimit, ParentFailure, RateLimit};
use shoal_protocol::job::{Backoff, RetryPolicy};
use shoal_protocol::key::Key;
use shoal_protocol::{JobSpec, JobState, Timestamp, DEFAULT_GROUP};

use crate::connection::ConnectionArgs;
use crate::output::{print_document, print_table, Format};
use crate::spinner::JobSpinner;

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
    #[command(flatten)]
    otlp: shoal_traces::OtlpArgs,
    /// Group of the job [default: default, as `shoal worker run` serves].
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
    /// Id of a job of the group that must succeed first, repeatable.
    #[arg(long = "depends-on", value_name = "ID")]
    depends_on: Vec<String>,
    /// When a parent ends without success: skip the job, or run it all the same.
    #[arg(long, value_enum)]
    on_parent_failure: Option<ParentFailureArg>,
    /// At most LIMIT jobs holding KEY run at once across the fleet: KEY=LIMIT.
    #[arg(long, value_name = "KEY=LIMIT")]
    concurrency: Option<ConcurrencyLimit>,
    /// At most LIMIT jobs holding KEY start per window across the fleet: KEY=LIMIT/PER.
    #[arg(long, value_name = "KEY=LIMIT/PER")]
    rate: Option<RateLimit>,
    /// Take turns with the other keys of the queue: its backlog never starves theirs.
    #[arg(long, value_name = "KEY")]
    fairness_key: Option<String>,
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
    /// Arguments for the entrypoint; those that start with `-` go after `--`.
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

/// What a job does when a parent ends without success.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ParentFailureArg {
    /// It ends `skipped`.
    Skip,
    /// It runs all the same.
    Run,
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
    /// Give up after this long (exit 75).
    #[arg(long, default_value = "1h")]
    timeout: String,
    /// Also print the ended job's record on stdout, in this format.
    #[arg(short, long, value_enum)]
    output: Option<Format>,
}

/// Runs a `shoal job` command.
pub async fn run(command: JobCommand) -> ExitCode {
    let result = match command {
        JobCommand::Submit(args) => submit(args).await.map(|()| ExitCode::SUCCESS),
        JobCommand::Get(args) => get(args).await.map(|()| ExitCode::SUCCESS),
        JobCommand::Wait(args) => wait(args).await,
        JobCommand::Cancel(args) => cancel(args).await,
        JobCommand::Retry(args) => retry(args).await.map(|()| ExitCode::SUCCESS),
        JobCommand::Logs(args) => logs(args).await.map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {}", crate::one_sentence(&err));
        ExitCode::from(crate::exit::of_error(&err))
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
    let (entrypoint, command, job_args) = match args.exec {
        true => {
            let argv = std::iter::once(args.entrypoint.clone()).chain(args.args.clone());
            (None, Some(argv.collect()), Vec::new())
        }
        false => (Some(args.entrypoint.clone()), None, args.args.clone()),
    };
    let spec = JobSpec {
        id: args.id.clone(),
        schedule: None,
        entrypoint,
        args: job_args,
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
        depends_on: args.depends_on.clone(),
        on_parent_failure: args.on_parent_failure.map(|arg| match arg {
            ParentFailureArg::Skip => ParentFailure::Skip,
            ParentFailureArg::Run => ParentFailure::Run,
        }),
        concurrency: args.concurrency.clone(),
        rate: args.rate.clone(),
        fairness_key: args.fairness_key.clone(),
    };
    spec.validate()?;
    Ok(spec)
}

/// When a scheduled submission runs.
fn schedule_of(args: &SubmitArgs) -> anyhow::Result<Option<When>> {
    if let Some(text) = &args.at {
        return Ok(Some(When::At(text.parse().context("at")?)));
    }
    if let Some(text) = &args.run_in {
        let delay: shoal_protocol::Duration = text.parse().context("in")?;
        let moment = Timestamp::now()
            .checked_add(delay.get())
            .with_context(|| format!("in: `{text}` is too far ahead"))?;
        return Ok(Some(When::At(moment)));
    }
    if let Some(text) = &args.every {
        let interval: shoal_protocol::Duration = text.parse().context("every")?;
        return Ok(Some(When::Every(interval.get())));
    }
    Ok(args.cron.clone().map(When::Cron))
}

async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let spec = spec_of(&args)?;
    let when = schedule_of(&args)?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| DEFAULT_GROUP.to_string());
    let priority = args.priority.parse().map_err(anyhow::Error::msg)?;
    let target = Target::new(&group, &args.queue)?.with_priority(priority);
    let mut client = args.connection.client().await?;
    let spans = match &args.otlp.otlp_endpoint {
        Some(endpoint) => Some(shoal_traces::OtlpExporter::start(endpoint, "shoal-cli")?),
        None => None,
    };
    if let Some(spans) = &spans {
        client = client.with_spans(spans.clone());
    }
    client.ensure().await?;
    match when {
        Some(When::At(moment)) => {
            println!("{}", client.submit_at(&target, &spec, moment).await?.id())
        }
        Some(when) => println!("{}", client.schedule(&target, &spec, &when).await?),
        None => print_submitted(&client.submit(&target, &spec).await?),
    }
    if let Some(spans) = spans {
        spans.stop().await;
    }
    Ok(())
}

fn print_submitted(submitted: &Submitted) {
    if submitted.fresh_dedupe_id {
        eprintln!(
            "note: the deduplication id {} was held by a message outside group {}; \
             the job was stored under a fresh one",
            submitted.key,
            submitted.key.group()
        );
    }
    println!("{}", submitted.key.id());
}

/// The client and the key of the job `job` names.
async fn find(connection: &ConnectionArgs, job: &JobRef) -> anyhow::Result<(Client, Key)> {
    let client = connection.client().await?;
    match client.find(&job.id, job.group.as_deref()).await {
        Ok(key) => Ok((client, key)),
        Err(shoal_client::ClientError::NoSuchJob(_)) => Err(no_such_job(&client, job).await),
        Err(err) => Err(err.into()),
    }
}

/// That `job` names no job, with where to look when it names a schedule.
async fn no_such_job(client: &Client, job: &JobRef) -> anyhow::Error {
    let err = anyhow::Error::from(shoal_client::ClientError::NoSuchJob(job.id.clone()));
    match schedule_hint(client, job).await {
        Some(hint) => err.context(hint),
        None => err,
    }
}

/// When `job` names a recurring schedule rather than a job: where to look
/// instead, and its latest runs.
async fn schedule_hint(client: &Client, job: &JobRef) -> Option<String> {
    let schedules = client.schedules(job.group.as_deref()).await.ok()?;
    let schedule = schedules
        .into_iter()
        .find(|schedule| schedule.id == job.id)?;
    let group = &schedule.group;
    let mut hint = format!(
        "{} is a schedule of group {group} ({}), not a job: see `shoal schedule ls -g {group}`; \
         its runs are the jobs {}-<sequence>, labelled schedule={}",
        schedule.id, schedule.when, schedule.id, schedule.id
    );
    // The newest runs, from the group's last thousand changes.
    let page = client
        .newest(&format!("{group}.*"), 1000, None)
        .await
        .ok()?;
    let runs: Vec<String> = page
        .records
        .into_iter()
        .map(|(_, record)| record)
        .filter(|record| record.labels.get(shoal_client::SCHEDULE_LABEL) == Some(&schedule.id))
        .take(3)
        .map(|record| record.id)
        .collect();
    if !runs.is_empty() {
        hint.push_str(&format!(" (latest: {})", runs.join(", ")));
    }
    Some(hint)
}

async fn get(args: GetArgs) -> anyhow::Result<()> {
    let (client, key) = find(&args.connection, &args.job).await?;
    let Some(record) = client.get(&key).await? else {
        return Err(no_such_job(&client, &args.job).await);
    };
    match args.output {
        Format::Table => print_table(&crate::get::JOB_HEADER, &[crate::get::job_row(&record)]),
        format => print_document(&record, format)?,
    }
    Ok(())
}

async fn wait(args: WaitArgs) -> anyhow::Result<ExitCode> {
    let timeout: shoal_protocol::Duration = args.timeout.parse().context("timeout")?;
    let deadline = std::time::Instant::now() + timeout.get();
    let client = args.connection.client().await?;
    // A job not recorded yet is waited for too, within the same timeout.
    let key = loop {
        match client.find(&args.job.id, args.job.group.as_deref()).await {
            Ok(key) => break key,
            Err(shoal_client::ClientError::NoSuchJob(_))
                if std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Err(shoal_client::ClientError::NoSuchJob(_)) => {
                return Ok(wait_timed_out(&args, timeout))
            }
            Err(err) => return Err(err.into()),
        }
    };
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let spinner = JobSpinner::start(&client, &key);
    let waited = client.wait(&key, left).await;
    drop(spinner);
    match waited {
        Ok(record) => {
            match args.output {
                Some(Format::Table) => {
                    print_table(&crate::get::JOB_HEADER, &[crate::get::job_row(&record)])
                }
                Some(format) => print_document(&record, format)?,
                None => {}
            }
            let state = record.state.map_or("unknown", JobState::as_str);
            match record.exit_code {
                Some(code) if record.state == Some(JobState::Failed) => {
                    eprintln!("job {} {state} (exit {code})", record.id)
                }
                _ => eprintln!("job {} {state}", record.id),
            }
            Ok(ExitCode::from(crate::exit::of_job(&record)))
        }
        Err(shoal_client::ClientError::TimedOut { .. }) => Ok(wait_timed_out(&args, timeout)),
        Err(err) => Err(err.into()),
    }
}

fn wait_timed_out(args: &WaitArgs, timeout: shoal_protocol::Duration) -> ExitCode {
    eprintln!("error: job {} did not end within {timeout}", args.job.id);
    ExitCode::from(crate::exit::TIMED_OUT)
}

/// Cancels through the registry; exit 0 when cancelled, 1 when there was nothing to cancel.
async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let (client, key) = find(&args.connection, &args.job).await?;
    let result = client.cancel(&key).await?;
    println!("{}", result.message);
    Ok(match result.cancelled {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// Submits the spec of an ended job again under a new id, `<id>-retry<N>`.
async fn retry(args: RetryArgs) -> anyhow::Result<()> {
    let (client, key) = find(&args.connection, &args.job).await?;
    print_submitted(&client.retry(&key).await?);
    Ok(())
}

/// Prints the output of a job; with `--follow`, until the job has ended.
async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let (client, key) = find(&args.connection, &args.job).await?;
    let spinner = args
        .follow
        .then(|| JobSpinner::start(&client, &key))
        .flatten();
    let mut chunks = Box::pin(client.logs(&key, args.follow));
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        JobSpinner::suspend(spinner.as_ref(), || {
            out.write_all(&chunk)?;
            out.flush()
        })
        .context("cannot write the output")?;
    }
    Ok(())
}
