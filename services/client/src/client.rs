//! The producer API: a connection to one Shoal installation through which a
//! program submits jobs (now, later or again and again), reads them, waits
//! for them, cancels and retries them, follows their output, and asks the
//! registry for what only it does.
//!
//! ```no_run
//! # async fn example() -> Result<(), shoal_client::ClientError> {
//! use shoal_client::{Client, Target};
//! use shoal_protocol::JobSpec;
//!
//! let client = Client::connect_to("nats://127.0.0.1:4222").await?;
//! let spec = JobSpec::from_slice(br#"{"id": "resize-42", "entrypoint": "resize"}"#)
//!     .expect("a job");
//! let submitted = client.submit(&Target::new("acme", "default")?, &spec).await?;
//! let record = client
//!     .wait(&submitted.key, std::time::Duration::from_secs(60))
//!     .await?;
//! println!("{} {:?}", record.id, record.state);
//! # Ok(()) }
//! ```

use async_nats::jetstream::{self, kv};
use shoal_protocol::token::validate_token;
use shoal_protocol::{Priority, Subjects};

use crate::connect::{connect, ConnectSettings};
use crate::error::ClientError;
use crate::streams::Layout;

/// A connection to one Shoal installation.
#[derive(Clone)]
pub struct Client {
    nats: async_nats::Client,
    js: jetstream::Context,
    layout: Layout,
    /// The job records' bucket, opened at its first use.
    jobs: std::sync::Arc<tokio::sync::OnceCell<kv::Store>>,
    /// Where each submission's span goes, if spans are exported.
    spans: Option<std::sync::Arc<dyn shoal_protocol::span::SpanSink>>,
}

/// Where a job goes: its group, its queue and its priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its group.
    pub group: String,
    /// Its queue.
    pub queue: String,
    /// Its priority.
    pub priority: Priority,
}

impl Target {
    /// The queue `queue` of `group`, at normal priority.
    pub fn new(group: &str, queue: &str) -> Result<Self, ClientError> {
        validate_token("group", group)?;
        validate_token("queue", queue)?;
        Ok(Self {
            group: group.to_string(),
            queue: queue.to_string(),
            priority: Priority::Normal,
        })
    }

    /// The same queue at `priority`.
    pub fn with_priority(self, priority: Priority) -> Self {
        Self { priority, ..self }
    }
}

impl Client {
    /// Connects with `settings` to the installation laid out by `layout`.
    pub async fn connect(settings: &ConnectSettings, layout: Layout) -> Result<Self, ClientError> {
        Ok(Self::over(connect(settings).await?, layout))
    }

    /// Connects to the default installation at `url`, without a login.
    pub async fn connect_to(url: &str) -> Result<Self, ClientError> {
        let settings = ConnectSettings {
            url: url.to_string(),
            name: "shoal-client".to_string(),
            ..Default::default()
        };
        Self::connect(&settings, Layout::new(Subjects::default())).await
    }

    /// A client over a NATS connection already made.
    pub fn over(nats: async_nats::Client, layout: Layout) -> Self {
        Self {
            js: jetstream::new(nats.clone()),
            nats,
            layout,
            jobs: Default::default(),
            spans: None,
        }
    }

    /// The same client, handing a span of each submission to `spans` (an
    /// OTLP exporter): a producer span in the trace the job starts.
    pub fn with_spans(mut self, spans: std::sync::Arc<dyn shoal_protocol::span::SpanSink>) -> Self {
        self.spans = Some(spans);
        self
    }

    /// Where submissions' spans go, if anywhere.
    pub(crate) fn spans(&self) -> Option<&dyn shoal_protocol::span::SpanSink> {
        self.spans.as_deref()
    }

    /// The NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// JetStream over it.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The installation's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Creates the streams and buckets that do not exist yet (a user's login
    /// may only open them).
    pub async fn ensure(&self) -> Result<(), ClientError> {
        self.layout.ensure(&self.js).await?;
        Ok(())
    }

    /// The records of the workers whose keys match `filter` (`acme.*`, `>`).
    pub async fn worker_records(
        &self,
        filter: &str,
    ) -> Result<Vec<shoal_protocol::WorkerRecord>, ClientError> {
        let name = self.layout.workers_bucket();
        let bucket = self.js.get_key_value(&name).await.map_err(|err| {
            ClientError::nats(
                format!("no bucket {name}: has a Shoal service run yet?"),
                err,
            )
        })?;
        Ok(crate::RecordStore::new(bucket).read_all(filter).await?)
    }

    /// The job records' bucket, opened once: every read after that is one
    /// request.
    pub(crate) async fn jobs_bucket(&self) -> Result<kv::Store, ClientError> {
        let name = self.layout.jobs_bucket();
        let opened = self.jobs.get_or_try_init(|| async {
            self.js.get_key_value(&name).await.map_err(|err| {
                ClientError::nats(
                    format!("no bucket {name}: has a Shoal service run yet?"),
                    err,
                )
            })
        });
        Ok(opened.await?.clone())
    }
}
