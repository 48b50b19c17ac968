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
            warn!(event = event.kind.as_str(), error = %err, "pool event not stored");
        }
    }

    async fn try_publish(&self, event: &PoolEvent) -> Result<(), String> {
        let body = serde_json::to_vec(event).map_err(|err| err.to_string())?;
        self.js
            .publish(self.subject.clone(), body.into())
            .await
            .map_err(|err| err.to_string())?
            .await
            .map_err(|err| err.to_string())?;
        Ok(())
    }
}
