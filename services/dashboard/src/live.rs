//! The buckets followed: the workers and the pools' supervisors kept in
//! memory (a few records per replica), every change of a job record passed
//! on as it comes (never kept: a backlog of any size costs nothing here),
//! each change sent to every open page as one server-sent event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_protocol::supervisor::SupervisorRecord;
use shoal_protocol::timestamp::Timestamp;
use shoal_protocol::{JobRecord, WorkerRecord};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::DashboardMetrics;
use crate::queues::QueuesView;
use crate::scope::Scope;
use crate::throughput::{Slot, Throughput};

/// A worker that left this long ago is no longer shown (as `shoal get workers`).
const GONE_AFTER: Duration = Duration::from_secs(600);

/// Updates a slow page may fall behind by before it is told to read again.
const BACKLOG: usize = 4096;

/// What an update is about: the name of its server-sent event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A job record changed.
    Job,
    /// A worker record changed or left.
    Worker,
    /// A pool supervisor's state changed or left.
    Supervisor,
    /// The queues' figures were read again.
    Queues,
    /// Updates were missed: the page reads everything again.
    Resync,
}

impl Kind {
    /// The event's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::Worker => "worker",
            Self::Supervisor => "supervisor",
            Self::Queues => "queues",
            Self::Resync => "resync",
        }
    }
}

/// One update, its JSON written once for every page.
#[derive(Debug, Clone)]
pub(crate) struct Update {
    /// What it is about.
    pub(crate) kind: Kind,
    /// Its JSON.
    pub(crate) data: String,
}

/// A record as pages receive it: its key and revision, and the record (none: it left).
#[derive(Debug, Serialize)]
pub(crate) struct Change<R> {
    /// The record's key, `<group>.<id>`.
    pub(crate) key: String,
    /// Its revision in the bucket.
    pub(crate) revision: u64,
    /// The record; none once deleted or gone.
    pub(crate) record: Option<R>,
}

type Records<R> = RwLock<BTreeMap<String, Change<R>>>;

/// What every page is built from.
pub(crate) struct Live {
    pub(crate) scope: Scope,
    updates: broadcast::Sender<Arc<Update>>,
    workers: Records<WorkerRecord>,
    supervisors: Records<SupervisorRecord>,
    pub(crate) queues: RwLock<QueuesView>,
    throughput: Mutex<Throughput>,
    pub(crate) metrics: DashboardMetrics,
}

/// The whole fleet at one moment, as the page first reads it.
#[derive(Debug, Serialize)]
pub(crate) struct Fleet<'a> {
    /// The groups named with `--group` (empty: every group the login reads).
    pub(crate) groups: &'a [String],
    /// Workers, by key.
    pub(crate) workers: Vec<&'a Change<WorkerRecord>>,
    /// Pool supervisors, by key.
    pub(crate) supervisors: Vec<&'a Change<SupervisorRecord>>,
    /// The queues.
    pub(crate) queues: &'a QueuesView,
    /// Jobs ended per slot over the last minutes.
    pub(crate) throughput: Vec<Slot>,
    /// Seconds one throughput slot covers.
    pub(crate) slot_seconds: i64,
}

impl Live {
    /// Nothing seen yet.
    pub(crate) fn new(scope: Scope, metrics: DashboardMetrics) -> Arc<Self> {
        Arc::new(Self {
            scope,
            updates: broadcast::channel(BACKLOG).0,
            workers: RwLock::default(),
            supervisors: RwLock::default(),
            queues: RwLock::default(),
            throughput: Mutex::default(),
            metrics,
        })
    }

