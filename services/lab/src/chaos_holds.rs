//! `shoal chaos --holds`: jobs with concurrency keys and dependencies among
//! them, half of them taking turns by a fairness key, checked from the jobs' own records of each execution (a start and
//! an end line with the clock's nanoseconds): no key ever ran more jobs at
//! once than its limit, and no dependent started before a run of its
//! parent ended. An execution whose worker was killed has no end line; it
//! ended by that kill, the first after its start.

use std::collections::BTreeMap;

use serde::Serialize;

/// Keys the jobs share, in turn.
pub(crate) const KEYS: u64 = 4;

/// Jobs of one key that may run at once.
pub(crate) const LIMIT: u64 = 3;

/// Every how many jobs one depends on the job before it.
const DEPENDENT_EVERY: u64 = 10;

/// Every how many jobs one takes turns by a fairness key.
const FAIR_EVERY: u64 = 2;

/// Fairness keys the jobs that take turns share, in turn.
const FAIRNESS_KEYS: u64 = 3;

/// What the holds of a chaos run showed.
#[derive(Debug, Default, Serialize)]
pub struct HoldsReport {
    /// Jobs of one key that may run at once.
    pub limit: u64,
    /// The most executions of one key seen running at once.
    pub most_at_once: u64,
    /// Keys that ran more than their limit at once (must be 0).
    pub limit_exceeded: u64,
    /// Jobs that depend on another.
    pub dependents: u64,
    /// Dependents that started before any run of their parent ended (must be 0).
    pub started_before_parents: u64,
    /// Jobs that took turns by a fairness key (run once and never lost, like the others).
    pub fair: u64,
}

/// The body of job `index`: its program records each execution in `file`;
/// with holds, it has a concurrency key and maybe a parent.
pub(crate) fn job_body(
    id: &str,
    parent: Option<&str>,
    index: u64,
    file: &std::path::Path,
    holds: bool,
) -> serde_json::Value {
    let file = file.display();
    let program = format!(
        "echo \"$SHOAL_JOB_ID start $(date +%s%N)\" >> {file}; sleep 0.02; \
         echo \"$SHOAL_JOB_ID end $(date +%s%N)\" >> {file}"
    );
    let mut body = serde_json::json!({"id": id, "command": ["sh", "-c", program]});
    if holds {
        body["concurrency"] =
            serde_json::json!({"key": format!("k{}", index % KEYS), "limit": LIMIT});
        if let Some(parent) = parent.filter(|_| index % DEPENDENT_EVERY == DEPENDENT_EVERY - 1) {
            body["depends_on"] = serde_json::json!([parent]);
        }
        if let Some(key) = fairness_key(index) {
            body["fairness_key"] = serde_json::json!(key);
        }
    }
    body
}

/// The fairness key job `index` takes turns by, with holds, if any.
pub(crate) fn fairness_key(index: u64) -> Option<String> {
    index
        .is_multiple_of(FAIR_EVERY)
        .then(|| format!("f{}", index % FAIRNESS_KEYS))
}

/// Whether job `index` depends on the one before it.
pub(crate) fn is_dependent(index: u64) -> bool {
    index > 0 && index % DEPENDENT_EVERY == DEPENDENT_EVERY - 1
}

/// One execution: when it started and, if its program got that far, ended.
#[derive(Debug, Clone, Copy)]
struct Execution {
    start: i128,
    end: Option<i128>,
}

/// The executions of each job, from the lines the programs wrote.
fn executions(text: &str) -> BTreeMap<String, Vec<Execution>> {
    let mut runs: BTreeMap<String, Vec<Execution>> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(what), Some(at)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(at) = at.parse::<i128>() else { continue };
        let job = runs.entry(id.to_string()).or_default();
        match what {
            "start" => job.push(Execution {
                start: at,
                end: None,
            }),
            _ => {
                if let Some(open) = job.iter_mut().rev().find(|run| run.end.is_none()) {
                    open.end = Some(at);
                }
            }
        }
    }
    runs
}

/// Counts each job's executions (its start lines).
pub(crate) fn execution_counts(text: &str) -> BTreeMap<String, u64> {
    executions(text)
        .into_iter()
        .map(|(id, runs)| (id, runs.len() as u64))
        .collect()
}

/// Checks the limits and dependencies of the run's jobs (`id_of(index)`),
/// given the times (ns since the epoch) workers were killed.
pub(crate) fn check(
    text: &str,
    jobs: u64,
    id_of: impl Fn(u64) -> String,
    worker_kills: &[i128],
) -> HoldsReport {
    let runs = executions(text);
    let ended_by_kill = |start: i128| {
        worker_kills
            .iter()
            .copied()
            .filter(|kill| *kill >= start)
            .min()
            .unwrap_or(i128::MAX)
    };
    let mut report = HoldsReport {
        limit: LIMIT,
        fair: (0..jobs)
            .filter(|index| fairness_key(*index).is_some())
            .count() as u64,
        ..HoldsReport::default()
    };
    for key in 0..KEYS {
        let mut edges: Vec<(i128, i64)> = Vec::new();
        for index in (0..jobs).filter(|index| index % KEYS == key) {
            for run in runs.get(&id_of(index)).into_iter().flatten() {
                edges.push((run.start, 1));
                edges.push((run.end.unwrap_or_else(|| ended_by_kill(run.start)), -1));
            }
        }
        edges.sort();
        let (mut now, mut most) = (0i64, 0i64);
        for (_, step) in edges {
            now += step;
            most = most.max(now);
        }
        report.most_at_once = report.most_at_once.max(most as u64);
        if most as u64 > LIMIT {
            report.limit_exceeded += 1;
        }
    }
    for index in (0..jobs).filter(|index| is_dependent(*index)) {
        report.dependents += 1;
        let parent_end = runs
            .get(&id_of(index - 1))
            .into_iter()
            .flatten()
            .filter_map(|run| run.end)
            .min();
        let child_start = runs
            .get(&id_of(index))
            .into_iter()
            .flatten()
            .map(|run| run.start)
            .min();
        if let (Some(child), parent) = (child_start, parent_end) {
            if parent.is_none_or(|parent| child < parent) {
                report.started_before_parents += 1;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_runs_of_a_key_and_an_early_child_are_counted() {
        let id = |index: u64| format!("j{index}");
        // j0, j4 and j8 share key k0; j9 depends on j8.
        let text = "j0 start 10\nj0 end 20\nj4 start 15\nj4 end 30\nj8 start 18\nj8 end 25\n\
                    j9 start 24\nj9 end 40\n";
        let report = check(text, 10, id, &[]);
        assert_eq!((report.most_at_once, report.limit_exceeded), (3, 0));
        assert_eq!((report.dependents, report.started_before_parents), (1, 1));
        let killed =
            "j0 start 10\nj4 start 15\nj4 end 30\nj8 start 18\nj8 end 25\nj0 start 50\nj0 end 60\n";
        let without_kill = check(killed, 9, id, &[]);
        assert_eq!(
            without_kill.limit_exceeded, 0,
            "an open run ends at no kill: {without_kill:?}"
        );
        let with_kill = check(killed, 9, id, &[12]);
        assert_eq!(
            with_kill.most_at_once, 2,
            "the killed run ended at its kill"
        );
        let four = "j0 start 1\nj4 start 2\nj8 start 3\nj12 start 4\nj0 end 9\nj4 end 9\nj8 end 9\nj12 end 9\n";
        assert_eq!(check(four, 13, id, &[]).limit_exceeded, 1);
    }
}
