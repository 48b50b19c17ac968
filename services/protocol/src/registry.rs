//! The admin API of the `shoal-registry` micro service, on `shoal.api.>`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::record::WorkerStatus;

/// Name of the registry's micro service.
pub const SERVICE_NAME: &str = "shoal-registry";

/// Name of the micro service every worker answers as an instance of.
pub const WORKER_SERVICE_NAME: &str = "shoal-worker";

/// Header of the empty message that ends an attempt's output in
/// `SHOAL_LOGS`; in an answer of `job.logs`, how many ended in it.
pub const LOGS_END_HEADER: &str = "Shoal-End";
/// Header of a `job.logs` answer: the stream sequence of its last chunk,
/// to send back as `after` for the next ones.
pub const LOGS_SEQUENCE_HEADER: &str = "Shoal-Sequence";
/// Header of a `job.logs` answer: `true` when more output waits already.
pub const LOGS_MORE_HEADER: &str = "Shoal-More";

/// Error codes the API answers with (as micro-service errors).
pub mod codes {
    /// The request is not valid; the description names the field.
    pub const BAD_REQUEST: usize = 400;
    /// No such worker or pool.
    pub const NOT_FOUND: usize = 404;
    /// The request names another group than the subject it was sent on.
    pub const FORBIDDEN: usize = 403;
    /// The name is taken in that group.
    pub const CONFLICT: usize = 409;
    /// The registry could not do it; try again.
    pub const INTERNAL: usize = 500;
}

/// `shoal.api.worker.create`: a worker identity to create.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "CreateWorker")]
pub struct CreateWorker {
    /// Its name, unique in its group.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Free metadata.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The NATS user it connects as.
    #[serde(default)]
    pub user: Option<String>,
    /// Whether it serves `_system` (false unless an admin says otherwise).
    #[serde(default)]
    pub system: bool,
}

/// `shoal.api.worker.update.<id>`: what to change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "UpdateWorker")]
pub struct UpdateWorker {
    /// New `system` flag.
    #[serde(default)]
    pub system: Option<bool>,
    /// New labels (replace the old ones).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `shoal.api.worker.list`: which workers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListWorkers {
    /// Only this group (all groups when absent).
    #[serde(default)]
    pub group: Option<String>,
}

/// `shoal.api.job.list`: a page of jobs, the one changed last first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListJobs {
    /// Only this group (all groups when absent).
    #[serde(default)]
    pub group: Option<String>,
    /// Jobs on the page at most (50 when absent, 500 at most).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only jobs whose last change came before this revision (the previous page's `next_before`).
    #[serde(default)]
    pub before: Option<u64>,
}

/// Most jobs on one page of `job.list`.
pub const MAX_JOBS_PER_PAGE: usize = 500;

/// A page of jobs, as `job.list` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "JobPage")]
pub struct JobPage {
    /// The jobs, the one changed last first.
    pub jobs: Vec<RevisedJob>,
    /// The `before` that reads the next page, if there is one.
    #[serde(default)]
    pub next_before: Option<u64>,
}

/// A job's record with the revision of its last change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RevisedJob {
    /// The revision of the record's last change in `shoal_jobs`.
    pub revision: u64,
    /// The record.
    pub record: crate::JobRecord,
}

/// `shoal.api.queue.list`: which queues.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQueues {
    /// Only this group (all groups when absent).
    #[serde(default)]
    pub group: Option<String>,
}

/// One queue consumer's figures, as `queue.list` answers them: a priority
/// of a queue, or one worker tag set's route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "QueueFigures")]
pub struct QueueFigures {
    /// Its group.
    pub group: String,
    /// Its queue.
    pub queue: String,
    /// Its priority (`high`, `normal`, `low`), or `routed` for a tag set's route.
    pub priority: String,
    /// The route's tags, comma-separated; empty for a queue consumer.
    pub tags: String,
    /// Jobs waiting or running (`num_pending + num_ack_pending`, as KEDA reads it).
    pub depth: u64,
    /// Jobs no worker has taken yet.
    pub waiting: u64,
    /// Age in seconds of the oldest job no worker has taken yet (0 when none waits).
    pub oldest_seconds: f64,
}

/// A worker identity, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "WorkerIdentity")]
pub struct WorkerIdentity {
    /// Its id.
    pub id: String,
    /// Its group.
    pub group: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its name.
    pub name: String,
    /// The NATS user it connects as.
    pub user: Option<String>,
    /// Whether it serves `_system`.
    pub system: bool,
    /// A stable reference: the subject that gets it.
    #[serde(rename = "self")]
    pub self_ref: String,
    /// Where it is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkerStatus>,
}

/// What `apply` did, or would do with `dryRun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// It did not exist and was (or would be) created.
    Created,
    /// It existed and was (or would be) changed.
    Updated,
    /// It existed as it is: nothing changed.
    Unchanged,
    /// It was (or would be) deleted.
    Deleted,
}

/// The answer to `apply` and `delete` of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "ApplyResult")]
pub struct ApplyResult {
    /// `worker` or `pool`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// What changed.
    pub change: Change,
    /// True when nothing was written.
    pub dry_run: bool,
    /// The worker's id, for a worker resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `shoal.api.pool.list` / `shoal.api.resource.delete`: which resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    /// `worker` or `pool`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name (all when absent, for a list).
    #[serde(default)]
    pub name: Option<String>,
    /// Its group (all groups when absent, for a list).
    #[serde(default)]
    pub group: Option<String>,
}

/// `shoal.api.resource.apply`: a resource, and the group it goes to when it names none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ApplyRequest")]
pub struct ApplyRequest {
    /// The resource.
    pub resource: crate::resource::Resource,
    /// Its group when its section names none (`default` when absent).
    #[serde(default)]
    pub group: Option<String>,
}

/// The answer to `shoal.ctl.<group>.job.<job_id>.cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "CancelResult")]
pub struct CancelResult {
    /// The job's id.
    pub job_id: String,
    /// The job's group.
    pub group: String,
    /// Whether this request cancelled it.
    pub cancelled: bool,
    /// Its state before the request.
    pub was: crate::record::JobState,
    /// One sentence saying what happened.
    pub message: String,
}
