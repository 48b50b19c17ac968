//! A job's output, as raw bytes (long lines and binary output pass through
//! untouched), read through the registry's `job.logs.<group>.<job_id>` so
//! that a user of one group needs no consumer of its own; followed while
//! the job runs.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use shoal_protocol::api::ApiOp;
use shoal_protocol::key::Key;
use shoal_protocol::registry::{LOGS_MORE_HEADER, LOGS_SEQUENCE_HEADER};

use crate::client::Client;
use crate::error::ClientError;

/// How long to wait for more output of a running job before asking again.
const POLL: Duration = Duration::from_millis(500);

/// Where a read of the output stands.
struct Reading {
    client: Client,
    op: ApiOp,
    follow: bool,
    after: u64,
    /// The job has ended: one more read takes what arrived with its outcome.
    last_read: bool,
    done: bool,
}

impl Client {
    /// The output of the job under `key`, chunk by chunk; with `follow`,
    /// until the job has ended (output is sent beside the outcome, so one
    /// more read after the end takes what arrived with it).
    pub fn logs(&self, key: &Key, follow: bool) -> impl Stream<Item = Result<Bytes, ClientError>> {
        let reading = Reading {
            client: self.clone(),
            op: ApiOp::JobLogs(key.clone()),
            follow,
            after: 0,
            last_read: false,
            done: false,
        };
        futures_util::stream::unfold(reading, |mut reading| async move {
            if reading.done {
                return None;
            }
            let chunk = reading.next_chunk().await;
            if chunk.is_err() {
                reading.done = true;
            }
            Some((chunk, reading))
        })
    }
}

impl Reading {
    /// The next chunk of output: what the registry has after the last one,
    /// waiting while a followed job runs and nothing new has come.
    async fn next_chunk(&mut self) -> Result<Bytes, ClientError> {
        loop {
            let body = serde_json::json!({ "after": self.after });
            let answer = self.client.request_raw(&self.op, &body).await?;
            let header = |name: &str| {
                answer
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(name))
                    .map(|value| value.to_string())
            };
            self.after = header(LOGS_SEQUENCE_HEADER)
                .and_then(|sequence| sequence.parse().ok())
                .ok_or_else(|| {
                    ClientError::field("logs", "the registry's answer names no sequence")
                })?;
            let more = header(LOGS_MORE_HEADER).as_deref() == Some("true");
            if !more && (!self.follow || self.last_read) {
                self.done = true;
            }
            if more || self.done || !answer.payload.is_empty() {
                return Ok(answer.payload);
            }
            let key = match &self.op {
                ApiOp::JobLogs(key) => key.clone(),
                _ => return Ok(answer.payload),
            };
            self.last_read = self
                .client
                .get(&key)
                .await
                .ok()
                .flatten()
                .is_some_and(|record| record.done);
            if !self.last_read {
                tokio::time::sleep(POLL).await;
            }
        }
    }
}
