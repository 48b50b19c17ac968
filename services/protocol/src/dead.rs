//! Dead letters: a copy of a job given up (poison, or out of deliveries) on
//! `shoal.dead.<group>.<queue>` (stream `SHOAL_DEAD`), with its reason.

use async_nats::jetstream;
use async_nats::HeaderMap;

/// Header with the reason a job was given up.
pub const REASON_HEADER: &str = "Shoal-Reason";
/// Header with the id of the job.
pub const JOB_ID_HEADER: &str = "Shoal-Job-Id";
/// Header with the job's sequence in the jobs stream.
pub const SEQUENCE_HEADER: &str = "Shoal-Stream-Sequence";

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
    /// Stores the copy once, whoever publishes it and however often.
    pub async fn publish(&self, js: &jetstream::Context) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("dead-{}", self.sequence).as_str());
        // Header values are one line.
        headers.insert(
            REASON_HEADER,
            self.reason.replace(['\r', '\n'], " ").as_str(),
        );
        headers.insert(JOB_ID_HEADER, self.job_id.as_str());
        headers.insert(SEQUENCE_HEADER, self.sequence.to_string().as_str());
        js.publish_with_headers(self.subject.clone(), headers, self.body.clone().into())
            .await
            .map_err(|err| err.to_string())?
            .await
            .map_err(|err| err.to_string())?;
        Ok(())
    }
}
