//! The roles of a group, as the subjects a NATS user may publish and
//! subscribe to. The server enforces them: nothing here is checked by Shoal
//! itself, so a client that ignores Shoal's code is fenced all the same.

use std::fmt;
use std::str::FromStr;

use crate::names::Names;
use crate::tags::{tag_set_key, UNTAGGED_KEY};
use crate::Priority;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read the group's jobs, workers, pools and logs.
    Read,
    /// Submit jobs to the group, and read them.
    Write,
    /// Manage the group's workers and pools and cancel its jobs; also write.
    Admin,
    /// Take the group's jobs and report on them: a worker process.
    Worker,
    /// Everything, in every group, `_system` included; the services' role.
    Operator,
}

impl Role {
    /// Every role, in the order the docs list them.
    pub const ALL: [Role; 5] = [
        Role::Read,
        Role::Write,
        Role::Admin,
        Role::Worker,
        Role::Operator,
    ];

    /// Its name, as `--role` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
            Role::Worker => "worker",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                format!("role: `{text}` is not a role (read, write, admin, worker or operator)")
            })
    }
}

/// Who the grant is for: the group, and for a worker what it serves.
#[derive(Debug, Clone)]
pub struct Grantee {
    /// The user's name; its reply subjects are `_INBOX.<user>.>`.
    pub user: String,
    /// The group.
    pub group: String,
    /// The queues a worker serves.
    pub queues: Vec<String>,
    /// A worker's tags.
    pub tags: Vec<String>,
    /// Whether a worker also serves `_system`.
    pub system: bool,
}

/// The subjects a user may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether it may answer requests sent to it (a worker's control endpoints).
    pub allow_responses: bool,
}

/// The reply-subject prefix of a user: its own, so no one reads another's replies.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX.{user}")
}

/// What `role` grants to `grantee` in the installation laid out by `layout`.
pub fn grant(layout: &Names, role: Role, grantee: &Grantee) -> Grant {
    if role == Role::Operator {
        return Grant {
            publish: vec![">".into()],
            subscribe: vec![">".into()],
            allow_responses: true,
        };
    }
    let mut grant = Grant {
        subscribe: vec![format!("{}.>", inbox_prefix(&grantee.user))],
        ..Grant::default()
    };
    grant.publish.extend(opening(layout));
    let group = grantee.group.as_str();
    match role {
        Role::Read => reading(layout, group, &mut grant),
        Role::Write => {
            reading(layout, group, &mut grant);
            writing(layout, group, &mut grant);
        }
        Role::Admin => {
            reading(layout, group, &mut grant);
            writing(layout, group, &mut grant);
            administering(layout, group, &mut grant);
        }
        Role::Worker => {
            working(layout, grantee, group, &mut grant);
            if grantee.system && group != crate::SYSTEM_GROUP {
                working(layout, grantee, crate::SYSTEM_GROUP, &mut grant);
            }
            grant.allow_responses = true;
        }
        Role::Operator => unreachable!("handled above"),
    }
    grant
}

/// Looking up the streams and buckets, as every part does when it starts.
fn opening(layout: &Names) -> Vec<String> {
    let mut streams = vec![
        layout.schedules_stream(),
        layout.jobs_stream(),
        layout.events_stream(),
        layout.heartbeats_stream(),
        layout.logs_stream(),
        layout.dead_stream(),
    ];
    streams.extend(
        layout
            .bucket_names()
            .iter()
            .map(|bucket| format!("KV_{bucket}")),
    );
    streams
        .into_iter()
        .map(|stream| format!("$JS.API.STREAM.INFO.{stream}"))
        .collect()
}

/// A KV read of the group's keys, through the direct-get subject that names the key.
fn direct_get(bucket: &str, group: &str) -> String {
    format!("$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{group}.>")
}

