//! Which worker this process is: an identity created through the registry
//! (`worker_id`), whose group, name, labels and system flag it takes, or a
//! new one it makes for itself (the autoscaled-replica case).

use async_nats::jetstream;
use shoal_client::streams::{find_key_by_id, Layout};
use shoal_protocol::{WorkerRecord, WorkerStatus};
use tracing::warn;

use crate::{WorkerConfig, WorkerError};

/// The configuration as the identity shapes it, and the worker's id.
pub(crate) async fn take(
    mut config: WorkerConfig,
    js: &jetstream::Context,
    layout: &Layout,
) -> Result<(WorkerConfig, String), WorkerError> {
    let Some(id) = config.worker_id.clone() else {
        return Ok((config, nuid::next().to_string().to_lowercase()));
    };
    let refused = |reason: String| WorkerError::Identity(format!("worker id {id}: {reason}"));
    let bucket = layout.workers_bucket();
    let key = find_key_by_id(js, &bucket, &id)
        .await
        .map_err(|err| refused(err.to_string()))?;
    let record = match key {
        Some(key) => {
            let store = js
                .get_key_value(&bucket)
                .await
                .map_err(|err| refused(err.to_string()))?;
            let value = store
                .get(&key)
                .await
                .map_err(|err| refused(err.to_string()))?;
            value.and_then(|value| serde_json::from_slice::<WorkerRecord>(&value).ok())
        }
        None => None,
    };
    let Some(record) = record.filter(|record| record.created_at.is_some()) else {
        return Err(refused("no such worker was created; create it with `shoal worker create` (or leave worker_id out to register as a new worker)".into()));
    };
    if record.status == Some(WorkerStatus::Deleted) {
        return Err(refused("this worker was deleted".into()));
    }
    if config.group != record.group {
        warn!(configured = %config.group, registered = %record.group, "taking the group of the registered identity");
    }
    config.group = record.group;
    config.name = record.name;
    config.labels = record.labels;
    config.system = record.system;
    Ok((config, id))
}
