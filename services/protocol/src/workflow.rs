//! Workflows: a graph of jobs of one group, submitted whole. The file names
//! each job by a short id and its parents by theirs; each job's id in its
//! group is `<workflow>-<id>`. The graph itself travels on
//! `shoal.wf.<group>.<name>` in the same atomic batch as its jobs and is
//! folded into `shoal_workflows` `<group>.<name>`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::job::JobSpec;
use crate::timestamp::Timestamp;
use crate::token::{validate_token, MAX_TOKEN_LEN};

/// Most jobs in one workflow: an atomic batch holds 1,000 messages, the graph among them.
pub const MAX_WORKFLOW_JOBS: usize = 999;

/// The label every job of a workflow carries, naming it.
pub const WORKFLOW_LABEL: &str = "workflow";

/// A workflow that cannot be submitted, naming what is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidWorkflow(pub String);

/// One job of a workflow's graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowNode {
    /// Its id in the file.
    pub id: String,
    /// Its id in the group: `<workflow>-<id>`.
    pub job_id: String,
    /// The queue it goes to.
    pub queue: String,
    /// The ids (in the file) of the jobs it waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// A workflow's graph: the message on `shoal.wf.<group>.<name>`, and with
/// its group and submission the record under `<group>.<name>` in `shoal_workflows`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "WorkflowRecord")]
pub struct WorkflowRecord {
    /// Its name, unique in its group.
    pub name: String,
    /// Its group (from the subject).
    #[serde(default)]
    pub group: String,
    /// The queue its jobs go to unless they name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_group: Option<String>,
    /// Its jobs, parents before children.
    pub jobs: Vec<WorkflowNode>,
    /// When the stream stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<Timestamp>,
    /// Its sequence in the jobs stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sequence: Option<u64>,
}

/// A workflow as its file describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFile {
    /// Its name, unique in its group.
    pub name: String,
    /// Its group; the command's when absent.
    #[serde(default)]
    pub group: Option<String>,
    /// The queue its jobs go to unless they name one.
    #[serde(default)]
    pub worker_group: Option<String>,
    /// Its jobs: each a job spec with an `id`, and a `queue` if it differs.
    pub jobs: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A job of a workflow, ready to be submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowJob {
    /// The queue it goes to.
    pub queue: String,
    /// Its spec, with its id in the group and its parents' ids.
    pub spec: JobSpec,
}

impl WorkflowFile {
    /// Checks the graph (ids, parents, cycles) and the specs, and gives the
    /// graph's record and its jobs in the order they are submitted.
    pub fn plan(
        &self,
        default_queue: &str,
    ) -> Result<(WorkflowRecord, Vec<WorkflowJob>), InvalidWorkflow> {
        let name = &self.name;
        validate_token("name", name).map_err(|err| InvalidWorkflow(err.to_string()))?;
        if self.jobs.is_empty() || self.jobs.len() > MAX_WORKFLOW_JOBS {
            return Err(InvalidWorkflow(format!(
                "jobs: a workflow holds 1 to {MAX_WORKFLOW_JOBS} jobs"
            )));
        }
        let queue = self.worker_group.as_deref().unwrap_or(default_queue);
        validate_token("worker_group", queue).map_err(|err| InvalidWorkflow(err.to_string()))?;
        let mut nodes = BTreeMap::new();
        for (index, body) in self.jobs.iter().enumerate() {
            let (node, spec) = read_job(name, queue, index, body)?;
            if nodes.contains_key(&node.id) {
                return Err(InvalidWorkflow(format!(
                    "jobs[{index}].id: `{}` names two jobs",
                    node.id
                )));
            }
            nodes.insert(node.id.clone(), (index, node, spec));
        }
        for (index, node, _) in nodes.values() {
            if let Some(parent) = node.depends_on.iter().find(|id| !nodes.contains_key(*id)) {
                return Err(InvalidWorkflow(format!(
                    "jobs[{index}].depends_on: job `{}` depends on `{parent}`, which is not in the workflow",
                    node.id
                )));
            }
        }
        let order = topological(&nodes)?;
        let mut jobs = Vec::with_capacity(order.len());
        let mut graph = Vec::with_capacity(order.len());
        for id in order {
            let (_, node, mut spec) = nodes.remove(&id).expect("ordered ids come from the map");
            spec.depends_on = node
                .depends_on
                .iter()
                .map(|parent| job_id_of(name, parent))
                .collect();
            jobs.push(WorkflowJob {
                queue: node.queue.clone(),
                spec,
            });
            graph.push(node);
        }
        let record = WorkflowRecord {
            name: name.clone(),
            worker_group: self.worker_group.clone(),
            jobs: graph,
            ..Default::default()
        };
        Ok((record, jobs))
    }
}

