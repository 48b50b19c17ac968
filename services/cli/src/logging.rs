//! Structured logs on stderr (text or JSON), optionally also to a file.

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// `RUST_LOG` wins over the given level.
pub fn default_level(level: &str) -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string())
}

/// Sets up logging once for the process.
pub fn init(level: &str, json: bool, file: Option<&Path>) -> Result<(), String> {
    let filter = |level: &str| {
        // The NATS client is chatty below info and logs every connection at
        // info: people see its warnings, a verbose level its connections.
        let directives = match level {
            "debug" | "trace" => format!("{level},async_nats=info"),
            "info" => "info,async_nats=warn".to_string(),
            _ => level.to_string(),
        };
        EnvFilter::try_new(&directives)
            .map_err(|err| format!("invalid worker setting `log_level` = `{level}`: {err}"))
    };
    let level = default_level(level);
    let stderr = if json {
        fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter(&level)?)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter(&level)?)
            .boxed()
    };
    let file_layer = match file {
        Some(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|err| {
                    format!("cannot create the log folder {}: {err}", parent.display())
                })?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| {
                    format!(
                        "invalid worker setting `log_path` = `{}`: {err}",
                        path.display()
                    )
                })?;
            Some(
                fmt::layer()
                    .json()
                    .with_writer(Mutex::new(file))
                    .with_filter(filter(&level)?)
                    .boxed(),
            )
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
    Ok(())
}
