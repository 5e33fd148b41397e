//! The BTP listener: accepts WebSocket connections on `BTP_PORT` and authenticates them.
//!
//! Handshake (RFC 23 §auth): the first BTP frame must be a Message whose primary sub-protocol
//! is `auth`, with an `auth_token` entry (any content type) and optionally `auth_username`
//! (ilp-plugin-btp sends it; it may be empty). WebSocket control frames and text frames before
//! it are passed over (ilp-plugin-btp pings first). The answer is an empty Response, or an Error
//! followed by close. Tokens are compared in constant time and never logged.
//!
//! Bounds before auth ([`PreAuth`]): at most [`UNAUTHENTICATED_PER_SOURCE_MAX`] connections from
//! one source address may be unauthenticated at once (the next is closed at accept), and at most
//! [`UNAUTHENTICATED_MAX`] in all: a new connection then closes the *oldest* unauthenticated one,
//! so a client holding idle sockets cannot keep an honest peer out; past half of that, new
//! connections get [`PRESSURE_AUTH_TIMEOUT`] instead of the configured auth timeout. After auth,
//! a peer may hold at most `max_sessions_per_peer` sessions.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::packet::{self as btp, BtpPacket};
use super::session::{self, SessionContext};
use crate::config::Secret;
use crate::metrics::{self, ConnectionRefusal};
use crate::pipeline::PeerIndex;

/// A peer that may dial in: its index, id and token.
pub struct IncomingPeer {
    pub index: PeerIndex,
    pub id: Arc<str>,
    pub token: Secret,
}

pub struct ServerConfig {
    pub peers: Vec<IncomingPeer>,
    pub auth_timeout: Duration,
    pub websocket: WebSocketConfig,
    /// Authenticated sessions one peer may hold at once.
    pub max_sessions_per_peer: usize,
}

/// WebSocket limits for every BTP socket, set explicitly so a library default can't change them.
pub fn websocket_config(message_size_max: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(message_size_max))
        .max_frame_size(Some(message_size_max))
        .write_buffer_size(128 * 1024)
        .max_write_buffer_size(16 * 1024 * 1024)
}

/// Connections that may be in their handshake or auth at once. Authenticating costs nothing to
/// a client that never finishes, so their number is bounded; when it is reached, the oldest is
/// closed for the newest.
pub const UNAUTHENTICATED_MAX: usize = 1024;
/// Unauthenticated connections one source address may hold at once. An honest peer needs one,
/// for a few milliseconds; peers behind one NAT rarely reconnect all at the same instant.
pub const UNAUTHENTICATED_PER_SOURCE_MAX: usize = 64;
/// The auth deadline of a connection accepted while more than half of [`UNAUTHENTICATED_MAX`]
/// are taken (or the configured one, if shorter).
pub const PRESSURE_AUTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The unauthenticated connections: per source address, and in accept order (for eviction).
#[derive(Default)]
struct PreAuth {
    state: Mutex<PreAuthState>,
}

#[derive(Default)]
struct PreAuthState {
    next_id: u64,
    by_source: HashMap<IpAddr, usize>,
    /// By accept order: the source, and the signal that closes the connection.
    open: BTreeMap<u64, (IpAddr, tokio::sync::oneshot::Sender<()>)>,
}

impl PreAuthState {
    fn forget_source(&mut self, source: IpAddr) {
        if let Some(count) = self.by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.by_source.remove(&source);
            }
        }
    }
}

/// One unauthenticated connection's place; given back when dropped (auth done or failed).
struct Ticket {
    gate: Arc<PreAuth>,
    id: u64,
    /// Fires when a newer connection took this one's place.
    evicted: tokio::sync::oneshot::Receiver<()>,
    /// Accepted while the listener was under pressure: the short auth deadline applies.
    pressured: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((source, _)) = state.open.remove(&self.id) {
            state.forget_source(source);
        }
    }
}

