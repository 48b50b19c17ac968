//! Workflows' graphs, folded into `shoal_workflows`: like a job id, a
//! workflow's name belongs to its first submission (the lowest sequence).

use shoal_client::{RecordError, RecordStore};
use shoal_protocol::workflow::WorkflowRecord;

/// Writes `record` under `key` unless an earlier submission holds the name.
pub(crate) async fn fold_workflow(
    store: &RecordStore<WorkflowRecord>,
    key: &str,
    record: &WorkflowRecord,
) -> Result<(), RecordError> {
    store
        .update(
            key,
            |current| match current {
                Some(held) if held.stream_sequence <= record.stream_sequence => held,
                _ => record.clone(),
            },
            |_, _| true,
        )
        .await
        .map(drop)
}
