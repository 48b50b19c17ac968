//! What a group's admins declared its workers serve: the queues, tag sets
//! and `system` flag of its Worker and Pool resources. A worker reports its
//! own queues, tags and flag when it registers, and a worker's login may
//! publish any report for its group (its `created` and `updated` identity
//! events too); so where a group declared resources, the dispatcher trusts
//! only the reports its declarations cover, and a group with no resource
//! (a server without roles, where any client may do anything) is taken at
//! its word for its own queues, within bounds. Serving `_system` reaches
//! other groups' jobs: it counts only where a Pool resource, kept in a bucket
//! only operators and the registry write and declared `system` by an
//! operator, covers the queue and the tag set.

use std::collections::BTreeMap;

use shoal_protocol::resource::Resource;
use shoal_protocol::{WorkerRecord, SYSTEM_GROUP};

/// Most queues of one group the dispatcher serves, whatever workers report.
pub(crate) const MAX_PLACES_PER_GROUP: usize = 64;

/// Most tag sets of one queue the dispatcher routes to.
pub(crate) const MAX_TAG_SETS_PER_QUEUE: usize = 32;

/// What one resource lets its workers serve.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Serves {
    queues: Vec<String>,
    tags: Vec<String>,
    /// Serving `_system` too, from a declaration no worker's login can forge.
    system: bool,
}

impl Serves {
    fn of(resource: &Resource) -> Option<Self> {
        let (queues, tags, system) = match (&resource.worker, &resource.pool) {
            (Some(worker), _) => (&worker.queues, &worker.tags, worker.system),
            (_, Some(pool)) => (&pool.queues, &pool.tags, pool.system),
            _ => return None,
        };
        let queues = if queues.is_empty() {
            vec![shoal_protocol::DEFAULT_QUEUE.to_string()]
        } else {
            queues.clone()
        };
        Some(Self {
            queues,
            tags: sorted(tags),
            system,
        })
    }
}

fn sorted(tags: &[String]) -> Vec<String> {
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    tags
}

/// The declarations of every group.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    by_group: BTreeMap<String, Vec<Serves>>,
}

impl Declared {
    /// The declarations of the pools (`<group>.<name>` in `shoal_pools`) and
    /// of the worker identities that carry a resource.
    pub(crate) fn new<'a>(
        pools: impl IntoIterator<Item = Resource>,
        workers: impl IntoIterator<Item = &'a WorkerRecord>,
    ) -> Self {
        let mut by_group: BTreeMap<String, Vec<Serves>> = BTreeMap::new();
        for resource in pools {
            let group = resource.pool.as_ref().and_then(|pool| pool.group.clone());
            if let (Some(group), Some(serves)) = (group, Serves::of(&resource)) {
                by_group.entry(group).or_default().push(serves);
            }
        }
        for worker in workers {
            // An identity's resource comes from events its group's worker
            // login may forge: it may speak for its group, not for `_system`.
            if let Some(mut serves) = worker.resource.as_deref().and_then(Serves::of) {
                serves.system = false;
                by_group
                    .entry(worker.group.clone())
                    .or_default()
                    .push(serves);
            }
        }
        Self { by_group }
    }

    /// The (group, queue) places a worker's report adds its tag set to: its
    /// queues in its group, and in `_system` for a system worker, each only
    /// where a declaration of its group covers the queue, the tag set and
    /// the flag.
    pub(crate) fn places(&self, worker: &WorkerRecord) -> Vec<(String, String)> {
        let tags = sorted(&worker.tags);
        let declared = self.by_group.get(&worker.group);
        let mut places = Vec::new();
        for queue in &worker.queues {
            let covering = |serves: &&Serves| serves.queues.contains(queue) && serves.tags == tags;
            let (own, system) = match declared {
                None => (true, false),
                Some(all) => (
                    all.iter().any(|serves| covering(&serves)),
                    worker.system && all.iter().filter(covering).any(|serves| serves.system),
                ),
            };
            if own {
                places.push((worker.group.clone(), queue.clone()));
            }
            if system && worker.group != SYSTEM_GROUP {
                places.push((SYSTEM_GROUP.to_string(), queue.clone()));
            }
        }
        places
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::resource::{PoolSection, ResourceKind};

    fn pool(queues: &[&str], tags: &[&str], system: bool) -> Resource {
        Resource {
            name: "p".into(),
            version: "v1".into(),
            kind: ResourceKind::Pool,
            tags: Vec::new(),
            description: None,
            owner: None,
            worker: None,
            pool: Some(PoolSection {
                queues: queues.iter().map(|queue| queue.to_string()).collect(),
                tags: tags.iter().map(|tag| tag.to_string()).collect(),
                system,
                group: Some("acme".into()),
                ..PoolSection::default()
            }),
        }
    }

    fn worker(group: &str, queues: &[&str], tags: &[&str], system: bool) -> WorkerRecord {
        WorkerRecord {
            group: group.into(),
            queues: queues.iter().map(|queue| queue.to_string()).collect(),
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
            system,
            ..WorkerRecord::default()
        }
    }

    #[test]
    fn a_report_of_a_group_with_resources_counts_only_where_they_cover_it() {
        let declared = Declared::new([pool(&["video"], &["gpu"], false)], []);
        let honest = worker("acme", &["video"], &["gpu"], false);
        assert_eq!(
            declared.places(&honest),
            vec![("acme".into(), "video".into())]
        );
        let forged = worker("acme", &["video", "other"], &["cpu"], true);
        assert!(declared.places(&forged).is_empty());
        let claims_system = worker("acme", &["video"], &["gpu"], true);
        assert_eq!(
            declared.places(&claims_system),
            vec![("acme".into(), "video".into())]
        );
    }

    #[test]
    fn a_group_without_resources_is_taken_at_its_word_for_its_own_queues_only() {
        let declared = Declared::new([pool(&["video"], &[], true)], []);
        let system = worker("globex", &["q"], &["x"], true);
        assert_eq!(
            declared.places(&system),
            vec![("globex".into(), "q".into())]
        );
    }

    #[test]
    fn only_a_system_pool_lets_a_worker_serve_system_and_no_identity_does() {
        let declared = Declared::new([pool(&["video"], &["gpu"], true)], []);
        let honest = worker("acme", &["video"], &["gpu"], true);
        assert_eq!(
            declared.places(&honest),
            vec![
                ("acme".into(), "video".into()),
                (SYSTEM_GROUP.into(), "video".into())
            ]
        );
        let mut forged = worker("globex", &["video"], &["gpu"], true);
        forged.resource = Some(Box::new(pool(&["video"], &["gpu"], true)));
        let declared = Declared::new([], [&forged]);
        assert_eq!(
            declared.places(&forged),
            vec![("globex".into(), "video".into())]
        );
    }
}
