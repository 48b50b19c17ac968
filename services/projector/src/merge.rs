//! A live projector folds the batches of submissions and of job events
//! together: what came on both streams while the last fold ran goes into
//! one fold, so that a quick job's submission and outcome (its two inputs)
//! are often written to its record in one write instead of two.

use async_nats::jetstream::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Projector, Source};

/// One batch of one stream, each message with its source.
pub(crate) type Batch = Vec<(Source, Message)>;

/// Where the submission and event loops send their batches.
pub(crate) type Sender = mpsc::Sender<Batch>;

/// Batches waiting to be folded, at most: a loop whose batch cannot wait
/// pauses its pulls.
const WAITING_BATCHES: usize = 4;

/// A channel for the batches of both streams.
pub(crate) fn channel() -> (Sender, mpsc::Receiver<Batch>) {
    mpsc::channel(WAITING_BATCHES)
}

impl Projector {
    /// Folds the batches that come, each with every other one waiting,
    /// until `shutdown`.
    pub(crate) async fn fold_merged(
        &self,
        mut batches: mpsc::Receiver<Batch>,
        shutdown: &CancellationToken,
    ) {
        let most = self.config.batch_size.max(1) * 2;
        loop {
            let mut merged = tokio::select! {
                _ = shutdown.cancelled() => return,
                batch = batches.recv() => match batch {
                    Some(batch) => batch,
                    None => return,
                },
            };
            while merged.len() < most {
                match batches.try_recv() {
                    Ok(batch) => merged.extend(batch),
                    Err(_) => break,
                }
            }
            self.fold_batch(merged).await;
        }
    }
}
