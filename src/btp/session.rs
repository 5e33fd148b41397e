//! One authenticated BTP connection: a reader loop and one writer task.
//!
//! The reader decodes each WebSocket message as a BTP frame and hands ILP packets to the
//! pipeline: Prepares (requests) to the forwarder's bounded Prepare queue, answering T03 at once
//! when it is full; Fulfills, Rejects and BTP Errors (replies to our requests) to the reply
//! queue, only if they answer a request this session sent and has not seen answered (others are
//! dropped and counted here). Replies are matched by request id and ILP packet type, not by BTP
//! frame type: interledger-rs 1.0 sends Prepares in Response frames and replies in Message
//! frames, which we accept and count. Unreadable frames are dropped without an answer (RFC 23), and counted.
//!
//! The writer drains the session's two queues (replies first) and flushes once per burst:
//! measured here, a flush per message costs 5–8× on loopback WebSockets.
//!
//! Bounds: at most `in_flight_max` of the peer's Prepares in the pipeline; beyond it they are
//! answered T03 at once. Each Prepare handed to the pipeline carries a slot reserved in the
//! reply queue, so its answer (a durable Fulfill included) always has room; the session's own
//! answers (T03, F01, BTP Errors) wait for room, which stops the reader (TCP pushes back).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::packet::{self as btp, reply_frame, BtpPacket};
use crate::ilp::error_code::ErrorCode;
use crate::ilp::packet::{Fulfill, PacketType, ParseOptions, Prepare, Reject, RejectBuilder};
use crate::metrics::{self, FrameDirection, FrameDropReason};
use crate::pipeline::{
    IncomingChannelMessage, IncomingClaim, IncomingPrepare, Input, LinkHandle, PeerIndex, Reply, ReplySlot, SessionId,
};
use crate::settlement::claim;
use crate::settlement::evm::cooperative;

/// Frames the writer sends before it flushes; bounds the burst a slow socket holds in memory.
const WRITE_BURST_MAX: usize = 256;

/// Capacity of a session's queue of requests we originate (forwarded Prepares); when full, the
/// forwarder answers T03 upstream.
pub const REQUEST_QUEUE_MAX: usize = 4096;

/// How long the reader waits before retrying a full reply queue of the forwarder.
const REPLY_QUEUE_RETRY: Duration = Duration::from_micros(200);

/// What every session of the node shares.
pub struct SessionContext {
    pub node_address: String,
    pub prepares: crossbeam_channel::Sender<Input>,
    pub replies: crossbeam_channel::Sender<Input>,
    pub in_flight_max: usize,
    pub parse_options: ParseOptions,
    pub next_session_id: std::sync::atomic::AtomicU64,
    pub shutdown: watch::Receiver<bool>,
    /// Set when the node begins to stop: new Prepares get T00 at once while replies to those
    /// already forwarded keep flowing, so a stop loses no downstream Fulfill.
    pub draining: std::sync::atomic::AtomicBool,
    /// Each live session's count of answers it owes its peer and has not yet written (the
    /// session's own counter, shared here so a stop can wait for them off the packet path).
    pub owed: std::sync::Mutex<rustc_hash::FxHashMap<SessionId, Arc<AtomicUsize>>>,
}

impl SessionContext {
    pub fn allocate_session_id(&self) -> SessionId {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Answers the live sessions owe their peers and have not written yet: a Fulfill the
    /// forwarder has settled can still be waiting for the journal's fsync or for its writer.
    pub fn replies_owed(&self) -> usize {
        let owed = self.owed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        owed.values().map(|count| count.load(Ordering::Acquire)).sum()
    }
}

/// Runs an authenticated session until the socket closes or the node stops.
pub async fn run<S>(socket: WebSocketStream<S>, peer: PeerIndex, peer_id: Arc<str>, context: Arc<SessionContext>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    run_accepted(socket, peer, peer_id, context, None).await;
}

/// [`run`] for a session the listener accepted: `auth_response` (the answer to the peer's auth
/// Message) is sent only once the forwarder knows the session. A peer that has its answer is
/// then reachable: a Prepare for it, sent by another peer as soon as this one is in, finds it
/// (a Prepare enters after the session's `SessionUp`, which the forwarder takes first), instead
/// of meeting T01 while this task waits for a core. Prepares the forwarder sends meanwhile wait
/// in the session's queue until the answer is out.
pub async fn run_accepted<S>(
    mut socket: WebSocketStream<S>,
    peer: PeerIndex,
    peer_id: Arc<str>,
    context: Arc<SessionContext>,
    auth_response: Option<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Test-only: this peer's session task waits for a core here
    // (M2M_FAULT_DELAY=btp-session-up-PEER:MS).
    #[cfg(feature = "fault-injection")]
    if let Some(delay) = crate::fault::delay_of(&format!("btp-session-up-{peer_id}")) {
        tokio::time::sleep(delay).await;
    }
    let session = context.allocate_session_id();
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE_MAX);
    let (replies_tx, replies_rx) = mpsc::channel(context.in_flight_max + 16);
    let in_flight = Arc::new(AtomicUsize::new(0));
    context.owed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(session, in_flight.clone());
    let outstanding = Arc::new(Outstanding::default());
    let closing = Arc::new(tokio::sync::Notify::new());

