//! The dashboard: one page (HTML, one script, one stylesheet) embedded in the binary.
//!
//! The files hold no data, so they load without a token; the page asks for a token and
//! sends it with every data request and with its event stream (read with `fetch`, since
//! `EventSource` cannot send headers). Everything it shows comes from the admin's read
//! routes, and everything it changes goes through the mutating routes, so the page can
//! do nothing that `curl` with the same token could not.
//!
//! Served with `Content-Security-Policy: default-src 'self'`: no inline script or style,
//! nothing fetched from elsewhere, so it also works offline.

use std::sync::Arc;

use axum::extract::NestedPath;
use axum::extract::rejection::NestedPathRejection;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const FAVICON: &str = include_str!("favicon.svg");

/// Where the script and the stylesheet are served, under the admin's prefix.
pub(super) const APP_JS_PATH: &str = "/dashboard/app.js";
/// See [`APP_JS_PATH`].
pub(super) const APP_CSS_PATH: &str = "/dashboard/app.css";
/// See [`APP_JS_PATH`]; served so that the browser does not ask for a missing
/// `/favicon.ico`.
const FAVICON_PATH: &str = "/dashboard/favicon.svg";

/// Headers on every dashboard file: only this origin's own script and style run, the
/// page is never framed, and it is never cached stale.
fn headers(content_type: &'static str) -> [(HeaderName, HeaderValue); 6] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// The page, its links made absolute under `base` (the admin's prefix, or empty), so
/// that it works with and without a trailing slash.
fn page(base: &str) -> Response {
    let base = escape(base.trim_end_matches('/'));
    let html = INDEX.replace("{{base}}", &base);
    (headers("text/html; charset=utf-8"), html).into_response()
}

/// `base` made safe inside an HTML attribute.
fn escape(base: &str) -> String {
    base.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// `GET /` under the admin's prefix: the page, with links under the prefix it was
/// nested at (none when served at the root).
async fn index(nested: Result<NestedPath, NestedPathRejection>) -> Response {
    page(nested.as_ref().map_or("", NestedPath::as_str))
}

/// The page at a fixed `base`, for a route outside the nested router (`prefix/`).
pub(super) fn index_at<S>(base: &str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let base: Arc<str> = base.into();
    get(move || {
        let base = Arc::clone(&base);
        async move { page(&base) }
    })
}

/// The dashboard's routes: the page and its static files. None needs a token.
pub(super) fn routes<S>() -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::Router::new()
        .route("/", get(index))
        .route(
            APP_JS_PATH,
            get(|| async { (headers("text/javascript; charset=utf-8"), APP_JS) }),
        )
        .route(
            APP_CSS_PATH,
            get(|| async { (headers("text/css; charset=utf-8"), APP_CSS) }),
        )
        .route(
            FAVICON_PATH,
            get(|| async { (headers("image/svg+xml"), FAVICON) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_cannot_break_out_of_its_attribute() {
        assert_eq!(escape("/a\"><script>"), "/a&quot;&gt;&lt;script&gt;");
        assert_eq!(escape("/_internal/eac"), "/_internal/eac");
    }

    #[test]
    fn the_page_links_its_files_under_the_base() {
        let html = INDEX.replace("{{base}}", "/_internal/eac");
        assert!(
            html.contains(&format!("/_internal/eac{APP_JS_PATH}")),
            "{html}"
        );
        assert!(
            html.contains(&format!("/_internal/eac{APP_CSS_PATH}")),
            "{html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "no inline code"
        );
    }
}
