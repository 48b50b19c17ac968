//! Dead letters: a copy of a job given up (poison, or out of deliveries) on
//! `shoal.dead.<group>.<queue>` (stream `SHOAL_DEAD`), with its reason.

use async_nats::jetstream;
use async_nats::HeaderMap;

use crate::job::MAX_SPEC_BYTES;
use crate::publish::{publish_once, Check, PublishError};

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
    /// Stores the copy once, whoever publishes it and however often; a body
    /// too large to travel with its headers is cut to the largest job spec
    /// (`Shoal-Truncated` gives its size).
    pub async fn publish(&self, js: &jetstream::Context, check: Check) -> Result<(), PublishError> {
        let mut headers = HeaderMap::new();
        // Header values are one line.
        headers.insert(
            REASON_HEADER,
            one_line(&self.reason, MAX_REASON_BYTES).as_str(),
        );
        headers.insert(JOB_ID_HEADER, self.job_id.as_str());
        headers.insert(SEQUENCE_HEADER, self.sequence.to_string().as_str());
        let mut body = self.body.clone();
        if body.len() > MAX_SPEC_BYTES {
            headers.insert(TRUNCATED_HEADER, body.len().to_string().as_str());
            body.truncate(MAX_SPEC_BYTES);
        }
        publish_once(
            js,
            &self.subject,
            &format!("dead-{}", self.sequence),
            headers,
            body.into(),
            check,
        )
        .await
        .map(drop)
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