/// The id in the group of a workflow's job.
pub fn job_id_of(workflow: &str, id: &str) -> String {
    format!("{workflow}-{id}")
}

/// Reads one job of the file: its id, queue and parents, and its spec.
fn read_job(
    workflow: &str,
    default_queue: &str,
    index: usize,
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<(WorkflowNode, JobSpec), InvalidWorkflow> {
    let at = |what: &str| format!("jobs[{index}].{what}");
    let mut body = body.clone();
    let text = |value: Option<serde_json::Value>, what: &str| match value {
        None => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(InvalidWorkflow(format!("{}: must be a string", at(what)))),
    };
    let id = text(body.remove("id"), "id")?.ok_or_else(|| {
        InvalidWorkflow(format!("{}: every job of a workflow needs one", at("id")))
    })?;
    validate_token(&at("id"), &id).map_err(|err| InvalidWorkflow(err.to_string()))?;
    let job_id = job_id_of(workflow, &id);
    if job_id.len() > MAX_TOKEN_LEN {
        return Err(InvalidWorkflow(format!(
            "{}: `{job_id}` is longer than {MAX_TOKEN_LEN} characters",
            at("id")
        )));
    }
    let queue = text(body.remove("queue"), "queue")?.unwrap_or_else(|| default_queue.to_string());
    validate_token(&at("queue"), &queue).map_err(|err| InvalidWorkflow(err.to_string()))?;
    body.insert("id".into(), serde_json::Value::String(job_id.clone()));
    let raw = serde_json::to_vec(&body).map_err(|err| InvalidWorkflow(err.to_string()))?;
    let mut spec = JobSpec::from_slice(&raw)
        .map_err(|err| InvalidWorkflow(format!("jobs[{index}] ({id}): {err}")))?;
    let depends_on = std::mem::take(&mut spec.depends_on);
    spec.labels
        .insert(WORKFLOW_LABEL.to_string(), workflow.to_string());
    let node = WorkflowNode {
        id,
        job_id,
        queue,
        depends_on,
    };
    Ok((node, spec))
}

/// The ids, parents before children; a cycle is refused with its path.
fn topological(
    nodes: &BTreeMap<String, (usize, WorkflowNode, JobSpec)>,
) -> Result<Vec<String>, InvalidWorkflow> {
    let mut order = Vec::with_capacity(nodes.len());
    let mut done = BTreeSet::new();
    for start in nodes.keys() {
        if done.contains(start) {
            continue;
        }
        // Depth first, with the path kept to name a cycle.
        let mut path: Vec<(String, usize)> = vec![(start.clone(), 0)];
        while let Some((id, next)) = path.last().cloned() {
            let parents = &nodes[&id].1.depends_on;
            if next < parents.len() {
                path.last_mut().expect("not empty").1 += 1;
                let parent = &parents[next];
                if done.contains(parent) {
                    continue;
                }
                if let Some(at) = path.iter().position(|(on_path, _)| on_path == parent) {
                    let mut cycle: Vec<&str> =
                        path[at..].iter().map(|(id, _)| id.as_str()).collect();
                    cycle.push(parent);
                    cycle.reverse();
                    return Err(InvalidWorkflow(format!(
                        "depends_on: a cycle: {}",
                        cycle.join(" → ")
                    )));
                }
                path.push((parent.clone(), 0));
            } else {
                path.pop();
                done.insert(id.clone());
                order.push(id);
            }
        }
    }
    Ok(order)
}

/// The graph in Graphviz's language, each job labelled with its state.
pub fn dot(record: &WorkflowRecord, states: &BTreeMap<String, String>) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", record.name);
    for node in &record.jobs {
        let state = states.get(&node.job_id).map_or("unknown", String::as_str);
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n{state}\", color={}];\n",
            node.id,
            node.id,
            state_colour(state)
        ));
    }
    for node in &record.jobs {
        for parent in &node.depends_on {
            out.push_str(&format!("  \"{parent}\" -> \"{}\";\n", node.id));
        }
    }
    out.push_str("}\n");
    out
}

