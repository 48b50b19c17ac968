//! The JSON Schemas of every wire type, as written to `schemas/`.

use schemars::{schema_for, Schema};

use crate::event::{Heartbeat, JobEvent, RejectedNotice, WorkerEvent};
use crate::job::JobSpec;
use crate::record::{JobRecord, WorkerRecord};

/// Every wire type: its file stem in `schemas/` and its schema.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("job", schema_for!(JobSpec)),
        ("job-event", schema_for!(JobEvent)),
        ("worker-event", schema_for!(WorkerEvent)),
        ("heartbeat", schema_for!(Heartbeat)),
        ("rejected", schema_for!(RejectedNotice)),
        ("job-record", schema_for!(JobRecord)),
        ("worker-record", schema_for!(WorkerRecord)),
    ]
}

/// The schema of one wire type, by its file stem.
pub fn by_name(name: &str) -> Option<Schema> {
    all()
        .into_iter()
        .find(|(stem, _)| *stem == name)
        .map(|(_, schema)| schema)
}

/// A schema as it is written to a file: pretty JSON with a final newline.
pub fn to_file_text(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
