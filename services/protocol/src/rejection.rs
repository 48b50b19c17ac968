//! Rejections: the events that say a message could not be read, built the
//! same way by every service so that the stream stores each one once.

use async_nats::jetstream::Message;

use crate::dead::DeadLetter;
use crate::event::{JobEvent, JobEventType, RejectedNotice};
use crate::publish::{publish_once, Check, PublishError};
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

impl Rejection {
    /// Stores the rejection (and its dead letter) once, whoever publishes it;
    /// `check` as in [`publish_once`].
    pub async fn publish(
        &self,
        js: &async_nats::jetstream::Context,
        check: Check,
    ) -> Result<(), PublishError> {
        publish_once(
            js,
            &self.subject,
            &self.msg_id,
            async_nats::HeaderMap::new(),
            self.body.clone().into(),
            check,
        )
        .await?;
        if let Some(dead_letter) = &self.dead_letter {
            dead_letter.publish(js, check).await?;
        }
        Ok(())
    }
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

/// The position of a message delivered by a consumer.
pub fn position(message: &Message) -> Option<Position<'_>> {
    let info = message.info().ok()?;
    Some(Position {
        stream: info.stream,
        sequence: info.stream_sequence,
        stored_at: info.published.into(),
    })
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
