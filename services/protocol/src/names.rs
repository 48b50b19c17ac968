//! The names of the streams, buckets and consumers of one installation,
//! made from its subject prefix: what every part and every permission
//! refers to. Their settings, and creating them, are the client's.

use std::time::Duration;

use crate::subjects::Subjects;

/// Ack wait of the queue consumers the registry creates (a worker that
/// creates one uses its own `ack_wait`).
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Deliveries of a job before it is given up, for the queue consumers the
/// registry creates.
pub const DEFAULT_MAX_DELIVER: i64 = 5;

/// How long the records of ended jobs are kept unless told otherwise.
pub const DEFAULT_JOB_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The names of one installation's streams, buckets and consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The subjects of the installation.
    pub subjects: Subjects,
}

impl Names {
    /// The names of the installation under `subjects`.
    pub fn new(subjects: Subjects) -> Self {
        Self { subjects }
    }

    fn stream_name(&self, what: &str) -> String {
        format!("{}_{what}", self.subjects.prefix().to_uppercase())
    }

    fn bucket_name(&self, what: &str) -> String {
        format!("{}_{what}", self.subjects.prefix())
    }

    /// `SHOAL_JOBS`: submissions.
    pub fn jobs_stream(&self) -> String {
        self.stream_name("JOBS")
    }

    /// `SHOAL_SCHEDULES`: delayed and recurring jobs, written by operators only.
    pub fn schedules_stream(&self) -> String {
        self.stream_name("SCHEDULES")
    }

    /// `SHOAL_EVENTS`: job and worker events.
    pub fn events_stream(&self) -> String {
        self.stream_name("EVENTS")
    }

    /// `SHOAL_HEARTBEATS`: the last heartbeat of each worker.
    pub fn heartbeats_stream(&self) -> String {
        self.stream_name("HEARTBEATS")
    }

    /// `SHOAL_LOGS`: job output.
    pub fn logs_stream(&self) -> String {
        self.stream_name("LOGS")
    }

    /// `SHOAL_DEAD`: dead letters.
    pub fn dead_stream(&self) -> String {
        self.stream_name("DEAD")
    }

    /// `shoal_jobs`.
    pub fn jobs_bucket(&self) -> String {
        self.bucket_name("jobs")
    }

    /// `shoal_workers`.
    pub fn workers_bucket(&self) -> String {
        self.bucket_name("workers")
    }

    /// `shoal_pools`.
    pub fn pools_bucket(&self) -> String {
        self.bucket_name("pools")
    }

    /// `shoal_names`: which worker id holds a name in a group.
    pub fn names_bucket(&self) -> String {
        self.bucket_name("names")
    }

    /// `shoal_supervisors`: the state of each pool's local supervisor.
    pub fn supervisors_bucket(&self) -> String {
        self.bucket_name("supervisors")
    }

    /// `shoal_workflows`: each workflow's graph.
    pub fn workflows_bucket(&self) -> String {
        self.bucket_name("workflows")
    }

    /// `shoal_limits`: the slots of concurrency keys and the starts of rate limits.
    pub fn limits_bucket(&self) -> String {
        self.bucket_name("limits")
    }

    /// The name of every bucket.
    pub fn bucket_names(&self) -> Vec<String> {
        vec![
            self.jobs_bucket(),
            self.workers_bucket(),
            self.pools_bucket(),
            self.names_bucket(),
            self.supervisors_bucket(),
            self.workflows_bucket(),
            self.limits_bucket(),
        ]
    }

    /// The name of the durable consumer shared by every worker of a queue.
    /// `~` cannot appear in a token, so no two queues share a name.
    pub fn queue_consumer_name(
        &self,
        group: &str,
        queue: &str,
        priority: crate::Priority,
    ) -> String {
        match priority.suffix() {
            Some(suffix) => format!("jobs~{group}~{queue}~{suffix}"),
            None => format!("jobs~{group}~{queue}"),
        }
    }

