//! Publishing the supervisor's decisions and restarts to the events stream,
//! on `shoal.evt.pool.<group>.<pool>`.

use async_nats::jetstream;
use shoal_protocol::supervisor::PoolEvent;
use tracing::warn;

/// Publishes the events of one pool.
#[derive(Clone)]
pub struct Events {
    js: jetstream::Context,
    subject: String,
}

impl Events {
    /// Events of the pool on `subject`.
    pub fn new(js: jetstream::Context, subject: String) -> Self {
        Self { js, subject }
    }

    /// Publishes `event` and waits for JetStream to store it; a failure is
    /// logged, and the supervisor goes on.
    pub async fn publish(&self, event: &PoolEvent) {
        if let Err(err) = self.try_publish(event).await {
            let error = shoal_client::error_chain(&err);
            warn!(event = event.kind.as_str(), error, "pool event not stored");
        }
    }

    async fn try_publish(&self, event: &PoolEvent) -> Result<(), NotStored> {
        let body = serde_json::to_vec(event).map_err(NotStored::Encode)?;
        self.js
            .publish(self.subject.clone(), body.into())
            .await
            .map_err(NotStored::Publish)?
            .await
            .map_err(NotStored::Publish)?;
        Ok(())
    }
}

/// Why a pool event was not stored.
#[derive(Debug, thiserror::Error)]
enum NotStored {
    /// It could not be written as JSON.
    #[error("cannot write the event")]
    Encode(#[source] serde_json::Error),
    /// JetStream did not store it.
    #[error("JetStream did not store the event")]
    Publish(#[source] async_nats::jetstream::context::PublishError),
}
