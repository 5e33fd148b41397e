//! The Explorer's HTTP API and WebSocket (read-only; see ARCHITECTURE.md, "Explorer API").
//!
//! Every `/api/*` route and `/ws` need `EXPLORER_TOKEN` when it is set: `Authorization: Bearer`
//! or, for the WebSocket (browsers cannot set its headers), `?token=`. Refusals are JSON
//! `{"error": ...}` with 400 (a bad parameter, named) or 401, counted in
//! `connector_errors_total{type="explorer_request"}`. Nothing here writes anything, and no
//! response carries a secret: tokens and keys are not in the journal, and the configuration
//! shown is the journal's `ConfigurationApplied` (limits, relations), never the config file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;

use super::index::IndexReader;
use super::live::Live;
use super::query::{self, EventQuery, EventReader};
use crate::config::Secret;
use crate::health::Health;
use crate::journal::{Event, JournalEntry, JournalStatus, SledStore};
use crate::metrics::{self, ErrorKind};

#[derive(Clone)]
pub struct ApiState {
    pub live: Arc<Live>,
    pub index: IndexReader,
    pub store: SledStore,
    pub journal: Arc<JournalStatus>,
    pub health: Arc<Health>,
    pub token: Option<Secret>,
    pub frames: super::live::Streams,
    pub node_id: String,
    /// The routing table the forwarder publishes (configured and learned routes).
    pub routes: crate::pipeline::routes::RoutesPublished,
    /// The node's stop signal: WebSockets close on it, so the server's graceful stop ends.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The index's thread: `/api/health` says whether the watchdog raised it.
    pub index_priority: Arc<super::index::IndexThread>,
}

pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/events", get(events))
        .route("/api/packets/{id}", get(packet))
        .route("/api/accounts", get(accounts))
        .route("/api/peers", get(peers))
        .route("/api/routes", get(routes))
        .route("/api/stats", get(stats))
        .route("/api/health", get(health))
        .route("/ws", get(websocket))
        .route("/api/{*rest}", get(api_not_found))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    api.fallback(super::assets::serve)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
        metrics::global().count_error(ErrorKind::ExplorerRequest);
    }
    let mut response = (status, Json(json!({"error": message.into()}))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn ok(value: Value) -> Response {
    let mut response = Json(value).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn authorize(State(state): State<ApiState>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let presented = bearer.or_else(|| params(request.uri()).ok().and_then(|mut params| params.remove("token"))).unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
        next.run(request).await
    } else {
        let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong Explorer token (EXPLORER_TOKEN): send Authorization: Bearer <token>");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// The query string's parameters; a repeated one is an error (which one would count?).
fn params(uri: &Uri) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if params.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(format!("{name}: given more than once"));
        }
    }
    Ok(params)
}

async fn blocking<F: FnOnce() -> Response + Send + 'static>(work: F) -> Response {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the query failed"))
}

async fn events(State(state): State<ApiState>, uri: Uri) -> Response {
    let query = match params(&uri).and_then(|mut params| {
        params.remove("token");
        EventQuery::parse(&params)
    }) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    blocking(move || match query::run(&query, &state.index, &state.store) {
        Ok(page) => ok(query::page_json(page)),
        Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the journal failed: {message}")),
    })
    .await
}

async fn packet(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    blocking(move || {
        let packet_id = match packet_id_of(&id, &state.index, &state.store) {
            Ok(Some(packet_id)) => packet_id,
            Ok(None) => return error(StatusCode::NOT_FOUND, format!("no packet {id} in the index")),
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        };
        match packet_story(packet_id, &state.index, &state.store) {
            Ok(Some(story)) => ok(story),
            Ok(None) => error(StatusCode::NOT_FOUND, format!("no packet {id} in the index")),
            Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the journal failed: {message}")),
        }
    })
    .await
}

