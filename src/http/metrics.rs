//! `GET /metrics`: the registry in the Prometheus text exposition format 0.0.4.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::HttpState;

/// The content type Prometheus expects for the text format, version 0.0.4.
pub const CONTENT_TYPE_TEXT_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    components(&mut text, &state.health.component_levels());
    ([(CONTENT_TYPE, CONTENT_TYPE_TEXT_0_0_4)], text)
}

/// `connector_component_status{component}`: what `/health` says of each component (journal,
/// tigerbeetle, settlement), for alerts: 0 ok, 1 degraded, 2 failed.
fn components(out: &mut String, levels: &[(String, u8)]) {
    use std::fmt::Write;
    out.push_str("# HELP connector_component_status A component's state as /health reports it: 0 ok, 1 degraded, 2 failed.\n");
    out.push_str("# TYPE connector_component_status gauge\n");
    for (name, level) in levels {
        let _ = writeln!(out, "connector_component_status{{component=\"{}\"}} {level}", name.replace(['\\', '"', '\n'], "_"));
    }
}
