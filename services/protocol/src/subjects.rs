//! The subjects Shoal publishes on, all under one configurable prefix.

use crate::token::{validate_token, InvalidToken};

/// Builds and reads the subjects of one Shoal installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

/// Where a message came from, read back from its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAndId {
    /// The group token.
    pub group: String,
    /// The second token: a queue for jobs, an id for events and heartbeats.
    pub id: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self {
            prefix: "shoal".to_string(),
        }
    }
}

impl Subjects {
    /// Subjects under `prefix`, which must itself be a valid token.
    pub fn new(prefix: &str) -> Result<Self, InvalidToken> {
        validate_token("prefix", prefix)?;
        Ok(Self {
            prefix: prefix.to_string(),
        })
    }

    /// The prefix, e.g. `shoal`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `shoal.jobs.<group>.<queue>`: where jobs are submitted.
    pub fn jobs(&self, group: &str, queue: &str) -> String {
        format!("{}.jobs.{group}.{queue}", self.prefix)
    }

    /// `shoal.jobs.>`: every submission.
    pub fn all_jobs(&self) -> String {
        format!("{}.jobs.>", self.prefix)
    }

    /// `shoal.sched.<group>.<queue>.<schedule_id>`: a delayed or recurring job,
    /// published by the server to `shoal.jobs.<group>.<queue>` when due.
    pub fn schedule(&self, group: &str, queue: &str, schedule_id: &str) -> String {
        format!("{}.sched.{group}.{queue}.{schedule_id}", self.prefix)
    }

    /// `shoal.due.<group>.<queue>[.high|.low]`: where the server fires a
    /// schedule's submission; sourced into the jobs stream as
    /// `shoal.jobs.<group>.<queue>[...]`.
    pub fn due(&self, group: &str, queue: &str, priority: crate::Priority) -> String {
        let jobs = self.jobs_with_priority(group, queue, priority);
        let rest = jobs
            .strip_prefix(&format!("{}.jobs.", self.prefix))
            .unwrap_or(&jobs);
        format!("{}.due.{rest}", self.prefix)
    }

    /// `shoal.due.>`: every fired schedule.
    pub fn all_due(&self) -> String {
        format!("{}.due.>", self.prefix)
    }

    /// `shoal.sched.>`: every schedule.
    pub fn all_schedules(&self) -> String {
        format!("{}.sched.>", self.prefix)
    }

    /// `shoal.dead.<group>.<queue>`: jobs given up, with their reason.
    pub fn dead(&self, group: &str, queue: &str) -> String {
        format!("{}.dead.{group}.{queue}", self.prefix)
    }

    /// `shoal.dead.>`: every dead letter.
    pub fn all_dead(&self) -> String {
        format!("{}.dead.>", self.prefix)
    }

    /// `shoal.ctl.<group>.job.<job_id>.cancel`: cancel a job wherever it is.
    pub fn cancel(&self, group: &str, job_id: &str) -> String {
        format!("{}.ctl.{group}.job.{job_id}.cancel", self.prefix)
    }

    /// `shoal.ctl.<group>.job.<job_id>.stop`: tells the worker running a cancelled job to stop it.
    pub fn stop_job(&self, group: &str, job_id: &str) -> String {
        format!("{}.ctl.{group}.job.{job_id}.stop", self.prefix)
    }

    /// `shoal.evt.job.<group>.<job_id>`: the events of one job.
    pub fn job_event(&self, group: &str, job_id: &str) -> String {
        format!("{}.evt.job.{group}.{job_id}", self.prefix)
    }

    /// `shoal.evt.worker.<group>.<worker_id>`: the events of one worker.
    pub fn worker_event(&self, group: &str, worker_id: &str) -> String {
        format!("{}.evt.worker.{group}.{worker_id}", self.prefix)
    }

    /// `shoal.evt.pool.<group>.<pool>`: the decisions and restarts of a pool's supervisor.
    pub fn pool_event(&self, group: &str, pool: &str) -> String {
        format!("{}.evt.pool.{group}.{pool}", self.prefix)
    }

