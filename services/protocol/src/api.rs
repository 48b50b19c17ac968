//! The operations of the registry's admin API, typed once: each has one
//! formatter ([`ApiOp::subject`]) and one parser ([`ApiOp::parse`]).
//!
//! They live under `<prefix>.api.` (`job.get.<group>.<id>`,
//! `worker.update[.<group>].<id>`, `resource.apply[.<group>]`, ...), except
//! cancel, which lives beside the other control subjects of a job
//! (`<prefix>.ctl.<group>.job.<id>.cancel`). An admin operation has a form
//! scoped to one group (the group token after the verb), which roles grant;
//! its unscoped form reaches every group and belongs to operators.

use thiserror::Error;

use crate::key::Key;
use crate::subjects::Subjects;
use crate::token::validate_token;

/// The group an admin operation is scoped to; `None`: every group (operators).
pub type Scope = Option<String>;

/// One operation of the admin API, with what its subject names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiOp {
    /// `job.get.<group>.<job_id>`: a job's record.
    JobGet(Key),
    /// `job.logs.<group>.<job_id>`: a job's output after a stream sequence.
    JobLogs(Key),
    /// `<prefix>.ctl.<group>.job.<job_id>.cancel`: cancel a job wherever it is.
    JobCancel(Key),
    /// `worker.create[.<group>]`.
    WorkerCreate(Scope),
    /// `worker.get[.<group>].<id>`.
    WorkerGet(Scope, String),
    /// `worker.list[.<group>]`.
    WorkerList(Scope),
    /// `worker.update[.<group>].<id>`.
    WorkerUpdate(Scope, String),
    /// `worker.delete[.<group>].<id>`.
    WorkerDelete(Scope, String),
    /// `resource.apply[.<group>]`.
    ResourceApply(Scope),
    /// `resource.list[.<group>]`.
    ResourceList(Scope),
    /// `resource.delete[.<group>]`.
    ResourceDelete(Scope),
    /// `job.list[.<group>]`: a page of jobs, the one changed last first.
    JobList(Scope),
    /// `queue.list[.<group>]`: the queues' figures.
    QueueList(Scope),
}

/// The kinds of operation, as the micro service names its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Job,
    Scoped,
    ScopedWithId,
}

/// Every verb: its name under `api.`, its endpoint name, and its kind.
const VERBS: [(&str, &str, Kind); 13] = [
    ("job.get", "job-get", Kind::Job),
    ("job.logs", "job-logs", Kind::Job),
    ("job.cancel", "job-cancel", Kind::Job),
    ("worker.create", "worker-create", Kind::Scoped),
    ("worker.get", "worker-get", Kind::ScopedWithId),
    ("worker.list", "worker-list", Kind::Scoped),
    ("worker.update", "worker-update", Kind::ScopedWithId),
    ("worker.delete", "worker-delete", Kind::ScopedWithId),
    ("resource.apply", "resource-apply", Kind::Scoped),
    ("resource.list", "resource-list", Kind::Scoped),
    ("resource.delete", "resource-delete", Kind::Scoped),
    ("job.list", "job-list", Kind::Scoped),
    ("queue.list", "queue-list", Kind::Scoped),
];

/// A subject that is no operation of the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("subject: `{0}` is no operation of the admin API")]
pub struct NotAnOperation(pub String);

/// An endpoint of the micro service: its name, and the subject pattern it
/// serves under `<prefix>.<under>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its name in `$SRV` discovery, e.g. `worker-get-in-group`.
    pub name: String,
    /// `api` or `ctl`.
    pub under: &'static str,
    /// Its subject pattern below that, e.g. `worker.get.*.*`.
    pub pattern: String,
}

impl ApiOp {
    /// The subject of the operation in the installation of `subjects`.
    pub fn subject(&self, subjects: &Subjects) -> String {
        let prefix = subjects.prefix();
        let verb = self.verb();
        match self {
            Self::JobCancel(key) => subjects.cancel(key.group(), key.id()),
            Self::JobGet(key) | Self::JobLogs(key) => {
                format!("{prefix}.api.{verb}.{}.{}", key.group(), key.id())
            }
            Self::WorkerCreate(scope)
            | Self::WorkerList(scope)
            | Self::ResourceApply(scope)
            | Self::ResourceList(scope)
            | Self::ResourceDelete(scope)
            | Self::JobList(scope)
            | Self::QueueList(scope) => match scope {
                Some(group) => format!("{prefix}.api.{verb}.{group}"),
                None => format!("{prefix}.api.{verb}"),
            },
            Self::WorkerGet(scope, id)
            | Self::WorkerUpdate(scope, id)
            | Self::WorkerDelete(scope, id) => match scope {
                Some(group) => format!("{prefix}.api.{verb}.{group}.{id}"),
                None => format!("{prefix}.api.{verb}.{id}"),
            },
        }
    }

