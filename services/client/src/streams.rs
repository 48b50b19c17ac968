//! The streams, buckets and consumers Shoal uses, defined once, so that
//! whichever service starts first creates them with the same settings.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use thiserror::Error;

pub use shoal_protocol::names::{
    Names, DEFAULT_ACK_WAIT, DEFAULT_JOB_RETENTION, DEFAULT_MAX_DELIVER,
};
use shoal_protocol::subjects::Subjects;

const DAY: Duration = Duration::from_secs(86_400);
const GIB: i64 = 1024 * 1024 * 1024;

/// How long a job id is remembered for deduplication.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(120);

/// Largest message the job and event streams store.
pub const MAX_MESSAGE_BYTES: i32 = 1024 * 1024;

/// Largest record of `shoal_limits`: room for a thousand holders or starts.
pub const LIMIT_RECORD_BYTES: i32 = 256 * 1024;

/// A stream or bucket that could not be created or opened.
#[derive(Debug, Error)]
#[error("could not set up {what} `{name}`: {reason}")]
pub struct SetupError {
    /// `stream`, `bucket` or `consumer`.
    pub what: &'static str,
    /// Its name.
    pub name: String,
    /// What the server said.
    pub reason: String,
}

impl SetupError {
    /// Whether the servers could not answer for now (no leader yet, a node
    /// down, an election), as opposed to refusing (a denial, a bad setting).
    pub fn is_transient(&self) -> bool {
        let reason = self.reason.to_lowercase();
        [
            "timed out",
            "no responders",
            "temporarily unavailable",
            "no suitable peers",
            "leader",
            "not available",
        ]
        .iter()
        .any(|sign| reason.contains(sign))
    }

    pub(crate) fn new(what: &'static str, name: &str, err: impl std::fmt::Display) -> Self {
        Self {
            what,
            name: name.to_string(),
            reason: err.to_string(),
        }
    }
}

/// How long the marker of an expired job record stays in `shoal_jobs`.
pub const EXPIRY_MARKER_TTL: Duration = Duration::from_secs(60);

/// How long a service that starts keeps setting up its streams, buckets and
/// consumers while the servers cannot answer: a cluster's first start, a
/// node down or an election can leave a stream without a leader for a while.
pub const START_WINDOW: Duration = Duration::from_secs(120);

/// Tries a set-up again, with growing pauses, while it fails for transient
/// reasons and the window lasts.
#[derive(Debug)]
pub struct SetupRetry {
    deadline: std::time::Instant,
    pause: Duration,
}

impl SetupRetry {
    /// Retries within `window` from now.
    pub fn new(window: Duration) -> Self {
        Self {
            deadline: std::time::Instant::now() + window,
            pause: Duration::from_millis(250),
        }
    }

    /// Waits before the next try; gives `err` back when it is no transient
    /// trouble or the window is spent.
    pub async fn after(&mut self, err: SetupError) -> Result<(), SetupError> {
        if !err.is_transient() || std::time::Instant::now() + self.pause >= self.deadline {
            return Err(err);
        }
        tracing::warn!(error = %err, "the servers cannot set this up yet; trying again");
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(5));
        Ok(())
    }
}

/// The names and settings of every stream and bucket of one installation;
/// its names (and subjects) are those of [`Names`], which it derefs to.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The names of the installation's streams, buckets and consumers.
    pub names: Names,
    /// Replicas of every stream and bucket (3 in a cluster).
    pub replicas: usize,
    /// How long the record of an ended job is kept; zero keeps it for ever.
    pub job_retention: Duration,
}

impl std::ops::Deref for Layout {
    type Target = Names;

    fn deref(&self) -> &Names {
        &self.names
    }
}