fn reading(layout: &Names, group: &str, grant: &mut Grant) {
    let prefix = layout.subjects.prefix();
    let jobs = layout.jobs_bucket();
    grant.publish.extend([
        direct_get(&jobs, group),
        direct_get(&layout.workers_bucket(), group),
        direct_get(&layout.pools_bucket(), group),
        direct_get(&layout.supervisors_bucket(), group),
        direct_get(&layout.workflows_bucket(), group),
        direct_get(&layout.limits_bucket(), group),
        // No consumer of their own: a consumer can be told to deliver to
        // any subject, which permissions do not see. Logs come through the
        // registry; waiting for a job is reading its record.
        format!("{prefix}.api.job.get.{group}.*"),
        format!("{prefix}.api.job.logs.{group}.*"),
        format!("{prefix}.api.worker.get.{group}.*"),
        format!("{prefix}.api.worker.list.{group}"),
        format!("{prefix}.api.resource.list.{group}"),
        format!("{prefix}.api.job.list.{group}"),
        format!("{prefix}.api.queue.list.{group}"),
    ]);
}

/// Submitting: the group's queue subjects only. Schedules are not granted:
/// the server takes a schedule's target and source from its headers, which
/// permissions do not see, so a schedule could submit into another group
/// or copy its jobs.
fn writing(layout: &Names, group: &str, grant: &mut Grant) {
    let prefix = layout.subjects.prefix();
    grant.publish.extend([
        format!("{prefix}.jobs.{group}.>"),
        // Jobs that take turns by their fairness key.
        format!("{prefix}.fair.{group}.>"),
        // A workflow's graph, in the atomic batch of its jobs.
        layout.subjects.workflow(group, "*"),
        // The last submission on one of the group's own queues: how a
        // submitter tells that another subject's message holds its id.
        format!(
            "$JS.API.DIRECT.GET.{}.{prefix}.jobs.{group}.>",
            layout.jobs_stream()
        ),
        format!(
            "$JS.API.DIRECT.GET.{}.{prefix}.fair.{group}.>",
            layout.jobs_stream()
        ),
    ]);
}

fn administering(layout: &Names, group: &str, grant: &mut Grant) {
    let prefix = layout.subjects.prefix();
    grant.publish.extend([
        format!("{prefix}.api.worker.create.{group}"),
        format!("{prefix}.api.worker.update.{group}.*"),
        format!("{prefix}.api.worker.delete.{group}.*"),
        format!("{prefix}.api.resource.apply.{group}"),
        format!("{prefix}.api.resource.delete.{group}"),
        layout.subjects.cancel(group, "*"),
        format!("{prefix}.ctl.{group}.worker.*.*"),
        // The limit of a concurrency key (`shoal limit set`).
        limit_writes(layout, group),
    ]);
}

/// Writing the group's keys of `shoal_limits`, a bucket that allows no
/// rollup, purge or TTL, so that no header reaches another group's keys.
fn limit_writes(layout: &Names, group: &str) -> String {
    format!("$KV.{}.{group}.>", layout.limits_bucket())
}

