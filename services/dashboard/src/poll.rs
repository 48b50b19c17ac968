//! For a login that may not follow the buckets (a group's `read` role may
//! open no consumer): what the watches would bring, read every second
//! through what the role grants: the registry's `worker.list`,
//! `resource.list`, `job.list` and `queue.list` of each group, and direct
//! reads of the workers' and supervisors' records by key.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use shoal_client::{Client, RecordStore};
use shoal_protocol::key::Key;
use shoal_protocol::registry::ResourceRef;
use shoal_protocol::supervisor::SupervisorRecord;
use shoal_protocol::WorkerRecord;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::live::{Followed, Live};
use crate::queues::{self, QueuesView};

/// How often everything is read.
const EVERY: Duration = Duration::from_secs(1);

/// Jobs read from the end each time: a change beyond these in one second is
/// seen by pages that read the list again, not pushed.
const NEWEST: usize = 200;

/// The buckets read by key.
pub(crate) struct Stores {
    /// `shoal_workers`.
    pub(crate) workers: RecordStore<WorkerRecord>,
    /// `shoal_supervisors`.
    pub(crate) supervisors: RecordStore<SupervisorRecord>,
}

impl Stores {
    /// Over the two buckets.
    pub(crate) fn new(workers: kv::Store, supervisors: kv::Store) -> Self {
        Self {
            workers: RecordStore::new(workers),
            supervisors: RecordStore::new(supervisors),
        }
    }
}

/// Reads `groups` every second until `shutdown`.
pub(crate) async fn follow(
    live: Arc<Live>,
    client: Client,
    stores: Stores,
    groups: Vec<String>,
    shutdown: CancellationToken,
) {
    let mut last_job = vec![0u64; groups.len()];
    loop {
        let mut queues = QueuesView::default();
        for (group, last_job) in groups.iter().zip(last_job.iter_mut()) {
            workers(&live, &client, &stores, group).await;
            supervisors(&live, &client, &stores, group).await;
            *last_job = jobs(&live, &client, group, *last_job).await;
            match client.queue_list(Some(group)).await {
                Ok(figures) => queues.queues.extend(figures),
                Err(err) => queues.error = Some(shoal_client::error_chain(&err)),
            }
        }
        queues::show(&live, queues);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

async fn workers(live: &Live, client: &Client, stores: &Stores, group: &str) {
    match client.list_workers(Some(group.to_string())).await {
        Ok(listed) => {
            let keys = listed.iter().map(|worker| Key::new(group, &worker.id));
            let seen = |key: &str, revision, record| live.worker_seen(key, revision, record);
            refresh(live, Followed::Workers, &stores.workers, group, keys, seen).await
        }
        Err(err) => debug!(group, error = %err, "cannot list the workers"),
    }
}

async fn supervisors(live: &Live, client: &Client, stores: &Stores, group: &str) {
    let pools = ResourceRef {
        kind: "pool".into(),
        name: None,
        group: Some(group.to_string()),
    };
    match client.list_resources(&pools).await {
        Ok(listed) => {
            let keys = listed.iter().map(|pool| Key::new(group, &pool.name));
            let seen = |key: &str, revision, record| live.supervisor_seen(key, revision, record);
            refresh(
                live,
                Followed::Supervisors,
                &stores.supervisors,
                group,
                keys,
                seen,
            )
            .await
        }
        Err(err) => debug!(group, error = %err, "cannot list the pools"),
    }
}

/// Reads the records of `keys`, hands on those whose revision changed, and
/// lets the group's records that are no longer listed leave.
async fn refresh<R: serde::de::DeserializeOwned + serde::Serialize + Clone + PartialEq>(
    live: &Live,
    followed: Followed,
    store: &RecordStore<R>,
    group: &str,
    keys: impl Iterator<Item = Key>,
    seen: impl Fn(&str, u64, Option<R>),
) {
    let keys: BTreeSet<String> = keys.map(|key| key.to_string()).collect();
    let known = live.revisions(followed);
    for key in &keys {
        match store.get_with_revision(key).await {
            Ok(Some((revision, record))) if known.get(key) != Some(&revision) => {
                seen(key, revision, record)
            }
            Ok(_) => {}
            Err(err) => debug!(key, error = %err, "cannot read a record"),
        }
    }
    let prefix = format!("{group}.");
    for (key, revision) in known {
        if key.starts_with(&prefix) && !keys.contains(&key) {
            seen(&key, revision, None);
        }
    }
}

/// Pushes the group's job records changed since revision `after`; returns
/// the last revision seen.
async fn jobs(live: &Live, client: &Client, group: &str, after: u64) -> u64 {
    let page = match client.job_page(Some(group), NEWEST, None).await {
        Ok(page) => page,
        Err(err) => {
            debug!(group, error = %err, "cannot read the jobs");
            return after;
        }
    };
    let mut last = after;
    for job in page.jobs.into_iter().rev() {
        if job.revision > after {
            last = last.max(job.revision);
            let key = Key::new(&job.record.group, &job.record.id).to_string();
            live.job_seen(&key, job.revision, Some(job.record));
        }
    }
    last
}
