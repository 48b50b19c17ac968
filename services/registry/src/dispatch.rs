//! The dispatcher: routes jobs by tags without a loop of deliveries and
//! refusals. For every queue that a worker with tags serves, it takes
//! submissions beside that queue's untagged workers (one durable consumer,
//! so each job goes to one of them) and routes each job to
//! `shoal.route.<group>.<queue>.<tag-set key>` of one live tag set that may
//! take it (the most specific). Workers with tags read only their routed
//! jobs; workers without tags read submissions and what is routed to them.
//! A job no live worker may take is parked: its record says what it waits
//! for, and it is routed as soon as such a worker comes. When the last worker
//! of a tag set leaves, the jobs routed to it are routed again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures_util::StreamExt;
use shoal_client::publish::Check;
use shoal_client::rejection::{position, publish_rejection};
use shoal_protocol::fairness::keyed_by_subject;
use shoal_protocol::rejection;
use shoal_protocol::rejection::SEQUENCE_HEADER;
use shoal_protocol::tags::{choose_tag_set, tag_set_key};
use shoal_protocol::trace::{TraceParent, TRACEPARENT};
use shoal_protocol::{JobEvent, JobEventType, JobSpec, Priority, Timestamp, WorkerStatus};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::declared::{Declared, MAX_PLACES_PER_GROUP, MAX_TAG_SETS_PER_QUEUE};
use crate::waiting::WaitingJob;
use crate::{ApiError, Registry};

/// The live worker tag sets of each group and queue.
pub(crate) type Directory = BTreeMap<(String, String), BTreeSet<Vec<String>>>;

/// Jobs a dispatcher asks for at once.
const BATCH: usize = 64;

/// Most parked jobs remembered as routed while their unparking is folded.
const MAX_REMEMBERED_ROUTES: usize = 100_000;

/// Keeps the directory of live tag sets, starts a dispatcher for every
/// queue served by a worker with tags, and routes parked jobs when a worker
/// that may take them comes; until `shutdown`.
pub(crate) async fn watch(registry: Arc<Registry>, shutdown: CancellationToken) {
    let directory = Arc::new(RwLock::new(Directory::new()));
    let mut dispatching: BTreeMap<(String, String), CancellationToken> = BTreeMap::new();
    let tasks = tokio_util::task::TaskTracker::new();
    let mut retry_parked = false;
    let mut holds = crate::release::Holds::default();
    tasks.spawn(crate::fair::watch(
        registry.clone(),
        directory.clone(),
        shutdown.clone(),
    ));
    let mut ticker = tokio::time::interval(registry.config.check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                tasks.close();
                tasks.wait().await;
                return;
            }
            _ = ticker.tick() => {}
        }
        let live = match registry.live_tag_sets().await {
            Ok(live) => live,
            Err(err) => {
                warn!(error = %err.description, "cannot read the live workers; trying again");
                continue;
            }
        };
        let previous = directory
            .read()
            .map(|shared| shared.clone())
            .unwrap_or_default();
        if let Ok(mut shared) = directory.write() {
            *shared = live.clone();
        }
        // Dispatchers start once the directory knows the sets they route to,
        // and stop when no worker with tags serves their queue any more.
        let tagged = |place: &(String, String)| {
            live.get(place)
                .is_some_and(|sets| sets.iter().any(|tags| !tags.is_empty()))
        };
        dispatching.retain(|place, stop: &mut CancellationToken| {
            let keep = tagged(place);
            if !keep {
                info!(group = %place.0, queue = %place.1, "no worker with tags serves the queue; its dispatcher stops");
                stop.cancel();
            }
            keep
        });
        for place in live.keys() {
            if tagged(place) && !dispatching.contains_key(place) {
                let (group, queue) = place.clone();
                info!(group, queue, "dispatching the queue's jobs by tags");
                let stop = shutdown.child_token();
                dispatching.insert(place.clone(), stop.clone());
                tasks.spawn(dispatch_queue(
                    registry.clone(),
                    directory.clone(),
                    group,
                    queue,
                    stop,
                ));
            }
        }
        for ((group, queue), sets) in &previous {
            for tags in sets {
                let still_live = live
                    .get(&(group.clone(), queue.clone()))
                    .is_some_and(|now| now.contains(tags));
                if !still_live {
                    registry
                        .route_again(&directory, group, queue, &tag_set_key(tags))
                        .await;
                }
            }
        }
        if let Err(err) = registry.release_held(&directory, &mut holds).await {
            warn!(error = %err.description, "cannot let held jobs go; trying again");
        }
        // A parked job can only become routable when the live tag sets change;
        // after a failure, try again at the next tick.
        if live != previous || retry_parked {
            retry_parked = !registry
                .route_parked(&directory)
                .await
                .unwrap_or_else(|err| {
                    warn!(error = %err.description, "cannot route parked jobs; trying again");
                    false
                });
        }
    }
}