    /// Reads the operation a request came on; every token it names is valid.
    pub fn parse(subjects: &Subjects, subject: &str) -> Result<Self, NotAnOperation> {
        let refused = || NotAnOperation(subject.chars().take(256).collect());
        let tokens: Vec<&str> = subject.split('.').collect();
        let valid = |field: &str, token: &str| validate_token(field, token).map_err(|_| refused());
        match tokens.as_slice() {
            [prefix, "ctl", group, "job", id, "cancel"] if *prefix == subjects.prefix() => {
                valid("group", group)?;
                valid("id", id)?;
                Ok(Self::JobCancel(Key::new(*group, *id)))
            }
            [prefix, "api", noun, verb, rest @ ..] if *prefix == subjects.prefix() => {
                let name = format!("{noun}.{verb}");
                let (_, _, kind) = VERBS
                    .iter()
                    .find(|(known, _, _)| *known == name)
                    .ok_or_else(refused)?;
                for token in rest {
                    valid("token", token)?;
                }
                let rest: Vec<String> = rest.iter().map(|token| token.to_string()).collect();
                Self::of(&name, *kind, rest).ok_or_else(refused)
            }
            _ => Err(refused()),
        }
    }

    fn of(name: &str, kind: Kind, rest: Vec<String>) -> Option<Self> {
        let mut rest = rest.into_iter();
        let (first, second, extra) = (rest.next(), rest.next(), rest.next());
        if extra.is_some() {
            return None;
        }
        let op = match (kind, first, second) {
            (Kind::Job, Some(group), Some(id)) if name != "job.cancel" => {
                let key = Key::new(group, id);
                match name {
                    "job.get" => Self::JobGet(key),
                    _ => Self::JobLogs(key),
                }
            }
            (Kind::Scoped, scope, None) => match name {
                "worker.create" => Self::WorkerCreate(scope),
                "worker.list" => Self::WorkerList(scope),
                "resource.apply" => Self::ResourceApply(scope),
                "resource.list" => Self::ResourceList(scope),
                "job.list" => Self::JobList(scope),
                "queue.list" => Self::QueueList(scope),
                _ => Self::ResourceDelete(scope),
            },
            (Kind::ScopedWithId, Some(first), second) => {
                let (scope, id) = match second {
                    Some(id) => (Some(first), id),
                    None => (None, first),
                };
                match name {
                    "worker.get" => Self::WorkerGet(scope, id),
                    "worker.update" => Self::WorkerUpdate(scope, id),
                    _ => Self::WorkerDelete(scope, id),
                }
            }
            _ => return None,
        };
        Some(op)
    }

