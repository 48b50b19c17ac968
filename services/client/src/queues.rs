//! What each queue holds now, read from the jobs stream's consumers: the
//! jobs waiting or running on it and the age of the oldest one no worker
//! has taken yet. The registry's metrics and the dashboard read it alike.

use futures_util::StreamExt;
use serde::Serialize;
use shoal_protocol::names::JobConsumer;

use crate::client::Client;
use crate::error::ClientError;

/// One queue consumer's figures: a priority of a queue, or one tag set's route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueFigures {
    /// Which consumer: group, queue, priority (none for a route) and tags.
    #[serde(skip)]
    pub consumer: JobConsumer,
    /// Its group.
    pub group: String,
    /// Its queue.
    pub queue: String,
    /// Its priority, or `routed` for a tag set's route.
    pub priority: &'static str,
    /// The route's tags, comma-separated; empty for a queue consumer.
    pub tags: String,
    /// Jobs waiting or running (`num_pending + num_ack_pending`, as KEDA reads it).
    pub depth: u64,
    /// Jobs no worker has taken yet.
    pub waiting: u64,
    /// Age in seconds of the oldest job no worker has taken yet (0 when none waits).
    pub oldest_seconds: f64,
}

impl Client {
    /// The figures of every queue consumer the login may list.
    pub async fn queue_figures(&self) -> Result<Vec<QueueFigures>, ClientError> {
        let failed = |err: &dyn std::fmt::Display| {
            ClientError::nats("cannot read the queues' consumers", err.to_string())
        };
        let stream = self
            .jetstream()
            .get_stream_no_info(self.layout().jobs_stream())
            .await
            .map_err(|err| failed(&err))?;
        let mut consumers = stream.consumers();
        let mut figures = Vec::new();
        while let Some(info) = consumers.next().await {
            let info = info.map_err(|err| failed(&err))?;
            let Some(consumer) = JobConsumer::parse(&info.name) else {
                continue;
            };
            let oldest_seconds = match info.num_pending {
                0 => 0.0,
                _ => {
                    let filter = &info.config.filter_subject;
                    let next = info.delivered.stream_sequence + 1;
                    match stream.get_first_raw_message_by_subject(filter, next).await {
                        Ok(message) => (time::OffsetDateTime::now_utc() - message.time)
                            .as_seconds_f64()
                            .max(0.0),
                        Err(_) => 0.0,
                    }
                }
            };
            figures.push(QueueFigures {
                group: consumer.group.clone(),
                queue: consumer.queue.clone(),
                priority: consumer.priority_label(),
                tags: consumer.tags_label(),
                depth: info.num_pending + info.num_ack_pending as u64,
                waiting: info.num_pending,
                oldest_seconds,
                consumer,
            });
        }
        Ok(figures)
    }
}
