//! A job's output on request (`job.logs.<group>.<job_id>`), read by the
//! registry for users whose permissions stop at their group: a consumer of
//! their own could be told to deliver anywhere, so users make none.

use async_nats::jetstream::stream::DirectGetErrorKind;
use async_nats::HeaderMap;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use shoal_protocol::registry::{LOGS_END_HEADER, LOGS_MORE_HEADER, LOGS_SEQUENCE_HEADER};
use shoal_protocol::token::validate_token;

use crate::{ApiError, Registry};

/// Output bytes in one answer: well under the server's 1 MB message limit.
const MAX_ANSWER_BYTES: usize = 512 * 1024;

/// Chunks read for one answer: a job that wrote many tiny chunks is read
/// over several answers rather than in one long wait.
const MAX_ANSWER_CHUNKS: usize = 1000;

/// Where to read from.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogsRequest {
    /// The stream sequence of the last chunk already read (0: from the start).
    #[serde(default)]
    after: u64,
}

/// The output chunks after `request.after`, joined, with the sequence of the
/// last one, whether more follow, and how many attempts' output ended in it.
pub(crate) struct LogsAnswer {
    /// The output bytes.
    pub body: Bytes,
    /// The headers that say where it ends.
    pub headers: HeaderMap,
}

impl Registry {
    /// `job.logs.<group>.<job_id>`.
    pub(crate) async fn job_logs(
        &self,
        group: &str,
        job_id: &str,
        request: LogsRequest,
    ) -> Result<LogsAnswer, ApiError> {
        for (field, value) in [("group", group), ("job_id", job_id)] {
            validate_token(field, value).map_err(|err| ApiError::bad_request(err.to_string()))?;
        }
        let layout = &self.config.layout;
        // Only direct gets follow: no need for the stream's information.
        let stream = self
            .js
            .get_stream_no_info(layout.logs_stream())
            .await
            .map_err(ApiError::internal)?;
        let subject = layout.subjects.logs(group, job_id);
        let mut body = BytesMut::new();
        let (mut last, mut ends, mut more) = (request.after, 0u32, false);
        for read in 0.. {
            if body.len() >= MAX_ANSWER_BYTES || read >= MAX_ANSWER_CHUNKS {
                more = true;
                break;
            }
            let Some(from) = last.checked_add(1) else {
                break;
            };
            let next = stream
                .direct_get_next_for_subject(subject.as_str(), Some(from))
                .await;
            let message = match next {
                Ok(message) => message,
                Err(err) if err.kind() == DirectGetErrorKind::NotFound => break,
                Err(err) => return Err(ApiError::internal(err)),
            };
            last = message.sequence;
            if message.headers.get(LOGS_END_HEADER).is_some() {
                ends += 1;
            } else {
                body.extend_from_slice(&message.payload);
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(LOGS_SEQUENCE_HEADER, last.to_string().as_str());
        headers.insert(LOGS_MORE_HEADER, more.to_string().as_str());
        headers.insert(LOGS_END_HEADER, ends.to_string().as_str());
        Ok(LogsAnswer {
            body: body.freeze(),
            headers,
        })
    }
}
