//! Rejections: the events that say a message could not be read, built the
//! same way by every service so that the stream stores each one once, and
//! dead letters: a copy of a job given up (poison, or out of deliveries) on
//! `shoal.dead.<group>.<queue>` (stream `SHOAL_DEAD`), with its reason.

use crate::event::{JobEvent, JobEventType, RejectedNotice};
use crate::job::MAX_SPEC_BYTES;
use crate::subjects::Subjects;
use crate::timestamp::Timestamp;

/// An event to publish for a message that could not be read.
#[derive(Debug)]
pub struct Rejection {
    /// Where to publish it.
    pub subject: String,
    /// Its deduplication id: the same for every service that rejects the same message.
    pub msg_id: String,
    /// Its body.
    pub body: Vec<u8>,
    /// The copy of a poison submission for the dead-letter stream.
    pub dead_letter: Option<DeadLetter>,
}

/// The deduplication id of the rejection of message `sequence` of `stream`.
pub fn rejection_id(stream: &str, sequence: u64) -> String {
    format!("rejected-{stream}-{sequence}")
}

/// Where a message sits in its stream.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// The stream's name.
    pub stream: &'a str,
    /// The message's sequence.
    pub sequence: u64,
    /// When the server stored it.
    pub stored_at: Timestamp,
}

/// The rejection of a submission on `shoal.jobs.<group>.<queue>` that is no job spec.
/// Workers publish the very same event when they pull it, so it is stored once.
pub fn reject_submission(
    subjects: &Subjects,
    subject: &str,
    body: &[u8],
    at: Position<'_>,
    reason: String,
) -> Rejection {
    match subjects.parse_job(subject) {
        Ok(place) => {
            let job_id = claimed_id(body).unwrap_or_else(|| at.sequence.to_string());
            let mut event = JobEvent::new(
                JobEventType::Rejected,
                &place.group,
                &place.id,
                &job_id,
                0,
                at.stored_at,
            );
            event.error_text = Some(reason.clone());
            event.stream_sequence = Some(at.sequence);
            Rejection {
                subject: subjects.job_event(&place.group, &job_id),
                msg_id: rejection_id(at.stream, at.sequence),
                body: serde_json::to_vec(&event).unwrap_or_default(),
                dead_letter: Some(DeadLetter {
                    subject: subjects.dead(&place.group, &place.id),
                    job_id,
                    sequence: at.sequence,
                    reason: format!("rejected: {reason}"),
                    body: body.to_vec(),
                }),
            }
        }
        Err(err) => notice(subjects, subject, at, format!("{err}; {reason}")),
    }
}

/// The id a submission that is no job spec asks for, when it names a valid
/// one: its rejection is recorded under it, where its submitter looks.
fn claimed_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct JustTheId {
        id: String,
    }
    let claimed: JustTheId = serde_json::from_slice(body).ok()?;
    crate::token::validate_token("id", &claimed.id).ok()?;
    Some(claimed.id)
}

/// A rejection notice for a message that belongs to no job.
pub fn notice(subjects: &Subjects, subject: &str, at: Position<'_>, reason: String) -> Rejection {
    let notice = RejectedNotice {
        subject: subject.to_string(),
        stream: at.stream.to_string(),
        sequence: at.sequence,
        reason,
        at: at.stored_at,
    };
    Rejection {
        subject: subjects.rejected(),
        msg_id: rejection_id(at.stream, at.sequence),
        body: serde_json::to_vec(&notice).unwrap_or_default(),
        dead_letter: None,
    }
}

/// Header with the reason a job was given up.
pub const REASON_HEADER: &str = "Shoal-Reason";
/// Header with the id of the job.
pub const JOB_ID_HEADER: &str = "Shoal-Job-Id";
/// Header with the job's sequence in the jobs stream.
pub const SEQUENCE_HEADER: &str = "Shoal-Stream-Sequence";
/// Header with the size of a submission too large to be copied whole.
pub const TRUNCATED_HEADER: &str = "Shoal-Truncated";

/// A job to copy to the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `shoal.dead.<group>.<queue>`.
    pub subject: String,
    /// The job's id.
    pub job_id: String,
    /// The job's sequence in the jobs stream.
    pub sequence: u64,
    /// Why it was given up.
    pub reason: String,
    /// The submission as it was published.
    pub body: Vec<u8>,
}

impl DeadLetter {
    /// Its headers (values on one line) and its body, cut to the largest
    /// job spec when too large to travel with them (`Shoal-Truncated` gives
    /// its size).
    pub fn headers_and_body(&self) -> (Vec<(&'static str, String)>, Vec<u8>) {
        let mut headers = vec![
            (REASON_HEADER, one_line(&self.reason, MAX_REASON_BYTES)),
            (JOB_ID_HEADER, self.job_id.clone()),
            (SEQUENCE_HEADER, self.sequence.to_string()),
        ];
        let mut body = self.body.clone();
        if body.len() > MAX_SPEC_BYTES {
            headers.push((TRUNCATED_HEADER, body.len().to_string()));
            body.truncate(MAX_SPEC_BYTES);
        }
        (headers, body)
    }

    /// Its deduplication id: one copy per submission, whoever sends it.
    pub fn msg_id(&self) -> String {
        format!("dead-{}", self.sequence)
    }
}

/// Longest reason a dead letter carries in its header.
const MAX_REASON_BYTES: usize = 4096;

/// `text` on one line, cut to at most `max` bytes on a character boundary.
fn one_line(text: &str, max: usize) -> String {
    let mut line = text.replace(['\r', '\n'], " ");
    if line.len() > max {
        let mut end = max;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}
