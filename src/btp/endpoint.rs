//! A small BTP endpoint for the edges of the network: the demo's simulated peers, integration
//! tests and the load generator. It dials a connector, sends Prepares and awaits their replies,
//! and answers incoming Prepares with a handler. Not used on the connector's own packet path.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::client::{self, LinkError};
use super::packet::{self as btp, BtpPacket};
use crate::config::Secret;
use crate::ilp::packet::{PacketType, Prepare};

/// Answers an incoming Prepare with the bytes of an ILP Fulfill or Reject.
pub type PrepareHandler = Arc<dyn Fn(Prepare) -> Bytes + Send + Sync>;

/// Judges an incoming payment-channel claim (the data of an `m2m-claim` entry): Ok answers with
/// a BTP Response (accepted), Err with a BTP Error F00 carrying the text. The demo's payee.
pub type ClaimHandler = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

type Pending = Arc<Mutex<FxHashMap<u32, oneshot::Sender<Bytes>>>>;

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("link closed")]
    Closed,
    #[error("peer answered with a BTP error: {0}")]
    BtpError(String),
}

pub struct Endpoint {
    writer: mpsc::Sender<Bytes>,
    pending: Pending,
    next_request_id: AtomicU32,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Endpoint {
    /// Connects and authenticates as `username`; `handler` answers Prepares sent to us.
    pub async fn connect(url: &str, username: &str, token: &str, handler: Option<PrepareHandler>) -> Result<Endpoint, LinkError> {
        Endpoint::connect_with_claims(url, username, token, handler, None).await
    }

    /// [`Endpoint::connect`], also answering claims sent to us with `claims`.
    pub async fn connect_with_claims(
        url: &str,
        username: &str,
        token: &str,
        handler: Option<PrepareHandler>,
        claims: Option<ClaimHandler>,
    ) -> Result<Endpoint, LinkError> {
        let url = url::Url::parse(url).map_err(|error| LinkError::Connect(error.to_string()))?;
        let websocket = super::server::websocket_config(1 << 20);
        let socket = client::connect(&url, username, &Secret::new(token), websocket).await?;
        let (mut sink, mut stream) = socket.split();
        let (writer, mut frames) = mpsc::channel::<Bytes>(8192);
        let pending: Pending = Arc::default();
        let write_task = tokio::spawn(async move {
            while let Some(frame) = frames.recv().await {
                if sink.feed(Message::Binary(frame)).await.is_err() {
                    return;
                }
                while let Ok(frame) = frames.try_recv() {
                    if sink.feed(Message::Binary(frame)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
        let read_pending = pending.clone();
        let reply_writer = writer.clone();
        let read_task = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Binary(data) = message else { continue };
                let Ok(frame) = BtpPacket::parse(data) else { continue };
                if let Some(answer) = claims.as_ref().and_then(|claims| answer_claim(&frame, claims)) {
                    let _ = reply_writer.send(answer).await;
                    continue;
                }
                dispatch(frame, &read_pending, handler.as_ref(), &reply_writer).await;
            }
            // Wake every waiter: the link is gone.
            read_pending.lock().expect("pending lock").clear();
        });
        Ok(Endpoint { writer, pending, next_request_id: AtomicU32::new(1), tasks: vec![write_task, read_task] })
    }

    /// Sends an ILP Prepare and waits for its Fulfill or Reject (raw ILP bytes).
    pub async fn send(&self, prepare: &[u8], timeout: Duration) -> Result<Bytes, EndpointError> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(request_id, reply_tx);
        let frame = btp::ilp_frame(btp::TYPE_MESSAGE, request_id, prepare);
        if self.writer.send(frame).await.is_err() {
            self.pending.lock().expect("pending lock").remove(&request_id);
            return Err(EndpointError::Closed);
        }
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(reply)) => decode_reply(reply),
            Ok(Err(_)) => Err(EndpointError::Closed),
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&request_id);
                Err(EndpointError::Timeout(timeout))
            }
        }
    }

    /// Sends raw bytes as one WebSocket message (tests use it to send malformed frames).
    pub async fn send_raw(&self, frame: Bytes) -> Result<(), EndpointError> {
        self.writer.send(frame).await.map_err(|_| EndpointError::Closed)
    }

    /// Waits for the reply to a raw request sent with `request_id` (as a whole BTP frame).
    pub fn expect_reply(&self, request_id: u32) -> oneshot::Receiver<Bytes> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(request_id, reply_tx);
        reply_rx
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Replies carry the whole BTP frame to the waiter, so tests can look at BTP Errors too.
async fn dispatch(frame: BtpPacket, pending: &Pending, handler: Option<&PrepareHandler>, writer: &mpsc::Sender<Bytes>) {
    let request_id = frame.request_id();
    let ilp = frame.primary().filter(|entry| &entry.protocol_name[..] == b"ilp").map(|entry| entry.data.clone());
    let is_prepare = ilp.as_deref().and_then(PacketType::peek) == Some(PacketType::Prepare);
    if is_prepare {
        let (Some(handler), Some(data)) = (handler, ilp) else { return };
        let Ok(prepare) = Prepare::parse(data) else { return };
        let reply = handler(prepare);
        let _ = writer.send(btp::ilp_frame(btp::TYPE_RESPONSE, request_id, &reply)).await;
        return;
    }
    let waiter = pending.lock().expect("pending lock").remove(&request_id);
    if let Some(waiter) = waiter {
        let _ = waiter.send(frame.encode());
    }
}

/// The answer to a claim message, if `frame` is one.
fn answer_claim(frame: &BtpPacket, claims: &ClaimHandler) -> Option<Bytes> {
    let BtpPacket::Message { request_id, protocol_data } = frame else { return None };
    let entry = protocol_data.first().filter(|entry| &entry.protocol_name[..] == crate::settlement::claim::PROTOCOL_NAME.as_bytes())?;
    Some(match claims(&entry.data) {
        Ok(()) => BtpPacket::Response { request_id: *request_id, protocol_data: Vec::new() }.encode(),
        Err(reason) => btp::BtpErrorCode::F00_NOT_ACCEPTED.packet(*request_id, reason.as_bytes()).encode(),
    })
}

fn decode_reply(frame: Bytes) -> Result<Bytes, EndpointError> {
    match BtpPacket::parse(frame) {
        Ok(BtpPacket::Error { code, name, data, .. }) => Err(EndpointError::BtpError(btp::error_text(&code, &name, &data))),
        Ok(frame) => match frame.primary() {
            Some(entry) if &entry.protocol_name[..] == b"ilp" => Ok(entry.data.clone()),
            _ => Err(EndpointError::BtpError("reply without an ilp entry".into())),
        },
        Err(_) => Err(EndpointError::Closed),
    }
}
