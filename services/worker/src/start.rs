//! A job's start, reported at most once: when it has run for
//! [`START_REPORT_GRACE`], or sooner when something else of it is reported
//! (its progress). A job that ends before either has its start carried by
//! its outcome event, which names its worker and when it started: one event
//! and one record write instead of two, for most jobs of a busy queue.

use std::sync::Arc;
use std::time::Duration;

use shoal_protocol::JobEvent;
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use crate::Worker;

/// How long a job may run before its start is reported on its own.
pub(crate) const START_REPORT_GRACE: Duration = Duration::from_millis(50);

/// The `started` event of one attempt, and whether it was reported.
pub(crate) struct StartReport {
    worker: Arc<Worker>,
    event: JobEvent,
    /// Set once reported: whether JetStream stored the event.
    stored: OnceCell<bool>,
}

impl StartReport {
    /// The start of an attempt, not reported yet.
    pub(crate) fn new(worker: Arc<Worker>, event: JobEvent) -> Arc<Self> {
        Arc::new(Self {
            worker,
            event,
            stored: OnceCell::new(),
        })
    }

    /// Reports the start, once; a report that could not be stored is sent
    /// again with the outcome.
    pub(crate) async fn report(&self) {
        self.stored
            .get_or_init(|| async {
                let stored = match self.worker.publish_job_event(&self.event).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if stored {
                    debug!(worker_id = %self.worker.id, "job started");
                } else {
                    warn!("cannot report the start yet; it goes with the outcome");
                }
                stored
            })
            .await;
    }

    /// The `started` event if it was reported but not stored: it must be
    /// stored before the outcome.
    pub(crate) fn unstored(&self) -> Option<&JobEvent> {
        match self.stored.get() {
            Some(false) => Some(&self.event),
            _ => None,
        }
    }
}