/// Takes a queue's submissions (highest priority first) and routes them.
async fn dispatch_queue(
    registry: Arc<Registry>,
    directory: Arc<RwLock<Directory>>,
    group: String,
    queue: String,
    shutdown: CancellationToken,
) {
    let layout = &registry.config.layout;
    let mut consumers: Vec<(Priority, PullConsumer)> = Vec::new();
    for priority in Priority::ORDER {
        // Workers create these consumers with their settings; these are used only if none exists.
        match layout
            .open_queue_consumer(
                &registry.js,
                &group,
                &queue,
                priority,
                shoal_client::streams::DEFAULT_ACK_WAIT,
                shoal_client::streams::DEFAULT_MAX_DELIVER,
            )
            .await
        {
            Ok(consumer) => consumers.push((priority, consumer)),
            Err(err) => {
                warn!(error = %err, group, queue, "cannot dispatch this queue");
                return;
            }
        }
    }
    while !shutdown.is_cancelled() {
        let mut taken = 0;
        for (_, consumer) in &consumers {
            if let Ok(batch) = consumer.fetch().max_messages(BATCH).messages().await {
                taken += registry.route_batch_within(&directory, batch).await;
            }
        }
        if taken > 0 {
            continue;
        }
        // An idle dispatcher long-polls the normal priority, as idle workers do.
        let Some((_, normal)) = consumers
            .iter()
            .find(|(priority, _)| *priority == Priority::Normal)
        else {
            return;
        };
        let poll = normal
            .batch()
            .max_messages(BATCH)
            .expires(Duration::from_secs(1))
            .messages();
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return,
            batch = poll => batch,
        };
        if let Ok(batch) = batch {
            registry.route_batch_within(&directory, batch).await;
        }
    }
}

impl Registry {
    /// The tag sets of the online and draining workers, by group and queue
    /// (a system worker serves its queues in `_system` too).
    async fn live_tag_sets(&self) -> Result<Directory, ApiError> {
        let not_read = || ApiError::internal("the worker and pool records are not read yet");
        let workers = self.worker_records.values().ok_or_else(not_read)?;
        let pools = self.pool_specs.values().ok_or_else(not_read)?;
        let declared = Declared::new(pools, &workers);
        let mut live = Directory::new();
        for worker in &workers {
            if !matches!(
                worker.status,
                Some(WorkerStatus::Online | WorkerStatus::Draining)
            ) {
                continue;
            }
            let mut tags = worker.tags.clone();
            tags.sort();
            tags.dedup();
            for place in declared.places(worker) {
                let places_of_group = live.keys().filter(|(group, _)| *group == place.0).count();
                if !live.contains_key(&place) && places_of_group >= MAX_PLACES_PER_GROUP {
                    debug!(group = %place.0, queue = %place.1, "too many queues reported for the group; not dispatched");
                    continue;
                }
                let sets = live.entry(place).or_default();
                if sets.len() < MAX_TAG_SETS_PER_QUEUE || sets.contains(&tags) {
                    sets.insert(tags.clone());
                }
            }
        }
        Ok(live)
    }

    /// [`Registry::route_batch`], given up when the pull gets no answer: a
    /// request lost with a server that died would otherwise be waited for forever.
    async fn route_batch_within<E: std::fmt::Display>(
        &self,
        directory: &RwLock<Directory>,
        batch: impl futures_util::Stream<Item = Result<Message, E>>,
    ) -> usize {
        let mut taken = 0;
        let routing = async { taken = self.route_batch(directory, batch).await };
        if tokio::time::timeout(Duration::from_secs(10), routing)
            .await
            .is_err()
        {
            warn!("a pull got no answer in time; asking again");
        }
        taken
    }

