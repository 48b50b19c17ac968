//! Submitting a job once under its id, and telling the submitter when a job
//! already holds that id.
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

use async_nats::jetstream;
use async_nats::HeaderMap;
use shoal_protocol::key::Key;
use shoal_protocol::{JobRecord, JobSpec, JobState, Priority};

use crate::client::{Client, Target};
use crate::error::ClientError;
use crate::publish::{publish_with_id, PublishError};

/// How long a "duplicate" answer waits for the group's record to show the
/// submission that holds the id.
const OWNER_WAIT: Duration = Duration::from_secs(3);

/// How long an unconfirmed "duplicate" answer waits for the record before
/// the submitter is told, rather than storing the job twice.
const UNSURE_WAIT: Duration = Duration::from_secs(10);

/// Publishes tried in all when acknowledgements are lost.
const TRIES: u32 = 3;

/// A job stored in the jobs stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Its key: its group and id (the stream sequence when it named none).
    pub key: Key,
    /// Its sequence in the jobs stream.
    pub sequence: u64,
    /// Another group's message held its deduplication id, so it was stored
    /// under a fresh one (it keeps its own id).
    pub fresh_dedupe_id: bool,
}

impl Client {
    /// Submits `spec` to `target`: idempotent under the job's id (the same
    /// job again is the same submission; another job with that id is
    /// refused), tried again with the same id when an acknowledgement is lost.
    pub async fn submit(&self, target: &Target, spec: &JobSpec) -> Result<Submitted, ClientError> {
        spec.validate()?;
        let start = std::time::SystemTime::now();
        if spec.fairness_key.is_some() && target.priority != Priority::Normal {
            return Err(ClientError::field(
                "priority",
                "a job with a fairness key runs in its key's turn, at normal priority",
            ));
        }
        let subject = self.layout().subjects.submission(
            &target.group,
            &target.queue,
            target.priority,
            spec.fairness_key.as_deref(),
        );
        let submitted = |sequence: u64, fresh_dedupe_id| Submitted {
            key: Key::new(&target.group, spec.job_id(sequence)),
            sequence,
            fresh_dedupe_id,
        };
        if let Some(id) = &spec.id {
            if let Some(record) = self.get(&Key::new(&target.group, id)).await? {
                if let Some(sequence) = record.stream_sequence {
                    return same_job_or_taken(&record, target, spec, sequence)
                        .map(|sequence| submitted(sequence, false));
                }
            }
        }
        let msg_id = match &spec.id {
            Some(id) => Key::new(&target.group, id).to_string(),
            None => nuid::next().to_string(),
        };
        let body = body_of(spec)?;
        // The job starts a trace, the same on every try; its attempts continue it.
        let mut headers = HeaderMap::new();
        let trace = crate::trace::new_trace();
        if let Some(trace) = trace {
            headers.insert(
                shoal_protocol::trace::TRACEPARENT,
                trace.to_string().as_str(),
            );
        }
        let mut last_error = None;
        for attempt in 1..=TRIES {
            match publish_with_id(
                self.jetstream(),
                &subject,
                &msg_id,
                headers.clone(),
                body.clone(),
            )
            .await
            {
                Ok(ack) if !ack.duplicate => {
                    let done = submitted(ack.sequence, false);
                    self.submission_ended(&done, target, &subject, (trace, start));
                    return Ok(done);
                }
                Ok(ack) => {
                    let (sequence, fresh) = self
                        .settle_duplicate((target, &subject, spec), ack.sequence, attempt)
                        .await?;
                    // An earlier try of this submission, or it stored again under a fresh id.
                    let done = submitted(sequence, fresh);
                    self.submission_ended(&done, target, &subject, (trace, start));
                    return Ok(done);
                }
                Err(err) if err.is_stream_full() => return Err(ClientError::StreamFull(err)),
                Err(err) => last_error = Some(err),
            }
        }
        Err(match last_error {
            Some(source) => ClientError::NotStored {
                what: "job",
                source,
            },
            None => ClientError::field("job", "it was not acknowledged"),
        })
    }

