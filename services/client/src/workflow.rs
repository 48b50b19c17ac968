//! Workflows from a program: a graph of jobs submitted all or nothing in
//! one atomic batch of the jobs stream (its jobs, then its graph on
//! `shoal.wf.<group>.<name>`, which commits it), read back with the state
//! of each job, and cancelled.

use std::collections::BTreeMap;

use async_nats::HeaderMap;
use serde::Deserialize;
use shoal_protocol::key::Key;
use shoal_protocol::token::validate_token;
use shoal_protocol::workflow::{WorkflowFile, WorkflowRecord};
use shoal_protocol::{JobRecord, Priority};

use crate::client::Client;
use crate::error::ClientError;
use crate::records::RecordStore;

/// How long the server may take to answer a batch's commit.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A workflow the server stored whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedWorkflow {
    /// Its graph, as stored.
    pub record: WorkflowRecord,
    /// How many messages the batch stored (its jobs and its graph).
    pub count: u64,
}

/// A workflow's graph with the record of each of its jobs.
#[derive(Debug, Clone)]
pub struct WorkflowState {
    /// Its graph.
    pub record: WorkflowRecord,
    /// The record of each job, by its id in the group (absent: not folded yet).
    pub jobs: BTreeMap<String, JobRecord>,
}

impl WorkflowState {
    /// The state of each job, by its id in the group (`unknown` before its record).
    pub fn states(&self) -> BTreeMap<String, String> {
        self.record
            .jobs
            .iter()
            .map(|node| {
                let state = self.jobs.get(&node.job_id).and_then(|job| job.state);
                let name = state.map_or("unknown", shoal_protocol::JobState::as_str);
                (node.job_id.clone(), name.to_string())
            })
            .collect()
    }

    /// Why a job waits, or why it ended without success.
    pub fn why(&self, job_id: &str) -> String {
        self.jobs
            .get(job_id)
            .and_then(|job| job.waiting_for.clone().or_else(|| job.error_text.clone()))
            .unwrap_or_default()
    }
}

/// The server's answer to a batch's commit.
#[derive(Debug, Deserialize)]
struct BatchAck {
    #[serde(default)]
    count: u64,
    #[serde(default)]
    error: Option<BatchError>,
}

#[derive(Debug, Deserialize)]
struct BatchError {
    #[serde(default)]
    description: String,
}

impl Client {
    /// Submits the workflow of `file` to `group` (the file's own when it
    /// names one): every job and the graph are stored, or none.
    pub async fn submit_workflow(
        &self,
        group: &str,
        file: &WorkflowFile,
    ) -> Result<SubmittedWorkflow, ClientError> {
        let group = file.group.as_deref().unwrap_or(group);
        validate_token("group", group)?;
        let (mut record, jobs) = file
            .plan(shoal_protocol::DEFAULT_QUEUE)
            .map_err(|err| ClientError::field("workflow", err.to_string()))?;
        if self.workflow_record(group, &record.name).await?.is_some() {
            return Err(ClientError::field(
                "name",
                format!(
                    "workflow {} exists in group {group}; give this one another name",
                    record.name
                ),
            ));
        }
        record.group = group.to_string();
        let subjects = &self.layout().subjects;
        let batch = nuid::next().to_string();
        for (index, job) in jobs.iter().enumerate() {
            let id = job.spec.id.clone().unwrap_or_default();
            let body = serde_json::to_vec(&job.spec)
                .map_err(|err| ClientError::field("workflow", err.to_string()))?;
            let headers = batch_headers(&batch, index + 1, &format!("{group}.{id}"), false);
            self.nats()
                .publish_with_headers(
                    subjects.submission(
                        group,
                        &job.queue,
                        Priority::Normal,
                        job.spec.fairness_key.as_deref(),
                    ),
                    headers,
                    body.into(),
                )
                .await
                .map_err(|err| ClientError::nats(format!("cannot submit job {id}"), err))?;
        }
        let body = serde_json::to_vec(&record)
            .map_err(|err| ClientError::field("workflow", err.to_string()))?;
        let msg_id = format!("{group}.workflow.{}", record.name);
        let headers = batch_headers(&batch, jobs.len() + 1, &msg_id, true);
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(body.into())
            .timeout(Some(COMMIT_TIMEOUT));
        let what = || format!("cannot commit workflow {}", record.name);
        let answer = self
            .nats()
            .send_request(subjects.workflow(group, &record.name), request)
            .await
            .map_err(|err| ClientError::nats(what(), err))?;
        let ack: BatchAck = serde_json::from_slice(&answer.payload)
            .map_err(|err| ClientError::nats(what(), err))?;
        if let Some(error) = ack.error {
            return Err(ClientError::Refused {
                code: 400,
                description: format!(
                    "workflow {} was refused whole: {}",
                    record.name, error.description
                ),
            });
        }
        Ok(SubmittedWorkflow {
            record,
            count: ack.count,
        })
    }

    /// The graph of workflow `name` in `group`, if it was stored.
    pub async fn workflow_record(
        &self,
        group: &str,
        name: &str,
    ) -> Result<Option<WorkflowRecord>, ClientError> {
        validate_token("group", group)?;
        validate_token("name", name)?;
        let bucket = self.layout().workflows_bucket();
        let store = self
            .jetstream()
            .get_key_value(&bucket)
            .await
            .map_err(|err| ClientError::nats(format!("cannot open bucket {bucket}"), err))?;
        let records: RecordStore<WorkflowRecord> = RecordStore::new(store);
        Ok(records.get(&Key::new(group, name).to_string()).await?)
    }

    /// Workflow `name` of `group` with the record of each of its jobs.
    pub async fn workflow(&self, group: &str, name: &str) -> Result<WorkflowState, ClientError> {
        let record = self.workflow_record(group, name).await?.ok_or_else(|| {
            ClientError::NoSuchWorkflow {
                name: name.to_string(),
                group: group.to_string(),
            }
        })?;
        let mut jobs = BTreeMap::new();
        for node in &record.jobs {
            if let Some(job) = self.get(&Key::new(group, &node.job_id)).await? {
                jobs.insert(node.job_id.clone(), job);
            }
        }
        Ok(WorkflowState { record, jobs })
    }

    /// Cancels every job of workflow `name` that has not ended; the ids of
    /// those the registry cancelled.
    pub async fn cancel_workflow(
        &self,
        group: &str,
        name: &str,
    ) -> Result<Vec<String>, ClientError> {
        let state = self.workflow(group, name).await?;
        let mut cancelled = Vec::new();
        for node in &state.record.jobs {
            if state.jobs.get(&node.job_id).is_some_and(|job| job.done) {
                continue;
            }
            let result = self.cancel(&Key::new(group, &node.job_id)).await?;
            if result.cancelled {
                cancelled.push(node.job_id.clone());
            }
        }
        Ok(cancelled)
    }
}

/// The headers of the `sequence`th message of atomic batch `batch`.
fn batch_headers(batch: &str, sequence: usize, msg_id: &str, commit: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Batch-Id", batch);
    headers.insert("Nats-Batch-Sequence", sequence.to_string().as_str());
    headers.insert("Nats-Msg-Id", msg_id);
    if commit {
        headers.insert("Nats-Batch-Commit", "1");
    }
    headers
}
