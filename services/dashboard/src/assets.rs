//! The page and its script and style, built into the binary: nothing is
//! fetched from elsewhere.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// The one page; the script shows the fleet, the jobs or a job in it.
pub(crate) async fn page() -> Response {
    served("text/html; charset=utf-8", PAGE)
}

/// The script or the style.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => served("text/javascript; charset=utf-8", SCRIPT),
        "style.css" => served("text/css; charset=utf-8", STYLE),
        _ => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

fn served(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
