//! The projector: folds submissions, job and worker events and heartbeats
//! into the `shoal_jobs` and `shoal_workers` buckets.
//!
//! It keeps no state of its own: every replica reads the same durable
//! consumers, writes with compare-and-set, and gives the same records
//! whatever the order, duplication or replay of its input. `replay` reads
//! every stream again from its start and stops when it has caught up.

mod folding;
mod merge;
mod metrics;
mod quota;
mod settle;
mod workflows;

use shoal_client::{RecordError, RecordStore};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, Message};
use futures_util::future::join_all;
use futures_util::StreamExt;
use shoal_client::streams::{Layout, SetupError};
use shoal_protocol::{JobRecord, WorkerRecord};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use shoal_client::publish::{Check, PublishError};
use shoal_client::rejection::{position, publish_rejection};
use shoal_protocol::decode::{self, Decoded};
use shoal_protocol::fold::{fold_job, fold_worker, JobInput, WorkerInput};
use shoal_protocol::rejection::{self, Rejection};

use folding::{duplicate_submissions, guarded_fold, panicked_inputs, worth_writing_worker};
use settle::{delivered, Failure};

/// Name of the durable consumer the projector replicas share on each stream.
pub const DURABLE_NAME: &str = "projector";

/// The quota of waiting jobs per group unless one is given.
pub const DEFAULT_MAX_WAITING_PER_GROUP: u64 = 100_000;

/// How the projector runs.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// The streams and buckets it reads and writes.
    pub layout: Layout,
    /// Read every stream from its start with a private consumer, then stop.
    pub replay: bool,
    /// Most messages folded in one batch.
    pub batch_size: usize,
    /// Most jobs waiting in one group before its new submissions are
    /// rejected (0: no quota; never applied while replaying).
    pub max_waiting_per_group: u64,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Why the projector stopped.
#[derive(Debug, Error)]
pub enum ProjectorError {
    /// A stream, bucket or consumer could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A stream could not be read.
    #[error("cannot read stream {stream}: {reason}")]
    Consume { stream: String, reason: String },
    /// A record could not be read or written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] shoal_metrics::MetricsError),
}

impl ProjectorError {
    fn consume(stream: &str, err: impl std::fmt::Display) -> Self {
        Self::Consume {
            stream: stream.to_string(),
            reason: err.to_string(),
        }
    }
}

/// The streams the projector reads, each with its own decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Jobs,
    Schedules,
    Events,
    Heartbeats,
}

struct Projector {
    config: ProjectorConfig,
    js: jetstream::Context,
    quota: quota::Quota,
    jobs: RecordStore<JobRecord>,
    workers: RecordStore<WorkerRecord>,
    workflows: RecordStore<shoal_protocol::workflow::WorkflowRecord>,
    /// Where a live projector sends the batches of submissions and job
    /// events, to be folded together (see [`merge`]).
    merged: Option<merge::Sender>,
    metrics: metrics::ProjectorMetrics,
}