    /// Whether `subject` is a pool supervisor's event.
    pub fn is_pool_event(&self, subject: &str) -> bool {
        subject.starts_with(&format!("{}.evt.pool.", self.prefix))
    }

    /// `shoal.evt.rejected`: notices of messages that could not be read, when
    /// they cannot be tied to a job.
    pub fn rejected(&self) -> String {
        format!("{}.evt.rejected", self.prefix)
    }

    /// `shoal.evt.>`: every event.
    pub fn all_events(&self) -> String {
        format!("{}.evt.>", self.prefix)
    }

    /// `shoal.hb.<group>.<worker_id>`: the heartbeats of one worker.
    pub fn heartbeat(&self, group: &str, worker_id: &str) -> String {
        format!("{}.hb.{group}.{worker_id}", self.prefix)
    }

    /// `shoal.hb.>`: every heartbeat.
    pub fn all_heartbeats(&self) -> String {
        format!("{}.hb.>", self.prefix)
    }

    /// `shoal.logs.<group>.<job_id>`: the output of one job.
    pub fn logs(&self, group: &str, job_id: &str) -> String {
        format!("{}.logs.{group}.{job_id}", self.prefix)
    }

    /// `shoal.logs.>`: all job output.
    pub fn all_logs(&self) -> String {
        format!("{}.logs.>", self.prefix)
    }

    /// Reads `<group>` and `<queue>` from `shoal.jobs.<group>.<queue>` (or
    /// from a routed or fair job's subject).
    pub fn parse_job(&self, subject: &str) -> Result<GroupAndId, InvalidToken> {
        if let Some((group, queue, _)) = self.parse_route(subject) {
            return Ok(GroupAndId { group, id: queue });
        }
        if let Some((place, _)) = self.parse_fair(subject) {
            return Ok(place);
        }
        let (base, _) = self.split_priority(subject);
        self.parse_two_tokens(base, &["jobs"], "queue")
    }

    /// `shoal.route.<group>.<queue>.<tag-set key>`: jobs the dispatcher routed
    /// to the workers with those tags.
    pub fn route(&self, group: &str, queue: &str, key: &str) -> String {
        format!("{}.route.{group}.{queue}.{key}", self.prefix)
    }

    /// `shoal.route.>`: every routed job.
    pub fn all_routes(&self) -> String {
        format!("{}.route.>", self.prefix)
    }

    /// `shoal.fair.<group>.<queue>.<key>`: jobs that take turns with the
    /// other keys of their queue; the registry lets each go in its key's turn.
    pub fn fair(&self, group: &str, queue: &str, key: &str) -> String {
        format!("{}.fair.{group}.{queue}.{key}", self.prefix)
    }

    /// `shoal.fair.>`: every job with a fairness key.
    pub fn all_fair(&self) -> String {
        format!("{}.fair.>", self.prefix)
    }

    /// Reads `<group>`, `<queue>` and the key from a fair job's subject, if it is one.
    pub fn parse_fair(&self, subject: &str) -> Option<(GroupAndId, String)> {
        let (group, queue, key) = self.queue_and_key(subject, "fair")?;
        validate_token("fairness_key", key).ok()?;
        let place = GroupAndId {
            group: group.to_string(),
            id: queue.to_string(),
        };
        Some((place, key.to_string()))
    }

    /// Where a job is submitted: its key's fair subject when it names a
    /// fairness key, else its queue's subject of its priority.
    pub fn submission(
        &self,
        group: &str,
        queue: &str,
        priority: crate::Priority,
        fairness_key: Option<&str>,
    ) -> String {
        match fairness_key {
            Some(key) => self.fair(group, queue, key),
            None => self.jobs_with_priority(group, queue, priority),
        }
    }

    /// `shoal.wf.<group>.<name>`: a workflow's graph, submitted with its jobs.
    pub fn workflow(&self, group: &str, name: &str) -> String {
        format!("{}.wf.{group}.{name}", self.prefix)
    }

    /// `shoal.wf.>`: every workflow's graph.
    pub fn all_workflows(&self) -> String {
        format!("{}.wf.>", self.prefix)
    }