    let link = LinkHandle { session, peer, requests: requests_tx };
    if send_input(&context.replies, Input::SessionUp(link)).await.is_err() {
        context.owed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&session);
        return;
    }
    if let Some(response) = auth_response {
        if let Err(error) = socket.send(Message::Binary(response)).await {
            tracing::info!(peer = %peer_id, session, %error, "BTP session closed before its auth answer went out");
            let _ = send_input(&context.replies, Input::SessionDown { session }).await;
            context.owed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&session);
            return;
        }
    }
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, replies_rx, requests_rx, in_flight.clone(), outstanding.clone(), closing.clone()));
    tracing::info!(peer = %peer_id, session, "BTP session up");
    let mut reader = Reader {
        session,
        peer,
        context: context.clone(),
        replies: replies_tx,
        in_flight,
        outstanding,
        settlement_budget: (Instant::now(), SETTLEMENT_MESSAGES_PER_SECOND_MAX),
    };
    let reason = reader.read_loop(stream).await;
    // From now on a reply for this peer is not delivered, and whoever sends one can tell (a
    // Fulfill released now is journaled as undelivered, not charged to the peer).
    closing.notify_one();
    tracing::info!(peer = %peer_id, session, reason, "BTP session down");
    let _ = send_input(&context.replies, Input::SessionDown { session }).await;
    drop(reader);
    // The writer ends once the forwarder drops its handles (after SessionDown); a peer that
    // stopped reading could keep it stuck in a write, so it gets a second, then is aborted.
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(1), writer).await.is_err() {
        abort.abort();
    }
    context.owed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&session);
}

async fn write_loop<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mut replies: mpsc::Receiver<Bytes>,
    mut requests: mpsc::Receiver<Bytes>,
    in_flight: Arc<AtomicUsize>,
    outstanding: Arc<Outstanding>,
    closing: Arc<tokio::sync::Notify>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let global = metrics::global();
    let mut closed = false;
    loop {
        let first = tokio::select! {
            biased;
            // The read side ended: refuse new replies (the journal writer sees the queue closed
            // and journals a Fulfill as undelivered) and write what is queued while the socket
            // takes it. Forwarded Prepares still queued end with the session (T01).
            () = closing.notified(), if !closed => {
                closed = true;
                replies.close();
                continue;
            }
            Some(frame) = replies.recv() => (frame, true),
            Some(frame) = requests.recv() => (frame, false),
            else => break,
        };
        let mut burst = 0usize;
        let mut next = Some(first);
        while let Some((frame, is_reply)) = next.take() {
            if is_reply {
                in_flight.fetch_sub(1, Ordering::Relaxed);
            } else if let Some(id) = frame.get(1..5) {
                // Registered before the frame can reach the peer, so its answer always finds it.
                outstanding.sent(u32::from_be_bytes(id.try_into().expect("4 bytes")));
            }
            if sink.feed(Message::Binary(frame)).await.is_err() {
                return;
            }
            burst += 1;
            if burst >= WRITE_BURST_MAX {
                break;
            }
            next = match replies.try_recv() {
                Ok(frame) => Some((frame, true)),
                Err(_) => requests.try_recv().ok().map(|frame| (frame, false)),
            };
        }
        global.btp_frames(FrameDirection::Out, burst as u64);
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

/// The request ids this session sent to its peer (forwarded Prepares, claims, channel messages)
/// and has not seen answered. Bounded by what the forwarder has outstanding on the session,
/// plus requests never answered, which are forgotten after [`OUTSTANDING_TTL`].
#[derive(Default)]
struct Outstanding {
    ids: std::sync::Mutex<rustc_hash::FxHashMap<u32, Instant>>,
}

/// Past the longest time a request of ours can wait for its answer (a Prepare's hold time is at
/// most a minute); an answer later than this is dropped as answering nothing.
const OUTSTANDING_TTL: Duration = Duration::from_secs(300);
/// Above this many ids, the ones older than [`OUTSTANDING_TTL`] are forgotten.
const OUTSTANDING_PURGE_ABOVE: usize = 65_536;

impl Outstanding {
    fn sent(&self, request_id: u32) {
        let now = Instant::now();
        let mut ids = self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ids.len() >= OUTSTANDING_PURGE_ABOVE {
            ids.retain(|_, sent| now.duration_since(*sent) < OUTSTANDING_TTL);
        }
        ids.insert(request_id, now);
    }

    /// Whether `request_id` was outstanding (it no longer is).
    fn answered(&self, request_id: u32) -> bool {
        self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&request_id).is_some()
    }
}