/// A packet id: decimal, or 64 hex digits of its condition or of its fulfillment.
fn packet_id_of(id: &str, index: &IndexReader, store: &SledStore) -> Result<Option<u64>, String> {
    if let Ok(packet_id) = id.parse::<u64>() {
        return Ok(Some(packet_id));
    }
    let bytes: [u8; 32] = hex::decode(id.trim_start_matches("0x"))
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("{id:?} is neither a packet id (a whole number) nor a 32-byte condition or fulfillment in hex"))?;
    // A condition, or a fulfillment (whose SHA-256 is the condition): the index holds the first
    // 8 bytes of each condition, so every candidate is checked against its Prepare.
    let hashed: [u8; 32] = Sha256::digest(bytes).into();
    let mut reader = EventReader::new(store);
    for condition in [bytes, hashed] {
        for packet_id in index.packets_of_condition(&condition) {
            let prepared = index.packet_seqs(packet_id).into_iter().filter_map(|seq| reader.get(seq).ok().flatten()).find_map(|entry| match entry.event {
                Event::PacketPrepared(prepared) => Some(prepared),
                _ => None,
            });
            if prepared.is_some_and(|prepared| prepared.condition == condition) {
                return Ok(Some(packet_id));
            }
        }
    }
    Ok(None)
}