    async fn route_batch<E: std::fmt::Display>(
        &self,
        directory: &RwLock<Directory>,
        batch: impl futures_util::Stream<Item = Result<Message, E>>,
    ) -> usize {
        let mut taken = 0;
        let mut batch = std::pin::pin!(batch);
        while let Some(Ok(message)) = batch.next().await {
            taken += 1;
            let kind = match self.route_message(directory, &message).await {
                Ok(()) => AckKind::Ack,
                Err(err) => {
                    warn!(error = %err.description, "cannot route a job; it comes again");
                    AckKind::Nak(Some(Duration::from_secs(1)))
                }
            };
            if let Err(err) = message.ack_with(kind).await {
                debug!(error = %err, "ack failed; the job comes again");
            }
        }
        taken
    }

    /// Routes one submission, or rejects it when it is no job.
    async fn route_message(
        &self,
        directory: &RwLock<Directory>,
        message: &Message,
    ) -> Result<(), ApiError> {
        let subjects = &self.config.layout.subjects;
        let Some(at) = position(message) else {
            return Ok(());
        };
        let place = subjects
            .parse_job(&message.subject)
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
        let spec = JobSpec::from_slice(&message.payload)
            .and_then(|spec| keyed_by_subject(subjects, &message.subject, spec));
        match spec {
            Ok(spec) => self
                .route_spec(
                    directory,
                    (&place.group, &place.id),
                    spec,
                    at.sequence,
                    trace_of(message.headers.as_ref()),
                )
                .await
                .map(drop),
            Err(err) => {
                let rejected = rejection::reject_submission(
                    subjects,
                    &message.subject,
                    &message.payload,
                    at,
                    err.to_string(),
                );
                publish_rejection(&self.js, &rejected, Check::Verify)
                    .await
                    .map_err(ApiError::internal)
            }
        }
    }

    /// Routes a job to the tag set that takes it; `false` when none may, and it is parked.
    async fn route_spec(
        &self,
        directory: &RwLock<Directory>,
        (group, queue): (&str, &str),
        mut spec: JobSpec,
        sequence: u64,
        trace: Option<TraceParent>,
    ) -> Result<bool, ApiError> {
        let subjects = &self.config.layout.subjects;
        let job_id = spec.job_id(sequence);
        spec.id = Some(job_id.clone());
        let chosen = directory.read().ok().and_then(|directory| {
            directory
                .get(&(group.to_string(), queue.to_string()))
                .and_then(|sets| choose_tag_set(sets, &spec.tags).cloned())
        });
        let Some(tags) = chosen else {
            let mut event = JobEvent::new(
                JobEventType::Waiting,
                group,
                queue,
                &job_id,
                0,
                Timestamp::now(),
            );
            event.error_text = Some(match spec.tags.is_empty() {
                true => "waiting for a worker without tags".to_string(),
                false => format!(
                    "waiting for a worker with tags among [{}]",
                    spec.tags.join(", ")
                ),
            });
            let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
            self.publish(
                subjects.job_event(group, &job_id),
                Some(format!("waiting-{group}-{job_id}-{sequence}")),
                body,
            )
            .await?;
            return Ok(false);
        };
        let body = serde_json::to_vec(&spec).map_err(ApiError::internal)?;
        let key = tag_set_key(&tags);
        let mut headers = async_nats::HeaderMap::new();
        // Workers check a job's record against the submission it came from.
        headers.insert(SEQUENCE_HEADER, sequence.to_string().as_str());
        // The routed copy goes on with the submission's trace.
        if let Some(trace) = trace {
            headers.insert(TRACEPARENT, trace.to_string().as_str());
        }
        self.publish_with_headers(
            subjects.route(group, queue, &key),
            Some(format!("route-{sequence}-{key}")),
            headers,
            body,
        )
        .await?;
        Ok(true)
    }

