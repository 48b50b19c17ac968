//! Storing a submission once under its id, and telling the submitter when a
//! job already holds that id.
//!
//! A job's deduplication id is `<group>.<id>`, tried again unchanged when an
//! acknowledgement is lost. The server remembers ids across every group, so
//! a "duplicate" answer is checked against the group's own record: a message
//! of another group that took the id first does not swallow this one, which
//! is then stored under a fresh deduplication id (the job keeps its id, and
//! the first submission of an id in a group is the one that runs).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use shoal_protocol::publish::{publish_with_id, PublishError};
use shoal_protocol::{JobRecord, JobSpec};

/// How long a "duplicate" answer waits for the group's record to show the
/// submission that holds the id.
const OWNER_WAIT: Duration = Duration::from_secs(3);

/// Publishes tried in all when acknowledgements are lost.
const TRIES: u32 = 3;

/// Stores `spec` on `subject` (a queue of `group`) and returns its stream sequence.
pub async fn store(
    js: &jetstream::Context,
    records: &kv::Store,
    group: &str,
    subject: &str,
    spec: &JobSpec,
) -> anyhow::Result<u64> {
    if let Some(id) = &spec.id {
        if let Some(record) = read_record(records, group, id).await? {
            if let Some(sequence) = record.stream_sequence {
                return same_job_or_taken(&record, subject, spec, sequence);
            }
        }
    }
    let msg_id = match &spec.id {
        Some(id) => format!("{group}.{id}"),
        None => nuid::next().to_string(),
    };
    let body = bytes::Bytes::from(serde_json::to_vec(spec)?);
    let mut last_error = None;
    for attempt in 1..=TRIES {
        match publish_with_id(js, subject, &msg_id, HeaderMap::new(), body.clone()).await {
            Ok(ack) if !ack.duplicate => return Ok(ack.sequence),
            Ok(ack) => {
                return settle_duplicate(js, records, (group, subject, spec), ack.sequence, attempt)
                    .await
            }
            Err(err) if err.is_stream_full() => bail!("{}", stream_full(&err)),
            Err(err) => last_error = Some(err),
        }
    }
    Err(anyhow::Error::from(
        last_error.context("the job was not acknowledged")?,
    ))
}

/// Decides what a "duplicate" answer means: this group's job holds the id
/// (an error on the first try, this very submission on a later one), or
/// another group's message took it first (stored again, under a fresh id).
async fn settle_duplicate(
    js: &jetstream::Context,
    records: &kv::Store,
    (group, subject, spec): (&str, &str, &JobSpec),
    sequence: u64,
    attempt: u32,
) -> anyhow::Result<u64> {
    let Some(id) = &spec.id else {
        // A fresh random id: a duplicate is an earlier try of this submission.
        return Ok(sequence);
    };
    if let Some(record) = owner_record(records, group, id, sequence).await? {
        if attempt == 1 {
            return same_job_or_taken(&record, subject, spec, sequence);
        }
        return Ok(sequence);
    }
    let fresh = format!("{group}.{id}~{}", nuid::next());
    let body = bytes::Bytes::from(serde_json::to_vec(spec)?);
    let ack = publish_with_id(js, subject, &fresh, HeaderMap::new(), body)
        .await
        .map_err(|err| match err.is_stream_full() {
            true => anyhow::anyhow!("{}", stream_full(&err)),
            false => err.into(),
        })?;
    eprintln!(
        "note: the deduplication id {group}.{id} was held by a message outside group {group}; \
         the job was stored under a fresh one"
    );
    Ok(ack.sequence)
}

/// The group's record of `id` once it shows the submission at `sequence`,
/// waited for a little while the projector catches up.
async fn owner_record(
    records: &kv::Store,
    group: &str,
    id: &str,
    sequence: u64,
) -> anyhow::Result<Option<JobRecord>> {
    let deadline = Instant::now() + OWNER_WAIT;
    loop {
        if let Some(record) = read_record(records, group, id).await? {
            if record.stream_sequence == Some(sequence) {
                return Ok(Some(record));
            }
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_record(
    records: &kv::Store,
    group: &str,
    id: &str,
) -> anyhow::Result<Option<JobRecord>> {
    let key = format!("{group}.{id}");
    let Some(value) = records
        .get(&key)
        .await
        .with_context(|| format!("cannot read the record of job {id}"))?
    else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&value).ok())
}

/// A submission of the very job the record holds is the same submission
/// again (its sequence is returned); any other job may not take its id.
fn same_job_or_taken(
    record: &JobRecord,
    subject: &str,
    spec: &JobSpec,
    sequence: u64,
) -> anyhow::Result<u64> {
    let same = !is_rejected(record)
        && subject.split('.').nth(3) == Some(record.queue.as_str())
        && record.entrypoint == spec.entrypoint
        && record.command == spec.command
        && record.args == spec.args
        && record.env_names.iter().eq(spec.env.keys())
        && record.timeout == spec.timeout
        && record.tags == spec.tags
        && record.labels == spec.labels;
    if same {
        return Ok(sequence);
    }
    let state = record.state.map_or("submitted", |state| state.as_str());
    bail!(
        "job id `{}` is taken in group {} by a different job ({state}, submitted at sequence {sequence}); submit with another id",
        record.id,
        record.group
    )
}

fn is_rejected(record: &JobRecord) -> bool {
    record.state == Some(shoal_protocol::JobState::Dead) && record.attempt == 0
}

fn stream_full(err: &PublishError) -> String {
    format!(
        "the jobs stream is full and refuses new jobs until old ones age out ({})",
        err.source
    )
}
