//! Pulling jobs from one queue's durable consumer: ask for as many jobs as
//! there are free slots, long-poll for the polling interval, and hand every
//! job to its own task.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::AckKind;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::job::{self, QueueLimits};
use crate::Worker;

/// Pulls from `consumer` until `stop` is cancelled.
pub(crate) async fn pull_queue(
    worker: Arc<Worker>,
    consumer: PullConsumer,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    stop: CancellationToken,
    limits: QueueLimits,
) {
    while !stop.is_cancelled() {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let batch = consumer
            .batch()
            .max_messages(permits.len())
            .expires(worker.config.polling_interval)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                warn!(error = %err, "pull request failed; trying again");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // Read the pull to its end even when stopping, so that no job sent to
        // it waits out its ack wait: those that come after the stop go back at once.
        while let Some(item) = batch.next().await {
            let message = match item {
                Ok(message) => message,
                Err(err) => {
                    debug!(error = %err, "pull ended early");
                    break;
                }
            };
            match (stop.is_cancelled(), permits.pop()) {
                (false, Some(permit)) => {
                    let worker = worker.clone();
                    tracker.spawn(async move {
                        job::handle(worker, message, limits).await;
                        drop(permit);
                    });
                }
                _ => {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                }
            }
            if stop.is_cancelled() && permits.is_empty() {
                break;
            }
        }
    }
}