impl PreAuth {
    fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Ticket, ConnectionRefusal> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.by_source.get(&source).copied().unwrap_or(0) >= UNAUTHENTICATED_PER_SOURCE_MAX {
            return Err(ConnectionRefusal::SourceLimit);
        }
        if state.open.len() >= UNAUTHENTICATED_MAX {
            if let Some((_, (oldest_source, evict))) = state.open.pop_first() {
                state.forget_source(oldest_source);
                let _ = evict.send(());
                metrics::global().btp_connection_refused(ConnectionRefusal::Evicted);
            }
        }
        let pressured = state.open.len() >= UNAUTHENTICATED_MAX / 2;
        let id = state.next_id;
        state.next_id += 1;
        let (evict, evicted) = tokio::sync::oneshot::channel();
        state.open.insert(id, (source, evict));
        *state.by_source.entry(source).or_default() += 1;
        Ok(Ticket { gate: self.clone(), id, evicted, pressured })
    }
}

/// Authenticated sessions per peer (by position in [`ServerConfig::peers`]).
#[derive(Default)]
struct SessionCounts {
    counts: Mutex<HashMap<usize, usize>>,
}

/// One authenticated session's place; given back when dropped.
struct SessionSlot<'a> {
    counts: &'a SessionCounts,
    peer: usize,
}

impl Drop for SessionSlot<'_> {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
        }
    }
}

impl SessionCounts {
    fn take(&self, peer: usize, max: usize) -> Option<SessionSlot<'_>> {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(peer).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SessionSlot { counts: self, peer })
    }
}

/// Accepts connections until the node stops.
pub async fn serve(listener: TcpListener, server: Arc<ServerConfig>, context: Arc<SessionContext>) {
    let mut shutdown = context.shutdown.clone();
    let pre_auth = Arc::new(PreAuth::default());
    let sessions = Arc::new(SessionCounts::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                let ticket = match pre_auth.admit(remote.ip()) {
                    Ok(ticket) => ticket,
                    Err(reason) => {
                        // Closed at once (dropping the stream): nothing was read from it.
                        metrics::global().btp_connection_refused(reason);
                        tracing::debug!(%remote, "too many unauthenticated BTP connections from this address; closed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                metrics::global().btp_connection_accepted();
                let (server, context, sessions) = (server.clone(), context.clone(), sessions.clone());
                tokio::spawn(async move {
                    if let Err(reason) = accept(stream, &server, context, ticket, &sessions).await {
                        tracing::info!(%remote, reason, "BTP connection refused");
                    }
                });
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                crate::internal_events::emit(crate::internal_events::AcceptFailed { error: &error });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept(
    stream: TcpStream,
    server: &ServerConfig,
    context: Arc<SessionContext>,
    mut ticket: Ticket,
    sessions: &SessionCounts,
) -> Result<(), String> {
    // One deadline covers the WebSocket handshake and the auth Message, so a client that
    // connects and sends nothing holds its task and socket no longer than `auth_timeout`.
    let timeout = if ticket.pressured { server.auth_timeout.min(PRESSURE_AUTH_TIMEOUT) } else { server.auth_timeout };
    let deadline = tokio::time::Instant::now() + timeout;
    let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(server.websocket));
    let mut socket = tokio::select! {
        handshake = tokio::time::timeout_at(deadline, handshake) => match handshake {
            Ok(Ok(socket)) => socket,
            Ok(Err(error)) => return Err(format!("WebSocket handshake failed: {error}")),
            Err(_) => {
                metrics::global().btp_auth_failure();
                return Err("no WebSocket handshake before the auth timeout".into());
            }
        },
        _ = &mut ticket.evicted => return Err("closed before auth to make room for a newer connection".into()),
    };
    let authenticated = tokio::select! {
        authenticated = tokio::time::timeout_at(deadline, authenticate(&mut socket, server)) => authenticated,
        _ = &mut ticket.evicted => {
            let _ = socket.close(None).await;
            return Err("closed before auth to make room for a newer connection".into());
        }
    };
    let (peer, request_id) = match authenticated {
        Ok(Ok(found)) => found,
        Ok(Err(Refused { request_id, reason })) => {
            metrics::global().btp_auth_failure();
            if let Some(request_id) = request_id {
                let frame = btp::BtpErrorCode::F00_NOT_ACCEPTED.packet(request_id, reason.as_bytes());
                let _ = socket.send(Message::Binary(frame.encode())).await;
            }
            let _ = socket.close(None).await;
            return Err(reason);
        }
        Err(_) => {
            metrics::global().btp_auth_failure();
            let _ = socket.close(None).await;
            return Err("no auth message before the timeout".into());
        }
    };
    drop(ticket);
    let incoming = &server.peers[peer];
    let Some(_slot) = sessions.take(peer, server.max_sessions_per_peer) else {
        metrics::global().btp_connection_refused(ConnectionRefusal::SessionLimit);
        let reason = format!(
            "peer {} already has {} sessions (max_sessions_per_peer)",
            incoming.id, server.max_sessions_per_peer
        );
        let frame = btp::BtpErrorCode::F00_NOT_ACCEPTED.packet(request_id, reason.as_bytes());
        let _ = socket.send(Message::Binary(frame.encode())).await;
        let _ = socket.close(None).await;
        return Err(reason);
    };
    let response = BtpPacket::Response { request_id, protocol_data: Vec::new() };
    session::run_accepted(socket, incoming.index, incoming.id.clone(), context, Some(response.encode())).await;
    Ok(())
}

struct Refused {
    request_id: Option<u32>,
    reason: String,
}

impl Refused {
    fn new(request_id: Option<u32>, reason: &str) -> Self {
        Refused { request_id, reason: reason.to_owned() }
    }
}

/// Waits for the auth Message; returns the position in `server.peers` and the request id.
async fn authenticate<S>(socket: &mut WebSocketStream<S>, server: &ServerConfig) -> Result<(usize, u32), Refused>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let data = match socket.next().await {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Close(_))) | None => return Err(Refused::new(None, "closed before auth")),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(Refused { request_id: None, reason: format!("socket error before auth: {error}") }),
        };
        let frame = BtpPacket::parse(data).map_err(|error| Refused {
            request_id: None,
            reason: format!("undecodable auth frame: {error}"),
        })?;
        let BtpPacket::Message { request_id, protocol_data } = frame else {
            return Err(Refused::new(Some(frame.request_id()), "first frame must be an auth Message"));
        };
        return check_credentials(request_id, &protocol_data, server).map(|peer| (peer, request_id));
    }
}

