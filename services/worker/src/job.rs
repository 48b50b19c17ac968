//! Handling one delivered job: read it, skip it if it is already done, run
//! it while keeping it alive with progress acks, report its outcome, and ack
//! it only once JetStream has stored that outcome.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use shoal_client::rejection::position;
use shoal_protocol::fairness::keyed_by_subject;
use shoal_protocol::rejection;
use shoal_protocol::trace::TRACEPARENT;
use shoal_protocol::{JobEvent, JobEventType, JobSpec, JobState, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::action::{plan, Plan};
use crate::admission::{
    attempts_before, cancelled, check_attempts_fit, recorded, standing, submission_sequence,
    Recorded, Standing,
};
use crate::delivery::{Delivery, QueueLimits};
use crate::holds;
use crate::policy;
use crate::process::{self, Ending, LogSink, Outcome, ProcessSpec};
use crate::result_file::with_result;
use crate::retry::retry_delay;
use crate::start::{StartReport, START_REPORT_GRACE};
use crate::trace;
use crate::Worker;

/// Handles one delivered job message to its end.
pub(crate) async fn handle(worker: Arc<Worker>, message: Message, limits: QueueLimits) {
    let Some(at) = position(&message) else {
        warn!(subject = %message.subject, "a job message without JetStream metadata; ignored");
        return;
    };
    // A held job let go again comes as a fresh copy: its attempts go on.
    let attempt = message
        .info()
        .map(|info| info.delivered.max(1) as u32)
        .unwrap_or(1)
        .saturating_add(attempts_before(&worker.config.subjects, &message));
    let place = match worker.config.subjects.parse_job(&message.subject) {
        Ok(place) => place,
        Err(err) => {
            let notice = rejection::notice(
                &worker.config.subjects,
                &message.subject,
                at,
                err.to_string(),
            );
            return reject(&worker, &message, notice).await;
        }
    };
    let submission = submission_sequence(&worker.config.subjects, &message, at.sequence);
    let at = rejection::Position {
        sequence: submission,
        ..at
    };
    let subjects = &worker.config.subjects;
    let spec = match JobSpec::from_slice(&message.payload).and_then(|spec| {
        check_attempts_fit(&spec, limits)?;
        keyed_by_subject(subjects, &message.subject, spec)
    }) {
        Ok(spec) => spec,
        Err(err) => {
            let event = rejection::reject_submission(
                &worker.config.subjects,
                &message.subject,
                &message.payload,
                at,
                err.to_string(),
            );
            return reject(&worker, &message, event).await;
        }
    };
    let traced = trace::attempt_trace(&message);
    let delivery = Delivery {
        job_id: spec.job_id(at.sequence),
        group: place.group,
        queue: place.id,
        attempt,
        submission,
        trace: traced.map(|(_, own)| own),
        traced,
        parents: None,
    };
    let span = tracing::info_span!("job", job_id = %delivery.job_id, group = %delivery.group, queue = %delivery.queue, attempt);
    run_job(worker, message, spec, delivery, limits)
        .instrument(span)
        .await;
}

/// Publishes the rejection of an unreadable job and takes it off the queue for good.
async fn reject(worker: &Worker, message: &Message, rejection: rejection::Rejection) {
    warn!(subject = %message.subject, "rejected a job message that cannot be read");
    match worker.publish_rejection(&rejection).await {
        Ok(()) => {
            if let Err(err) = message.ack_with(AckKind::Term).await {
                debug!(error = %err, "term failed; the message will come again");
            }
        }
        Err(err) => {
            warn!(error = %err, "could not publish the rejection; the message will come again")
        }
    }
}

async fn run_job(
    worker: Arc<Worker>,
    message: Message,
    spec: JobSpec,
    mut delivery: Delivery,
    limits: QueueLimits,
) {
    match recorded(&worker, &delivery).await {
        Recorded::Runnable => {}
        Recorded::Done => {
            info!("job already finished; acked without running it again");
            let _ = message.ack().await;
            return;
        }
        Recorded::TakenBy(owner) => {
            warn!(
                owner,
                submission = delivery.submission,
                "another submission holds this job id; not run"
            );
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    }
    let lease = limits.ack_wait;
    let Some(admitted) = holds::admit(&worker, &message, &spec, &delivery, lease).await else {
        return;
    };
    delivery.parents = admitted.parents;
    run_attempt(
        worker,
        message,
        spec,
        delivery,
        limits,
        admitted.slot.as_ref(),
    )
    .await;
    if let Some(slot) = admitted.slot {
        slot.release().await;
    }
}

/// Runs an admitted attempt, reports its outcome and settles its message.
async fn run_attempt(
    worker: Arc<Worker>,
    message: Message,
    spec: JobSpec,
    delivery: Delivery,
    limits: QueueLimits,
    slot: Option<&holds::Slot>,
) {
    let ack_wait = limits.ack_wait;
    let started_at = Timestamp::now();
    let wall_start = std::time::SystemTime::now();
    worker.metrics.started(
        &delivery.group,
        &delivery.queue,
        first_pickup(&message, delivery.attempt),
    );
    let mut started = worker.job_event(JobEventType::Started, &delivery, started_at);
    started.worker_id = Some(worker.id.clone());
    let start = StartReport::new(worker.clone(), started);
    let running = RunningJob::new(&worker, &delivery.job_id);
    let clock = std::time::Instant::now();
    let work = execute(&worker, &spec, &delivery, running.stop.clone(), &start);
    tokio::pin!(work);
    let outcome = tokio::select! {
        outcome = &mut work => outcome,
        _ = tokio::time::sleep(START_REPORT_GRACE) => {
            let watch = Watch {
                worker: &worker,
                delivery: &delivery,
                stop: &running.stop,
                slot,
            };
            // The job goes on while its start is reported (a slow server
            // must not hold back its end, nor its progress acks).
            let ((), outcome) = tokio::join!(
                start.report(),
                keep_alive_while(&message, ack_wait, watch, work)
            );
            outcome
        }
    };
    let elapsed = clock.elapsed();
    if outcome.ending == Ending::HandedBack {
        if worker.abort.is_cancelled() {
            info!("job handed back unfinished");
            let handed_back = "handed_back";
            trace::ended(&worker, &delivery, &message, wall_start, handed_back, None);
            let _ = message.ack_with(AckKind::Nak(None)).await;
        } else {
            // Only a cancel stops a job without the worker stopping too;
            // the registry has recorded it.
            info!("job cancelled: its processes were stopped");
            trace::ended(&worker, &delivery, &message, wall_start, "cancelled", None);
            let cancelled = Some(JobState::Cancelled.as_str());
            worker
                .metrics
                .ended(&delivery.group, &delivery.queue, cancelled, elapsed);
            let _ = message.ack_with(AckKind::Term).await;
        }
        return;
    }
    // A job that ran long may have been handed to another worker meanwhile
    // (this one was paused or cut off): if that one finished it, say
    // nothing; if it started a later attempt, this stale one neither
    // reports nor settles the message, which is that worker's now.
    if elapsed > ack_wait / 2 {
        match standing(&worker, &delivery).await {
            Standing::Current => {}
            Standing::Done => {
                info!("job finished elsewhere meanwhile; its outcome here is dropped");
                trace::ended(&worker, &delivery, &message, wall_start, "superseded", None);
                let _ = message.ack().await;
                return;
            }
            Standing::Superseded(latest) => {
                warn!(
                    latest,
                    "a later attempt started while this one ran; its outcome is dropped"
                );
                trace::ended(&worker, &delivery, &message, wall_start, "superseded", None);
                return;
            }
        }
    }
    let retry_in = match outcome.ending {
        Ending::Succeeded => None,
        _ => retry_delay(&spec, &delivery, limits),
    };
    let ended = outcome_event(&worker, &delivery, outcome, started_at, retry_in);
    let stored = store_attempt(&worker, &message, start.unstored(), &ended).await;
    match stored {
        Ok(_) => {
            let outcome = retry_in.map_or(final_state(ended.kind).as_str(), |_| "retrying");
            let error = ended.error_text.as_deref();
            trace::ended(&worker, &delivery, &message, wall_start, outcome, error);
            settle(&worker, &message, &ended, retry_in, elapsed).await
        }
        Err(err) => {
            let error = shoal_client::error_chain(&err);
            warn!(
                error,
                "the outcome was not stored; the job will be delivered again"
            );
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

/// How long a worker keeps trying to store a finished attempt's events
/// before it hands the job back: a stream that is electing a new leader
/// (a server of a cluster died) answers "no stream" for a few seconds, and
/// handing the job back then would spend its deliveries for nothing.
const STORE_WINDOW: Duration = Duration::from_secs(20);

/// Stores the attempt's `started` event (if it was reported but not
/// stored) and its outcome, trying again with growing pauses within
/// [`STORE_WINDOW`]; the job's message is kept with progress acks meanwhile.
async fn store_attempt(
    worker: &Worker,
    message: &Message,
    unstored_start: Option<&JobEvent>,
    ended: &JobEvent,
) -> Result<(), crate::NotStored> {
    let mut unstored_start = unstored_start;
    let deadline = std::time::Instant::now() + STORE_WINDOW;
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = async {
            if let Some(started) = &unstored_start {
                worker
                    .publish_job_event(started)
                    .await?
                    .await
                    .map_err(crate::NotStored::Publish)?;
                unstored_start = None;
            }
            worker
                .publish_job_event(ended)
                .await?
                .await
                .map(drop)
                .map_err(crate::NotStored::Publish)
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(err) if std::time::Instant::now() + pause < deadline => {
                debug!(error = %err, retry_in = ?pause, "the attempt's events were not stored yet");
                let _ = message.ack_with(AckKind::Progress).await;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(err) => return Err(err),
        }
    }
}

/// The event that reports how an attempt ended.
fn outcome_event(
    worker: &Worker,
    delivery: &Delivery,
    outcome: Outcome,
    started_at: Timestamp,
    retry_in: Option<Duration>,
) -> JobEvent {
    let kind = match (outcome.ending, retry_in) {
        (Ending::Succeeded, _) => JobEventType::Succeeded,
        (_, Some(_)) => JobEventType::Retrying,
        (Ending::TimedOut, None) => JobEventType::TimedOut,
        (Ending::Failed | Ending::HandedBack, None) => JobEventType::Failed,
    };
    let mut ended = worker.job_event(kind, delivery, Timestamp::now());
    ended.retry_in = retry_in.map(shoal_protocol::Duration);
    ended.worker_id = Some(worker.id.clone());
    ended.started_at = Some(started_at);
    ended.exit_code = outcome.exit_code;
    ended.error_text = outcome.error_text;
    ended.stdout_tail = outcome.stdout_tail;
    ended.stderr_tail = outcome.stderr_tail;
    ended.result = outcome.result;
    ended
}

/// Once JetStream has stored the outcome: the job is acked, or NAKed with
/// its retry delay (the redelivery is the next attempt).
async fn settle(
    worker: &Worker,
    message: &Message,
    ended: &JobEvent,
    retry_in: Option<Duration>,
    elapsed: Duration,
) {
    let state = retry_in.is_none().then(|| final_state(ended.kind).as_str());
    worker
        .metrics
        .ended(&ended.group, &ended.queue, state, elapsed);
    if let Some(delay) = retry_in {
        // One line per job at info: its end, below; each failed attempt at debug.
        debug!(attempt = ended.attempt, retry_in = ?delay, error = ?ended.error_text, "attempt failed; the next one follows its delay");
        let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
        return;
    }
    if let Err(err) = message.ack().await {
        debug!(error = %err, "ack failed; a redelivery will find the job done");
    }
    worker.jobs_run.fetch_add(1, Ordering::Relaxed);
    worker
        .job_micros
        .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    if ended.kind != JobEventType::Succeeded {
        worker.jobs_failed.fetch_add(1, Ordering::Relaxed);
    }
    info!(outcome = ?ended.kind, attempt = ended.attempt, exit_code = ?ended.exit_code, error = ?ended.error_text, "job finished");
}

/// The state a job ends in for good after an attempt's outcome event.
fn final_state(outcome: JobEventType) -> JobState {
    match outcome {
        JobEventType::Succeeded => JobState::Succeeded,
        JobEventType::TimedOut => JobState::TimedOut,
        _ => JobState::Failed,
    }
}

/// How long a first attempt waited, from its submission (the server's time
/// of the message) to now; `None` for a later attempt, which waited for
/// its retry delay as well.
fn first_pickup(message: &Message, attempt: u32) -> Option<Duration> {
    if attempt > 1 {
        return None;
    }
    let published = message.info().ok()?.published;
    let waited = time::OffsetDateTime::now_utc() - published;
    Duration::try_from(waited).ok()
}

/// A job in the worker's running set (reported by heartbeats, stopped by a
/// cancel) until its outcome is handled, whichever way the handling ends.
struct RunningJob<'a> {
    worker: &'a Worker,
    job_id: &'a str,
    /// Cancelled to stop the job: by a cancel, or when the worker gives up waiting.
    stop: CancellationToken,
}

impl<'a> RunningJob<'a> {
    fn new(worker: &'a Worker, job_id: &'a str) -> Self {
        let stop = worker.abort.child_token();
        let busy = worker.running_jobs(|running| {
            running.insert(job_id.to_string(), stop.clone());
            running.len()
        });
        worker.count_slots(busy);
        Self {
            worker,
            job_id,
            stop,
        }
    }
}

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        let busy = self.worker.running_jobs(|running| {
            running.remove(self.job_id);
            running.len()
        });
        self.worker.count_slots(busy);
    }
}

/// Sends progress acks well inside the ack wait while `work` runs.
/// What a running job is watched for besides its end: a cancel recorded
/// while its stop request did not reach this worker.
struct Watch<'a> {
    worker: &'a Worker,
    delivery: &'a Delivery,
    stop: &'a CancellationToken,
    /// The concurrency slot whose lease goes on with the job.
    slot: Option<&'a holds::Slot>,
}

/// Runs `work`, sending progress acks well inside the ack wait and, at
/// each, checking the record for a cancel.
async fn keep_alive_while(
    message: &Message,
    ack_wait: Duration,
    watch: Watch<'_>,
    work: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    tokio::pin!(work);
    let mut ticker = tokio::time::interval((ack_wait / 3).max(Duration::from_millis(100)));
    ticker.tick().await;
    loop {
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = ticker.tick() => {
                if let Err(err) = message.ack_with(AckKind::Progress).await {
                    debug!(error = %err, "progress ack failed");
                }
                if let Some(slot) = watch.slot {
                    slot.renew().await;
                }
                if !watch.stop.is_cancelled() && cancelled(watch.worker, watch.delivery).await {
                    info!("the record says the job was cancelled: stopping it");
                    watch.stop.cancel();
                }
            }
        }
    }
}