    /// Its verb, e.g. `worker.get`.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::JobGet(_) => "job.get",
            Self::JobLogs(_) => "job.logs",
            Self::JobCancel(_) => "job.cancel",
            Self::WorkerCreate(_) => "worker.create",
            Self::WorkerGet(..) => "worker.get",
            Self::WorkerList(_) => "worker.list",
            Self::WorkerUpdate(..) => "worker.update",
            Self::WorkerDelete(..) => "worker.delete",
            Self::ResourceApply(_) => "resource.apply",
            Self::ResourceList(_) => "resource.list",
            Self::ResourceDelete(_) => "resource.delete",
            Self::JobList(_) => "job.list",
            Self::QueueList(_) => "queue.list",
        }
    }

    /// The group the operation's subject is scoped to: a job's own group, a
    /// scoped admin operation's group, `None` for an unscoped one.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Self::JobGet(key) | Self::JobLogs(key) | Self::JobCancel(key) => Some(key.group()),
            Self::WorkerCreate(scope)
            | Self::WorkerList(scope)
            | Self::ResourceApply(scope)
            | Self::ResourceList(scope)
            | Self::ResourceDelete(scope)
            | Self::JobList(scope)
            | Self::QueueList(scope)
            | Self::WorkerGet(scope, _)
            | Self::WorkerUpdate(scope, _)
            | Self::WorkerDelete(scope, _) => scope.as_deref(),
        }
    }

    /// Every endpoint the registry serves: each job operation, and each
    /// admin operation unscoped and scoped (`-in-group`).
    pub fn endpoints() -> Vec<Endpoint> {
        let mut endpoints = Vec::new();
        for (verb, name, kind) in VERBS {
            let endpoint = |name: String, under, pattern: String| Endpoint {
                name,
                under,
                pattern,
            };
            match kind {
                Kind::Job if verb == "job.cancel" => {
                    endpoints.push(endpoint(name.into(), "ctl", "*.job.*.cancel".into()))
                }
                Kind::Job => endpoints.push(endpoint(name.into(), "api", format!("{verb}.*.*"))),
                Kind::Scoped | Kind::ScopedWithId => {
                    let id = if kind == Kind::ScopedWithId { ".*" } else { "" };
                    endpoints.push(endpoint(name.into(), "api", format!("{verb}{id}")));
                    endpoints.push(endpoint(
                        format!("{name}-in-group"),
                        "api",
                        format!("{verb}.*{id}"),
                    ));
                }
            }
        }
        endpoints
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_operation() -> Vec<ApiOp> {
        let key = || Key::new("acme", "j1");
        let scopes = [None, Some("acme".to_string())];
        let mut ops = vec![
            ApiOp::JobGet(key()),
            ApiOp::JobLogs(key()),
            ApiOp::JobCancel(key()),
        ];
        for scope in scopes {
            let id = || "w-1".to_string();
            ops.extend([
                ApiOp::WorkerCreate(scope.clone()),
                ApiOp::WorkerGet(scope.clone(), id()),
                ApiOp::WorkerList(scope.clone()),
                ApiOp::WorkerUpdate(scope.clone(), id()),
                ApiOp::WorkerDelete(scope.clone(), id()),
                ApiOp::ResourceApply(scope.clone()),
                ApiOp::ResourceList(scope.clone()),
                ApiOp::ResourceDelete(scope.clone()),
                ApiOp::JobList(scope.clone()),
                ApiOp::QueueList(scope),
            ]);
        }
        ops
    }

    #[test]
    fn every_operation_reads_back_from_its_subject() {
        let subjects = Subjects::default();
        for op in every_operation() {
            let subject = op.subject(&subjects);
            assert_eq!(ApiOp::parse(&subjects, &subject), Ok(op), "{subject}");
        }
    }

    #[test]
    fn the_subjects_are_those_the_roles_grant() {
        let subjects = Subjects::default();
        let get = ApiOp::WorkerGet(Some("acme".into()), "w-1".into());
        assert_eq!(get.subject(&subjects), "shoal.api.worker.get.acme.w-1");
        let all = ApiOp::WorkerList(None);
        assert_eq!(all.subject(&subjects), "shoal.api.worker.list");
        let cancel = ApiOp::JobCancel(Key::new("acme", "j1"));
        assert_eq!(cancel.subject(&subjects), "shoal.ctl.acme.job.j1.cancel");
    }

    #[test]
    fn every_subject_is_served_by_exactly_one_endpoint() {
        let subjects = Subjects::default();
        let endpoints = ApiOp::endpoints();
        assert_eq!(endpoints.len(), 23);
        for op in every_operation() {
            let subject = op.subject(&subjects);
            let serving: Vec<_> = endpoints
                .iter()
                .filter(|endpoint| {
                    let pattern = format!("shoal.{}.{}", endpoint.under, endpoint.pattern);
                    matches(&pattern, &subject)
                })
                .collect();
            assert_eq!(serving.len(), 1, "{subject}: {serving:?}");
        }
    }

    fn matches(pattern: &str, subject: &str) -> bool {
        let (pattern, subject): (Vec<_>, Vec<_>) =
            (pattern.split('.').collect(), subject.split('.').collect());
        pattern.len() == subject.len()
            && pattern
                .iter()
                .zip(&subject)
                .all(|(want, have)| *want == "*" || want == have)
    }

    #[test]
    fn what_is_no_operation_is_refused() {
        let subjects = Subjects::default();
        for subject in [
            "shoal.api.worker.steal",
            "shoal.api.job.get.acme",
            "shoal.api.worker.get.acme.w-1.extra",
            "other.api.worker.list",
            "shoal.api.worker.get.acme.w*1",
            "shoal.ctl.acme.job.j1.stop",
        ] {
            assert!(ApiOp::parse(&subjects, subject).is_err(), "{subject}");
        }
    }
}