    /// Updates from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Update>> {
        self.updates.subscribe()
    }

    /// Sends an update to every open page.
    pub(crate) fn send(&self, kind: Kind, data: &impl Serialize) {
        let Ok(data) = serde_json::to_string(data) else {
            return;
        };
        self.metrics.updates.inc();
        // No page open: nobody to tell.
        let _ = self.updates.send(Arc::new(Update { kind, data }));
    }

    /// Calls `read` with the fleet as it is now.
    pub(crate) fn with_fleet<T>(&self, read: impl FnOnce(&Fleet<'_>) -> T) -> T {
        // A worker that left long enough ago goes (no watch event says when).
        self.workers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, change| {
                change
                    .record
                    .as_ref()
                    .is_some_and(|record| !record.is_gone(Timestamp::now(), GONE_AFTER))
            });
        let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
        let supervisors = self
            .supervisors
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
        let throughput = self
            .throughput
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .chart(Timestamp::now().0.unix_timestamp());
        read(&Fleet {
            groups: self.scope.named(),
            workers: workers.values().collect(),
            supervisors: supervisors.values().collect(),
            queues: &queues,
            throughput,
            slot_seconds: crate::throughput::SLOT_SECONDS,
        })
    }

    fn forget(&self, followed: Followed) {
        match followed {
            Followed::Jobs => {}
            Followed::Workers => self
                .workers
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear(),
            Followed::Supervisors => self
                .supervisors
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear(),
        }
    }

    /// A job record changed (none: it left).
    pub(crate) fn job_seen(&self, key: &str, revision: u64, record: Option<JobRecord>) {
        if let Some(record) = &record {
            self.throughput
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .count(key, record, Timestamp::now().0.unix_timestamp());
        }
        self.send(Kind::Job, &change(key, revision, record));
    }

    /// A worker record changed (none: it left).
    pub(crate) fn worker_seen(&self, key: &str, revision: u64, record: Option<WorkerRecord>) {
        let record = record.filter(|record| !record.is_gone(Timestamp::now(), GONE_AFTER));
        remember(&self.workers, key, revision, record.clone());
        self.send(Kind::Worker, &change(key, revision, record));
    }

    /// A pool supervisor's state changed (none: it left).
    pub(crate) fn supervisor_seen(
        &self,
        key: &str,
        revision: u64,
        record: Option<SupervisorRecord>,
    ) {
        remember(&self.supervisors, key, revision, record.clone());
        self.send(Kind::Supervisor, &change(key, revision, record));
    }

    /// The revision of each worker or supervisor record kept, by key.
    pub(crate) fn revisions(&self, followed: Followed) -> BTreeMap<String, u64> {
        fn of<R>(records: &Records<R>) -> BTreeMap<String, u64> {
            let records = records.read().unwrap_or_else(PoisonError::into_inner);
            records
                .iter()
                .map(|(key, change)| (key.clone(), change.revision))
                .collect()
        }
        match followed {
            Followed::Jobs => BTreeMap::new(),
            Followed::Workers => of(&self.workers),
            Followed::Supervisors => of(&self.supervisors),
        }
    }
}

/// The record an entry holds: none for a deletion, or a value that cannot
/// be read (logged: only the projector and the services write these buckets).
fn decoded<R: DeserializeOwned>(entry: &kv::Entry) -> Option<R> {
    if entry.operation != Operation::Put {
        return None;
    }
    match serde_json::from_slice(&entry.value) {
        Ok(record) => Some(record),
        Err(err) => {
            warn!(key = %entry.key, error = %err, "a record cannot be read; it is not shown");
            None
        }
    }
}

fn change<R>(key: &str, revision: u64, record: Option<R>) -> Change<R> {
    Change {
        key: key.to_string(),
        revision,
        record,
    }
}

fn remember<R>(records: &Records<R>, key: &str, revision: u64, record: Option<R>) {
    let mut records = records.write().unwrap_or_else(PoisonError::into_inner);
    match record {
        Some(record) => records.insert(key.to_string(), change(key, revision, Some(record))),
        None => records.remove(key),
    };
}

/// The bucket a watch follows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Followed {
    /// `shoal_jobs`, from now on.
    Jobs,
    /// `shoal_workers`, every record and then its changes.
    Workers,
    /// `shoal_supervisors`, every record and then its changes.
    Supervisors,
}

/// Follows `bucket` until `shutdown`; a watch that breaks (a server
/// restarted, a leader moved) is opened again and the pages read again.
pub(crate) async fn follow(
    live: Arc<Live>,
    bucket: kv::Store,
    followed: Followed,
    shutdown: CancellationToken,
) {
    let filters = live.scope.key_filters();
    let mut pause = Duration::from_millis(250);
    while !shutdown.is_cancelled() {
        let watch = match followed {
            Followed::Jobs => bucket.watch_many(filters.iter()).await,
            _ => bucket.watch_many_with_history(filters.iter()).await,
        };
        match watch {
            Ok(mut watch) => {
                pause = Duration::from_millis(250);
                // The watch gives every record again: one deleted meanwhile goes.
                live.forget(followed);
                loop {
                    let entry = tokio::select! {
                        () = shutdown.cancelled() => return,
                        entry = watch.next() => entry,
                    };
                    match entry {
                        Some(Ok(entry)) => {
                            let (key, revision) = (entry.key.as_str(), entry.revision);
                            match followed {
                                Followed::Jobs => live.job_seen(key, revision, decoded(&entry)),
                                Followed::Workers => {
                                    live.worker_seen(key, revision, decoded(&entry))
                                }
                                Followed::Supervisors => {
                                    live.supervisor_seen(key, revision, decoded(&entry))
                                }
                            }
                        }
                        Some(Err(err)) => {
                            debug!(error = %err, "a watch broke; opening it again");
                            break;
                        }
                        None => break,
                    }
                }
                live.send(Kind::Resync, &());
            }
            Err(err) => warn!(?followed, error = %err, "cannot watch a bucket; trying again"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
