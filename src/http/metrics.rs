//! `GET /metrics`: the registry in the Prometheus text exposition format 0.0.4.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::HttpState;

/// The content type Prometheus expects for the text format, version 0.0.4.
pub const CONTENT_TYPE_TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, CONTENT_TYPE_TEXT_0_0_4)],
        state.metrics.render(),
    )
}
