//! Jobs JetStream gives up: when a queue consumer reaches `max_deliver` for a
//! job (it kept ending its workers), the server sends an advisory; the job is
//! copied with its reason to the dead-letter stream and ends `dead`.

use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use shoal_client::publish::Check;
use shoal_protocol::registry::SERVICE_NAME;
use shoal_protocol::rejection::DeadLetter;
use shoal_protocol::{JobEvent, JobEventType, JobSpec, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{ApiError, Registry};

/// The part of the server's max-deliveries advisory that matters here.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

/// Handles max-deliveries advisories of the jobs stream until `shutdown`;
/// registry replicas share them through a queue group.
pub(crate) async fn watch(registry: Arc<Registry>, shutdown: CancellationToken) {
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.*",
        registry.config.layout.jobs_stream()
    );
    let mut advisories = match registry
        .client
        .queue_subscribe(subject, SERVICE_NAME.to_string())
        .await
    {
        Ok(advisories) => advisories,
        Err(err) => {
            warn!(error = %err, "cannot listen for max-deliveries advisories; dead letters will not be raised");
            return;
        }
    };
    loop {
        let advisory = tokio::select! {
            _ = shutdown.cancelled() => return,
            advisory = advisories.next() => advisory,
        };
        let Some(advisory) = advisory else { return };
        match serde_json::from_slice::<MaxDeliveries>(&advisory.payload) {
            Ok(advisory) => {
                if let Err(err) = registry.bury(advisory).await {
                    warn!(error = %err.description, "could not raise a dead letter");
                }
            }
            Err(err) => warn!(error = %err, "an advisory that cannot be read"),
        }
    }
}

impl Registry {
    async fn bury(&self, advisory: MaxDeliveries) -> Result<(), ApiError> {
        let layout = &self.config.layout;
        let stream = self
            .js
            .get_stream(layout.jobs_stream())
            .await
            .map_err(ApiError::internal)?;
        let message = stream
            .get_raw_message(advisory.stream_seq)
            .await
            .map_err(ApiError::internal)?;
        let Ok(place) = layout.subjects.parse_job(&message.subject) else {
            return Ok(());
        };
        let job_id = JobSpec::from_slice(&message.payload).map_or_else(
            |_| advisory.stream_seq.to_string(),
            |spec| spec.job_id(advisory.stream_seq),
        );
        let reason = format!(
            "given up after {} deliveries (max_deliver): the job kept ending its workers",
            advisory.deliveries
        );
        let letter = DeadLetter {
            subject: layout.subjects.dead(&place.group, &place.id),
            job_id: job_id.clone(),
            sequence: advisory.stream_seq,
            reason: reason.clone(),
            body: message.payload.to_vec(),
        };
        shoal_client::rejection::publish_dead_letter(&self.js, &letter, Check::Verify)
            .await
            .map_err(ApiError::internal)?;
        let attempt = u32::try_from(advisory.deliveries).unwrap_or(u32::MAX);
        let mut event = JobEvent::new(
            JobEventType::Dead,
            &place.group,
            &place.id,
            &job_id,
            attempt,
            Timestamp::now(),
        );
        event.error_text = Some(reason);
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        let msg_id = format!("dead-{}-{job_id}-{}", place.group, advisory.stream_seq);
        self.publish(
            layout.subjects.job_event(&place.group, &job_id),
            Some(msg_id),
            body,
        )
        .await?;
        info!(job_id, group = %place.group, deliveries = advisory.deliveries, "job dead: copied to the dead-letter stream");
        Ok(())
    }
}
