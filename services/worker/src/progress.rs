//! A job's progress reports (`::shoal progress N text` lines of its output)
//! published as `progress` events, at most one per [`PROGRESS_INTERVAL`].

use std::sync::Arc;

use shoal_protocol::event::Progress;
use shoal_protocol::{JobEvent, Timestamp};
use tracing::debug;

use crate::rate::PROGRESS_INTERVAL;
use crate::start::StartReport;

/// Publishes the job's progress reports as events (the job's start is
/// reported first), at most one per
/// [`PROGRESS_INTERVAL`]: a report that comes sooner waits, and a newer one
/// replaces it; the last report is always sent.
pub(crate) async fn report_progress(
    js: async_nats::jetstream::Context,
    subjects: shoal_protocol::Subjects,
    template: JobEvent,
    mut reports: tokio::sync::mpsc::UnboundedReceiver<(u8, String)>,
    start: Arc<StartReport>,
) {
    let subject = subjects.job_event(&template.group, &template.job_id);
    let mut latest: Option<(u8, String)> = None;
    let mut next_send = tokio::time::Instant::now();
    loop {
        let report = tokio::select! {
            report = reports.recv() => report,
            _ = tokio::time::sleep_until(next_send), if latest.is_some() => {
                if let Some(report) = latest.take() {
                    start.report().await;
                    publish_progress(&js, &subject, &template, report).await;
                    next_send = tokio::time::Instant::now() + PROGRESS_INTERVAL;
                }
                continue;
            }
        };
        match report {
            Some(report) => latest = Some(report),
            None => {
                if let Some(report) = latest.take() {
                    start.report().await;
                    publish_progress(&js, &subject, &template, report).await;
                }
                return;
            }
        }
    }
}

async fn publish_progress(
    js: &async_nats::jetstream::Context,
    subject: &str,
    template: &JobEvent,
    (percent, message): (u8, String),
) {
    let at = Timestamp::now();
    let event = JobEvent {
        at,
        progress: Some(Progress {
            percent,
            message,
            at,
        }),
        ..template.clone()
    };
    let Ok(body) = serde_json::to_vec(&event) else {
        return;
    };
    let mut headers = async_nats::HeaderMap::new();
    if let Some(trace) = &event.traceparent {
        headers.insert(shoal_protocol::trace::TRACEPARENT, trace.as_str());
    }
    if let Err(err) = js
        .publish_with_headers(subject.to_string(), headers, body.into())
        .await
    {
        debug!(error = %err, "progress not sent");
    }
}
