//! What keeps other web pages out: the dashboard answers only to the host
//! names it knows (loopback names, the address it listens on, and those of
//! `--allowed-host`), so a page of another site cannot reach it by pointing
//! a name of its own at its address (DNS rebinding); a change (cancel,
//! retry) must carry the dashboard's own header, which another site's page
//! cannot send without asking first, and nothing allows it to; and no page
//! may frame it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The header the dashboard's own page sends with every change.
pub(crate) const CHANGE_HEADER: &str = "x-shoal-dashboard";

/// The host names a loopback dashboard answers to.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// The host names the dashboard answers to, without their ports.
#[derive(Debug, Clone)]
pub(crate) struct KnownHosts(Arc<Vec<String>>);

impl KnownHosts {
    /// The loopback names, the address listened on, and `allowed`.
    pub(crate) fn new(listening: std::net::SocketAddr, allowed: &[String]) -> Self {
        let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|name| name.to_string()).collect();
        names.push(match listening.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        });
        names.extend(allowed.iter().map(|name| name.to_ascii_lowercase()));
        Self(Arc::new(names))
    }

    fn knows(&self, host: Option<&HeaderValue>) -> bool {
        let Some(name) = host.and_then(|host| host.to_str().ok()).map(host_name) else {
            return false;
        };
        self.0.iter().any(|known| name.eq_ignore_ascii_case(known))
    }
}

/// Refuses requests from elsewhere, and marks every answer.
pub(crate) async fn guard(
    State(known): State<KnownHosts>,
    request: Request,
    next: Next,
) -> Response {
    if !known.knows(request.headers().get(header::HOST)) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard answers only to localhost, 127.0.0.1, [::1], the address it listens on \
             and the names given with --allowed-host",
        )
            .into_response();
    }
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && !request.headers().contains_key(CHANGE_HEADER) {
        return (
            StatusCode::FORBIDDEN,
            "a change must come from the dashboard's own page (header x-shoal-dashboard)",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A `Host` header's name, without its port.
fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_names_pass_as_hosts() {
        let listening = "10.1.2.3:8080".parse().expect("an address");
        let known = KnownHosts::new(listening, &["Shoal.Example".into()]);
        let pass = |host: &str| known.knows(Some(&HeaderValue::from_str(host).expect("ascii")));
        assert!(pass("127.0.0.1:8080") && pass("localhost:8080") && pass("[::1]:8080"));
        assert!(pass("LOCALHOST") && pass("[::1]") && pass("10.1.2.3:8080"));
        assert!(pass("shoal.example") && pass("shoal.example:443"));
        assert!(!pass("evil.example:8080") && !pass("127.0.0.1.evil.example"));
        assert!(!known.knows(None));
    }
}
