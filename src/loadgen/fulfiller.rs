//! The receiving side: answers every Prepare on one BTP connection with the fulfillment derived
//! from its data (see [`super::payload`]), or rejects a chosen share with F99.
//!
//! One reader task decodes Prepares and builds each reply frame into a reused `BytesMut`; one
//! writer task drains the replies and flushes once per burst. The same code answers for the
//! in-process echo server (see [`super::echo`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::payload;
use crate::btp::client::{self, LinkError};
use crate::btp::packet::{self as btp, BtpPacket};
use crate::config::Secret;
use crate::ilp::error_code::ErrorCode;
use crate::ilp::packet::{FulfillBuilder, PacketType, Prepare, RejectBuilder};

/// Most reply frames the writer feeds before it flushes.
const BURST_MAX: usize = 256;
/// Reply frames waiting for the writer; when full the reader waits (TCP pushes back).
const REPLY_QUEUE_MAX: usize = 8192;

#[derive(Debug, Clone)]
pub struct FulfillerOptions {
    pub url: url::Url,
    pub username: String,
    pub token: String,
    /// Share of Prepares rejected with F99, 0.0..=1.0 (spread evenly, deterministically).
    pub reject_share: f64,
    /// `triggeredBy` of those Rejects.
    pub address: String,
}

/// What the fulfiller did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FulfillerReport {
    pub prepares: u64,
    pub fulfilled: u64,
    /// Rejected on purpose (`reject_share`).
    pub rejected: u64,
    /// Prepares whose condition is not ours (nor the peer-protocol one): rejected F99.
    pub foreign: u64,
    /// Frames that are not a Prepare (or not readable); Messages among them get a BTP Error.
    pub unexpected_frames: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How to answer a Prepare; shared by every connection of an echo server.
pub struct Answerer {
    reject_share: f64,
    reject: Bytes,
    foreign: Bytes,
}

impl Answerer {
    /// Fails if `address` is not a valid ILP address.
    pub fn new(reject_share: f64, address: &str) -> Result<Answerer, String> {
        let build = |message: &str| {
            RejectBuilder {
                code: ErrorCode::F99_APPLICATION_ERROR,
                triggered_by: address,
                message,
                data: &[],
            }
            .build()
            .map_err(|error| format!("--address: {error}"))
        };
        Ok(Answerer {
            reject_share: reject_share.clamp(0.0, 1.0),
            reject: build("m2m-loadgen rejects this share")?,
            foreign: build("m2m-loadgen does not know this condition")?,
        })
    }
}

/// Connects as `options.username` and answers Prepares until `stop` turns true or the link
/// closes.
pub async fn run(
    options: &FulfillerOptions,
    stop: watch::Receiver<bool>,
) -> Result<FulfillerReport, LinkError> {
    let answerer =
        Answerer::new(options.reject_share, &options.address).map_err(LinkError::Refused)?;
    let websocket = crate::btp::server::websocket_config(1 << 20);
    let socket = client::connect(
        &options.url,
        &options.username,
        &Secret::new(options.token.as_str()),
        websocket,
    )
    .await?;
    let counters = Arc::new(Counters::default());
    Ok(serve(socket, Arc::new(answerer), counters, stop).await)
}

/// Live counters, readable while the fulfiller runs (the echo server sums its connections).
#[derive(Default)]
pub struct Counters {
    pub prepares: AtomicU64,
    pub fulfilled: AtomicU64,
    pub rejected: AtomicU64,
    pub foreign: AtomicU64,
    pub unexpected_frames: AtomicU64,
}

