//! The JSON Schemas of every wire type, as written to `schemas/`.

use schemars::{schema_for, Schema};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{Heartbeat, JobEvent, RejectedNotice, WorkerEvent};
use crate::job::JobSpec;
use crate::record::{JobRecord, WorkerRecord};
use crate::registry::{
    ApplyRequest, ApplyResult, CancelResult, CreateWorker, JobPage, ListJobs, ListQueues,
    ListWorkers, QueueFigures, ResourceRef, UpdateWorker, WorkerIdentity,
};
use crate::resource::Resource;
use crate::supervisor::{PoolEvent, SupervisorRecord};

/// The version of the schemas.
pub const SCHEMA_VERSION: &str = "v1";

/// Any event on `shoal.evt.>`: a job, worker or pool event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "Event")]
pub enum AnyEvent {
    /// On `shoal.evt.job.<group>.<job_id>`.
    Job(Box<JobEvent>),
    /// On `shoal.evt.worker.<group>.<worker_id>`.
    Worker(Box<WorkerEvent>),
    /// On `shoal.evt.pool.<group>.<pool>`.
    Pool(Box<PoolEvent>),
}

/// Every wire type: its file stem in `schemas/` and its schema.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("job", schema_for!(JobSpec)),
        ("job-event", schema_for!(JobEvent)),
        ("worker-event", schema_for!(WorkerEvent)),
        ("heartbeat", schema_for!(Heartbeat)),
        ("rejected", schema_for!(RejectedNotice)),
        ("job-record", schema_for!(JobRecord)),
        ("worker-record", schema_for!(WorkerRecord)),
        (
            "workflow-record",
            schema_for!(crate::workflow::WorkflowRecord),
        ),
        ("limit-record", schema_for!(crate::limits::LimitRecord)),
        ("event", schema_for!(AnyEvent)),
        ("resource", schema_for!(Resource)),
        ("create-worker", schema_for!(CreateWorker)),
        ("update-worker", schema_for!(UpdateWorker)),
        ("list-workers", schema_for!(ListWorkers)),
        ("list-jobs", schema_for!(ListJobs)),
        ("job-page", schema_for!(JobPage)),
        ("list-queues", schema_for!(ListQueues)),
        ("queue-figures", schema_for!(Vec<QueueFigures>)),
        ("worker-identity", schema_for!(WorkerIdentity)),
        ("apply-request", schema_for!(ApplyRequest)),
        ("apply-result", schema_for!(ApplyResult)),
        ("resource-ref", schema_for!(ResourceRef)),
        ("cancel-result", schema_for!(CancelResult)),
        ("pool-event", schema_for!(PoolEvent)),
        ("supervisor-record", schema_for!(SupervisorRecord)),
    ]
}

/// The schema of one wire type, by its file stem.
/// `worker` and `pool` name the resource they are declared with.
pub fn by_name(name: &str) -> Option<Schema> {
    let stem = match name {
        "worker" | "pool" => "resource",
        other => other,
    };
    all()
        .into_iter()
        .find(|(candidate, _)| *candidate == stem)
        .map(|(_, schema)| schema)
}

/// A schema as it is written to a file: pretty JSON with a final newline.
pub fn to_file_text(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
