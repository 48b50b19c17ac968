//! The label sets of Shoal's metrics.

use prometheus_client::encoding::EncodeLabelSet;

/// A queue of a group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The group (tenant).
    pub group: String,
    /// The queue.
    pub queue: String,
}

/// A queue of a group and the state a job ended in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    /// The group (tenant).
    pub group: String,
    /// The queue.
    pub queue: String,
    /// `succeeded`, `failed`, `timed_out` or `cancelled`.
    pub state: String,
}

/// A worker's job slots in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlotLabels {
    /// The worker's group.
    pub group: String,
    /// `busy` or `free`.
    pub state: String,
}

/// One priority of a queue of a group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueDepthLabels {
    /// The group (tenant).
    pub group: String,
    /// The queue.
    pub queue: String,
    /// `high`, `normal` or `low`; `routed` for the jobs routed to a tag set.
    pub priority: String,
    /// The tag set of a route, its tags joined by commas; empty otherwise.
    pub tags: String,
}

/// The workers of a group in one status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerStatusLabels {
    /// The group (tenant).
    pub group: String,
    /// `online`, `draining`, `offline`, `lost`...
    pub status: String,
}

/// A group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    /// The group (tenant).
    pub group: String,
}

/// A stream a part reads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// The stream's name.
    pub stream: String,
}

/// A pool's replicas in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// The pool's group.
    pub group: String,
    /// The pool.
    pub pool: String,
    /// `desired` or `running`.
    pub state: String,
}
