//! The exporter: spans queue in memory (at most [`QUEUED`]; more are
//! dropped, never waited for) and a task sends them in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SpanExporter as _;
use opentelemetry_sdk::Resource;
use shoal_protocol::span::{EndedSpan, SpanSink};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Spans waiting to be sent at most.
const QUEUED: usize = 8192;

/// Spans sent in one request at most.
const BATCH: usize = 512;

/// How long a span may wait for others to join its batch.
const LINGER: Duration = Duration::from_millis(500);

/// How long stopping waits for the last spans to go out.
const FLUSH_WITHIN: Duration = Duration::from_secs(5);

/// The exporter could not be set up.
#[derive(Debug, Error)]
pub enum TracesError {
    /// The endpoint is no http URL.
    #[error("invalid setting `otlp_endpoint` = `{0}`: expected an http:// URL (spans go out without TLS: send them to a collector on this machine or network, which may forward them over TLS)")]
    Endpoint(String),
    /// OpenTelemetry refused the exporter.
    #[error("cannot export spans to {endpoint} (otlp_endpoint): {reason}")]
    Build {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

/// Sends the spans handed to it to an OTLP collector.
pub struct OtlpExporter {
    spans: Mutex<Option<mpsc::Sender<EndedSpan>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
}

impl OtlpExporter {
    /// Starts exporting to the collector at `endpoint` (its `/v1/traces`)
    /// as the service `service` (e.g. `shoal-worker`).
    pub fn start(endpoint: &str, service: impl Into<String>) -> Result<Arc<Self>, TracesError> {
        let url = traces_url(endpoint)?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| TracesError::Build {
                endpoint: url,
                reason: err.to_string(),
            })?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(service.into())
                .build(),
        );
        let scope = InstrumentationScope::builder("shoal")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let (sender, receiver) = mpsc::channel(QUEUED);
        let task = tokio::spawn(send_batches(exporter, receiver, scope));
        Ok(Arc::new(Self {
            spans: Mutex::new(Some(sender)),
            task: Mutex::new(Some(task)),
            dropped: AtomicU64::new(0),
        }))
    }

    /// Sends what is queued and stops, waiting at most a few seconds.
    pub async fn stop(&self) {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if tokio::time::timeout(FLUSH_WITHIN, task).await.is_err() {
                warn!("the last spans were not exported within 5s");
            }
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            warn!(dropped, "spans were dropped: the collector did not keep up");
        }
    }
}

impl SpanSink for OtlpExporter {
    fn ended(&self, span: EndedSpan) {
        let spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = spans
            .as_ref()
            .is_some_and(|spans| spans.try_send(span).is_ok());
        if !taken {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `<endpoint>/v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT is read; an
/// endpoint that names the path already is taken as it is.
fn traces_url(endpoint: &str) -> Result<String, TracesError> {
    let endpoint = endpoint.trim();
    if !endpoint.starts_with("http://") {
        return Err(TracesError::Endpoint(endpoint.to_string()));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(match base.ends_with("/v1/traces") {
        true => base.to_string(),
        false => format!("{base}/v1/traces"),
    })
}

async fn send_batches(
    exporter: opentelemetry_otlp::SpanExporter,
    mut spans: mpsc::Receiver<EndedSpan>,
    scope: InstrumentationScope,
) {
    let mut open = true;
    while open {
        let Some(first) = spans.recv().await else {
            break;
        };
        let mut batch = vec![first];
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < BATCH {
            tokio::select! {
                span = spans.recv() => match span {
                    Some(span) => batch.push(span),
                    None => {
                        open = false;
                        break;
                    }
                },
                () = &mut linger => break,
            }
        }
        let data: Vec<_> = batch
            .into_iter()
            .filter_map(|span| crate::convert::span_data(span, &scope))
            .collect();
        let count = data.len();
        match exporter.export(data).await {
            Ok(()) => debug!(count, "spans exported"),
            Err(err) => warn!(count, error = %err, "spans were not exported"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_collectors_base_url_or_its_traces_path() {
        let url = |text: &str| traces_url(text).expect("an http URL");
        assert_eq!(
            url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(url("http://otel.example/"), "http://otel.example/v1/traces");
        assert_eq!(url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        for refused in ["127.0.0.1:4318", "https://otel.example"] {
            let refused = traces_url(refused).expect_err("no http URL");
            assert!(refused
                .to_string()
                .starts_with("invalid setting `otlp_endpoint`"));
        }
    }
}