    /// Reads `<group>` and `<name>` from `shoal.wf.<group>.<name>`, if it is one.
    pub fn parse_workflow(&self, subject: &str) -> Option<GroupAndId> {
        subject.strip_prefix(&format!("{}.wf.", self.prefix))?;
        self.parse_two_tokens(subject, &["wf"], "name").ok()
    }

    /// Whether `subject` is a routed job's.
    pub fn is_route(&self, subject: &str) -> bool {
        subject.starts_with(&format!("{}.route.", self.prefix))
    }

    /// Reads `<group>`, `<queue>` and the tag-set key from a routed job's subject.
    pub fn parse_route(&self, subject: &str) -> Option<(String, String, String)> {
        let (group, queue, key) = self.queue_and_key(subject, "route")?;
        Some((group.to_string(), queue.to_string(), key.to_string()))
    }

    /// The valid `<group>` and `<queue>` and the last token of
    /// `shoal.<kind>.<group>.<queue>.<last>`, if the subject is one.
    fn queue_and_key<'a>(
        &self,
        subject: &'a str,
        kind: &str,
    ) -> Option<(&'a str, &'a str, &'a str)> {
        let rest = subject.strip_prefix(&format!("{}.{kind}.", self.prefix))?;
        let mut tokens = rest.split('.');
        let (Some(group), Some(queue), Some(last), None) =
            (tokens.next(), tokens.next(), tokens.next(), tokens.next())
        else {
            return None;
        };
        validate_token("group", group).ok()?;
        validate_token("queue", queue).ok()?;
        Some((group, queue, last))
    }

    /// `shoal.jobs.<group>.<queue>[.high|.low]`: where jobs of a priority are submitted.
    pub fn jobs_with_priority(
        &self,
        group: &str,
        queue: &str,
        priority: crate::Priority,
    ) -> String {
        match priority.suffix() {
            Some(suffix) => format!("{}.{suffix}", self.jobs(group, queue)),
            None => self.jobs(group, queue),
        }
    }

    /// The priority a job subject carries (`normal` when it carries none).
    pub fn job_priority(&self, subject: &str) -> crate::Priority {
        self.split_priority(subject).1
    }

    fn split_priority<'a>(&self, subject: &'a str) -> (&'a str, crate::Priority) {
        // Only a queue's own subject carries a priority: the last token of a
        // routed or fair job's subject is a tag set or a key.
        let of_queue = subject.starts_with(&format!("{}.jobs.", self.prefix));
        if of_queue && subject.split('.').count() == 5 {
            if let Some((base, last)) = subject.rsplit_once('.') {
                if let Ok(priority) = last.parse::<crate::Priority>() {
                    if priority != crate::Priority::Normal {
                        return (base, priority);
                    }
                }
            }
        }
        (subject, crate::Priority::Normal)
    }

    /// Reads `<group>`, `<queue>` and `<schedule_id>` from `shoal.sched.<group>.<queue>.<schedule_id>`.
    pub fn parse_schedule(&self, subject: &str) -> Option<(String, String, String)> {
        let rest = subject.strip_prefix(&format!("{}.sched.", self.prefix))?;
        let mut tokens = rest.split('.');
        let (Some(group), Some(queue), Some(id), None) =
            (tokens.next(), tokens.next(), tokens.next(), tokens.next())
        else {
            return None;
        };
        for (field, token) in [("group", group), ("queue", queue), ("schedule_id", id)] {
            validate_token(field, token).ok()?;
        }
        Some((group.to_string(), queue.to_string(), id.to_string()))
    }

    /// Reads `<group>` and `<queue>` from a dead letter's `shoal.dead.<group>.<queue>`.
    pub fn parse_dead(&self, subject: &str) -> Option<(String, String)> {
        let rest = subject.strip_prefix(&format!("{}.dead.", self.prefix))?;
        let (group, queue) = rest.split_once('.')?;
        validate_token("group", group).ok()?;
        validate_token("queue", queue).ok()?;
        Some((group.to_string(), queue.to_string()))
    }

    /// Whether `subject` is a schedule's.
    pub fn is_schedule(&self, subject: &str) -> bool {
        subject.starts_with(&format!("{}.sched.", self.prefix))
    }

    /// Reads `<group>` and `<job_id>` from `shoal.evt.job.<group>.<job_id>`.
    pub fn parse_job_event(&self, subject: &str) -> Result<GroupAndId, InvalidToken> {
        self.parse_two_tokens(subject, &["evt", "job"], "job_id")
    }

    /// Reads `<group>` and `<worker_id>` from `shoal.evt.worker.<group>.<worker_id>`.
    pub fn parse_worker_event(&self, subject: &str) -> Result<GroupAndId, InvalidToken> {
        self.parse_two_tokens(subject, &["evt", "worker"], "worker_id")
    }

    /// Reads `<group>` and `<worker_id>` from `shoal.hb.<group>.<worker_id>`.
    pub fn parse_heartbeat(&self, subject: &str) -> Result<GroupAndId, InvalidToken> {
        self.parse_two_tokens(subject, &["hb"], "worker_id")
    }

    fn parse_two_tokens(
        &self,
        subject: &str,
        kind: &[&str],
        second: &str,
    ) -> Result<GroupAndId, InvalidToken> {
        let invalid = || InvalidToken {
            field: "subject".to_string(),
            value: subject.to_string(),
        };
        let mut tokens = subject.split('.');
        if tokens.next() != Some(self.prefix.as_str()) {
            return Err(invalid());
        }
        for expected in kind {
            if tokens.next() != Some(expected) {
                return Err(invalid());
            }
        }
        let (Some(group), Some(id), None) = (tokens.next(), tokens.next(), tokens.next()) else {
            return Err(invalid());
        };
        validate_token("group", group)?;
        validate_token(second, id)?;
        Ok(GroupAndId {
            group: group.to_string(),
            id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_queues_own_subject_carries_a_priority() {
        let subjects = Subjects::default();
        let high = crate::Priority::High;
        assert_eq!(
            subjects.job_priority(&subjects.jobs_with_priority("acme", "mail", high)),
            high
        );
        for subject in [
            subjects.fair("acme", "mail", "high"),
            subjects.route("acme", "mail", "high"),
        ] {
            assert_eq!(subjects.job_priority(&subject), crate::Priority::Normal);
        }
        let (place, key) = subjects
            .parse_fair(&subjects.fair("acme", "mail", "high"))
            .expect("a fair subject");
        assert_eq!(
            (place.group.as_str(), place.id.as_str(), key.as_str()),
            ("acme", "mail", "high")
        );
        assert!(subjects.parse_fair("shoal.fair.acme.mail").is_none());
        assert!(subjects.parse_fair("shoal.fair.acme.mail.a.b").is_none());
    }

    #[test]
    fn a_job_subject_reads_back_its_group_and_queue() {
        let subjects = Subjects::default();
        let parsed = subjects
            .parse_job(&subjects.jobs("acme", "video"))
            .expect("valid");
        assert_eq!(
            parsed,
            GroupAndId {
                group: "acme".into(),
                id: "video".into()
            }
        );
    }

    #[test]
    fn a_subject_with_too_many_or_too_few_tokens_is_refused() {
        let subjects = Subjects::default();
        assert!(subjects.parse_job("shoal.jobs.acme").is_err());
        assert!(subjects.parse_job("shoal.jobs.acme.video.extra").is_err());
        assert!(subjects.parse_job("shoal.jobs.acme.video.normal").is_err());
        let high = subjects.jobs_with_priority("acme", "video", crate::Priority::High);
        assert_eq!(high, "shoal.jobs.acme.video.high");
        assert_eq!(subjects.parse_job(&high).expect("valid").id, "video");
        assert_eq!(subjects.job_priority(&high), crate::Priority::High);
        assert!(subjects.parse_job("other.jobs.acme.video").is_err());
    }

    #[test]
    fn a_dead_letter_subject_reads_back_its_group_and_queue() {
        let subjects = Subjects::default();
        assert_eq!(
            subjects.parse_dead(&subjects.dead("acme", "video")),
            Some(("acme".to_string(), "video".to_string()))
        );
        assert_eq!(subjects.parse_dead("shoal.dead.acme.video.extra"), None);
        assert_eq!(subjects.parse_dead("shoal.dead.acme"), None);
    }
}