/// Answers Prepares on an authenticated socket until `stop` turns true or the link closes.
pub async fn serve<S>(
    socket: WebSocketStream<S>,
    answerer: Arc<Answerer>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> FulfillerReport
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let (mut sink, mut stream) = socket.split();
    let (replies, mut queue) = mpsc::channel::<Bytes>(REPLY_QUEUE_MAX);
    let writer = tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            if sink.feed(Message::Binary(frame)).await.is_err() {
                return;
            }
            let mut burst = 1;
            while burst < BURST_MAX {
                let Ok(frame) = queue.try_recv() else { break };
                if sink.feed(Message::Binary(frame)).await.is_err() {
                    return;
                }
                burst += 1;
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    });

    let mut state = ReaderState {
        answerer,
        counters: counters.clone(),
        reject_accumulator: 0.0,
        buffer: BytesMut::with_capacity(64 * 1024),
        scratch: BytesMut::with_capacity(256),
    };
    let mut error = None;
    if !*stop.borrow() {
        loop {
            let message = tokio::select! {
                biased;
                message = stream.next() => message,
                _ = stop.changed() => break,
            };
            match message {
                Some(Ok(Message::Binary(data))) => {
                    let Some(frame) = state.answer(data) else {
                        continue;
                    };
                    if let Err(mpsc::error::TrySendError::Full(frame)) = replies.try_send(frame) {
                        if replies.send(frame).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    if !*stop.borrow() {
                        error = Some("link closed by the connector".to_owned());
                    }
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(link_error)) => {
                    error = Some(format!("link error: {link_error}"));
                    break;
                }
            }
        }
    }
    drop(replies);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    FulfillerReport {
        prepares: counters.prepares.load(Ordering::Relaxed),
        fulfilled: counters.fulfilled.load(Ordering::Relaxed),
        rejected: counters.rejected.load(Ordering::Relaxed),
        foreign: counters.foreign.load(Ordering::Relaxed),
        unexpected_frames: counters.unexpected_frames.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        error,
    }
}

struct ReaderState {
    answerer: Arc<Answerer>,
    counters: Arc<Counters>,
    reject_accumulator: f64,
    /// Reply frames are built here and split off; the space is reused once they are written.
    buffer: BytesMut,
    scratch: BytesMut,
}

impl ReaderState {
    /// The reply frame for one incoming frame, if it needs one.
    fn answer(&mut self, data: Bytes) -> Option<Bytes> {
        let frame = match BtpPacket::parse(data) {
            Ok(frame) => frame,
            Err(_) => {
                self.counters
                    .unexpected_frames
                    .fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let (request_id, is_message, protocol_data) = match frame {
            BtpPacket::Message {
                request_id,
                protocol_data,
            } => (request_id, true, protocol_data),
            BtpPacket::Response {
                request_id,
                protocol_data,
            } => (request_id, false, protocol_data),
            BtpPacket::Error { .. } | BtpPacket::Transfer { .. } => {
                self.counters
                    .unexpected_frames
                    .fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let prepare = protocol_data
            .into_iter()
            .next()
            .filter(|entry| {
                entry.is_named(btp::PROTOCOL_ILP)
                    && PacketType::peek(&entry.data) == Some(PacketType::Prepare)
            })
            .and_then(|entry| Prepare::parse(entry.data).ok());
        let Some(prepare) = prepare else {
            self.counters
                .unexpected_frames
                .fetch_add(1, Ordering::Relaxed);
            // RFC 23: a request we cannot serve gets an Error; a stray Response gets nothing.
            return is_message.then(|| {
                btp::BtpErrorCode::F00_NOT_ACCEPTED
                    .packet(request_id, b"m2m-loadgen only answers ILP Prepares")
                    .encode()
            });
        };
        self.counters.prepares.fetch_add(1, Ordering::Relaxed);
        self.scratch.clear();
        let reply: &[u8] = if let Some(fulfillment) = self.fulfillment(&prepare) {
            self.reject_accumulator += self.answerer.reject_share;
            if self.reject_accumulator >= 1.0 {
                self.reject_accumulator -= 1.0;
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                &self.answerer.reject
            } else {
                FulfillBuilder {
                    fulfillment,
                    data: &[],
                }
                .write(&mut self.scratch)
                .expect("an empty-data Fulfill is valid");
                self.counters.fulfilled.fetch_add(1, Ordering::Relaxed);
                &self.scratch
            }
        } else {
            self.counters.foreign.fetch_add(1, Ordering::Relaxed);
            &self.answerer.foreign
        };
        btp::write_ilp_frame(
            &mut self.buffer,
            btp::TYPE_RESPONSE,
            request_id,
            reply.len(),
        );
        self.buffer.extend_from_slice(reply);
        Some(self.buffer.split().freeze())
    }

    /// Ours, derived from the data, or the peer-protocol one (all zeros); `None` if neither.
    fn fulfillment(&self, prepare: &Prepare) -> Option<[u8; 32]> {
        let derived = payload::fulfillment_for(prepare.data());
        if crate::ilp::fulfillment_matches(&derived, prepare.execution_condition()) {
            return Some(derived);
        }
        (*prepare.execution_condition() == crate::ilp::PEER_PROTOCOL_CONDITION)
            .then_some(crate::ilp::PEER_PROTOCOL_FULFILLMENT)
    }
}
