//! Requests to the `shoal-registry` micro service, with its errors read
//! back as one sentence.

use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The operation on the subject of one group (`worker.list.<group>`) when
/// the group is known, else its unscoped form, which reaches every group.
pub fn in_group(operation: &str, group: Option<&str>) -> String {
    match group {
        Some(group) => format!("{operation}.{group}"),
        None => operation.to_string(),
    }
}

/// Sends `body` to `shoal.api.<operation>` and reads the answer.
pub async fn request<B: Serialize, R: DeserializeOwned>(
    client: &async_nats::Client,
    prefix: &str,
    operation: &str,
    body: &B,
) -> anyhow::Result<R> {
    request_subject(client, &format!("{prefix}.api.{operation}"), body).await
}

/// Sends `body` to a registry endpoint's `subject` and reads the answer.
pub async fn request_subject<B: Serialize, R: DeserializeOwned>(
    client: &async_nats::Client,
    subject: &str,
    body: &B,
) -> anyhow::Result<R> {
    let answer = request_raw(client, subject, body).await?;
    serde_json::from_slice(&answer.payload).map_err(|err| {
        anyhow!("the registry's answer on {subject} is not what was expected: {err}")
    })
}

/// Sends `body` to a registry endpoint's `subject` and returns its answer
/// as it came (headers and bytes), or its error as one sentence.
pub async fn request_raw<B: Serialize>(
    client: &async_nats::Client,
    subject: &str,
    body: &B,
) -> anyhow::Result<async_nats::Message> {
    let subject = subject.to_string();
    let payload = serde_json::to_vec(body)?;
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(Duration::from_secs(10)));
    let answer = client
        .send_request(subject.clone(), request)
        .await
        .map_err(|err| match err.kind() {
            async_nats::RequestErrorKind::NoResponders => anyhow!(
                "the registry does not answer on {subject}: is `shoal registry run` running?"
            ),
            async_nats::RequestErrorKind::TimedOut => {
                anyhow!("the registry did not answer on {subject} within 10s")
            }
            _ => anyhow!("request to {subject} failed: {err}"),
        })?;
    if let Some(headers) = &answer.headers {
        if let Some(code) = headers.get("Nats-Service-Error-Code") {
            let description = headers
                .get("Nats-Service-Error")
                .map(|value| value.to_string())
                .unwrap_or_default();
            bail!("{description} (code {code})");
        }
    }
    Ok(answer)
}