/// `/api/packets/{id}`: the packet's events and what they say.
fn packet_story(packet_id: u64, index: &IndexReader, store: &SledStore) -> Result<Option<Value>, String> {
    let mut reader = EventReader::new(store);
    let mut entries: Vec<JournalEntry> = Vec::new();
    for seq in index.packet_seqs(packet_id) {
        if let Some(entry) = reader.get(seq)? {
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        return Ok(None);
    }
    let mut story = json!({"packet_id": packet_id, "prepared": null, "decision": null, "outcome": {"type": "pending"}});
    let mut prepared_at = None;
    let mut expires_in = None;
    let mut peers: [Option<String>; 2] = [None, None];
    for entry in &entries {
        match &entry.event {
            Event::PacketPrepared(prepared) => {
                prepared_at = Some(entry.timestamp_ms);
                expires_in = Some(prepared.expires_at_in_ms);
                peers = [Some(prepared.from_peer.clone()), Some(prepared.to_peer.clone())];
                story["prepared"] = json!({
                    "seq": entry.seq,
                    "timestamp_ms": entry.timestamp_ms,
                    "from_peer": prepared.from_peer,
                    "to_peer": prepared.to_peer,
                    "amount_in": prepared.amount_in,
                    "amount_out": prepared.amount_out,
                    "expires_at_in_ms": prepared.expires_at_in_ms,
                    "expires_at_out_ms": prepared.expires_at_out_ms,
                    "expires_at_in": crate::journal::json::rfc3339(prepared.expires_at_in_ms),
                    "expires_at_out": crate::journal::json::rfc3339(prepared.expires_at_out_ms),
                    "destination": prepared.destination,
                    "condition": hex::encode(prepared.condition),
                    // The exchange rate it was converted at (between two assets), as an exact
                    // fraction in decimal strings.
                    "rate": prepared.rate.map(|rate| json!({"numerator": rate.numerator.to_string(), "denominator": rate.denominator.to_string()})),
                });
                story["decision"] = json!({"action": "forwarded", "next_hop": prepared.to_peer});
            }
            Event::PacketFulfilled(fulfilled) => {
                story["outcome"] = json!({
                    "type": "fulfilled",
                    "seq": entry.seq,
                    "timestamp_ms": entry.timestamp_ms,
                    "fulfillment": hex::encode(fulfilled.fulfillment),
                });
            }
            Event::FulfillUndelivered(undelivered) => {
                story["outcome"]["type"] = json!("fulfilled_undelivered");
                story["outcome"]["undelivered"] = json!({
                    "seq": entry.seq,
                    "timestamp_ms": entry.timestamp_ms,
                    "reason": undelivered.reason.label(),
                    "amount_in": undelivered.amount_in,
                });
            }
            Event::PacketRejected(rejected) => {
                if !rejected.prepared {
                    prepared_at = Some(entry.timestamp_ms);
                    peers = [Some(rejected.from_peer.clone()), None];
                    story["prepared"] = json!({
                        "seq": null,
                        "timestamp_ms": entry.timestamp_ms,
                        "from_peer": rejected.from_peer,
                        "amount_in": rejected.amount_in,
                        "destination": rejected.destination,
                    });
                    story["decision"] = json!({"action": "rejected", "stage": format!("{:?}", rejected.stage).to_lowercase()});
                }
                story["outcome"] = json!({
                    "type": "rejected",
                    "seq": entry.seq,
                    "timestamp_ms": entry.timestamp_ms,
                    "code": String::from_utf8_lossy(&rejected.code),
                    "message": rejected.message,
                    "triggered_by": rejected.triggered_by,
                    "stage": format!("{:?}", rejected.stage).to_lowercase(),
                });
            }
            _ => {}
        }
    }
    let ended_at = story["outcome"]["timestamp_ms"].as_i64();
    story["durations"] = json!({
        "total_ms": prepared_at.zip(ended_at).map(|(start, end)| end - start),
        "left_before_expiry_ms": expires_in.zip(ended_at).map(|(expiry, end)| expiry - end),
    });
    story["events"] = Value::Array(entries.iter().map(|entry| event_json(entry, [peers[0].as_deref(), peers[1].as_deref()])).collect());
    Ok(Some(story))
}

async fn accounts(State(state): State<ApiState>) -> Response {
    ok(state.live.accounts())
}

async fn peers(State(state): State<ApiState>) -> Response {
    let table = state.routes.load_full();
    let now_ms = crate::ilp::now_ms();
    let live = state.live.lock();
    let node_address = live.node.address.clone();
    let peers: Vec<Value> = live
        .terms()
        .values()
        .map(|terms| {
            let address = (terms.relation == "child").then(|| format!("{node_address}.{}", terms.peer));
            let routes: Vec<Value> = table.routes.iter().filter(|route| route.peer == terms.peer).map(|route| route_json(route, now_ms)).collect();
            let exchange = table.peers.iter().find(|exchange| exchange.peer == terms.peer);
            json!({
                "peer": terms.peer,
                "relation": terms.relation,
                "asset_code": terms.asset_code,
                "asset_scale": terms.asset_scale,
                "address": address,
                "sessions": live.sessions(&terms.peer).len(),
                "connected": !live.sessions(&terms.peer).is_empty(),
                "routes": routes,
                "route_exchange": exchange,
                "max_packet_amount": terms.max_packet_amount,
                "credit_limit": terms.credit_limit,
                "packets_per_second_max": terms.packets_per_second_max,
                "throughput_per_second_max": terms.throughput_per_second_max,
            })
        })
        .collect();
    ok(json!({"node": live.node, "peers": peers}))
}

async fn routes(State(state): State<ApiState>) -> Response {
    let table = state.routes.load_full();
    let now_ms = crate::ilp::now_ms();
    let routes: Vec<Value> = table.routes.iter().map(|route| route_json(route, now_ms)).collect();
    ok(json!({
        "routing_table_id": table.routing_table_id,
        "epoch": table.epoch,
        "routes": routes,
        "peers": table.peers,
    }))
}

/// A route with its age (`age_ms`, since it became the route in use; null for the default
/// route, which is there from the start).
fn route_json(route: &crate::pipeline::routes::RouteRow, now_ms: i64) -> Value {
    let mut value = serde_json::to_value(route).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        let age = (route.since_ms > 0).then(|| now_ms.saturating_sub(route.since_ms).max(0));
        fields.insert("age_ms".into(), json!(age));
    }
    value
}

async fn stats(State(state): State<ApiState>) -> Response {
    let now = crate::ilp::now_ms();
    ok(state.live.lock().stats(now))
}

async fn health(State(state): State<ApiState>) -> Response {
    let report = state.health.report();
    let durable = state.journal.durable_seq.load(std::sync::atomic::Ordering::Acquire);
    // Searchable: what history queries see (published at each persist, up to 65,536 events or
    // 200 ms apart). Applied: what the index has taken in, and the live view shows.
    let position = state.index.position();
    let applied = state.live.lock().position().max(position);
    ok(json!({
        "node": state.node_id,
        "node_health": report,
        "journal_durable_seq": durable,
        "index_position": position,
        "index_lag_events": durable.saturating_sub(position),
        "index_applied_position": applied,
        "index_applied_lag_events": durable.saturating_sub(applied),
        "index_priority": if state.index_priority.raised() { "nice 19 (raised: it was starved)" } else { "idle" },
        "websocket_clients": state.frames.receiver_count(),
    }))
}