/// The buckets, opened.
#[derive(Clone)]
pub struct Buckets {
    /// `shoal_jobs`: job records.
    pub jobs: kv::Store,
    /// `shoal_workers`: worker records.
    pub workers: kv::Store,
    /// `shoal_pools`: pool specs.
    pub pools: kv::Store,
    /// `shoal_names`: worker names taken in each group.
    pub names: kv::Store,
    /// `shoal_supervisors`: the state of each pool's local supervisor.
    pub supervisors: kv::Store,
    /// `shoal_workflows`: each workflow's graph.
    pub workflows: kv::Store,
    /// `shoal_limits`: concurrency slots and rate-limit starts.
    pub limits: kv::Store,
}

impl Layout {
    /// The layout of the installation under `subjects`, with single replicas.
    pub fn new(subjects: Subjects) -> Self {
        Self {
            names: Names::new(subjects),
            replicas: 1,
            job_retention: DEFAULT_JOB_RETENTION,
        }
    }

    /// The settings of every stream, in the order they are created.
    pub fn stream_configs(&self) -> Vec<stream::Config> {
        let base = stream::Config {
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            allow_direct: true,
            discard: stream::DiscardPolicy::Old,
            // Written as the server stores them, so that a read-back config compares equal.
            max_messages: -1,
            max_messages_per_subject: -1,
            max_bytes: -1,
            duplicate_window: DEDUPE_WINDOW,
            ..Default::default()
        };
        vec![
            stream::Config {
                name: self.schedules_stream(),
                description: Some(
                    "Shoal delayed and recurring jobs: schedules and the submissions they fire"
                        .into(),
                ),
                subjects: vec![self.subjects.all_schedules(), self.subjects.all_due()],
                // Only operators write here: a schedule's target and source are
                // headers, which permissions do not see.
                allow_message_schedules: true,
                // The server marks each schedule as a rollup of its own subject.
                allow_rollup: true,
                max_age: 7 * DAY,
                max_bytes: GIB,
                max_message_size: MAX_MESSAGE_BYTES,
                ..base.clone()
            },
            stream::Config {
                name: self.jobs_stream(),
                description: Some("Shoal job submissions".into()),
                subjects: vec![
                    self.subjects.all_jobs(),
                    self.subjects.all_routes(),
                    self.subjects.all_workflows(),
                    self.subjects.all_fair(),
                ],
                // Users write here: nothing the server acts on may reach
                // another group, so no rollups, schedules, TTLs or counters;
                // atomic batches only (a workflow and its jobs, all or
                // nothing, each message still checked against the
                // publisher's permissions); a full stream refuses new jobs
                // instead of forgetting old ones.
                allow_atomic_publish: true,
                discard: stream::DiscardPolicy::New,
                max_age: 7 * DAY,
                max_bytes: GIB,
                max_message_size: MAX_MESSAGE_BYTES,
                sources: Some(vec![stream::Source {
                    name: self.schedules_stream(),
                    subject_transforms: vec![stream::SubjectTransform {
                        source: self.subjects.all_due(),
                        destination: self.subjects.all_jobs(),
                    }],
                    ..Default::default()
                }]),
                ..base.clone()
            },
            stream::Config {
                name: self.events_stream(),
                description: Some("Shoal job and worker events".into()),
                subjects: vec![self.subjects.all_events()],
                // Unfolded events are never pushed out by new ones.
                discard: stream::DiscardPolicy::New,
                max_age: 7 * DAY,
                max_bytes: GIB,
                max_message_size: MAX_MESSAGE_BYTES,
                ..base.clone()
            },
            stream::Config {
                name: self.heartbeats_stream(),
                description: Some("Shoal worker heartbeats, the last of each worker".into()),
                subjects: vec![self.subjects.all_heartbeats()],
                max_messages_per_subject: 1,
                max_age: DAY,
                max_message_size: 64 * 1024,
                ..base.clone()
            },
            stream::Config {
                name: self.dead_stream(),
                description: Some("Shoal dead letters: jobs given up, with their reason".into()),
                subjects: vec![self.subjects.all_dead()],
                max_age: 30 * DAY,
                max_bytes: GIB,
                discard: stream::DiscardPolicy::New,
                max_message_size: MAX_MESSAGE_BYTES,
                ..base.clone()
            },
            stream::Config {
                name: self.logs_stream(),
                description: Some("Shoal job output".into()),
                subjects: vec![self.subjects.all_logs()],
                max_age: 3 * DAY,
                max_bytes: GIB,
                max_message_size: MAX_MESSAGE_BYTES,
                ..base
            },
        ]
    }

