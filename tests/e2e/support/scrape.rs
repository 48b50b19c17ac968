//! Scraping a part's `GET /metrics` and reading its samples.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::eventually;
use super::server::free_port;

const WAIT: Duration = Duration::from_secs(30);

/// The body of `GET /metrics` at `addr`, or why there is none yet.
pub async fn scrape(addr: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| err.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|err| err.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {response}"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {head}"));
    }
    if !head
        .to_lowercase()
        .contains("content-type: application/openmetrics-text")
    {
        return Err(format!("not OpenMetrics text: {head}"));
    }
    Ok(body.to_string())
}

/// The value of the sample `series` (name and labels, as written) in `body`.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

/// Scrapes `addr` until `series` has a value that `wanted` accepts.
pub async fn wait_for_sample(addr: &str, series: &str, wanted: impl Fn(f64) -> bool) -> f64 {
    eventually(WAIT, &format!("{series} at {addr}"), || async {
        let body = scrape(addr).await?;
        match sample(&body, series) {
            Some(value) if wanted(value) => Ok(value),
            seen => Err(format!("{series} is {seen:?} in\n{body}")),
        }
    })
    .await
}

/// A free loopback address to serve on.
pub fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}
