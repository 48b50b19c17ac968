//! Storing a submission once under its id, and telling the submitter when a
//! job already holds that id.
//!
//! A job's deduplication id is `<group>.<id>`, tried again unchanged when an
//! acknowledgement is lost. The server remembers ids across every group, so
//! a "duplicate" answer is checked: the group's record shows the submission
//! that holds the id when it is the group's own; when the last submission on
//! this queue's subject is older than the one that holds the id, that one is
//! on another subject (another group's message took the id first), and the
//! job is stored again under a fresh deduplication id (it keeps its own id).
//! When neither can be told, nothing is stored twice: the submitter is told.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use shoal_client::publish::{publish_with_id, PublishError};
use shoal_client::streams::Layout;
use shoal_protocol::{JobRecord, JobSpec};

/// How long a "duplicate" answer waits for the group's record to show the
/// submission that holds the id.
const OWNER_WAIT: Duration = Duration::from_secs(3);

/// How long an unconfirmed "duplicate" answer waits for the record before
/// the submitter is told, rather than storing the job twice.
const UNSURE_WAIT: Duration = Duration::from_secs(10);

/// Publishes tried in all when acknowledgements are lost.
const TRIES: u32 = 3;

/// Stores `spec` on `subject` (a queue of `group`) and returns its stream sequence.
pub async fn store(
    js: &jetstream::Context,
    layout: &Layout,
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
                let to = (group, subject, spec);
                return settle_duplicate(js, layout, records, to, ack.sequence, attempt).await;
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
    layout: &Layout,
    records: &kv::Store,
    (group, subject, spec): (&str, &str, &JobSpec),
    sequence: u64,
    attempt: u32,
) -> anyhow::Result<u64> {
    let Some(id) = &spec.id else {
        // A fresh random id: a duplicate is an earlier try of this submission.
        return Ok(sequence);
    };
    if let Some(record) = owner_record(records, group, id, sequence, OWNER_WAIT).await? {
        return match attempt {
            1 => same_job_or_taken(&record, subject, spec, sequence),
            _ => Ok(sequence),
        };
    }
    if !held_elsewhere(js, &layout.jobs_stream(), subject, sequence).await {
        // Perhaps this group's own, with a projector that is behind.
        if let Some(record) = owner_record(records, group, id, sequence, UNSURE_WAIT).await? {
            return match attempt {
                1 => same_job_or_taken(&record, subject, spec, sequence),
                _ => Ok(sequence),
            };
        }
        bail!(
            "job {id}: the server already holds a submission with its deduplication id (sequence \
             {sequence}) and no record shows whose it is yet; `shoal job get -g {group} {id}` \
             tells once the projector has caught up"
        );
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

/// Whether the message at `sequence` is surely on another subject than
/// `subject`: the last message on `subject` is older, or there is none.
async fn held_elsewhere(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
    sequence: u64,
) -> bool {
    let Ok(stream) = js.get_stream_no_info(stream).await else {
        return false;
    };
    match stream.direct_get_last_for_subject(subject).await {
        Ok(last) => last.sequence < sequence,
        Err(err) => err.kind() == jetstream::stream::DirectGetErrorKind::NotFound,
    }
}

/// The group's record of `id` once it shows the submission at `sequence`,
/// waited for up to `wait` while the projector catches up.
async fn owner_record(
    records: &kv::Store,
    group: &str,
    id: &str,
    sequence: u64,
    wait: Duration,
) -> anyhow::Result<Option<JobRecord>> {
    let deadline = Instant::now() + wait;
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
