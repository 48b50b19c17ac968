//! The liveness check: a worker whose last heartbeat is older than
//! `lost_after` heartbeat intervals is marked `lost`, and so are the jobs it
//! was running (JetStream hands them to another worker when their ack wait
//! runs out). Events carry ids derived from the last heartbeat's sequence,
//! so replicas running the same check store each event once.

use shoal_protocol::key::Key;
use std::sync::Arc;
use std::time::Duration;

use shoal_protocol::fold::{fold_worker, WorkerInput};
use shoal_protocol::{
    Heartbeat, JobEvent, JobEventType, JobRecord, JobState, Timestamp, WorkerEvent,
    WorkerEventType, WorkerRecord, WorkerStatus,
};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{ApiError, Registry};

/// Runs the check every `check_interval` until `shutdown`.
pub(crate) async fn watch(registry: Arc<Registry>, shutdown: CancellationToken) {
    let interval = registry.config.check_interval;
    crate::every(interval, shutdown, "liveness check", || {
        registry.check_liveness()
    })
    .await;
}

/// How long ago `at` was (nothing, if it is in the future).
fn silence_since(at: Timestamp) -> Duration {
    (Timestamp::now().0 - at.0).try_into().unwrap_or_default()
}

/// How long `record`'s worker may go without a heartbeat.
fn silence_allowed(record: &WorkerRecord, lost_after: u32) -> Duration {
    let interval = record
        .heartbeat_interval
        .map_or(Duration::from_secs(5), |interval| interval.get());
    interval * lost_after
}

/// Whether `record`'s worker should be alive and its record has not seen
/// it lately: its last heartbeat is then read.
fn is_suspect(record: &WorkerRecord, lost_after: u32) -> bool {
    let alive = matches!(
        record.status,
        Some(WorkerStatus::Online | WorkerStatus::Draining)
    );
    let seen = record.last_seen.or(record.registered_at);
    alive && seen.is_none_or(|seen| silence_since(seen) > silence_allowed(record, lost_after))
}

/// The last sign of life of a worker.
struct LastBeat {
    sequence: u64,
    at: Timestamp,
    running: Vec<String>,
}

impl Registry {
    async fn last_beat(&self, record: &WorkerRecord) -> Result<Option<LastBeat>, ApiError> {
        let stream = self
            .js
            .get_stream(self.config.layout.heartbeats_stream())
            .await
            .map_err(ApiError::internal)?;
        let subject = self
            .config
            .layout
            .subjects
            .heartbeat(&record.group, &record.id);
        let beat = match stream.direct_get_last_for_subject(subject).await {
            Ok(message) => serde_json::from_slice::<Heartbeat>(&message.payload)
                .ok()
                .map(|beat| LastBeat {
                    sequence: message.sequence,
                    at: beat.at,
                    running: beat.running,
                }),
            Err(_) => None,
        };
        Ok(beat.or_else(|| {
            record.registered_at.map(|at| LastBeat {
                sequence: 0,
                at,
                running: record.running.clone(),
            })
        }))
    }

    async fn check_liveness(&self) -> Result<(), ApiError> {
        // The record's last_seen is never later than the last heartbeat:
        // while it is recent, so is the worker's last sign of life, and the
        // worker is passed over without a copy or a read (the check then
        // costs next to nothing per live worker).
        let lost_after = self.config.lost_after;
        let Some(suspects) = self
            .worker_records
            .matching(|record| is_suspect(record, lost_after))
        else {
            return Ok(());
        };
        for record in suspects {
            let Some(beat) = self.last_beat(&record).await? else {
                continue;
            };
            if silence_since(beat.at) > silence_allowed(&record, lost_after) {
                self.mark_lost(&record, &beat).await?;
            }
        }
        Ok(())
    }

    async fn mark_lost(&self, record: &WorkerRecord, beat: &LastBeat) -> Result<(), ApiError> {
        let subjects = &self.config.layout.subjects;
        let event = WorkerEvent::about(WorkerEventType::Lost, &record.group, &record.id);
        let msg_id = format!("lost-{}-{}-{}", record.group, record.id, beat.sequence);
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        let stored = self
            .publish(
                subjects.worker_event(&record.group, &record.id),
                Some(msg_id),
                body,
            )
            .await?;
        if !stored {
            return Ok(());
        }
        info!(worker_id = %record.id, group = %record.group, "worker lost: no heartbeat for {} intervals", self.config.lost_after);
        let key = Key::new(&record.group, &record.id).to_string();
        let input = WorkerInput::Event(Box::new(event));
        self.workers
            .update(&key, |current| fold_worker(current, &input), |_, _| true)
            .await
            .map_err(ApiError::internal)?;
        for job_id in &beat.running {
            self.mark_job_lost(record, job_id).await?;
        }
        Ok(())
    }

    async fn mark_job_lost(&self, worker: &WorkerRecord, job_id: &str) -> Result<(), ApiError> {
        let key = Key::new(&worker.group, job_id).to_string();
        let Some(job) = self.jobs.get(&key).await.map_err(ApiError::internal)? else {
            return Ok(());
        };
        let job: JobRecord = job;
        if job.state != Some(JobState::Running)
            || job.worker_id.as_deref() != Some(worker.id.as_str())
        {
            return Ok(());
        }
        let mut event = JobEvent::new(
            JobEventType::Lost,
            &job.group,
            &job.queue,
            &job.id,
            job.attempt,
            Timestamp::now(),
        );
        event.worker_id = Some(worker.id.clone());
        event.started_at = job.started_at;
        event.error_text = Some(format!("worker {} stopped sending heartbeats", worker.id));
        let msg_id = format!("lost-{}-{}-{}", job.group, job.id, job.attempt);
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        self.publish(
            self.config.layout.subjects.job_event(&job.group, &job.id),
            Some(msg_id),
            body,
        )
        .await?;
        info!(job_id = %job.id, group = %job.group, worker_id = %worker.id, "job lost with its worker; it runs again when its ack wait ends");
        Ok(())
    }
}
