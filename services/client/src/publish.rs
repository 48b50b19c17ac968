//! Publishing a message once under a deduplication id, without letting
//! another group's message take that id first.
//!
//! A stream remembers `Nats-Msg-Id` for its whole duplicate window, across
//! every subject: a user who may publish to any subject of the stream can
//! send a message with the id another group's message will carry, and the
//! server then drops that message as a duplicate. Permissions fence
//! subjects, never ids; so a publisher that is told "duplicate" checks that
//! the message stored under the id is on its own subject, and when it is
//! not, stores its message again under an id of its own.

use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::HeaderMap;
use thiserror::Error;

/// The header the server deduplicates on.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// How a publish under an id ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, at this sequence.
    New(u64),
    /// A message with this id and subject was stored before, at this sequence.
    Duplicate(u64),
    /// Another subject's message held the id; stored now under a fresh id.
    Reclaimed {
        /// The sequence of the message that held the id.
        squatter: u64,
        /// The sequence this message was stored at.
        sequence: u64,
    },
}

impl Stored {
    /// The sequence at which this message (or its earlier copy) is stored.
    pub fn sequence(self) -> u64 {
        match self {
            Self::New(sequence) | Self::Duplicate(sequence) => sequence,
            Self::Reclaimed { sequence, .. } => sequence,
        }
    }
}

/// Whether a publisher can read a stream's messages by sequence to check
/// whose message holds an id (operators can; other roles cannot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Read the message that holds the id; store again if it is not ours.
    Verify,
    /// Take the server's word: another publisher that verifies repairs it.
    Trust,
}

/// A message that could not be stored.
#[derive(Debug, Error)]
#[error("could not store a message on {subject}: {source}")]
pub struct PublishError {
    /// Where it was to go.
    pub subject: String,
    /// What the server or the connection said.
    #[source]
    pub source: async_nats::Error,
}

impl PublishError {
    fn new(subject: &str, source: impl Into<async_nats::Error>) -> Self {
        Self {
            subject: subject.to_string(),
            source: source.into(),
        }
    }

    /// Whether the stream refused the message because it is full.
    pub fn is_stream_full(&self) -> bool {
        let text = self.source.to_string();
        text.contains("maximum bytes") || text.contains("maximum messages")
    }
}

/// Publishes `body` on `subject` under `msg_id` and waits for the stream's
/// acknowledgement; `check` says what to do when the id was taken.
pub async fn publish_once(
    js: &jetstream::Context,
    subject: &str,
    msg_id: &str,
    headers: HeaderMap,
    body: bytes::Bytes,
    check: Check,
) -> Result<Stored, PublishError> {
    let ack = publish_with_id(js, subject, msg_id, headers.clone(), body.clone()).await?;
    if !ack.duplicate {
        return Ok(Stored::New(ack.sequence));
    }
    if check == Check::Trust {
        return Ok(Stored::Duplicate(ack.sequence));
    }
    match holder_subject(js, &ack.stream, ack.sequence).await {
        Some(holder) if holder != subject => {
            tracing::warn!(
                subject,
                msg_id,
                held_by = %holder,
                "a message on another subject held this id; stored under a fresh one"
            );
            let fresh = format!("{msg_id}~{}", nuid::next());
            let again = publish_with_id(js, subject, &fresh, headers, body).await?;
            Ok(Stored::Reclaimed {
                squatter: ack.sequence,
                sequence: again.sequence,
            })
        }
        _ => Ok(Stored::Duplicate(ack.sequence)),
    }
}

/// Publishes with the id header set and waits for the acknowledgement.
pub async fn publish_with_id(
    js: &jetstream::Context,
    subject: &str,
    msg_id: &str,
    mut headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<jetstream::publish::PublishAck, PublishError> {
    headers.insert(MSG_ID_HEADER, msg_id);
    let pending = js
        .publish_with_headers(subject.to_string(), headers, body)
        .await
        .map_err(|err| PublishError::new(subject, err))?;
    pending.await.map_err(|err| {
        let source: async_nats::Error = match err.kind() {
            PublishErrorKind::TimedOut => "no acknowledgement in time".into(),
            _ => err.into(),
        };
        PublishError::new(subject, source)
    })
}

/// The subject of the message stored at `sequence`, when it can be read.
async fn holder_subject(js: &jetstream::Context, stream: &str, sequence: u64) -> Option<String> {
    let stream = js.get_stream_no_info(stream).await.ok()?;
    let message = stream.direct_get(sequence).await.ok()?;
    Some(message.subject.to_string())
}