    /// The name of the consumer of the jobs routed to one worker tag set of a
    /// queue. Group and queue hold no `~`; the key comes last, so names never collide.
    pub fn route_consumer_name(&self, group: &str, queue: &str, key: &str) -> String {
        format!("route~{group}~{queue}~{key}")
    }

    /// Every consumer the workers of `pool` (of `group`) read jobs from, as
    /// KEDA and the supervisor measure a pool's backlog: each queue at every
    /// priority, and the route of the pool's tag set when it has tags; in
    /// `_system` too for a system pool.
    pub fn pool_consumers(&self, group: &str, pool: &crate::resource::PoolSection) -> Vec<String> {
        let mut groups = vec![group.to_string()];
        if pool.system && group != crate::SYSTEM_GROUP {
            groups.push(crate::SYSTEM_GROUP.to_string());
        }
        let mut names = Vec::new();
        for group in &groups {
            for queue in &pool.queues {
                for priority in crate::Priority::ORDER {
                    names.push(self.queue_consumer_name(group, queue, priority));
                }
                if !pool.tags.is_empty() {
                    let key = crate::tags::tag_set_key(&pool.tags);
                    names.push(self.route_consumer_name(group, queue, &key));
                }
            }
        }
        names
    }
}

/// A consumer of the jobs stream that workers read from, as its name tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConsumer {
    /// The group of its jobs.
    pub group: String,
    /// Their queue.
    pub queue: String,
    /// Their priority; `None` for the route of a worker tag set.
    pub priority: Option<crate::Priority>,
    /// The tags of the route's worker tag set; empty for a queue consumer.
    pub tags: Vec<String>,
}

impl JobConsumer {
    /// What the name of a queue consumer (`jobs~<group>~<queue>[~<priority>]`)
    /// or route consumer (`route~<group>~<queue>~<key>`) tells; `None` for
    /// another consumer (the projector's, say).
    pub fn parse(name: &str) -> Option<Self> {
        let mut parts = name.splitn(4, '~');
        let kind = parts.next()?;
        let group = parts.next()?.to_string();
        let queue = parts.next()?.to_string();
        let rest = parts.next();
        let (priority, tags) = match (kind, rest) {
            ("jobs", None) => (Some(crate::Priority::Normal), Vec::new()),
            ("jobs", Some(suffix)) => (Some(suffix.parse().ok()?), Vec::new()),
            ("route", Some(key)) => (None, crate::tags::tags_of_key(key)),
            _ => return None,
        };
        Some(Self {
            group,
            queue,
            priority,
            tags,
        })
    }

    /// Its `priority` label: the priority, or `routed` for a route.
    pub fn priority_label(&self) -> &'static str {
        self.priority.map_or("routed", crate::Priority::as_str)
    }

    /// Its `tags` label: the route's tags joined by commas; empty for a queue consumer.
    pub fn tags_label(&self) -> String {
        self.tags.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Priority;

    #[test]
    fn queue_and_route_consumer_names_read_back() {
        let names = Names::new(Subjects::default());
        for priority in Priority::ORDER {
            let name = names.queue_consumer_name("acme", "video", priority);
            let parsed = JobConsumer::parse(&name).expect("a queue consumer");
            assert_eq!(
                (
                    parsed.group.as_str(),
                    parsed.queue.as_str(),
                    parsed.priority
                ),
                ("acme", "video", Some(priority))
            );
        }
        let route = JobConsumer::parse(&names.route_consumer_name("acme", "video", "gpu~ssd"))
            .expect("a route consumer");
        assert_eq!((route.group.as_str(), route.priority), ("acme", None));
        assert_eq!(
            (route.priority_label(), route.tags_label().as_str()),
            ("routed", "gpu,ssd")
        );
        assert_eq!(JobConsumer::parse("projector"), None);
        assert_eq!(JobConsumer::parse("jobs~acme~video~urgent"), None);
        assert_eq!(JobConsumer::parse("route~acme~video"), None);
    }
}
