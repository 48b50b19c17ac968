//! Fair share within a queue: a job with a fairness key is submitted to its
//! key's subject (`shoal.fair.<group>.<queue>.<key>`), which no worker
//! reads; the registry lets the jobs of each key go in turn.

use crate::job::InvalidJob;
use crate::{JobSpec, Subjects};

/// The spec as its subject makes it: a fair subject's key is the job's (a
/// spec naming another key is refused), a job on its queue's own subject
/// names none (it would skip its turn), and a routed copy stays as it is.
pub fn keyed_by_subject(
    subjects: &Subjects,
    subject: &str,
    mut spec: JobSpec,
) -> Result<JobSpec, InvalidJob> {
    if subjects.is_route(subject) {
        return Ok(spec);
    }
    match (subjects.parse_fair(subject), spec.fairness_key.as_deref()) {
        (Some((_, key)), Some(named)) if named != key => Err(InvalidJob::field(
            "fairness_key",
            format!("`{named}` is not the key of its subject, `{key}`"),
        )),
        (Some((_, key)), _) => {
            spec.fairness_key = Some(key);
            Ok(spec)
        }
        (None, Some(_)) => Err(InvalidJob::field(
            "fairness_key",
            format!(
                "a job with a fairness key is submitted to {}.fair.<group>.<queue>.<key>, not to its queue",
                subjects.prefix()
            ),
        )),
        (None, None) => Ok(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: Option<&str>) -> JobSpec {
        JobSpec {
            fairness_key: key.map(str::to_string),
            ..JobSpec::entrypoint("noop", vec![])
        }
    }

    #[test]
    fn a_fair_subject_gives_its_key_to_the_job() {
        let subjects = Subjects::default();
        let subject = subjects.fair("acme", "mail", "customer-1");
        let keyed = keyed_by_subject(&subjects, &subject, spec(None)).expect("kept");
        assert_eq!(keyed.fairness_key.as_deref(), Some("customer-1"));
        let same = keyed_by_subject(&subjects, &subject, spec(Some("customer-1")));
        assert!(same.is_ok());
    }

    #[test]
    fn a_key_other_than_the_subjects_or_on_the_queue_subject_is_refused_by_name() {
        let subjects = Subjects::default();
        let subject = subjects.fair("acme", "mail", "customer-1");
        let other = keyed_by_subject(&subjects, &subject, spec(Some("customer-2")));
        assert!(other
            .expect_err("refused")
            .to_string()
            .contains("fairness_key"));
        let queue = subjects.jobs("acme", "mail");
        let skipping = keyed_by_subject(&subjects, &queue, spec(Some("customer-1")));
        assert!(skipping
            .expect_err("refused")
            .to_string()
            .contains("fairness_key"));
        let routed = subjects.route("acme", "mail", "~");
        assert!(keyed_by_subject(&subjects, &routed, spec(Some("customer-1"))).is_ok());
    }
}