/// An auth Message carries `auth`, `auth_token` and perhaps `auth_username`; a few more
/// entries are tolerated, thousands (cheap to send before authenticating) are not.
const AUTH_ENTRIES_MAX: usize = 8;

fn check_credentials(request_id: u32, entries: &[btp::ProtocolData], server: &ServerConfig) -> Result<usize, Refused> {
    let refuse = |reason: &str| Refused::new(Some(request_id), reason);
    match entries.first() {
        Some(primary) if &primary.protocol_name[..] == b"auth" => {}
        _ => return Err(refuse("primary sub-protocol must be auth")),
    }
    if entries.len() > AUTH_ENTRIES_MAX {
        return Err(refuse("too many entries in the auth message"));
    }
    for (index, entry) in entries.iter().enumerate() {
        if entries[..index].iter().any(|earlier| earlier.protocol_name == entry.protocol_name) {
            return Err(refuse("duplicate sub-protocol names"));
        }
    }
    let find = |name: &[u8]| entries.iter().find(|entry| &entry.protocol_name[..] == name);
    let token = find(b"auth_token").ok_or_else(|| refuse("auth_token missing"))?;
    let username = find(b"auth_username").map(|entry| &entry.data[..]).unwrap_or(b"");
    let candidates = server
        .peers
        .iter()
        .enumerate()
        .filter(|(_, peer)| username.is_empty() || peer.id.as_bytes() == username);
    // Compare against every candidate so the time taken does not depend on which one matched.
    let mut matched = None;
    for (index, peer) in candidates {
        let equal: bool = peer.token.expose().as_bytes().ct_eq(&token.data[..]).into();
        if equal && matched.is_none() {
            matched = Some(index);
        }
    }
    matched.ok_or_else(|| refuse("invalid credentials"))
}
