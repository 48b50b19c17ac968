//! Pulling jobs from one queue's durable consumers (one per priority, and
//! the routed jobs of the worker's tag set): ask for as many jobs as there
//! are free slots, take what waits in order, and when nothing waits,
//! long-poll one of them for the polling interval. Every job runs in its own task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Batch;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::AckKind;
use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::delivery::QueueLimits;
use crate::job;
use crate::Worker;

/// Longest wait for the answer to a pull beyond its own expiry: a request
/// lost with a server that died would otherwise be waited for forever.
const PULL_ANSWER: Duration = Duration::from_secs(5);

/// Longest wait of an idle worker on its routed consumer.
const ROUTED_POLL: Duration = Duration::from_secs(1);

/// One queue's pulling, shared by its rounds.
struct Puller {
    worker: Arc<Worker>,
    tracker: TaskTracker,
    stop: CancellationToken,
    limits: QueueLimits,
}

/// Pulls from a queue's consumers (highest priority first) until `stop` is cancelled.
pub(crate) async fn pull_queue(
    worker: Arc<Worker>,
    consumers: Vec<PullConsumer>,
    long_poll: usize,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    stop: CancellationToken,
    limits: QueueLimits,
) {
    let puller = Puller {
        worker,
        tracker,
        stop,
        limits,
    };
    // An idle worker waits on the consumer its last jobs came from: the
    // queue's own (normal priority) or, when the registry sends it jobs
    // (a fairness key's turn, a hold let go), the routed one, so that
    // those do not wait out a long poll of the other. Having held jobs
    // back, it waits on the routed one too: they come back there.
    let routed = consumers.len().saturating_sub(1);
    let mut waited_on = long_poll;
    let mut held_seen = puller.worker.held_back.load(Ordering::Relaxed);
    while !puller.stop.is_cancelled() {
        let first = tokio::select! {
            _ = puller.stop.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let mut taken = 0;
        for (index, consumer) in consumers.iter().enumerate() {
            if permits.is_empty() || puller.stop.is_cancelled() {
                break;
            }
            match consumer
                .fetch()
                .max_messages(permits.len())
                .messages()
                .await
            {
                Ok(batch) => {
                    let got = puller.take_within(PULL_ANSWER, batch, &mut permits).await;
                    if got > 0 && (index == long_poll || index == routed) {
                        waited_on = index;
                    }
                    taken += got;
                }
                Err(err) => warn!(error = %err, "pull request failed; trying again"),
            }
        }
        if taken > 0 || permits.is_empty() || puller.stop.is_cancelled() {
            continue;
        }
        let held = puller.worker.held_back.load(Ordering::Relaxed);
        if held != held_seen {
            held_seen = held;
            waited_on = routed;
        }
        let Some(consumer) = consumers.get(waited_on) else {
            return;
        };
        // A wait on the routed consumer is short, and one that brings
        // nothing goes back to the queue's own: a plain job then waits
        // for it at most [`ROUTED_POLL`].
        let on_routed = waited_on != long_poll;
        let expires = match on_routed {
            true => puller.worker.config.polling_interval.min(ROUTED_POLL),
            false => puller.worker.config.polling_interval,
        };
        let batch = consumer
            .batch()
            .max_messages(permits.len())
            .expires(expires)
            .messages()
            .await;
        match batch {
            Ok(batch) => {
                let bound = expires + PULL_ANSWER;
                let got = puller.long_poll_within(bound, batch, &mut permits).await;
                if on_routed && got == 0 {
                    waited_on = long_poll;
                }
            }
            Err(err) => {
                warn!(error = %err, "pull request failed; trying again");
                tokio::select! {
                    _ = puller.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

impl Puller {
    /// [`Puller::take`], given up after `bound`: the slots not used stay free.
    async fn take_within<E: std::fmt::Display>(
        &self,
        bound: Duration,
        batch: impl Stream<Item = Result<async_nats::jetstream::Message, E>>,
        permits: &mut Vec<OwnedSemaphorePermit>,
    ) -> usize {
        let mut taken = 0;
        if tokio::time::timeout(bound, async { taken = self.take(batch, permits).await })
            .await
            .is_err()
        {
            warn!("a pull got no answer in time; asking again");
        }
        taken
    }

    /// Starts a job for each message of a pull, one slot each; reads the
    /// pull to its end even when stopping, so that no job sent to it waits
    /// out its ack wait: those that come after the stop go back at once.
    async fn take<E: std::fmt::Display>(
        &self,
        batch: impl Stream<Item = Result<async_nats::jetstream::Message, E>>,
        permits: &mut Vec<OwnedSemaphorePermit>,
    ) -> usize {
        let mut taken = 0;
        let mut batch = std::pin::pin!(batch);
        while let Some(item) = batch.next().await {
            if !self.take_one(item, permits, &mut taken).await {
                break;
            }
        }
        taken
    }

    /// [`Puller::take`] of a long poll, which a stop ends at once: the pull
    /// is drained, so what the server sent to it before still comes (and
    /// goes back), and an idle worker stops without waiting out the poll.
    async fn long_poll_within(
        &self,
        bound: Duration,
        mut batch: Batch,
        permits: &mut Vec<OwnedSemaphorePermit>,
    ) -> usize {
        let mut taken = 0;
        let mut draining = false;
        let polled = tokio::time::timeout(bound, async {
            loop {
                let item = tokio::select! {
                    item = batch.next() => item,
                    _ = self.stop.cancelled(), if !draining => {
                        draining = true;
                        if let Err(err) = batch.drain().await {
                            debug!(error = %err, "cannot drain the pull");
                            return;
                        }
                        continue;
                    }
                };
                let Some(item) = item else { return };
                if !self.take_one(item, permits, &mut taken).await {
                    return;
                }
            }
        })
        .await;
        if polled.is_err() {
            warn!("a pull got no answer in time; asking again");
        }
        taken
    }

    /// Starts the job of one item of a pull, or sends it back once stopping
    /// or out of slots; whether the pull may have more for this round.
    async fn take_one<E: std::fmt::Display>(
        &self,
        item: Result<async_nats::jetstream::Message, E>,
        permits: &mut Vec<OwnedSemaphorePermit>,
        taken: &mut usize,
    ) -> bool {
        let message = match item {
            Ok(message) => message,
            Err(err) => {
                debug!(error = %err, "pull ended early");
                return false;
            }
        };
        match (self.stop.is_cancelled(), permits.pop()) {
            (false, Some(permit)) => {
                let worker = self.worker.clone();
                let limits = self.limits;
                *taken += 1;
                self.tracker.spawn(async move {
                    job::handle(worker, message, limits).await;
                    drop(permit);
                });
            }
            _ => {
                let _ = message.ack_with(AckKind::Nak(None)).await;
            }
        }
        !(self.stop.is_cancelled() && permits.is_empty())
    }
}