    /// Hands the submission's producer span to the exporter, if spans are
    /// exported and the job started a trace.
    fn submission_ended(
        &self,
        submitted: &Submitted,
        target: &Target,
        subject: &str,
        (trace, start): (
            Option<shoal_protocol::trace::TraceParent>,
            std::time::SystemTime,
        ),
    ) {
        let (Some(spans), Some(trace)) = (self.spans(), trace) else {
            return;
        };
        let job = shoal_protocol::span::JobSpan {
            id: submitted.key.id(),
            group: &target.group,
            queue: &target.queue,
            subject,
            attempt: None,
        };
        spans.ended(shoal_protocol::span::EndedSpan::of_job(job, trace, start));
    }

    /// Decides what a "duplicate" answer means: this group's job holds the
    /// id (an error on the first try, this very submission on a later one),
    /// or another group's message took it first (stored again, under a
    /// fresh id). Gives the sequence, and whether the id was fresh.
    async fn settle_duplicate(
        &self,
        (target, subject, spec): (&Target, &str, &JobSpec),
        sequence: u64,
        attempt: u32,
    ) -> Result<(u64, bool), ClientError> {
        let Some(id) = &spec.id else {
            // A fresh random id: a duplicate is an earlier try of this submission.
            return Ok((sequence, false));
        };
        let key = Key::new(&target.group, id);
        let own = |record: JobRecord| match attempt {
            1 => {
                same_job_or_taken(&record, target, spec, sequence).map(|sequence| (sequence, false))
            }
            _ => Ok((sequence, false)),
        };
        if let Some(record) = self.owner_record(&key, sequence, OWNER_WAIT).await? {
            return own(record);
        }
        if !self.held_elsewhere(subject, sequence).await {
            // Perhaps this group's own, with a projector that is behind.
            if let Some(record) = self.owner_record(&key, sequence, UNSURE_WAIT).await? {
                return own(record);
            }
            return Err(ClientError::Unconfirmed {
                id: id.clone(),
                group: target.group.clone(),
                sequence,
            });
        }
        let fresh = format!("{key}~{}", nuid::next());
        let body = body_of(spec)?;
        let ack = publish_with_id(self.jetstream(), subject, &fresh, HeaderMap::new(), body)
            .await
            .map_err(stored_error)?;
        Ok((ack.sequence, true))
    }

    /// Whether the message at `sequence` is surely on another subject than
    /// `subject`: the last message on `subject` is older, or there is none.
    async fn held_elsewhere(&self, subject: &str, sequence: u64) -> bool {
        let stream = self.layout().jobs_stream();
        let Ok(stream) = self.jetstream().get_stream_no_info(stream).await else {
            return false;
        };
        match stream.direct_get_last_for_subject(subject).await {
            Ok(last) => last.sequence < sequence,
            Err(err) => err.kind() == jetstream::stream::DirectGetErrorKind::NotFound,
        }
    }

    /// The group's record of the job once it shows the submission at
    /// `sequence`, waited for up to `wait` while the projector catches up.
    async fn owner_record(
        &self,
        key: &Key,
        sequence: u64,
        wait: Duration,
    ) -> Result<Option<JobRecord>, ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(record) = self.get(key).await? {
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
}

/// The body of a submission.
pub(crate) fn body_of(spec: &JobSpec) -> Result<bytes::Bytes, ClientError> {
    serde_json::to_vec(spec)
        .map(bytes::Bytes::from)
        .map_err(|err| ClientError::nats("cannot write the job as JSON", err))
}

fn stored_error(err: PublishError) -> ClientError {
    match err.is_stream_full() {
        true => ClientError::StreamFull(err),
        false => ClientError::NotStored {
            what: "job",
            source: err,
        },
    }
}

/// A submission of the very job the record holds is the same submission
/// again (its sequence is returned); any other job may not take its id.
fn same_job_or_taken(
    record: &JobRecord,
    target: &Target,
    spec: &JobSpec,
    sequence: u64,
) -> Result<u64, ClientError> {
    let same = !is_rejected(record)
        && target.queue == record.queue
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
    Err(ClientError::Taken {
        id: record.id.clone(),
        group: record.group.clone(),
        state: record
            .state
            .map_or("submitted", JobState::as_str)
            .to_string(),
        sequence,
    })
}

fn is_rejected(record: &JobRecord) -> bool {
    record.state == Some(JobState::Dead) && record.attempt == 0
}
