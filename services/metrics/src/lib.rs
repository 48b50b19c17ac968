//! Prometheus metrics of Shoal's parts. Each long-running part keeps its
//! own metric families (registered in a [`Registry`]) and, given
//! `--metrics-listen ADDR` (`SHOAL_METRICS_LISTEN`), serves them at
//! `GET /metrics` in the OpenMetrics text format that Prometheus scrapes.
//! Labels are typed here once, so that every part names them alike; none
//! carries a job id, so a series' count stays bounded by the fleet's shape.

mod endpoint;
mod labels;

pub use endpoint::{serve, MetricsError, Refresh};
pub use labels::{
    FinishedLabels, GroupLabels, PoolLabels, QueueDepthLabels, QueueLabels, SlotLabels,
    StreamLabels, WorkerStatusLabels,
};
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The setting every long-running part takes: where to serve `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9100 [default: off].
    #[arg(long, env = "SHOAL_METRICS_LISTEN", value_name = "ADDR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The text a scrape gets: every metric of `registry`, OpenMetrics-encoded.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// Buckets of a histogram of durations in seconds: 1 ms to about 4.5 hours.
pub fn seconds_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 4.0, 12)
}

/// A histogram of durations in seconds with [`seconds_buckets`].
pub fn seconds_histogram() -> Histogram {
    Histogram::new(seconds_buckets())
}
