//! The reconciler: a job whose record says it waits (queued, retrying, lost)
//! but whose submission is gone from the jobs stream (deleted by hand,
//! purged, aged out) can never run; it is raised as `missing`.

use std::sync::Arc;

use async_nats::jetstream::stream::RawMessageErrorKind;
use shoal_protocol::{JobEvent, JobEventType, JobRecord, JobState, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{ApiError, Registry};

/// Runs the reconciler every `reconcile_interval` until `shutdown`.
pub(crate) async fn watch(registry: Arc<Registry>, shutdown: CancellationToken) {
    let interval = registry.config.reconcile_interval;
    crate::every(interval, shutdown, "reconciling", || registry.reconcile()).await;
}

fn is_waiting(record: &JobRecord) -> bool {
    matches!(
        record.state,
        Some(JobState::Queued | JobState::Retrying | JobState::Lost)
    )
}

impl Registry {
    async fn reconcile(&self) -> Result<(), ApiError> {
        let records = self.jobs.read_all(">").await.map_err(ApiError::internal)?;
        let stream = self
            .js
            .get_stream(self.config.layout.jobs_stream())
            .await
            .map_err(ApiError::internal)?;
        for record in records.iter().filter(|record| is_waiting(record)) {
            let Some(sequence) = record.stream_sequence else {
                continue;
            };
            match stream.get_raw_message(sequence).await {
                Ok(_) => {}
                Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => {
                    self.raise_missing(record, sequence).await?
                }
                Err(err) => return Err(ApiError::internal(err)),
            }
        }
        Ok(())
    }

    async fn raise_missing(&self, record: &JobRecord, sequence: u64) -> Result<(), ApiError> {
        let mut event = JobEvent::new(
            JobEventType::Missing,
            &record.group,
            &record.queue,
            &record.id,
            record.attempt,
            Timestamp::now(),
        );
        event.error_text = Some(format!(
            "its submission (sequence {sequence}) is no longer in the jobs stream"
        ));
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        let subject = self
            .config
            .layout
            .subjects
            .job_event(&record.group, &record.id);
        let msg_id = format!("missing-{}-{}-{sequence}", record.group, record.id);
        if self.publish(subject, Some(msg_id), body).await? {
            info!(job_id = %record.id, group = %record.group, sequence, "job missing: its submission is gone");
        }
        Ok(())
    }
}
