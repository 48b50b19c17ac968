//! The queues' figures, read from their consumers every two seconds and
//! sent to the pages when they changed.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde::Serialize;
use shoal_client::Client;
use shoal_protocol::registry::QueueFigures;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::live::{Kind, Live};

/// How often the queues are read.
const EVERY: Duration = Duration::from_secs(2);

/// The queues as last read, or why they could not be.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct QueuesView {
    /// Each consumer's figures, by group, queue, priority and tags.
    pub(crate) queues: Vec<QueueFigures>,
    /// Why the queues cannot be read with this login, if they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Keeps `view` and sends it to the pages when it changed.
pub(crate) fn show(live: &Live, view: QueuesView) {
    let changed = {
        let mut shown = live.queues.write().unwrap_or_else(PoisonError::into_inner);
        let changed = *shown != view;
        *shown = view.clone();
        changed
    };
    if changed {
        live.send(Kind::Queues, &view);
    }
}

/// Reads the queues until `shutdown`.
pub(crate) async fn follow(live: Arc<Live>, client: Client, shutdown: CancellationToken) {
    loop {
        let view = match client.queue_figures().await {
            Ok(mut queues) => {
                queues.retain(|queue| live.scope.shows(&queue.group));
                queues.sort_by(|a, b| {
                    (&a.group, &a.queue, &a.priority, &a.tags).cmp(&(
                        &b.group,
                        &b.queue,
                        &b.priority,
                        &b.tags,
                    ))
                });
                QueuesView {
                    queues,
                    error: None,
                }
            }
            Err(err) => {
                debug!(error = %err, "cannot read the queues");
                QueuesView {
                    queues: Vec::new(),
                    error: Some(shoal_client::error_chain(&err)),
                }
            }
        };
        show(&live, view);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
