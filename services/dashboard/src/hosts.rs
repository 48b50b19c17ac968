//! What keeps other web pages out: a dashboard on a loopback address answers
//! only to loopback host names (a page of another site cannot reach it by
//! rebinding a name of its own to 127.0.0.1); a change (cancel, retry) must
//! carry the dashboard's own header, which another site's page cannot send
//! without asking first, and nothing allows it to; and no page may frame it.

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

/// Whether the dashboard listens on a loopback address only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loopback(pub(crate) bool);

/// Refuses requests from elsewhere, and marks every answer.
pub(crate) async fn guard(
    State(Loopback(loopback)): State<Loopback>,
    request: Request,
    next: Next,
) -> Response {
    if loopback && !names_loopback(request.headers().get(header::HOST)) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard listens on a loopback address and answers only to localhost, 127.0.0.1 or [::1]",
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

fn names_loopback(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|host| host.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => name,
        _ => host,
    };
    LOOPBACK_NAMES
        .iter()
        .any(|loopback| name.eq_ignore_ascii_case(loopback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_pass_as_hosts() {
        let pass = |host: &str| names_loopback(Some(&HeaderValue::from_str(host).expect("ascii")));
        assert!(pass("127.0.0.1:8080") && pass("localhost:8080") && pass("[::1]:8080"));
        assert!(pass("LOCALHOST") && pass("[::1]"));
        assert!(!pass("evil.example:8080") && !pass("127.0.0.1.evil.example"));
        assert!(!names_loopback(None));
    }
}