async fn execute(
    worker: &Worker,
    spec: &JobSpec,
    delivery: &Delivery,
    stop: CancellationToken,
    start: &Arc<StartReport>,
) -> Outcome {
    let logs = LogSink::new(
        worker.client.clone(),
        worker
            .config
            .subjects
            .logs(&delivery.group, &delivery.job_id),
        delivery.attempt,
        delivery.trace.map(|trace| trace.to_string()),
    );
    let outcome = run_plan(worker, spec, delivery, stop, &logs, start).await;
    logs.end().await;
    outcome
}

async fn run_plan(
    worker: &Worker,
    spec: &JobSpec,
    delivery: &Delivery,
    stop: CancellationToken,
    logs: &LogSink,
    start: &Arc<StartReport>,
) -> Outcome {
    let plan = match plan(
        &spec.action(),
        &worker.config.entrypoints,
        worker.config.allow_exec,
    ) {
        Ok(plan) => plan,
        Err(refusal) => return Outcome::failed(shoal_client::error_chain(&refusal)),
    };
    let timeout = spec
        .timeout
        .map(|timeout| timeout.get())
        .or(worker.config.default_timeout);
    match plan {
        Plan::Noop => Outcome::bare(Ending::Succeeded),
        Plan::Sleep(duration) => sleep(duration, timeout, stop).await,
        Plan::Process { argv } => {
            let job_dir = worker
                .config
                .output_dir
                .join(&delivery.group)
                .join(&delivery.job_id);
            let config = &worker.config;
            let working_dir = match policy::working_dir(
                spec.working_dir.as_deref(),
                &job_dir,
                &config.output_dir.join(&delivery.group),
                config.allow_any_working_dir,
            ) {
                Ok(dir) => dir,
                Err(refusal) => return Outcome::failed(shoal_client::error_chain(&refusal)),
            };
            let _in_use = worker
                .folders
                .hold(vec![job_dir.clone(), working_dir.clone()]);
            let mut env = match policy::checked_env(
                &spec.env,
                &config.protected_env,
                config.allow_protected_env,
            ) {
                Ok(env) => env,
                Err(refusal) => return Outcome::failed(shoal_client::error_chain(&refusal)),
            };
            let result_file = job_dir.join(format!("attempt-{}.result", delivery.attempt));
            let _ = std::fs::remove_file(&result_file);
            env.insert("SHOAL_JOB_ID".into(), delivery.job_id.clone());
            env.insert("SHOAL_ATTEMPT".into(), delivery.attempt.to_string());
            if let Some(trace) = delivery.trace {
                env.insert(TRACEPARENT.to_uppercase(), trace.to_string());
            }
            env.insert(
                "SHOAL_RESULT_FILE".into(),
                result_file.display().to_string(),
            );
            if let Some(parents) = &delivery.parents {
                match holds::write_parent_results(&job_dir, delivery.attempt, parents) {
                    Ok(path) => {
                        env.insert("SHOAL_PARENT_RESULTS".into(), path.display().to_string())
                    }
                    Err(err) => {
                        return Outcome::failed(format!("cannot write the parents' results: {err}"))
                    }
                };
            }
            let (progress, reports) = tokio::sync::mpsc::unbounded_channel();
            let reporting = tokio::spawn(crate::progress::report_progress(
                worker.js.clone(),
                worker.config.subjects.clone(),
                worker.job_event(JobEventType::Progress, delivery, Timestamp::now()),
                reports,
                start.clone(),
            ));
            let process = ProcessSpec {
                argv: &argv,
                env: &env,
                working_dir: &working_dir,
                output_file: job_dir.join(format!("attempt-{}.log", delivery.attempt)),
                timeout,
                logs: logs.clone(),
                progress,
                guard: worker.config.job_guard.as_ref(),
            };
            let outcome = process::run(process, stop).await;
            // Every progress event is sent before the outcome is.
            let _ = reporting.await;
            with_result(outcome, &result_file)
        }
    }
}

async fn sleep(duration: Duration, timeout: Option<Duration>, stop: CancellationToken) -> Outcome {
    let limit = timeout.unwrap_or(Duration::MAX);
    tokio::select! {
        _ = tokio::time::sleep(duration.min(limit)) => {
            if duration > limit {
                Outcome { error_text: Some(format!("timed out after {}", shoal_protocol::Duration(limit))), ..Outcome::bare(Ending::TimedOut) }
            } else {
                Outcome::bare(Ending::Succeeded)
            }
        }
        _ = stop.cancelled() => Outcome::bare(Ending::HandedBack),
    }
}
