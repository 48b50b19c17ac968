//! The job spec: what a submitter publishes on `shoal.jobs.<group>.<queue>`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::duration::Duration;
use crate::hold::{validate_holds, ConcurrencyLimit, ParentFailure, RateLimit};
use crate::token::validate_token;

/// Largest job spec accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;

/// Longest timeout a job may ask for.
pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// Longest delay between two attempts: a job waits for its next attempt in
/// the jobs stream, which keeps it a week.
pub const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 100;

/// A job: an action (a named entrypoint, or a raw command where the worker
/// allows it) plus its configuration. Group and queue come from the subject.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Job")]
pub struct JobSpec {
    /// Id chosen by the submitter (idempotency key); the stream sequence when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The recurring schedule that submitted it: a job without an id is
    /// then `<schedule>-<sequence>`, each run its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Name of an entrypoint defined by the worker's config (or built in: `noop`, `sleep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// A raw command and its arguments; runs only on workers with `allow_exec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments appended to the entrypoint's or command's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables added to the job's process.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the job's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Longest the job may run before it is stopped and ends `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Tags a worker must carry a subset of to take the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Free metadata, kept in the job record.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How a failed or timed-out attempt is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Ids of jobs of its group that must succeed before it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// What it does when a parent ends without success (skip, by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_parent_failure: Option<ParentFailure>,
    /// A key whose jobs run at most `limit` at once across the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyLimit>,
    /// A key whose jobs start at most `limit` times per window across the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
    /// The key it takes turns under with the other keys of its queue
    /// (submitted to `shoal.fair.<group>.<queue>.<key>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
}

/// How the delay before the next attempt grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// The same delay every time: `initial`.
    Fixed,
    /// `initial`, then twice as long each time, up to `max`.
    #[default]
    Exponential,
}

/// A job's retry policy. Attempts are deliveries, so the queue consumer's
/// `max_deliver` caps `max_attempts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means no retry).
    pub max_attempts: u32,
    /// How the delay grows.
    #[serde(default)]
    pub backoff: Backoff,
    /// The first delay.
    #[serde(default = "default_initial")]
    pub initial: Duration,
    /// The longest delay.
    #[serde(default = "default_max")]
    pub max: Duration,
    /// Up to this many percent of the delay added at random, so that retries spread out.
    #[serde(default)]
    pub jitter: u8,
}

fn default_initial() -> Duration {
    Duration::from_secs(1)
}

fn default_max() -> Duration {
    Duration::from_secs(300)
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (counted from 1), without jitter.
    pub fn delay_after(&self, attempt: u32) -> std::time::Duration {
        let initial = self.initial.get();
        let delay = match self.backoff {
            Backoff::Fixed => initial,
            Backoff::Exponential => {
                initial.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            }
        };
        delay.min(self.max.get())
    }
}

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A named entrypoint of the worker's config, with extra arguments.
    Entrypoint {
        /// The entrypoint's name.
        name: String,
        /// Arguments after the entrypoint's own.
        args: Vec<String>,
    },
    /// A raw command, with extra arguments.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
    },
}

/// A job spec that cannot be accepted, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidJob {
    /// The body is not a job spec at all.
    #[error("job: {0}")]
    Parse(String),
    /// The body is larger than a job spec may be.
    #[error("job: {0} bytes is more than the {MAX_SPEC_BYTES} a job spec may take")]
    TooLarge(usize),
    /// One field holds a value that is not allowed.
    #[error("{field}: {reason}")]
    Field {
        /// The field at fault.
        field: String,
        /// Why its value is refused.
        reason: String,
    },
}