struct Reader {
    session: SessionId,
    peer: PeerIndex,
    context: Arc<SessionContext>,
    replies: mpsc::Sender<Bytes>,
    in_flight: Arc<AtomicUsize>,
    outstanding: Arc<Outstanding>,
    /// Settlement messages (claims, channel proposals) this session may still send in the
    /// current second: each costs a signature recovery and a journal event.
    settlement_budget: (Instant, u32),
}

/// Settlement messages one session may send per second; beyond it they are refused (T00) and
/// not journaled. A payer sends one claim per settlement, far below this.
const SETTLEMENT_MESSAGES_PER_SECOND_MAX: u32 = 50;

impl Reader {
    async fn read_loop<S>(&mut self, mut stream: futures_util::stream::SplitStream<WebSocketStream<S>>) -> &'static str
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut shutdown = self.context.shutdown.clone();
        loop {
            let message = tokio::select! {
                message = stream.next() => message,
                _ = shutdown.changed() => return "node stopping",
            };
            match message {
                Some(Ok(Message::Binary(data))) => {
                    metrics::global().btp_frames(FrameDirection::In, 1);
                    self.handle_frame(data).await;
                }
                Some(Ok(Message::Close(_))) | None => return "closed by peer",
                // Pings are answered by the WebSocket layer; text frames mean nothing in BTP.
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::debug!(session = self.session, %error, "WebSocket error");
                    if matches!(error, tokio_tungstenite::tungstenite::Error::Capacity(_)) {
                        metrics::global().btp_frame_dropped(FrameDropReason::Oversized);
                    }
                    return "socket error";
                }
            }
        }
    }

    async fn handle_frame(&mut self, data: Bytes) {
        // Nearly every frame is one `ilp` entry: take it without building the full frame.
        if let Some((frame_type, request_id, packet)) = btp::parse_ilp_frame(&data) {
            self.handle_ilp(request_id, packet, frame_type == btp::TYPE_MESSAGE).await;
            return;
        }
        let frame = match BtpPacket::parse(data) {
            Ok(frame) => frame,
            Err(error) => {
                // Never answer an unreadable frame (RFC 23): an answer could start a loop.
                metrics::global().btp_frame_dropped(FrameDropReason::Undecodable);
                tracing::debug!(session = self.session, %error, "undecodable BTP frame dropped");
                return;
            }
        };
        match frame {
            BtpPacket::Message { request_id, protocol_data } => {
                self.handle_ilp_or_other(request_id, protocol_data, true).await
            }
            BtpPacket::Response { request_id, protocol_data } => {
                self.handle_ilp_or_other(request_id, protocol_data, false).await
            }
            BtpPacket::Error { request_id, code, name, data, .. } => {
                let message = btp::error_text(&code, &name, &data);
                self.reply(request_id, Reply::LinkError { message }).await;
            }
            BtpPacket::Transfer { request_id, .. } => {
                // Settlement over BTP Transfer is not supported: say so instead of silently
                // accepting value we would not account for.
                self.answer_error(request_id, btp::BtpErrorCode::F00_NOT_ACCEPTED, "transfers are not supported on this link").await;
            }
        }
    }

    async fn handle_ilp_or_other(&mut self, request_id: u32, protocol_data: Vec<btp::ProtocolData>, is_message: bool) {
        let Some(primary) = protocol_data.into_iter().next() else {
            if is_message {
                self.answer_error(request_id, btp::BtpErrorCode::F01_INVALID_FIELDS, "message has no protocol data").await;
            } else {
                // A Response without protocol data acknowledges a request of ours that carried
                // no ILP packet: a claim (the forwarder drops it if it matches none).
                self.reply(request_id, Reply::Ack).await;
            }
            return;
        };
        let settlement_message = &primary.protocol_name[..] == cooperative::PROTOCOL_NAME.as_bytes()
            || &primary.protocol_name[..] == claim::PROTOCOL_NAME.as_bytes();
        if settlement_message && is_message && !self.take_settlement_budget() {
            metrics::global().settlement().claim_refused(crate::journal::ClaimRejection::RateLimited);
            self.answer_error(request_id, btp::BtpErrorCode::T00_UNREACHABLE, "too many settlement messages; slow down").await;
            return;
        }
        if &primary.protocol_name[..] == cooperative::PROTOCOL_NAME.as_bytes() {
            if is_message {
                self.handle_channel_message(request_id, primary.data).await;
            } else {
                let reply = Reply::Channel(primary.data);
                self.reply(request_id, reply).await;
            }
            return;
        }
        if &primary.protocol_name[..] == claim::PROTOCOL_NAME.as_bytes() {
            if is_message {
                self.handle_claim(request_id, &primary.data).await;
            } else {
                self.reply(request_id, Reply::Ack).await;
            }
            return;
        }
        if &primary.protocol_name[..] != b"ilp" {
            if is_message {
                // RFC 23: a request whose primary sub-protocol we don't speak gets an Error.
                self.answer_error(request_id, btp::BtpErrorCode::F00_NOT_ACCEPTED, "unsupported sub-protocol").await;
            }
            // A Response without ILP answers nothing we sent; nothing to do.
            return;
        }
        self.handle_ilp(request_id, primary.data, is_message).await;
    }

    /// An ILP packet from the primary `ilp` entry: a Prepare is a request whatever the frame
    /// type; a Fulfill or Reject answers one of ours.
    async fn handle_ilp(&mut self, request_id: u32, data: Bytes, is_message: bool) {
        let packet_type = PacketType::peek(&data);
        match packet_type {
            Some(PacketType::Prepare) => {
                if !is_message {
                    metrics::global().btp_frame_inverted();
                }
                self.handle_prepare(request_id, data).await;
            }
            Some(PacketType::Fulfill) | Some(PacketType::Reject) => {
                if is_message {
                    metrics::global().btp_frame_inverted();
                }
                let reply = parse_reply(packet_type, data, &self.context.parse_options);
                self.reply(request_id, reply).await;
            }
            None if is_message => {
                let message = "invalid ILP packet: unknown packet type";
                self.answer_ilp_reject(request_id, ErrorCode::F01_INVALID_PACKET, message).await;
            }
            None => metrics::global().btp_frame_dropped(FrameDropReason::Undecodable),
        }
    }

    async fn handle_prepare(&mut self, request_id: u32, data: Bytes) {
        let received_at = Instant::now();
        if self.context.draining.load(Ordering::Relaxed) {
            self.answer_ilp_reject(request_id, ErrorCode::T00_INTERNAL_ERROR, "connector stopping").await;
            return;
        }
        let prepare = match Prepare::parse_with(data, &self.context.parse_options) {
            Ok(prepare) => prepare,
            Err(error) => {
                metrics::global().count_error(metrics::ErrorKind::Codec);
                tracing::debug!(session = self.session, %error, "invalid ILP Prepare answered F01");
                let message = format!("invalid ILP Prepare: {error}");
                self.answer_ilp_reject(request_id, ErrorCode::F01_INVALID_PACKET, &message).await;
                return;
            }
        };
        // Reserve the answer's place in the reply queue now, so the forwarder can always answer.
        let reply = match ReplySlot::reserve(&self.replies) {
            Ok(reply) if self.in_flight.load(Ordering::Relaxed) < self.context.in_flight_max => reply,
            Ok(_) | Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::global().pipeline_busy_reject();
                let message = "too many packets in flight on this link";
                self.answer_ilp_reject(request_id, ErrorCode::T03_CONNECTOR_BUSY, message).await;
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let incoming = IncomingPrepare { session: self.session, peer: self.peer, request_id, prepare, received_at, reply };
        match self.context.prepares.try_send(Input::Prepare(incoming)) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                metrics::global().pipeline_busy_reject();
                self.in_flight.fetch_sub(1, Ordering::Relaxed);
                self.answer_ilp_reject(request_id, ErrorCode::T03_CONNECTOR_BUSY, "connector busy").await;
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                self.in_flight.fetch_sub(1, Ordering::Relaxed);
                self.answer_ilp_reject(request_id, ErrorCode::T00_INTERNAL_ERROR, "connector stopping").await;
            }
        }
    }

    fn take_settlement_budget(&mut self) -> bool {
        let (since, left) = &mut self.settlement_budget;
        if since.elapsed() >= Duration::from_secs(1) {
            *since = Instant::now();
            *left = SETTLEMENT_MESSAGES_PER_SECOND_MAX;
        }
        if *left == 0 {
            return false;
        }
        *left -= 1;
        true
    }

    /// A payment-channel claim (an `m2m-claim` entry): decoded and its signer recovered here, off
    /// the forwarder's thread; judged by the forwarder against the journal.
    async fn handle_claim(&mut self, request_id: u32, data: &[u8]) {
        let global = metrics::global();
        let claim = match claim::decode(data) {
            Ok(claim) => claim,
            Err(error) => {
                global.settlement().claim_received();
                global.settlement().claim_refused(crate::journal::ClaimRejection::Malformed);
                tracing::debug!(session = self.session, %error, "malformed claim refused");
                let message = format!("malformed: {error}");
                self.answer_error(request_id, btp::BtpErrorCode::F01_INVALID_FIELDS, &message).await;
                return;
            }
        };
        let signer = claim::recover_signer(&claim);
        let reply = match ReplySlot::reserve(&self.replies) {
            Ok(reply) => reply,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.answer_error(request_id, btp::BtpErrorCode::T00_UNREACHABLE, "busy: too many requests in flight on this link").await;
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let incoming = IncomingClaim { session: self.session, peer: self.peer, request_id, claim, signer, reply };
        self.to_forwarder(Input::Claim(incoming)).await;
    }

    /// A channel message (an `m2m-channel` entry, a cooperative settle proposal): judged by the
    /// forwarder against the journal, answered in a reserved slot.
    async fn handle_channel_message(&mut self, request_id: u32, data: Bytes) {
        let reply = match ReplySlot::reserve(&self.replies) {
            Ok(reply) => reply,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.answer_error(request_id, btp::BtpErrorCode::T00_UNREACHABLE, "busy: too many requests in flight on this link").await;
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let message = IncomingChannelMessage { session: self.session, peer: self.peer, request_id, data, reply };
        self.to_forwarder(Input::ChannelMessage(message)).await;
    }

    /// Queues an answer to one of the peer's requests, counting it as in flight until written.
    async fn answer(&mut self, frame: Bytes) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.replies.send(frame).await.is_err() {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    async fn answer_ilp_reject(&mut self, request_id: u32, code: ErrorCode, message: &str) {
        let reject = RejectBuilder { code, triggered_by: &self.context.node_address, message, data: &[] }
            .build()
            .expect("locally built Reject is within limits");
        metrics::global().reject(code.0, metrics::RejectOrigin::Local);
        self.answer(reply_frame(request_id, &reject)).await;
    }

    async fn answer_error(&mut self, request_id: u32, code: btp::BtpErrorCode, message: &str) {
        let frame = code.packet(request_id, message.as_bytes()).encode();
        self.answer(frame).await;
    }

    /// A reply to one of our requests: passed to the forwarder only if this session sent that
    /// request and has not seen it answered. Anything else (made-up or repeated request ids) is
    /// dropped and counted here, so a peer cannot fill the forwarder's shared reply queue, which
    /// every session's answers go through, with frames that answer nothing.
    async fn reply(&self, request_id: u32, reply: Reply) {
        if !self.outstanding.answered(request_id) {
            metrics::global().btp_frame_dropped(FrameDropReason::UnmatchedReply);
            tracing::trace!(session = self.session, request_id, "reply to no request of ours on this session; dropped");
            return;
        }
        self.to_forwarder(Input::Reply { session: self.session, request_id, reply }).await;
    }

    /// Sends to the forwarder's reply queue, waiting (without blocking the worker) while it is
    /// full: replies must not be dropped, and waiting stops this socket's reads (backpressure).
    async fn to_forwarder(&self, input: Input) {
        let _ = send_input(&self.context.replies, input).await;
    }
}

async fn send_input(queue: &crossbeam_channel::Sender<Input>, mut input: Input) -> Result<(), ()> {
    loop {
        match queue.try_send(input) {
            Ok(()) => return Ok(()),
            Err(crossbeam_channel::TrySendError::Full(returned)) => {
                input = returned;
                tokio::time::sleep(REPLY_QUEUE_RETRY).await;
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(()),
        }
    }
}

fn parse_reply(packet_type: Option<PacketType>, data: Bytes, options: &ParseOptions) -> Reply {
    let parsed = match packet_type {
        Some(PacketType::Fulfill) => Fulfill::parse_with(data, options).map(Reply::Fulfill),
        _ => Reject::parse_with(data, options).map(Reply::Reject),
    };
    parsed.unwrap_or_else(|error| {
        metrics::global().count_error(metrics::ErrorKind::Codec);
        tracing::debug!(%error, "unreadable ILP reply");
        Reply::LinkError { message: format!("unreadable ILP reply: {error}") }
    })
}
