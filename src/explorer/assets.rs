//! The Explorer's UI: the files `npm run build` wrote to `explorer/dist/`, committed and
//! embedded in the binary, so `cargo run -- demo` serves it on a machine without Node.js.
//! `scripts/explorer.sh check` (in `.ci/run`) rebuilds them from `explorer/package-lock.json`
//! and fails if they differ from what is committed.

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/explorer/dist");

/// Serves a built file, or `index.html` for the UI's own paths (`/packets`, ...).
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let file = DIST.get_file(path).filter(|_| !path.is_empty());
    let (file, path) = match file {
        Some(file) => (file, path),
        None if !path.contains('.') => match DIST.get_file("index.html") {
            Some(file) => (file, "index.html"),
            None => return (StatusCode::NOT_FOUND, "the Explorer UI is not built into this binary").into_response(),
        },
        None => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let mut response = file.contents().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'"),
    );
    // Built files have content hashes in their names; index.html must be fetched fresh.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}