    /// Clears a routed job's `waiting_for`, so that it is not routed again
    /// at the next change of the live tag sets while it waits in its route.
    async fn unpark(&self, job: &WaitingJob, sequence: u64) -> Result<(), ApiError> {
        let event = JobEvent::new(
            JobEventType::Waiting,
            &job.group,
            &job.queue,
            &job.id,
            0,
            Timestamp::now(),
        );
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        self.publish(
            self.config.layout.subjects.job_event(&job.group, &job.id),
            Some(format!("routed-{}-{}-{sequence}", job.group, job.id)),
            body,
        )
        .await
        .map(drop)
    }

    /// Routes again the jobs routed to a tag set whose last worker left.
    async fn route_again(
        &self,
        directory: &RwLock<Directory>,
        group: &str,
        queue: &str,
        key: &str,
    ) {
        let name = format!("route~{group}~{queue}~{key}");
        let Ok(stream) = self.js.get_stream(self.config.layout.jobs_stream()).await else {
            return;
        };
        let Ok(consumer) = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
            .await
        else {
            return;
        };
        info!(
            group,
            queue,
            tags = key,
            "the last worker of a tag set left; routing its jobs again"
        );
        loop {
            let Ok(batch) = consumer.fetch().max_messages(BATCH).messages().await else {
                return;
            };
            if self.route_batch_within(directory, batch).await == 0 {
                return;
            }
        }
    }

    /// Routes the parked jobs that a live worker may now take; `Ok(false)`
    /// when one must be looked at again (its unparking is not folded yet).
    async fn route_parked(&self, directory: &RwLock<Directory>) -> Result<bool, ApiError> {
        let waiting = self
            .waiting
            .matching(|job| job.parked)
            .ok_or_else(|| ApiError::internal("the job records are not read yet"))?;
        let routable: Vec<WaitingJob> = {
            let directory = directory
                .read()
                .map_err(|_| ApiError::internal("the directory of tag sets was poisoned"))?;
            waiting
                .into_iter()
                .filter(|job| {
                    directory
                        .get(&(job.group.clone(), job.queue.clone()))
                        .and_then(|sets| choose_tag_set(sets, &job.tags))
                        .is_some()
                })
                .collect()
        };
        if routable.is_empty() {
            return Ok(true);
        }
        let stream = self
            .js
            .get_stream(self.config.layout.jobs_stream())
            .await
            .map_err(ApiError::internal)?;
        let mut settled = true;
        for job in routable {
            let key = job.key();
            // The mirror may lag behind the record: only a job still parked,
            // and not at the revision at which this registry routed it, goes.
            let Some((revision, Some(record))) = self
                .jobs
                .get_with_revision(&key)
                .await
                .map_err(ApiError::internal)?
            else {
                continue;
            };
            if !WaitingJob::of(record).is_some_and(|now| now.parked && now.sequence == job.sequence)
            {
                self.forget_routed(&key);
                continue;
            }
            if self.routed_at(&key) == Some(revision) {
                settled = false;
                continue;
            }
            let Ok(message) = stream.get_raw_message(job.sequence).await else {
                continue;
            };
            let Ok(spec) = JobSpec::from_slice(&message.payload) else {
                continue;
            };
            if self
                .route_spec(
                    directory,
                    (&job.group, &job.queue),
                    spec,
                    job.sequence,
                    trace_of(Some(&message.headers)),
                )
                .await?
            {
                self.unpark(&job, job.sequence).await?;
                self.remember_routed(&key, revision);
                settled = false;
                info!(job_id = %job.id, group = %job.group, "parked job routed to a worker that may take it");
            }
        }
        Ok(settled)
    }

    fn routed_at(&self, key: &str) -> Option<u64> {
        self.routed.lock().ok()?.get(key).copied()
    }

    fn remember_routed(&self, key: &str, revision: u64) {
        if let Ok(mut routed) = self.routed.lock() {
            if routed.len() >= MAX_REMEMBERED_ROUTES {
                routed.clear();
            }
            routed.insert(key.to_string(), revision);
        }
    }

    fn forget_routed(&self, key: &str) {
        if let Ok(mut routed) = self.routed.lock() {
            routed.remove(key);
        }
    }
}

/// The submission's trace context, when it carries a valid one.
fn trace_of(headers: Option<&async_nats::HeaderMap>) -> Option<TraceParent> {
    headers?.get(TRACEPARENT)?.as_str().parse().ok()
}
