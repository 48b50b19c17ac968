//! What can go wrong for a user of the client, each kind with its source.

use thiserror::Error;

use crate::connect::ConnectError;
use crate::publish::PublishError;
use crate::records::{BoxError, RecordError};
use crate::streams::SetupError;
use shoal_protocol::token::InvalidToken;

/// Why a request of the client failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// NATS could not be reached or refused the login.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A stream or bucket could not be set up or opened.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A record could not be read or written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A group, queue or id is no valid token.
    #[error(transparent)]
    Invalid(#[from] InvalidToken),
    /// A job spec that is no valid job.
    #[error(transparent)]
    InvalidJob(#[from] shoal_protocol::job::InvalidJob),
    /// A value given for a field cannot be used.
    #[error("{field}: {reason}")]
    Field {
        /// The field, as the user names it.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No job has this id.
    #[error("no job {0} found")]
    NoSuchJob(String),
    /// No workflow of the group has this name.
    #[error("no workflow {name} in group {group}")]
    NoSuchWorkflow {
        /// The name.
        name: String,
        /// The group.
        group: String,
    },
    /// The id names jobs in several groups.
    #[error("job {id} exists in several groups ({groups}); name the group")]
    Ambiguous {
        /// The id.
        id: String,
        /// The groups, comma-separated.
        groups: String,
    },
    /// Another job of the group holds the id.
    #[error("job id `{id}` is taken in group {group} by a different job ({state}, submitted at sequence {sequence}); submit with another id")]
    Taken {
        /// The id.
        id: String,
        /// Its group.
        group: String,
        /// The state of the job that holds it.
        state: String,
        /// That job's sequence.
        sequence: u64,
    },
    /// The server holds a submission under the id, and whose cannot be told yet.
    #[error("job {id}: the server already holds a submission with its deduplication id (sequence {sequence}) and no record shows whose it is yet; `shoal job get -g {group} {id}` tells once the projector has caught up")]
    Unconfirmed {
        /// The id.
        id: String,
        /// Its group.
        group: String,
        /// The sequence that holds the id.
        sequence: u64,
    },
    /// The jobs stream refuses new jobs.
    #[error("the jobs stream is full and refuses new jobs until old ones age out")]
    StreamFull(#[source] PublishError),
    /// A message could not be stored.
    #[error("the {what} was not stored")]
    NotStored {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: PublishError,
    },
    /// The job did not end in time.
    #[error("job {id} did not end within {within}")]
    TimedOut {
        /// The job's id.
        id: String,
        /// How long it was waited for.
        within: shoal_protocol::Duration,
    },
    /// The job cannot do what was asked in its state.
    #[error("job {id} {reason}")]
    JobState {
        /// The job's id.
        id: String,
        /// What stands in the way.
        reason: String,
    },
    /// No registry answers.
    #[error("the registry does not answer on {0}: is `shoal registry run` running?")]
    NoRegistry(String),
    /// The registry did not answer in time.
    #[error("the registry did not answer on {0} within 10s")]
    RegistryTimedOut(String),
    /// The registry refused the request.
    #[error("{description} (code {code})")]
    Refused {
        /// Its code (400, 403, 404, 409, 500).
        code: usize,
        /// Its sentence.
        description: String,
    },
    /// A request to NATS failed.
    #[error("{what}")]
    Nats {
        /// What was asked.
        what: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
}

impl ClientError {
    /// A failed request to NATS: `what` was asked.
    pub fn nats(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Nats {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A value of `field` that cannot be used.
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Field {
            field,
            reason: reason.into(),
        }
    }
}