fn state_colour(state: &str) -> &'static str {
    match state {
        "succeeded" => "green",
        "running" => "blue",
        "failed" | "timed_out" | "dead" | "missing" => "red",
        "cancelled" | "skipped" => "grey",
        _ => "black",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> WorkflowFile {
        serde_yaml::from_str(yaml).expect("a workflow file")
    }

    #[test]
    fn a_diamond_is_planned_parents_first_with_ids_in_the_group() {
        let flow = file(
            "name: nightly\nworker_group: etl\njobs:\n\
             - {id: d, entrypoint: noop, depends_on: [b, c]}\n\
             - {id: b, entrypoint: noop, depends_on: [a]}\n\
             - {id: c, entrypoint: noop, depends_on: [a], queue: cpu}\n\
             - {id: a, entrypoint: noop}\n",
        );
        let (record, jobs) = flow.plan("default").expect("valid");
        let ids: Vec<&str> = record.jobs.iter().map(|node| node.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(jobs[3].spec.id.as_deref(), Some("nightly-d"));
        assert_eq!(jobs[3].spec.depends_on, ["nightly-b", "nightly-c"]);
        assert_eq!(jobs[0].queue, "etl");
        assert_eq!(jobs[2].queue, "cpu");
        assert_eq!(jobs[0].spec.labels[WORKFLOW_LABEL], "nightly");
        let states = BTreeMap::from([("nightly-a".to_string(), "succeeded".to_string())]);
        let graph = dot(&record, &states);
        assert!(graph.contains("\"a\" -> \"b\""), "{graph}");
        assert!(graph.contains("a\\nsucceeded"), "{graph}");
    }

    #[test]
    fn a_cycle_and_an_unknown_parent_are_refused_by_name() {
        let cycle = file(
            "name: loop\njobs:\n\
             - {id: a, entrypoint: noop, depends_on: [c]}\n\
             - {id: b, entrypoint: noop, depends_on: [a]}\n\
             - {id: c, entrypoint: noop, depends_on: [b]}\n",
        );
        let err = cycle.plan("default").expect_err("a cycle").to_string();
        assert!(
            err.contains("cycle") && err.contains('a') && err.contains('c'),
            "{err}"
        );
        let unknown = file("name: x\njobs:\n- {id: a, entrypoint: noop, depends_on: [ghost]}\n");
        let err = unknown.plan("default").expect_err("unknown").to_string();
        assert!(err.contains("ghost"), "{err}");
        let twice =
            file("name: x\njobs:\n- {id: a, entrypoint: noop}\n- {id: a, entrypoint: noop}\n");
        assert!(twice.plan("default").is_err());
        let bad = file("name: x\njobs:\n- {id: a, entrypoint: noop, timeout: soon}\n");
        let err = bad.plan("default").expect_err("bad spec").to_string();
        assert!(
            err.starts_with("jobs[0] (a): ") && err.contains("soon"),
            "{err}"
        );
    }
}
