//! What a worker knows of a job it was handed: where it belongs, which
//! attempt it is, its trace, and the settings of the consumer it came from.

use std::time::Duration;

use shoal_protocol::trace::TraceParent;
use shoal_protocol::{JobEvent, JobEventType, Timestamp};

use crate::Worker;

/// Where a delivered job belongs.
pub(crate) struct Delivery {
    pub(crate) group: String,
    pub(crate) queue: String,
    pub(crate) job_id: String,
    pub(crate) attempt: u32,
    /// The submission's sequence in the jobs stream (a routed copy's origin).
    pub(crate) submission: u64,
    /// The attempt's own span in the submission's trace, if it carried one.
    pub(crate) trace: Option<TraceParent>,
    /// The submission's trace context and the attempt's span in it, if it carried one.
    pub(crate) traced: Option<(TraceParent, TraceParent)>,
    /// Its parents' results, once it was admitted with parents.
    pub(crate) parents: Option<crate::holds::ParentResults>,
}

/// The settings of the queue's consumer that shape how a job is handled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    /// Time a delivery may go unacknowledged before it is delivered again.
    pub(crate) ack_wait: Duration,
    /// Deliveries before JetStream gives a job up.
    pub(crate) max_deliver: i64,
}

impl Worker {
    /// An event of `kind` about the delivered job's attempt, in its trace.
    pub(crate) fn job_event(
        &self,
        kind: JobEventType,
        delivery: &Delivery,
        at: Timestamp,
    ) -> JobEvent {
        let mut event = JobEvent::new(
            kind,
            &delivery.group,
            &delivery.queue,
            &delivery.job_id,
            delivery.attempt,
            at,
        );
        event.traceparent = delivery.trace.map(|trace| trace.to_string());
        event
    }
}
