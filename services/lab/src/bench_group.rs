//! The fleet a holds or fair run measures: a projector and a registry
//! (processes, as deployed) and one worker of a fresh group, in process.

use async_nats::jetstream;
use shoal_client::connect::{connect, ConnectSettings};
use shoal_client::streams::Layout;
use shoal_protocol::Subjects;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

use crate::bench::start_worker;
use crate::bench_heartbeats::service;
use crate::error::Result;

/// A fresh group served by one worker, with its projector and registry.
pub(crate) struct BenchGroup {
    /// The group's name.
    pub(crate) group: String,
    /// The installation's names.
    pub(crate) layout: Layout,
    /// JetStream on the server.
    pub(crate) js: jetstream::Context,
    /// `shoal_jobs`.
    pub(crate) jobs: jetstream::kv::Store,
    stop: CancellationToken,
    worker: std::thread::JoinHandle<Result<()>>,
    _services: [Child; 2],
}

impl BenchGroup {
    /// Starts the services (the registry with `registry_args`) and a worker
    /// with `concurrency` slots for a group named `<prefix><nuid>`.
    pub(crate) async fn start(
        url: &str,
        prefix: &str,
        concurrency: u32,
        registry_args: &[&str],
    ) -> Result<Self> {
        let stop = CancellationToken::new();
        let group = format!("{prefix}{}", nuid::next().to_string().to_lowercase());
        let settings = ConnectSettings {
            url: url.to_string(),
            name: "shoal-bench".into(),
            ..ConnectSettings::default()
        };
        let layout = Layout::new(Subjects::default());
        let js = jetstream::new(connect(&settings).await?);
        let buckets = layout.ensure(&js).await?;
        let projector = service(url, &["projector", "run"])?;
        let registry_args: Vec<&str> = ["registry", "run"]
            .iter()
            .chain(registry_args)
            .copied()
            .collect();
        let registry = service(url, &registry_args)?;
        let worker = start_worker(&settings, &group, concurrency, stop.clone())?;
        Ok(Self {
            group,
            layout,
            js,
            jobs: buckets.jobs,
            stop,
            worker,
            _services: [projector, registry],
        })
    }

    /// The layout and the group, as `throughput_of` takes them.
    pub(crate) fn place(&self) -> (&Layout, &str) {
        (&self.layout, self.group.as_str())
    }

    /// Stops the worker; the services stop as they are dropped.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let worker = self.worker;
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
}