/// Runs the projector until `shutdown` is cancelled (or, in replay, until it caught up).
pub async fn run(
    config: ProjectorConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<(), ProjectorError> {
    let js = jetstream::new(client);
    let buckets = config.layout.set_up_as_operator(&js).await?;
    let max_waiting = if config.replay {
        0
    } else {
        config.max_waiting_per_group
    };
    let jobs = RecordStore::of_jobs(buckets.jobs, &config.layout);
    let (merged, batches) = match config.replay {
        true => (None, None),
        false => {
            let (sender, receiver) = merge::channel();
            (Some(sender), Some(receiver))
        }
    };
    let mut registry = shoal_metrics::Registry::default();
    let metrics = metrics::ProjectorMetrics::new(&mut registry);
    if let Some(addr) = config.metrics_listen {
        shoal_metrics::serve(addr, registry, None, shutdown.clone()).await?;
    }
    let projector = Projector {
        merged,
        metrics,
        quota: quota::Quota::start(
            max_waiting,
            js.clone(),
            config.layout.jobs_stream(),
            shutdown.clone(),
        ),
        config,
        js,
        jobs,
        workers: RecordStore::new(buckets.workers),
        workflows: RecordStore::new(buckets.workflows),
    };
    info!(replay = projector.config.replay, "projector running");
    let sources = join_all(
        [
            Source::Jobs,
            Source::Schedules,
            Source::Events,
            Source::Heartbeats,
        ]
        .map(|source| projector.project(source, shutdown.clone())),
    );
    let folding = async {
        if let Some(batches) = batches {
            projector.fold_merged(batches, &shutdown).await;
        }
    };
    let (results, ()) = tokio::join!(sources, folding);
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    info!("projector stopped");
    Ok(())
}

impl Projector {
    fn stream_name(&self, source: Source) -> String {
        match source {
            Source::Jobs => self.config.layout.jobs_stream(),
            Source::Schedules => self.config.layout.schedules_stream(),
            Source::Events => self.config.layout.events_stream(),
            Source::Heartbeats => self.config.layout.heartbeats_stream(),
        }
    }

    async fn open_consumer(
        &self,
        stream_name: &str,
    ) -> Result<Option<consumer::PullConsumer>, ProjectorError> {
        let mut stream = self
            .js
            .get_stream(stream_name)
            .await
            .map_err(|err| ProjectorError::consume(stream_name, err))?;
        let config = consumer::pull::Config {
            durable_name: (!self.config.replay).then(|| DURABLE_NAME.to_string()),
            description: Some("Shoal projector".into()),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 20_000,
            inactive_threshold: if self.config.replay {
                Duration::from_secs(30)
            } else {
                Duration::ZERO
            },
            ..Default::default()
        };
        if self.config.replay {
            let messages = stream
                .info()
                .await
                .map_err(|err| ProjectorError::consume(stream_name, err))?
                .state
                .messages;
            if messages == 0 {
                return Ok(None);
            }
            let consumer = stream
                .create_consumer(config)
                .await
                .map_err(|err| ProjectorError::consume(stream_name, err))?;
            return Ok(Some(consumer));
        }
        let consumer = stream
            .get_or_create_consumer(DURABLE_NAME, config)
            .await
            .map_err(|err| ProjectorError::consume(stream_name, err))?;
        Ok(Some(consumer))
    }

    /// Folds one stream until `shutdown`; a live projector rides out a
    /// stream it cannot read for now (a node down, an election) by opening
    /// its consumer again, with growing pauses, rather than stopping.
    async fn project(
        &self,
        source: Source,
        shutdown: CancellationToken,
    ) -> Result<(), ProjectorError> {
        let mut pause = Duration::from_millis(250);
        loop {
            match self.project_once(source, &shutdown).await {
                Err(ProjectorError::Consume { stream, reason }) if !self.config.replay => {
                    warn!(
                        stream,
                        error = reason,
                        "cannot read the stream for now; opening it again"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                ended => return ended,
            }
        }
    }

    async fn project_once(
        &self,
        source: Source,
        shutdown: &CancellationToken,
    ) -> Result<(), ProjectorError> {
        let stream_name = self.stream_name(source);
        let Some(consumer) = self.open_consumer(&stream_name).await? else {
            return Ok(());
        };
        let batch = self.config.batch_size.max(1);
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|err| ProjectorError::consume(&stream_name, err))?;
        let mut chunks = messages.ready_chunks(batch);
        loop {
            let chunk = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else {
                return Err(ProjectorError::consume(
                    &stream_name,
                    "the consumer's message stream ended",
                ));
            };
            let mut delivered = Vec::with_capacity(chunk.len());
            for item in chunk {
                match item {
                    Ok(message) => delivered.push(message),
                    Err(err) => {
                        warn!(stream = %stream_name, error = %err, "pull from stream failed; going on")
                    }
                }
            }
            let pending = delivered
                .last()
                .and_then(|last| last.info().ok())
                .map(|info| info.pending);
            if let Some(pending) = pending {
                self.note_lag(&stream_name, pending);
            }
            let caught_up = pending == Some(0);
            let delivered = delivered.into_iter().map(|message| (source, message));
            let all_folded = match (&self.merged, source) {
                (Some(merged), Source::Jobs | Source::Events) => {
                    if merged.send(delivered.collect()).await.is_err() {
                        return Ok(());
                    }
                    true
                }
                _ => self.fold_batch(delivered.collect()).await,
            };
            // A replay ends only when it caught up with nothing handed back.
            if self.config.replay && caught_up && all_folded {
                return Ok(());
            }
        }
    }

    fn decode(&self, source: Source, message: &Message) -> Decoded {
        let subjects = &self.config.layout.subjects;
        let Some(at) = position(message) else {
            return Decoded::Nothing;
        };
        let subject = message.subject.as_str();
        match source {
            Source::Schedules => decode::decode_schedule_stream(
                subjects,
                subject,
                message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get("Nats-Schedule"))
                    .map(|value| value.as_str()),
                &message.payload,
                at,
            ),
            Source::Jobs => decode::decode_submission(subjects, subject, &message.payload, at),
            Source::Events => decode::decode_event(subjects, subject, &message.payload, at),
            Source::Heartbeats => decode::decode_heartbeat(subjects, subject, &message.payload, at),
        }
    }

    /// Folds one batch: all inputs of a key in one write, keys written
    /// concurrently; acks what was written, hands back what was not, and
    /// says whether everything was written. A message that could not be
    /// folded in [`settle::MAX_FOLD_DELIVERIES`] deliveries is rejected instead.
    async fn fold_batch(&self, messages: Vec<(Source, Message)>) -> bool {
        let mut jobs: BTreeMap<String, (Vec<JobInput>, Vec<usize>)> = BTreeMap::new();
        let mut workers: BTreeMap<String, (Vec<WorkerInput>, Vec<usize>)> = BTreeMap::new();
        let mut rejections = Vec::new();
        let mut workflows = Vec::new();
        for (index, (source, message)) in messages.iter().enumerate() {
            let decoded = self.admit(self.decode_guarded(*source, message), message);
            match decoded {
                Decoded::Job { key, input } => {
                    let entry = jobs.entry(key).or_default();
                    entry.0.push(*input);
                    entry.1.push(index);
                }
                Decoded::Worker { key, input } => {
                    let entry = workers.entry(key).or_default();
                    entry.0.push(input);
                    entry.1.push(index);
                }
                Decoded::Workflow { key, record } => workflows.push((key, record, vec![index])),
                Decoded::Rejected(rejection) => rejections.push((rejection, index)),
                Decoded::Nothing => {}
            }
        }
        let mut failed: Vec<Option<Failure>> = vec![None; messages.len()];
        let job_writes = jobs.iter().map(|(key, (inputs, indexes))| async move {
            let panicked = Mutex::new(BTreeSet::new());
            // The last change looked at is the one written.
            let turn = Mutex::new((false, false));
            let written = self
                .jobs
                .update(
                    key,
                    |record| guarded_fold(record, inputs, fold_job, &panicked),
                    |old, new| {
                        if let Ok(mut turn) = turn.lock() {
                            *turn = (
                                old.is_some_and(JobRecord::awaits_its_turn),
                                new.awaits_its_turn(),
                            );
                        }
                        old.is_some() || *new != JobRecord::default()
                    },
                )
                .await;
            if let (Ok(record), Ok((was, is))) = (&written, turn.into_inner()) {
                self.quota.note_turn(&record.group, was, is);
            }
            (written, panicked_inputs(&panicked), inputs, indexes)
        });
        let worker_writes = workers.iter().map(|(key, (inputs, indexes))| async move {
            let panicked = Mutex::new(BTreeSet::new());
            let written = self
                .workers
                .update(
                    key,
                    |record| guarded_fold(record, inputs, fold_worker, &panicked),
                    |old, new| {
                        (old.is_some() || *new != WorkerRecord::default())
                            && worth_writing_worker(old, new)
                    },
                )
                .await;
            (written.map(drop), panicked_inputs(&panicked), indexes)
        });
        let rejection_writes = rejections.iter().map(|(rejection, index)| async move {
            (self.publish_rejection(rejection).await, *index)
        });
        let workflow_writes = workflows.iter().map(|(key, record, indexes)| async move {
            let written = workflows::fold_workflow(&self.workflows, key, record).await;
            (written, BTreeSet::new(), indexes)
        });
        let (job_results, worker_results, rejection_results, workflow_results) = tokio::join!(
            join_all(job_writes),
            join_all(worker_writes),
            join_all(rejection_writes),
            join_all(workflow_writes)
        );
        let mut duplicates = Vec::new();
        let job_results = job_results
            .into_iter()
            .map(|(written, panicked, inputs, indexes)| {
                if let Ok(record) = &written {
                    duplicates.extend(duplicate_submissions(record, inputs, indexes));
                }
                (written.map(drop), panicked, indexes)
            })
            .collect::<Vec<_>>();
        let results = job_results
            .into_iter()
            .chain(worker_results)
            .chain(workflow_results);
        for (written, panicked, indexes) in results {
            match written {
                Err(err) => {
                    warn!(error = %shoal_client::error_chain(&err), "could not fold a record; its messages will come again");
                    let failure = Failure::of(&err);
                    indexes
                        .iter()
                        .for_each(|&index| failed[index] = Some(failure.clone()));
                }
                Ok(()) => {
                    for position in panicked {
                        warn!("folding a message failed; it is handed back, then rejected");
                        failed[indexes[position]] = Some(Failure::permanent("the fold failed"));
                    }
                }
            }
        }
        for (published, index) in rejection_results {
            if let Err(err) = published {
                warn!(error = %err, "could not publish a rejection; the message will come again");
                failed[index] = Some(Failure::transient(err.to_string()));
            }
        }
        join_all(
            duplicates
                .into_iter()
                .map(|(index, owner)| self.note_duplicate(&messages[index].1, owner)),
        )
        .await;
        let all_folded = failed.iter().all(Option::is_none);
        self.count_folded(&messages, &failed);
        let acks = messages
            .iter()
            .zip(failed)
            .map(|((_, message), failed)| self.settle(message, failed));
        join_all(acks).await;
        all_folded
    }

    /// Rejects a submission whose group is past its quota of waiting jobs,
    /// when it is first seen (one handed back was admitted already).
    fn admit(&self, decoded: Decoded, message: &Message) -> Decoded {
        let Decoded::Job { input, .. } = &decoded else {
            return decoded;
        };
        if delivered(message) > 1 {
            return decoded;
        }
        let JobInput::Submitted { group, .. } = input.as_ref() else {
            return decoded;
        };
        let (Some(reason), Some(at)) = (self.quota.refusal(group), position(message)) else {
            return decoded;
        };
        Decoded::Rejected(rejection::reject_submission(
            &self.config.layout.subjects,
            &message.subject,
            &message.payload,
            at,
            reason,
        ))
    }

    /// Decodes a message; a decoder that panics rejects the message instead
    /// of stopping the projector.
    fn decode_guarded(&self, source: Source, message: &Message) -> Decoded {
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.decode(source, message)
        }));
        decoded.unwrap_or_else(|_| match position(message) {
            Some(at) => Decoded::Rejected(rejection::notice(
                &self.config.layout.subjects,
                &message.subject,
                at,
                "the message could not be decoded".into(),
            )),
            None => Decoded::Nothing,
        })
    }

    /// Says, once, that a submission asked for an id an earlier one holds.
    async fn note_duplicate(&self, message: &Message, owner: u64) {
        let Some(at) = position(message) else {
            return;
        };
        let reason = format!("its job id is taken by the submission at sequence {owner}");
        let notice = rejection::notice(&self.config.layout.subjects, &message.subject, at, reason);
        if let Err(err) = self.publish_rejection(&notice).await {
            debug!(error = %err, "could not note a duplicate submission");
        }
    }

    async fn publish_rejection(&self, rejection: &Rejection) -> Result<(), PublishError> {
        warn!(subject = %rejection.subject, id = %rejection.msg_id, "rejected a message that cannot be read");
        publish_rejection(&self.js, rejection, Check::Verify).await
    }
}