/// A worker of `group`: its queues' consumers (each by name, so no other
/// queue's jobs can be pulled; it does not create them, since a creation
/// could make a consumer deliver anywhere: applying a pool or worker
/// resource makes the registry create them), its events, heartbeats and
/// logs, its control endpoints and the job records it checks.
fn working(layout: &Names, grantee: &Grantee, group: &str, grant: &mut Grant) {
    let prefix = layout.subjects.prefix();
    let jobs_stream = layout.jobs_stream();
    let route_key = if grantee.tags.is_empty() {
        UNTAGGED_KEY.to_string()
    } else {
        tag_set_key(&grantee.tags)
    };
    for queue in &grantee.queues {
        let mut consumers: Vec<String> = Vec::new();
        if grantee.tags.is_empty() {
            for priority in Priority::ORDER {
                consumers.push(layout.queue_consumer_name(group, queue, priority));
            }
        }
        consumers.push(layout.route_consumer_name(group, queue, &route_key));
        for name in consumers {
            grant.publish.extend([
                format!("$JS.API.CONSUMER.INFO.{jobs_stream}.{name}"),
                format!("$JS.API.CONSUMER.MSG.NEXT.{jobs_stream}.{name}"),
                format!("$JS.ACK.{jobs_stream}.{name}.>"),
            ]);
        }
    }
    grant.publish.extend([
        format!("{prefix}.evt.job.{group}.*"),
        format!("{prefix}.evt.worker.{group}.*"),
        layout.subjects.rejected(),
        format!("{prefix}.hb.{group}.*"),
        format!("{prefix}.logs.{group}.*"),
        format!("{prefix}.dead.{group}.*"),
        direct_get(&layout.jobs_bucket(), group),
        direct_get(&layout.workers_bucket(), group),
        // Concurrency slots and rate-limit starts, taken with compare-and-set.
        direct_get(&layout.limits_bucket(), group),
        limit_writes(layout, group),
    ]);
    grant.subscribe.extend([
        layout.subjects.stop_job(group, "*"),
        format!("{prefix}.ctl.{group}.worker.*.*"),
        "$SRV.*".into(),
        format!("$SRV.*.{}", crate::registry::WORKER_SERVICE_NAME),
        format!("$SRV.*.{}.*", crate::registry::WORKER_SERVICE_NAME),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Subjects;

    fn grantee(group: &str) -> Grantee {
        Grantee {
            user: "alice".into(),
            group: group.into(),
            queues: vec!["video".into()],
            tags: vec![],
            system: false,
        }
    }

    fn grant_of(role: Role) -> Grant {
        grant(&Names::new(Subjects::default()), role, &grantee("acme"))
    }

    #[test]
    fn every_subject_of_a_group_role_names_the_group_or_is_shared_plumbing() {
        for role in [Role::Read, Role::Write, Role::Admin, Role::Worker] {
            let grant = grant_of(role);
            for subject in grant.publish.iter().chain(&grant.subscribe) {
                let scoped = subject.contains(".acme.")
                    || subject.ends_with(".acme")
                    || subject.contains("~acme~")
                    || subject.starts_with("$JS.API.STREAM.INFO.")
                    || subject.starts_with("$SRV.")
                    || subject == "shoal.evt.rejected"
                    || subject == "_INBOX.alice.>";
                assert!(scoped, "{role}: {subject} reaches beyond group acme");
            }
        }
    }

    #[test]
    fn roles_grow_from_read_to_admin_and_workers_stand_apart() {
        let (read, write, admin, worker) = (
            grant_of(Role::Read),
            grant_of(Role::Write),
            grant_of(Role::Admin),
            grant_of(Role::Worker),
        );
        assert!(read.publish.iter().all(|s| write.publish.contains(s)));
        assert!(write.publish.iter().all(|s| admin.publish.contains(s)));
        assert!(!read.publish.contains(&"shoal.jobs.acme.>".to_string()));
        assert!(write.publish.contains(&"shoal.jobs.acme.>".to_string()));
        assert!(!write
            .publish
            .contains(&"shoal.ctl.acme.job.*.cancel".to_string()));
        assert!(worker
            .publish
            .contains(&"$JS.API.CONSUMER.MSG.NEXT.SHOAL_JOBS.jobs~acme~video".to_string()));
        assert!(!worker.publish.iter().any(|s| s.starts_with("shoal.jobs.")));
        assert!(!admin
            .publish
            .iter()
            .any(|s| s.contains("CONSUMER.MSG.NEXT.SHOAL_JOBS")));
        assert_eq!(grant_of(Role::Operator).publish, vec![">".to_string()]);
    }

    #[test]
    fn roles_are_read_by_name() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root"
            .parse::<Role>()
            .expect_err("no such role")
            .starts_with("role:"));
    }
}