    /// The settings of every bucket.
    pub fn bucket_configs(&self) -> Vec<kv::Config> {
        [
            (self.jobs_bucket(), "Shoal job records"),
            (self.workers_bucket(), "Shoal worker records"),
            (self.pools_bucket(), "Shoal pool specs"),
            (self.names_bucket(), "Shoal worker names, unique in a group"),
            (
                self.supervisors_bucket(),
                "Shoal pool supervisors: replicas, restarts, last decision",
            ),
            (self.workflows_bucket(), "Shoal workflows: each one's graph"),
        ]
        .into_iter()
        .map(|(bucket, description)| kv::Config {
            // Records of ended jobs carry a TTL (`Nats-TTL`): the bucket
            // allows it and marks each expiry for its watchers.
            limit_markers: (bucket == self.jobs_bucket()).then_some(EXPIRY_MARKER_TTL),
            bucket,
            description: description.to_string(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            max_value_size: MAX_MESSAGE_BYTES,
            ..Default::default()
        })
        .collect()
    }

    /// The stream of the `shoal_limits` bucket, made by hand: workers of
    /// every group write their own keys, so it allows no rollup (one
    /// `Nats-Rollup: all` would empty every group's keys), no purge and no TTL.
    pub fn limits_stream_config(&self) -> stream::Config {
        let bucket = self.limits_bucket();
        stream::Config {
            name: format!("KV_{bucket}"),
            description: Some(
                "Shoal limits: concurrency slots under lease, rate-limit starts".into(),
            ),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_messages: -1,
            max_bytes: GIB,
            max_message_size: LIMIT_RECORD_BYTES,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            allow_rollup: false,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            duplicate_window: DEDUPE_WINDOW,
            ..Default::default()
        }
    }

    /// Creates every stream and bucket that does not exist yet, and opens the buckets.
    pub async fn ensure(&self, js: &jetstream::Context) -> Result<Buckets, SetupError> {
        for config in self.stream_configs() {
            let name = config.name.clone();
            js.get_or_create_stream(config)
                .await
                .map_err(|err| SetupError::new("stream", &name, err))?;
        }
        for config in self.bucket_configs() {
            let name = config.bucket.clone();
            if js.get_key_value(&name).await.is_err() {
                js.create_key_value(config)
                    .await
                    .map_err(|err| SetupError::new("bucket", &name, err))?;
            }
        }
        let limits = self.limits_stream_config();
        js.get_or_create_stream(limits.clone())
            .await
            .map_err(|err| SetupError::new("bucket", &limits.name, err))?;
        Ok(Buckets {
            workflows: self.open_bucket(js, &self.workflows_bucket()).await?,
            limits: self.open_bucket(js, &self.limits_bucket()).await?,
            jobs: self.open_bucket(js, &self.jobs_bucket()).await?,
            workers: self.open_bucket(js, &self.workers_bucket()).await?,
            pools: self.open_bucket(js, &self.pools_bucket()).await?,
            names: self.open_bucket(js, &self.names_bucket()).await?,
            supervisors: self.open_bucket(js, &self.supervisors_bucket()).await?,
        })
    }

    async fn open_bucket(
        &self,
        js: &jetstream::Context,
        name: &str,
    ) -> Result<kv::Store, SetupError> {
        js.get_key_value(name)
            .await
            .map_err(|err| SetupError::new("bucket", name, err))
    }

    /// The settings of a queue's consumer.
    pub fn queue_consumer(
        &self,
        group: &str,
        queue: &str,
        priority: shoal_protocol::Priority,
        ack_wait: Duration,
        max_deliver: i64,
    ) -> consumer::pull::Config {
        self.worker_consumer(
            self.queue_consumer_name(group, queue, priority),
            format!(
                "Shoal workers of group {group}, queue {queue}, priority {}",
                priority.as_str()
            ),
            self.subjects.jobs_with_priority(group, queue, priority),
            ack_wait,
            max_deliver,
        )
    }

    /// The settings every consumer that workers share has: deliver all,
    /// explicit acks, the creator's ack wait and max deliveries.
    fn worker_consumer(
        &self,
        name: String,
        description: String,
        filter_subject: String,
        ack_wait: Duration,
        max_deliver: i64,
    ) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(name),
            description: Some(description),
            filter_subject,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_deliver,
            max_ack_pending: 10_000,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    /// Opens a consumer of the jobs stream, creating it with `config` if it
    /// is new; an existing consumer keeps its own settings.
    async fn open_jobs_consumer(
        &self,
        js: &jetstream::Context,
        config: consumer::pull::Config,
    ) -> Result<consumer::PullConsumer, SetupError> {
        let name = config.durable_name.clone().unwrap_or_default();
        let stream = js
            .get_stream(self.jobs_stream())
            .await
            .map_err(|err| SetupError::new("stream", &self.jobs_stream(), err))?;
        stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|err| SetupError::new("consumer", &name, err))
    }

