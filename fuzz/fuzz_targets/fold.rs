//! A run of stream messages folded into records, as the projector does:
//! each line is `<stream letter> <subject> <body>` (J jobs, E events, H
//! heartbeats; a job line may carry a workflow's graph). Whatever the
//! messages, decoding and folding never panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use shoal_protocol::decode::{decode_event, decode_heartbeat, decode_submission, Decoded};
use shoal_protocol::fold::{fold_job, fold_worker};
use shoal_protocol::rejection::Position;
use shoal_protocol::{JobRecord, Subjects, Timestamp, WorkerRecord};

fuzz_target!(|data: &[u8]| {
    let subjects = Subjects::default();
    let mut jobs: BTreeMap<String, JobRecord> = BTreeMap::new();
    let mut workers: BTreeMap<String, WorkerRecord> = BTreeMap::new();
    for (index, line) in data.split(|byte| *byte == b'\n').enumerate() {
        let Some((&kind, rest)) = line.split_first() else {
            continue;
        };
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        let split = rest.iter().position(|byte| *byte == b' ').unwrap_or(rest.len());
        let subject = String::from_utf8_lossy(&rest[..split]);
        let body = rest.get(split + 1..).unwrap_or_default();
        let at = Position {
            stream: "SHOAL_FUZZ",
            sequence: index as u64 + 1,
            stored_at: Timestamp::now(),
        };
        let decoded = match kind {
            b'J' => decode_submission(&subjects, &subject, body, at),
            b'E' => decode_event(&subjects, &subject, body, at),
            _ => decode_heartbeat(&subjects, &subject, body, at),
        };
        match decoded {
            Decoded::Job { key, input } => {
                let record = fold_job(jobs.remove(&key), &input);
                jobs.insert(key, record);
            }
            Decoded::Worker { key, input } => {
                let record = fold_worker(workers.remove(&key), &input);
                workers.insert(key, record);
            }
            Decoded::Workflow { record, .. } => {
                let _ = serde_json::to_vec(&record).expect("a workflow record serializes");
            }
            Decoded::Rejected(_) | Decoded::Nothing => {}
        }
    }
    // Every record folded is one the projector can write.
    for record in jobs.values() {
        let _ = serde_json::to_vec(record).expect("a job record serializes");
    }
    for record in workers.values() {
        let _ = serde_json::to_vec(record).expect("a worker record serializes");
    }
});
