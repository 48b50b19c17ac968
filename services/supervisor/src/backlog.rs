//! The backlog of a pool, as KEDA reads it: `num_pending + num_ack_pending`
//! summed over the consumers its workers read (each queue at every priority,
//! and the route of the pool's tag set when it has tags). A consumer that
//! does not exist yet holds nothing.

use async_nats::jetstream::{self, context::ConsumerInfoErrorKind};
use shoal_client::streams::Layout;

use crate::pool::PoolPlan;
use crate::SupervisorError;

/// Reads the backlog of one pool's consumers.
#[derive(Debug, Clone)]
pub struct Backlog {
    stream: String,
    consumers: Vec<String>,
}

impl Backlog {
    /// The consumers of `plan`'s queues in `layout`.
    pub fn new(layout: &Layout, plan: &PoolPlan) -> Self {
        Self {
            stream: layout.jobs_stream(),
            consumers: consumer_names(layout, plan),
        }
    }

    /// The names of the consumers read.
    pub fn consumers(&self) -> &[String] {
        &self.consumers
    }

    /// The jobs waiting or running on the consumers now.
    pub async fn read(&self, js: &jetstream::Context) -> Result<u64, SupervisorError> {
        let nats = |err: String| SupervisorError::Nats(format!("backlog: {err}"));
        let stream = js
            .get_stream(&self.stream)
            .await
            .map_err(|err| nats(err.to_string()))?;
        let mut total = 0;
        for name in &self.consumers {
            match stream.consumer_info(name).await {
                Ok(info) => total += info.num_pending + info.num_ack_pending as u64,
                Err(err) if err.kind() == ConsumerInfoErrorKind::NotFound => {}
                Err(err) => return Err(nats(format!("consumer {name}: {err}"))),
            }
        }
        Ok(total)
    }
}

/// Every consumer a replica of `plan` reads jobs from.
pub fn consumer_names(layout: &Layout, plan: &PoolPlan) -> Vec<String> {
    layout.pool_consumers(&plan.group, &plan.section)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::Subjects;

    #[test]
    fn the_consumers_are_those_keda_reads_for_each_queue_and_priority() {
        let yaml = "name: video\nversion: v1\ntype: pool\npool:\n  queues: [video, thumbs]\n  group: acme\n  tags: [gpu]\n";
        let plan = PoolPlan::from_yaml(yaml, "default").expect("a plan");
        let names = consumer_names(&Layout::new(Subjects::default()), &plan);
        assert_eq!(
            names,
            [
                "jobs~acme~video~high",
                "jobs~acme~video",
                "jobs~acme~video~low",
                "route~acme~video~gpu",
                "jobs~acme~thumbs~high",
                "jobs~acme~thumbs",
                "jobs~acme~thumbs~low",
                "route~acme~thumbs~gpu",
            ]
        );
    }
}
