//! What each queue holds now, read from the jobs stream's consumers: the
//! jobs waiting or running on it and the age of the oldest one no worker
//! has taken yet. The registry's metrics and the dashboard read it alike,
//! and the registry answers it per group (`queue.list`) to those who may not
//! list consumers.

use futures_util::StreamExt;
use shoal_protocol::api::ApiOp;
use shoal_protocol::names::JobConsumer;
use shoal_protocol::registry::{ListQueues, QueueFigures};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// The figures of every queue consumer the login may list.
    pub async fn queue_figures(&self) -> Result<Vec<QueueFigures>, ClientError> {
        self.queue_figures_of(None).await
    }

    /// The figures of `group`'s queue consumers (every group's, without it).
    pub async fn queue_figures_of(
        &self,
        group: Option<&str>,
    ) -> Result<Vec<QueueFigures>, ClientError> {
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
            if group.is_some_and(|group| group != consumer.group) {
                continue;
            }
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
                priority: consumer.priority_label().to_string(),
                tags: consumer.tags_label(),
                group: consumer.group,
                queue: consumer.queue,
                depth: info.num_pending + info.num_ack_pending as u64,
                waiting: info.num_pending,
                oldest_seconds,
            });
        }
        Ok(figures)
    }

    /// The figures of `group`'s queues (every group's, without it), read by
    /// the registry: what a login that may not list consumers reads.
    pub async fn queue_list(&self, group: Option<&str>) -> Result<Vec<QueueFigures>, ClientError> {
        let op = ApiOp::QueueList(group.map(str::to_string));
        self.request(&op, &ListQueues::default()).await
    }
}
