//! Spans of Shoal's parts exported over OTLP (HTTP, protobuf): given
//! `--otlp-endpoint URL` (`SHOAL_OTLP_ENDPOINT`), a part hands each span
//! that ended (a job's submission, an attempt) to an [`OtlpExporter`],
//! which sends them in batches to `<URL>/v1/traces` in the background
//! (plain HTTP: a collector nearby forwards them further, over TLS if need be).

#![deny(missing_docs)]

mod convert;
mod exporter;

pub use exporter::{OtlpExporter, TracesError};

use serde::{Deserialize, Serialize};

/// The setting of every part that can export spans.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct OtlpArgs {
    /// Export spans over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 (spans go to <URL>/v1/traces) [default: off].
    #[arg(long, env = "SHOAL_OTLP_ENDPOINT", value_name = "URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}