impl InvalidJob {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl JobSpec {
    /// Reads and validates a job spec from a message body.
    pub fn from_slice(body: &[u8]) -> Result<Self, InvalidJob> {
        if body.len() > MAX_SPEC_BYTES {
            return Err(InvalidJob::TooLarge(body.len()));
        }
        let spec: Self =
            serde_json::from_slice(body).map_err(|err| InvalidJob::Parse(err.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// A job that runs the named entrypoint with `args`.
    pub fn entrypoint(name: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            entrypoint: Some(name.into()),
            args,
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), InvalidJob> {
        if let Some(id) = &self.id {
            validate_token("id", id).map_err(|err| InvalidJob::field("id", err.reason()))?;
        }
        if let Some(schedule) = &self.schedule {
            // Room for `-<sequence>` in the id of each run.
            let room = crate::token::MAX_TOKEN_LEN - 21;
            if schedule.len() > room {
                return Err(InvalidJob::field(
                    "schedule",
                    format!("must be at most {room} characters"),
                ));
            }
            validate_token("schedule", schedule)
                .map_err(|err| InvalidJob::field("schedule", err.reason()))?;
        }
        match (&self.entrypoint, &self.command) {
            (Some(_), Some(_)) => {
                return Err(InvalidJob::field(
                    "entrypoint",
                    "give either entrypoint or command, not both",
                ))
            }
            (None, None) => {
                return Err(InvalidJob::field(
                    "entrypoint",
                    "a job needs an entrypoint or a command",
                ))
            }
            (Some(name), None) if name.trim().is_empty() => {
                return Err(InvalidJob::field("entrypoint", "must not be empty"))
            }
            (None, Some(argv)) if argv.first().is_none_or(|program| program.is_empty()) => {
                return Err(InvalidJob::field("command", "must name a program"))
            }
            _ => {}
        }
        for (index, arg) in self.args.iter().enumerate() {
            if arg.contains('\0') {
                return Err(InvalidJob::field(
                    format!("args[{index}]"),
                    "must not contain a NUL byte",
                ));
            }
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(InvalidJob::field(
                    format!("env.{name}"),
                    "is not a valid variable name",
                ));
            }
        }
        for (index, tag) in self.tags.iter().enumerate() {
            validate_token(&format!("tags[{index}]"), tag)
                .map_err(|err| InvalidJob::field(format!("tags[{index}]"), err.reason()))?;
        }
        if self.timeout.is_some_and(|timeout| timeout.get().is_zero()) {
            return Err(InvalidJob::field("timeout", "must be longer than zero"));
        }
        if self
            .timeout
            .is_some_and(|timeout| timeout.get() > MAX_TIMEOUT)
        {
            return Err(InvalidJob::field("timeout", "must be 30d or shorter"));
        }
        if let Some(retry) = &self.retry {
            if retry.max_attempts == 0 || retry.max_attempts > MAX_ATTEMPTS {
                return Err(InvalidJob::field(
                    "retry.max_attempts",
                    format!("must be from 1 to {MAX_ATTEMPTS}"),
                ));
            }
            for (field, delay) in [("retry.initial", retry.initial), ("retry.max", retry.max)] {
                if delay.get() > MAX_RETRY_DELAY {
                    return Err(InvalidJob::field(field, "must be 1d or shorter"));
                }
            }
            if retry.jitter > 100 {
                return Err(InvalidJob::field(
                    "retry.jitter",
                    "is a percentage from 0 to 100",
                ));
            }
            if retry.max < retry.initial {
                return Err(InvalidJob::field(
                    "retry.max",
                    "must not be shorter than retry.initial",
                ));
            }
        }
        validate_holds(self)
    }

    /// The action of a valid spec.
    pub fn action(&self) -> Action {
        match (&self.entrypoint, &self.command) {
            (Some(name), _) => Action::Entrypoint {
                name: name.clone(),
                args: self.args.clone(),
            },
            (None, Some(argv)) => Action::Command {
                argv: argv.iter().chain(&self.args).cloned().collect(),
            },
            (None, None) => Action::Entrypoint {
                name: String::new(),
                args: self.args.clone(),
            },
        }
    }

    /// The id of the job: the submitter's; for a run of a schedule,
    /// `<schedule>-<sequence>`; else the stream sequence it was stored at.
    pub fn job_id(&self, stream_sequence: u64) -> String {
        match (&self.id, &self.schedule) {
            (Some(id), _) => id.clone(),
            (None, Some(schedule)) => format!("{schedule}-{stream_sequence}"),
            (None, None) => stream_sequence.to_string(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The error a body gets, as one sentence.
    pub(crate) fn error_of(body: &str) -> String {
        JobSpec::from_slice(body.as_bytes())
            .expect_err(body)
            .to_string()
    }

    #[test]
    fn a_minimal_job_names_an_entrypoint() {
        let spec = JobSpec::from_slice(br#"{"entrypoint":"noop"}"#).expect("valid");
        assert_eq!(
            spec.action(),
            Action::Entrypoint {
                name: "noop".into(),
                args: vec![]
            }
        );
        assert_eq!(spec.job_id(42), "42");
        let run = JobSpec {
            schedule: Some("nightly".into()),
            ..spec.clone()
        };
        assert_eq!(run.job_id(42), "nightly-42");
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        assert!(error_of(r#"{"entrypoint":"noop","timeot":"1s"}"#).contains("timeot"));
        assert!(error_of(r#"{"entrypoint":"noop","timeout":"soon"}"#).contains("soon"));
        assert!(error_of(r#"{"entrypoint":"noop","id":"a.b"}"#).starts_with("id:"));
        assert!(error_of(r#"{"entrypoint":"noop","tags":["x y"]}"#).starts_with("tags[0]:"));
        assert!(error_of(r#"{"args":[]}"#).starts_with("entrypoint:"));
        assert!(error_of(r#"{"command":[]}"#).starts_with("command:"));
        assert!(error_of("not json").starts_with("job:"));
        assert!(error_of(
            r#"{"entrypoint":"x","retry":{"max_attempts":2,"initial":"3000000d","max":"3000000d"}}"#
        )
        .contains("3000000d"));
        assert!(error_of(
            r#"{"entrypoint":"x","retry":{"max_attempts":2,"initial":"2d","max":"2d"}}"#
        )
        .starts_with("retry.initial:"));
        assert!(
            error_of(r#"{"entrypoint":"x","retry":{"max_attempts":101}}"#)
                .starts_with("retry.max_attempts:")
        );
        assert!(error_of(r#"{"entrypoint":"x","timeout":"31d"}"#).starts_with("timeout:"));
    }

    #[test]
    fn exponential_backoff_doubles_up_to_its_max() {
        let spec = JobSpec::from_slice(
            br#"{"entrypoint":"noop","retry":{"max_attempts":5,"initial":"1s","max":"3s"}}"#,
        )
        .expect("valid");
        let retry = spec.retry.expect("a policy");
        let delays: Vec<u64> = (1..=4)
            .map(|attempt| retry.delay_after(attempt).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 3, 3]);
        assert!(
            error_of(r#"{"entrypoint":"noop","retry":{"max_attempts":0}}"#)
                .starts_with("retry.max_attempts:")
        );
    }

    #[test]
    fn a_command_carries_its_args_after_its_own() {
        let spec = JobSpec::from_slice(br#"{"command":["echo","a"],"args":["b"]}"#).expect("valid");
        assert_eq!(
            spec.action(),
            Action::Command {
                argv: vec!["echo".into(), "a".into(), "b".into()]
            }
        );
    }
}