    /// The consumer of the jobs routed to one worker tag set of a queue.
    pub async fn open_route_consumer(
        &self,
        js: &jetstream::Context,
        group: &str,
        queue: &str,
        key: &str,
        ack_wait: Duration,
        max_deliver: i64,
    ) -> Result<consumer::PullConsumer, SetupError> {
        let config = self.worker_consumer(
            self.route_consumer_name(group, queue, key),
            format!("Shoal workers of group {group}, queue {queue}, tags {key}"),
            self.subjects.route(group, queue, key),
            ack_wait,
            max_deliver,
        );
        self.open_jobs_consumer(js, config).await
    }

    /// Opens a queue's consumer, creating it with these settings if it is new;
    /// an existing consumer keeps its own settings.
    pub async fn open_queue_consumer(
        &self,
        js: &jetstream::Context,
        group: &str,
        queue: &str,
        priority: shoal_protocol::Priority,
        ack_wait: Duration,
        max_deliver: i64,
    ) -> Result<consumer::PullConsumer, SetupError> {
        let config = self.queue_consumer(group, queue, priority, ack_wait, max_deliver);
        self.open_jobs_consumer(js, config).await
    }
}

/// Finds the key `<group>.<id>` of `id` in a bucket whose keys are `<group>.<id>`,
/// without knowing the group. `Ok(None)` when there is none.
pub async fn find_key_by_id(
    js: &jetstream::Context,
    bucket: &str,
    id: &str,
) -> Result<Option<String>, FindKeyError> {
    use futures_util::StreamExt;
    let stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .map_err(|err| FindKeyError(err.to_string()))?;
    let prefix = format!("$KV.{bucket}.");
    let mut subjects = stream
        .info_with_subjects(format!("{prefix}*.{id}"))
        .await
        .map_err(|err| FindKeyError(err.to_string()))?;
    let mut keys = Vec::new();
    while let Some(found) = subjects.next().await {
        let (subject, _) = found.map_err(|err| FindKeyError(err.to_string()))?;
        keys.push(subject.trim_start_matches(&prefix).to_string());
    }
    keys.sort();
    match keys.len() {
        0 | 1 => Ok(keys.pop()),
        _ => Err(FindKeyError(format!(
            "`{id}` exists in several groups ({}); name the group",
            keys.join(", ")
        ))),
    }
}

/// A key could not be looked up.
#[derive(Debug, Error)]
#[error("cannot look the key up: {0}")]
pub struct FindKeyError(pub String);
