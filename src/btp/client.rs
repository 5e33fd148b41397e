//! Outgoing BTP links: dial a configured peer, authenticate, run the session, and reconnect
//! with capped exponential backoff and jitter when it drops.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::packet::{self as btp, BtpPacket, ProtocolData};
use super::session::{self, SessionContext};
use crate::config::Secret;
use crate::pipeline::PeerIndex;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long the peer has to answer our auth Message.
const AUTH_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct OutgoingPeer {
    pub index: PeerIndex,
    pub id: Arc<str>,
    pub url: url::Url,
    /// Sent as `auth_username`; may be empty.
    pub username: String,
    pub token: Secret,
    pub metrics: std::sync::Arc<crate::metrics::PeerMetrics>,
}

pub type ClientSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Keeps a link to `peer` up until the node stops.
pub async fn maintain(peer: OutgoingPeer, websocket: WebSocketConfig, context: Arc<SessionContext>) {
    let mut backoff = BACKOFF_MIN;
    let mut shutdown = context.shutdown.clone();
    loop {
        let connected = tokio::select! {
            connected = connect(&peer.url, &peer.username, &peer.token, websocket) => connected,
            _ = shutdown.changed() => return,
        };
        match connected {
            Ok(socket) => {
                backoff = BACKOFF_MIN;
                session::run(socket, peer.index, peer.id.clone(), context.clone()).await;
            }
            Err(error) => {
                crate::internal_events::emit(crate::internal_events::LinkFailed {
                    peer: &peer.id,
                    url: peer.url.as_str(),
                    error: &error,
                    retry_in_ms: backoff.as_millis() as u64,
                });
            }
        }
        if *shutdown.borrow() {
            return;
        }
        peer.metrics.reconnected();
        let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
        let wait = backoff + Duration::from_millis(jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Why dialing a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("connect failed: {0}")]
    Connect(String),
    #[error("auth refused: {0}")]
    Refused(String),
    #[error("no auth reply within {0:?}")]
    Timeout(Duration),
    #[error("connection closed during auth")]
    Closed,
}

/// Opens a WebSocket to `url` and authenticates.
pub async fn connect(url: &url::Url, username: &str, token: &Secret, websocket: WebSocketConfig) -> Result<ClientSocket, LinkError> {
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(websocket), true)
        .await
        .map_err(|error| LinkError::Connect(error.to_string()))?;
    let request_id: u32 = rand::thread_rng().gen();
    let auth = auth_message(request_id, username, token);
    socket.send(Message::Binary(auth.encode())).await.map_err(|error| LinkError::Connect(error.to_string()))?;
    let reply = tokio::time::timeout(AUTH_REPLY_TIMEOUT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Binary(data))) => match BtpPacket::parse(data) {
                    Ok(frame) if frame.request_id() == request_id => return Ok(frame),
                    _ => continue,
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(LinkError::Closed),
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .map_err(|_| LinkError::Timeout(AUTH_REPLY_TIMEOUT))??;
    match reply {
        BtpPacket::Response { .. } => Ok(socket),
        BtpPacket::Error { code, name, data, .. } => Err(LinkError::Refused(btp::error_text(&code, &name, &data))),
        _ => Err(LinkError::Refused("unexpected answer to auth".into())),
    }
}

/// The auth Message of RFC 23, with `auth_username` as ilp-plugin-btp sends it.
pub fn auth_message(request_id: u32, username: &str, token: &Secret) -> BtpPacket {
    let entry = |name: &'static str, content_type: u8, data: Vec<u8>| ProtocolData {
        protocol_name: bytes::Bytes::from_static(name.as_bytes()),
        content_type,
        data: data.into(),
    };
    BtpPacket::Message {
        request_id,
        protocol_data: vec![
            entry("auth", btp::CONTENT_OCTET_STREAM, Vec::new()),
            entry("auth_username", btp::CONTENT_TEXT, username.as_bytes().to_vec()),
            entry("auth_token", btp::CONTENT_TEXT, token.expose().as_bytes().to_vec()),
        ],
    }
}