async fn api_not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no such API route: {}", uri.path()))
}

/// `/ws`: a `hello` with the present state, then a frame at most every 100 ms, or with
/// `?every=1s` one a second (the same counts, a sample of the second; what the UI takes, as it
/// renders once a second). A client that falls more than [`super::live::FRAME_BACKLOG`] frames
/// behind skips to the newest (told by a `skipped` message); one that does not take a frame
/// within 5 s is disconnected.
async fn websocket(
    State(state): State<ApiState>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let every = match params(&uri) {
        Ok(params) => params.get("every").cloned(),
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let frames = match every.as_deref() {
        None | Some("100ms") => state.frames.fast.subscribe(),
        Some("1s") => state.frames.slow.subscribe(),
        Some(other) => return error(StatusCode::BAD_REQUEST, format!("every: {other:?} is not one of 100ms (the default), 1s")),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .max_message_size(4096)
        .on_upgrade(move |socket| stream(socket, state, frames))
}

const SEND_TIMEOUT: Duration = Duration::from_secs(5);

async fn stream(mut socket: WebSocket, state: ApiState, mut frames: broadcast::Receiver<Arc<str>>) {
    let mut shutdown = state.shutdown.clone();
    let hello = state.live.hello(crate::ilp::now_ms());
    if send(&mut socket, hello.to_string().into()).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(frame) => {
                    if send(&mut socket, frame.to_string().into()).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    let note = json!({"type": "skipped", "frames": skipped});
                    if send(&mut socket, note.to_string().into()).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by axum; anything else from the browser is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sends one message; a client that does not take it within [`SEND_TIMEOUT`] (its socket's
/// buffers, bounded by [`SEND_BUFFER_BYTES`], stay full) is disconnected and counted in
/// `connector_errors_total{type="explorer_client_dropped"}`.
async fn send(socket: &mut WebSocket, text: axum::extract::ws::Utf8Bytes) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            metrics::global().count_error(ErrorKind::ExplorerClientDropped);
            tracing::warn!(
                timeout_s = SEND_TIMEOUT.as_secs(),
                "an Explorer WebSocket client took no frame for 5 s (a stuck or overloaded browser); disconnected it"
            );
            Err(())
        }
    }
}

/// The kernel send buffer of each Explorer connection: a stuck browser holds at most this much
/// (about a second of frames at full rate) before its sends stall and it is dropped.
pub const SEND_BUFFER_BYTES: usize = 64 << 10;

/// Bounds an accepted connection's kernel send buffer to [`SEND_BUFFER_BYTES`].
pub fn bound_send_buffer(stream: &mut tokio::net::TcpStream) {
    if let Err(error) = socket2::SockRef::from(&*stream).set_send_buffer_size(SEND_BUFFER_BYTES) {
        tracing::debug!(%error, "cannot bound an Explorer connection's send buffer");
    }
}

/// An event as the API shows it: `journal inspect --json`'s form, plus the packet's peers when
/// the event itself does not name them (a Fulfill).
pub fn event_json(entry: &JournalEntry, peers: [Option<&str>; 2]) -> Value {
    let fields = crate::journal::json::event_fields(entry);
    let mut value = json!({
        "seq": entry.seq,
        "timestamp": crate::journal::json::rfc3339(entry.timestamp_ms),
        "timestamp_ms": entry.timestamp_ms,
        "type": entry.event.kind(),
    });
    let object = value.as_object_mut().expect("an object");
    for (key, field) in fields {
        object.insert(key, field);
    }
    if let Some(packet_id) = query::packet_id(&entry.event) {
        object.insert("packet_id".into(), json!(packet_id));
        if let Some(from) = peers[0] {
            object.entry("from_peer").or_insert_with(|| json!(from));
        }
        if let Some(to) = peers[1] {
            object.entry("to_peer").or_insert_with(|| json!(to));
        }
    }
    value
}
