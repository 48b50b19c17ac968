//! The supervisor's state, written to `shoal_supervisors` under
//! `<group>.<pool>` at every poll and at every change.

use async_nats::jetstream::kv;
use shoal_protocol::key::Key;
use shoal_protocol::supervisor::SupervisorRecord;
use tracing::warn;

/// Writes the record of one pool's supervisor.
#[derive(Clone)]
pub struct StateStore {
    bucket: kv::Store,
    key: String,
    host: String,
}

impl StateStore {
    /// The record of `group`/`pool` in `bucket`.
    pub fn new(bucket: kv::Store, group: &str, pool: &str) -> Self {
        Self {
            bucket,
            key: Key::new(group, pool).to_string(),
            host: host_name(),
        }
    }

    /// The host the supervisor runs on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Writes `record`; a failure is logged, and the next write tries again.
    pub async fn write(&self, record: &SupervisorRecord) {
        let body = match serde_json::to_vec(record) {
            Ok(body) => body,
            Err(err) => {
                warn!(error = %err, "supervisor state not serialised");
                return;
            }
        };
        if let Err(err) = self.bucket.put(&self.key, body.into()).await {
            warn!(key = %self.key, error = %err, "supervisor state not written");
        }
    }
}

/// The host name, as workers report theirs.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}
