//! The reconciler: a job whose record says it waits (queued, retrying, lost)
//! but whose submission is gone from the jobs stream (deleted by hand,
//! purged, aged out) can never run; it is raised as `missing`.
//!
//! A tick reads no record: the waiting jobs come from the registry's mirror
//! of `shoal_jobs`, and one look at the stream's state finds those whose
//! sequence lies outside it. Only when messages were deleted from inside
//! the stream does it ask for submissions one by one, at most
//! [`PROBES_PER_TICK`] a tick, until every waiting job was asked for once.

use std::sync::Arc;

use async_nats::jetstream::stream::RawMessageErrorKind;
use shoal_protocol::{JobEvent, JobEventType, Timestamp};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::waiting::WaitingJob;
use crate::{ApiError, Registry};

/// Most submissions asked for in one tick after deletions inside the stream.
pub(crate) const PROBES_PER_TICK: usize = 1_000;

/// What the reconciler remembers between ticks.
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    /// The stream's count of deleted messages when it was last looked at.
    deleted_seen: Option<u64>,
    /// Waiting jobs still to be asked for since the count changed.
    to_probe: Vec<WaitingJob>,
}

/// Runs the reconciler every `reconcile_interval` until `shutdown`.
pub(crate) async fn watch(registry: Arc<Registry>, shutdown: CancellationToken) {
    let interval = registry.config.reconcile_interval;
    let sweep = Mutex::new(Sweep::default());
    crate::every(interval, shutdown, "reconciling", || async {
        registry.reconcile(&mut *sweep.lock().await).await
    })
    .await;
}

impl Registry {
    async fn reconcile(&self, sweep: &mut Sweep) -> Result<(), ApiError> {
        if !self.waiting.is_read() {
            return Ok(());
        }
        let mut stream = self
            .js
            .get_stream(self.config.layout.jobs_stream())
            .await
            .map_err(ApiError::internal)?;
        let state = stream
            .info()
            .await
            .map_err(ApiError::internal)?
            .state
            .clone();
        let outside = |job: &WaitingJob| {
            job.sequence < state.first_sequence || job.sequence > state.last_sequence
        };
        // Only the jobs to act on are copied: a backlog of waiting jobs is
        // looked at in place, so that a tick costs no memory of its size.
        let gone = self.waiting.matching(outside).unwrap_or_default();
        for job in &gone {
            self.raise_missing(job).await?;
        }
        let deleted = state.deleted_count.unwrap_or(0);
        if sweep.deleted_seen != Some(deleted) {
            sweep.deleted_seen = Some(deleted);
            sweep.to_probe = if deleted > 0 {
                self.waiting
                    .matching(|job| !outside(job))
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
        }
        let start = sweep.to_probe.len().saturating_sub(PROBES_PER_TICK);
        let probes = sweep.to_probe.split_off(start);
        debug!(
            waiting = gone.len() + probes.len() + sweep.to_probe.len(),
            gone = gone.len(),
            probed = probes.len(),
            "reconciled"
        );
        for job in probes {
            match stream.get_raw_message(job.sequence).await {
                Ok(_) => {}
                Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => {
                    self.raise_missing(&job).await?
                }
                Err(err) => return Err(ApiError::internal(err)),
            }
        }
        Ok(())
    }

    async fn raise_missing(&self, job: &WaitingJob) -> Result<(), ApiError> {
        // The mirror may lag: a job that stopped waiting is left alone.
        if self.waiting.get(&job.key()).as_ref() != Some(job) {
            return Ok(());
        }
        let sequence = job.sequence;
        let mut event = JobEvent::new(
            JobEventType::Missing,
            &job.group,
            &job.queue,
            &job.id,
            job.attempt,
            Timestamp::now(),
        );
        event.error_text = Some(format!(
            "its submission (sequence {sequence}) is no longer in the jobs stream"
        ));
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        let subject = self.config.layout.subjects.job_event(&job.group, &job.id);
        let msg_id = format!("missing-{}-{}-{sequence}", job.group, job.id);
        if self.publish(subject, Some(msg_id), body).await? {
            info!(job_id = %job.id, group = %job.group, sequence, "job missing: its submission is gone");
        }
        Ok(())
    }
}
