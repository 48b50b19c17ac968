//! Reading records, and waiting on them with a deadline instead of sleeping.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use shoal_protocol::{JobRecord, Priority, WorkerRecord};

use super::{eventually, names, subjects};

/// Clients and buckets of one test's fleet.
pub struct Fleet {
    /// JetStream on it.
    pub js: jetstream::Context,
    /// `shoal_jobs`.
    pub jobs: kv::Store,
    /// `shoal_workers`.
    pub workers: kv::Store,
    /// `shoal_supervisors`.
    pub supervisors: kv::Store,
}

impl Fleet {
    /// Connects and creates the streams and buckets (as any service would).
    pub async fn connect(server: &super::NatsServer) -> Self {
        Self::over(server.client().await).await
    }

    /// The fleet over a client already connected (with a login).
    pub async fn over(client: async_nats::Client) -> Self {
        let js = jetstream::new(client.clone());
        let layout = shoal_client::streams::Layout::new(subjects());
        let buckets = layout.ensure(&js).await.expect("streams and buckets");
        Self {
            js,
            jobs: buckets.jobs,
            workers: buckets.workers,
            supervisors: buckets.supervisors,
        }
    }

    /// Publishes a job spec (JSON text) to `shoal.jobs.<group>.<queue>` and returns its sequence.
    pub async fn publish_job(&self, group: &str, queue: &str, body: &str) -> u64 {
        self.js
            .publish(subjects().jobs(group, queue), body.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("publish ack")
            .sequence
    }

    /// Every message stored on `subject` in `stream`, in order.
    pub async fn stored(&self, stream: &str, subject: &str) -> Vec<jetstream::Message> {
        let stream = self.js.get_stream(stream).await.expect("stream");
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject.to_string(),
                ..Default::default()
            })
            .await
            .expect("ordered consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let mut stored = Vec::new();
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_millis(500), messages.next()).await
        {
            let last = message.info().map(|info| info.pending).unwrap_or(0) == 0;
            stored.push(message);
            if last {
                break;
            }
        }
        stored
    }

    /// The events of a job, in the order they were stored.
    pub async fn job_events(&self, group: &str, job_id: &str) -> Vec<shoal_protocol::JobEvent> {
        let messages = self
            .stored(
                &names().events_stream(),
                &subjects().job_event(group, job_id),
            )
            .await;
        messages
            .iter()
            .map(|message| serde_json::from_slice(&message.payload).expect("a job event"))
            .collect()
    }

    /// Counts the events of `kind` stored for a job.
    pub async fn count_job_events(&self, group: &str, job_id: &str, kind: &str) -> usize {
        self.count_events(&subjects().job_event(group, job_id), kind)
            .await
    }

    /// Counts the events of `kind` stored on `subject`.
    pub async fn count_events(&self, subject: &str, kind: &str) -> usize {
        let messages = self.stored(&names().events_stream(), subject).await;
        let events = messages.iter().map(|message| {
            serde_json::from_slice::<serde_json::Value>(&message.payload).expect("event json")
        });
        events.filter(|event| event["type"] == kind).count()
    }
}

/// The job record under `key`, if any.
pub async fn job_record(fleet: &Fleet, key: &str) -> Option<JobRecord> {
    let value = fleet.jobs.get(key).await.expect("read a job record")?;
    Some(serde_json::from_slice(&value).expect("a job record"))
}

async fn wait_for<R: serde::de::DeserializeOwned>(
    store: &kv::Store,
    key: &str,
    what: &str,
    timeout: Duration,
    until: impl Fn(&R) -> bool,
) -> R {
    let mut updates = store.watch_with_history(key).await.expect("watch");
    let mut last = None;
    let found = tokio::time::timeout(timeout, async {
        while let Some(entry) = updates.next().await {
            let entry = entry.expect("watch entry");
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let record: R = serde_json::from_slice(&entry.value).expect("a record");
            if until(&record) {
                return Some(record);
            }
            last = Some(String::from_utf8_lossy(&entry.value).into_owned());
        }
        None
    })
    .await;
    match found {
        Ok(Some(record)) => record,
        _ => panic!("{key} did not become {what} within {timeout:?}; last value: {last:?}"),
    }
}

/// Waits until the job record under `key` satisfies `until`, within 30 s.
pub async fn wait_for_job(
    fleet: &Fleet,
    key: &str,
    what: &str,
    until: impl Fn(&JobRecord) -> bool,
) -> JobRecord {
    wait_for(&fleet.jobs, key, what, Duration::from_secs(30), until).await
}

/// Waits until the supervisor record under `key` satisfies `until`, at most `timeout`.
pub async fn wait_for_supervisor(
    fleet: &Fleet,
    key: &str,
    what: &str,
    timeout: Duration,
    until: impl Fn(&shoal_protocol::supervisor::SupervisorRecord) -> bool,
) -> shoal_protocol::supervisor::SupervisorRecord {
    wait_for(&fleet.supervisors, key, what, timeout, until).await
}

/// Waits until the worker record under `key` satisfies `until`.
pub async fn wait_for_worker(
    fleet: &Fleet,
    key: &str,
    what: &str,
    until: impl Fn(&WorkerRecord) -> bool,
) -> WorkerRecord {
    wait_for(&fleet.workers, key, what, Duration::from_secs(30), until).await
}

impl Fleet {
    /// The id of the worker named `name` in `group`, once its record exists.
    pub async fn worker_id(&self, group: &str, name: &str) -> String {
        let store = shoal_client::RecordStore::<WorkerRecord>::new(self.workers.clone());
        let what = format!("a worker named {name} in group {group}");
        eventually(Duration::from_secs(30), &what, || async {
            let records = store
                .read_all(&format!("{group}.*"))
                .await
                .expect("worker records");
            records.into_iter().find(|record| record.name == name)
        })
        .await
        .id
    }
}

impl Fleet {
    /// Waits until a queue's consumer has nothing pending and nothing unacked.
    pub async fn wait_until_queue_is_settled(&self, group: &str, queue: &str) {
        let names = names();
        let stream = self
            .js
            .get_stream(names.jobs_stream())
            .await
            .expect("jobs stream");
        let name = names.queue_consumer_name(group, queue, Priority::Normal);
        let what = format!("{name} has nothing pending and nothing unacked");
        eventually(Duration::from_secs(30), &what, || async {
            let info = stream.consumer_info(&name).await.expect("consumer info");
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{} pending, {} unacked",
                    info.num_pending, info.num_ack_pending
                ))
            }
        })
        .await;
    }
}
