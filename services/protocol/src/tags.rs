//! Tags: a worker takes a job only if the worker's tags are a subset of the
//! job's. Each distinct set of worker tags has a key, used in the subject
//! that the dispatcher routes matching jobs to.

use std::collections::BTreeSet;

/// The key of the empty tag set (workers without tags); `~` is never in a tag.
pub const UNTAGGED_KEY: &str = "~";

/// The key of a tag set: its tags sorted and joined by `~` (`~` alone when empty).
pub fn tag_set_key(tags: &[String]) -> String {
    let sorted: BTreeSet<&str> = tags.iter().map(String::as_str).collect();
    if sorted.is_empty() {
        return UNTAGGED_KEY.to_string();
    }
    sorted.into_iter().collect::<Vec<_>>().join("~")
}

/// The tags of a key made by [`tag_set_key`].
pub fn tags_of_key(key: &str) -> Vec<String> {
    if key == UNTAGGED_KEY {
        return Vec::new();
    }
    key.split('~').map(str::to_string).collect()
}

/// Whether a worker with `worker` tags may take a job with `job` tags.
pub fn may_take(worker: &[String], job: &[String]) -> bool {
    worker.iter().all(|tag| job.contains(tag))
}

/// The worker tag set a job goes to: among the live sets it may go to, the
/// most specific (most tags), then the first by key, so that every
/// dispatcher picks the same one.
pub fn choose_tag_set<'a>(
    live: impl IntoIterator<Item = &'a Vec<String>>,
    job: &[String],
) -> Option<&'a Vec<String>> {
    live.into_iter()
        .filter(|worker| may_take(worker, job))
        .max_by(|a, b| {
            a.len()
                .cmp(&b.len())
                .then_with(|| tag_set_key(b).cmp(&tag_set_key(a)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|tag| tag.to_string()).collect()
    }

    #[test]
    fn a_worker_takes_jobs_whose_tags_include_all_of_its_own() {
        assert!(may_take(&set(&[]), &set(&["gpu"])));
        assert!(may_take(&set(&["gpu"]), &set(&["gpu", "a100", "x"])));
        assert!(!may_take(&set(&["gpu"]), &set(&[])));
        assert!(!may_take(&set(&["gpu", "a100"]), &set(&["gpu"])));
    }

    #[test]
    fn a_job_goes_to_the_most_specific_live_set_it_fits() {
        let live = vec![set(&[]), set(&["gpu"]), set(&["a100", "gpu"])];
        assert_eq!(
            choose_tag_set(&live, &set(&["gpu", "a100", "x"])),
            Some(&set(&["a100", "gpu"]))
        );
        assert_eq!(choose_tag_set(&live, &set(&["gpu"])), Some(&set(&["gpu"])));
        assert_eq!(choose_tag_set(&live, &set(&[])), Some(&set(&[])));
        assert_eq!(choose_tag_set(&live[1..], &set(&["cpu"])), None);
    }

    #[test]
    fn keys_are_the_same_whatever_the_order_and_read_back() {
        assert_eq!(tag_set_key(&set(&["gpu", "a100"])), "a100~gpu");
        assert_eq!(tags_of_key("a100~gpu"), set(&["a100", "gpu"]));
        assert_eq!(tag_set_key(&set(&[])), UNTAGGED_KEY);
        assert!(tags_of_key(UNTAGGED_KEY).is_empty());
    }
}
