//! A workflow's page: its graph and the state of each of its jobs, read
//! through the client (the graph from `shoal_workflows`, each job's record).

use std::collections::BTreeMap;

use serde::Serialize;
use shoal_client::Client;
use shoal_protocol::workflow::WorkflowRecord;

use crate::routes::Refusal;

/// A workflow as its page shows it.
#[derive(Debug, Serialize)]
pub(crate) struct WorkflowView {
    /// Its graph.
    workflow: WorkflowRecord,
    /// Each job's state, by its id in the group.
    states: BTreeMap<String, String>,
    /// Why each job waits or ended badly, by its id in the group.
    why: BTreeMap<String, String>,
}

/// Workflow `name` of `group` with its jobs' states.
pub(crate) async fn workflow(
    client: &Client,
    group: &str,
    name: &str,
) -> Result<WorkflowView, Refusal> {
    let state = client.workflow(group, name).await.map_err(Refusal::of)?;
    let why = state
        .record
        .jobs
        .iter()
        .map(|node| (node.job_id.clone(), state.why(&node.job_id)))
        .filter(|(_, why)| !why.is_empty())
        .collect();
    Ok(WorkflowView {
        states: state.states(),
        why,
        workflow: state.record,
    })
}
