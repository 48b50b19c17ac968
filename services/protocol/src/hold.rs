//! What a job may wait for before it runs, as its spec names it: the jobs
//! it depends on, a concurrency key the whole fleet shares, a rate limit.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::job::{InvalidJob, JobSpec};
use crate::token::validate_token;

/// The header of a held job's copy that the registry lets go: the attempts
/// it had before, so that the copy's deliveries count on from there.
pub const ATTEMPTS_BEFORE_HEADER: &str = "Shoal-Attempts-Before";

/// Most parents a job may depend on.
pub const MAX_PARENTS: usize = 64;

/// Largest concurrency or rate limit: a key's record lists each holder or start.
pub const MAX_LIMIT: u32 = 1_000;

/// Longest window of a rate limit.
pub const MAX_RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(86_400);

/// What a held job waits for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// Parents not ended yet (`waiting_on` names them).
    Parents,
    /// A slot of its concurrency key.
    Concurrency,
    /// Room in its rate limit's window (`waiting_until`).
    Rate,
}

/// What a job does when one of its parents ends without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParentFailure {
    /// It ends `skipped`, naming the parent and its state.
    #[default]
    Skip,
    /// It runs all the same, once every parent has ended.
    Run,
}

/// At most `limit` jobs holding `key` run at once across the whole fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLimit {
    /// The key the jobs share (`customer-42`), within the job's group.
    pub key: String,
    /// How many of them may run at once (unless the key's record sets another).
    pub limit: u32,
}

/// At most `limit` jobs holding `key` start within any window of `per`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// The key the jobs share (`smtp`), within the job's group.
    pub key: String,
    /// How many may start per window.
    pub limit: u32,
    /// The window (`1m`).
    pub per: Duration,
}

impl std::str::FromStr for ConcurrencyLimit {
    type Err = String;

    /// Reads `KEY=LIMIT` (`customer-42=2`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (key, limit) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not KEY=LIMIT"))?;
        let limit = limit
            .parse()
            .map_err(|_| format!("`{limit}` is not a number of jobs"))?;
        check_key("concurrency.key", key).map_err(|err| err.to_string())?;
        check_limit("concurrency.limit", limit).map_err(|err| err.to_string())?;
        Ok(Self {
            key: key.to_string(),
            limit,
        })
    }
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// Reads `KEY=LIMIT/PER` (`smtp=100/1m`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{text}` is not KEY=LIMIT/PER (e.g. smtp=100/1m)");
        let (key, rest) = text.split_once('=').ok_or_else(invalid)?;
        let (limit, per) = rest.split_once('/').ok_or_else(invalid)?;
        let limit = limit.parse().map_err(|_| invalid())?;
        let per: Duration = per.parse().map_err(|err| format!("rate.per: {err}"))?;
        let rate = Self {
            key: key.to_string(),
            limit,
            per,
        };
        let spec = JobSpec {
            entrypoint: Some("check".into()),
            rate: Some(rate.clone()),
            ..JobSpec::default()
        };
        validate_holds(&spec).map_err(|err| err.to_string())?;
        Ok(rate)
    }
}

/// Checks the fields of a spec that make it wait; the error names the first at fault.
pub(crate) fn validate_holds(spec: &JobSpec) -> Result<(), InvalidJob> {
    if spec.depends_on.len() > MAX_PARENTS {
        return Err(field(
            "depends_on",
            format!("names more than {MAX_PARENTS} jobs"),
        ));
    }
    for (index, parent) in spec.depends_on.iter().enumerate() {
        let name = format!("depends_on[{index}]");
        validate_token(&name, parent).map_err(|err| field(&name, err.reason()))?;
        if spec.id.as_deref() == Some(parent.as_str()) {
            return Err(field(&name, "a job cannot depend on itself"));
        }
    }
    if let Some(concurrency) = &spec.concurrency {
        check_key("concurrency.key", &concurrency.key)?;
        check_limit("concurrency.limit", concurrency.limit)?;
    }
    if let Some(rate) = &spec.rate {
        check_key("rate.key", &rate.key)?;
        check_limit("rate.limit", rate.limit)?;
        if rate.per.get() < std::time::Duration::from_secs(1) || rate.per.get() > MAX_RATE_WINDOW {
            return Err(field("rate.per", "must be from 1s to 1d"));
        }
    }
    if let Some(key) = &spec.fairness_key {
        check_key("fairness_key", key)?;
    }
    Ok(())
}

fn check_key(name: &str, key: &str) -> Result<(), InvalidJob> {
    validate_token(name, key).map_err(|err| field(name, err.reason()))
}

fn check_limit(name: &str, limit: u32) -> Result<(), InvalidJob> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(field(name, format!("must be from 1 to {MAX_LIMIT}")));
    }
    Ok(())
}

fn field(name: impl Into<String>, reason: impl Into<String>) -> InvalidJob {
    InvalidJob::Field {
        field: name.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::tests::error_of;

    #[test]
    fn holds_are_read_and_their_errors_name_the_field() {
        let spec = JobSpec::from_slice(
            br#"{"entrypoint":"noop","depends_on":["a","b"],"on_parent_failure":"run",
                "concurrency":{"key":"customer-42","limit":2},
                "rate":{"key":"smtp","limit":100,"per":"1m"}}"#,
        )
        .expect("valid");
        assert_eq!(spec.depends_on, ["a", "b"]);
        assert_eq!(spec.on_parent_failure, Some(ParentFailure::Run));
        assert_eq!(spec.concurrency.expect("a key").limit, 2);
        assert_eq!(spec.rate.expect("a rate").per.get().as_secs(), 60);
        assert!(
            error_of(r#"{"entrypoint":"x","depends_on":["a.b"]}"#).starts_with("depends_on[0]:")
        );
        assert!(error_of(r#"{"entrypoint":"x","id":"a","depends_on":["a"]}"#).contains("itself"));
        assert!(
            error_of(r#"{"entrypoint":"x","concurrency":{"key":"k","limit":0}}"#)
                .starts_with("concurrency.limit:")
        );
        assert!(
            error_of(r#"{"entrypoint":"x","concurrency":{"key":"a b","limit":1}}"#)
                .starts_with("concurrency.key:")
        );
        assert!(
            error_of(r#"{"entrypoint":"x","rate":{"key":"k","limit":1,"per":"0s"}}"#)
                .starts_with("rate.per:")
        );
        assert!(error_of(r#"{"entrypoint":"x","on_parent_failure":"maybe"}"#).contains("maybe"));
        let limit: ConcurrencyLimit = "customer-42=2".parse().expect("KEY=LIMIT");
        assert_eq!((limit.key.as_str(), limit.limit), ("customer-42", 2));
        assert!("customer-42".parse::<ConcurrencyLimit>().is_err());
        let rate: RateLimit = "smtp=100/1m".parse().expect("KEY=LIMIT/PER");
        assert_eq!((rate.limit, rate.per.get().as_secs()), (100, 60));
        assert!("smtp=100/0s"
            .parse::<RateLimit>()
            .expect_err("no window")
            .contains("rate.per"));
    }
}
