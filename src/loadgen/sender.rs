//! The sending side: keeps `window` Prepares in flight on one BTP connection and checks every
//! reply.
//!
//! Two tasks per connection and no lock on the packet path:
//! - the **writer** assigns request ids from a counter, builds each burst of frames into one
//!   reused `BytesMut`, stamps and publishes the burst's slots, feeds the frames and flushes once;
//!   when the window is full it waits on a `Notify`, and every 250 ms it sweeps slots whose reply
//!   is overdue (counted as timeouts);
//! - the **reader** decodes each reply, finds its slot at `request_id & mask`, takes it with a
//!   compare-and-swap (so a reply and the sweep can never both count a packet), checks a Fulfill
//!   against the slot's condition and records the round trip in an HDR histogram it owns.
//!
//! The slot table is preallocated with twice the window (a power of two), so a slot is free
//! again long before its index comes round; a slot still held by a straggler is skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::{oneshot, watch, Notify};
use tokio_tungstenite::tungstenite::Message;

use super::payload;
use crate::btp::client::{self, ClientSocket, LinkError};
use crate::btp::packet::{self as btp, BtpPacket};
use crate::config::Secret;
use crate::ilp::packet::{Fulfill, PacketType, PrepareBuilder, Reject};
use crate::ilp::timestamp;

/// Most frames the writer feeds before it flushes.
const BURST_MAX: usize = 256;
/// How often the writer looks for replies that are overdue.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// A packet is counted as timed out this long after its expiry without a reply.
const REPLY_GRACE: Duration = Duration::from_secs(1);
/// After the last Prepare, how long the writer waits for outstanding replies beyond the expiry.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Largest round trip the histogram records exactly (longer ones are clamped): one hour.
const LATENCY_US_MAX: u64 = 3_600_000_000;

#[derive(Debug, Clone)]
pub struct SenderOptions {
    pub url: url::Url,
    pub username: String,
    pub token: String,
    pub destination: String,
    /// Append `.p<counter>` to the destination of each packet.
    pub unique_suffix: bool,
    pub amount: u64,
    pub expiry_ms: u64,
    pub window: usize,
    /// At most this many Prepares a second (`--rate`), paced from the start of the run.
    pub rate: Option<u64>,
    /// Stop issuing after this many packets...
    pub packets: u64,
    /// ...or after this long, whichever comes first.
    pub duration: Duration,
    /// A line per second on stderr.
    pub progress: bool,
    /// Where to record each Fulfill that reached the sender (`--fulfilled-log`).
    pub fulfilled_log: Option<Arc<FulfilledLog>>,
}

/// `--fulfilled-log`: one line per valid Fulfill the sender received (probes included), written
/// and flushed before the next reply is read, so what reached the sender is in the file even if
/// the connector (or this process) is killed a moment later. A line is the packet's condition
/// and fulfillment in hex, `<condition> <fulfillment>`: the condition joins with the
/// journal's `PacketPrepared`. For crash tests; a write per Fulfill costs throughput. The lock
/// is taken only with the option set, by one task at a time (the probe, then the reader).
#[derive(Debug)]
pub struct FulfilledLog {
    file: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl FulfilledLog {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &std::path::Path) -> std::io::Result<FulfilledLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(FulfilledLog {
            file: Mutex::new(std::io::BufWriter::new(file)),
        })
    }

    /// Appends and flushes one line.
    pub fn record(&self, condition: &[u8; 32], fulfillment: &[u8; 32]) -> std::io::Result<()> {
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writeln!(
            file,
            "{} {}",
            hex::encode(condition),
            hex::encode(fulfillment)
        )?;
        file.flush()
    }
}

/// Everything the sender observed.
#[derive(Debug, Clone)]
pub struct SenderReport {
    pub sent: u64,
    pub fulfilled: u64,
    /// Rejects by ILP error code.
    pub rejected: BTreeMap<String, u64>,
    /// Fulfills whose fulfillment does not hash to the packet's condition.
    pub fulfill_invalid: u64,
    /// BTP Errors answering a Prepare.
    pub link_errors: u64,
    /// Packets with no reply by their expiry plus a grace period, or still unanswered at the end.
    pub timeouts: u64,
    /// Replies that arrived after their packet was counted as timed out, or that match nothing.
    pub late_replies: u64,
    /// Frames that are neither a reply nor readable (a Prepare sent to us, garbage).
    pub unexpected_frames: u64,
    /// From the first Prepare to the last reply (or the end of the drain).
    pub seconds: f64,
    pub window: usize,
    /// Probe Prepares sent before the run (not counted above); see `probe_until_routable`.
    pub probes: u64,
    /// Round trips in microseconds, of every reply matched to its packet.
    pub latency_us: Histogram<u64>,
    /// Why the run ended early (the link was lost), if it did.
    pub error: Option<String>,
}

impl SenderReport {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Replies matched to their packet.
    pub fn answered(&self) -> u64 {
        self.fulfilled + self.rejected_total() + self.fulfill_invalid + self.link_errors
    }

    pub fn packets_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.answered() as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// One packet in flight. `state` is its request id, 0 when free; the other fields are written
/// before `state` is published (Release) and read after it is seen (Acquire).
#[repr(align(64))]
struct Slot {
    state: AtomicU32,
    sent_ns: AtomicU64,
    condition: [AtomicU64; 4],
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: AtomicU32::new(0),
            sent_ns: AtomicU64::new(0),
            condition: Default::default(),
        }
    }

    fn store_condition(&self, condition: &[u8; 32]) {
        for (word, chunk) in self.condition.iter().zip(condition.chunks_exact(8)) {
            word.store(
                u64::from_ne_bytes(chunk.try_into().expect("8 bytes")),
                Ordering::Relaxed,
            );
        }
    }

    fn load_condition(&self) -> [u8; 32] {
        let mut condition = [0u8; 32];
        for (word, chunk) in self.condition.iter().zip(condition.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        condition
    }
}

/// What the writer and reader of one connection share.
struct Shared {
    slots: Box<[Slot]>,
    mask: u32,
    in_flight: AtomicUsize,
    /// Signalled by the reader whenever a slot frees up or the link closes.
    space: Notify,
    /// Set by the reader when the link is gone.
    closed: AtomicBool,
    /// Progress counters, for `--progress` only.
    sent: AtomicU64,
    answered: AtomicU64,
    started: Instant,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn slot(&self, request_id: u32) -> &Slot {
        &self.slots[(request_id & self.mask) as usize]
    }

    /// Takes the slot of `request_id` if that packet is still in flight: its send time and
    /// condition. Exactly one of the reader and the sweep succeeds for a given packet.
    fn take(&self, request_id: u32) -> Option<(u64, [u8; 32])> {
        if request_id == 0 {
            return None;
        }
        let slot = self.slot(request_id);
        if slot.state.load(Ordering::Acquire) != request_id {
            return None;
        }
        let sent_ns = slot.sent_ns.load(Ordering::Relaxed);
        let condition = slot.load_condition();
        slot.state
            .compare_exchange(request_id, 0, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.space.notify_one();
        Some((sent_ns, condition))
    }

    /// Frees every slot sent before `older_than_ns`; returns how many.
    fn sweep(&self, older_than_ns: u64) -> u64 {
        let mut swept = 0;
        for slot in self.slots.iter() {
            let request_id = slot.state.load(Ordering::Acquire);
            if request_id == 0 || slot.sent_ns.load(Ordering::Relaxed) >= older_than_ns {
                continue;
            }
            if slot
                .state
                .compare_exchange(request_id, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                swept += 1;
            }
        }
        swept
    }
}

/// Connects as `options.username` and runs until the packet count or the time is reached, or
/// `stop` turns true; then waits (bounded) for the outstanding replies. Fails only if the
/// connection cannot be established; a link lost later ends the run with `error` set.
pub async fn run(
    options: &SenderOptions,
    stop: watch::Receiver<bool>,
) -> Result<SenderReport, LinkError> {
    let websocket = crate::btp::server::websocket_config(1 << 20);
    let mut socket = client::connect(
        &options.url,
        &options.username,
        &Secret::new(options.token.as_str()),
        websocket,
    )
    .await?;
    let probes = probe_until_routable(&mut socket, options).await;
    let mut report = run_on(socket, options, stop).await;
    report.probes = probes;
    Ok(report)
}

/// Request ids of probes count down from here; the run's own ids count up from 1.
const PROBE_REQUEST_ID_FIRST: u32 = u32::MAX;
/// How long probes may keep getting T01 before the run starts anyway.
const PROBE_TIME_MAX: Duration = Duration::from_secs(5);

/// The connector may answer the auth before it routes to the link (and the fulfiller may have
/// connected a moment ago): send single probe Prepares, not counted in the report, until one
/// gets any answer other than T01 (peer unreachable), at most for [`PROBE_TIME_MAX`]. Returns
/// how many probes were sent.
async fn probe_until_routable(socket: &mut ClientSocket, options: &SenderOptions) -> u64 {
    let started = Instant::now();
    let run_id: u64 = rand::random();
    let mut probes = 0u64;
    while started.elapsed() < PROBE_TIME_MAX {
        let request_id = PROBE_REQUEST_ID_FIRST - probes as u32;
        let data = payload::data_for(run_id, probes);
        probes += 1;
        let prepare = PrepareBuilder {
            amount: options.amount,
            expires_at_ms: timestamp::now_ms() + options.expiry_ms.min(5_000) as i64,
            execution_condition: payload::condition_for(&data),
            destination: &options.destination,
            data: &data,
        };
        let mut frame = BytesMut::new();
        let mut packet = BytesMut::new();
        if prepare.write(&mut packet).is_err() {
            return probes;
        }
        btp::write_ilp_frame(&mut frame, btp::TYPE_MESSAGE, request_id, packet.len());
        frame.extend_from_slice(&packet);
        if socket.send(Message::Binary(frame.freeze())).await.is_err() {
            return probes;
        }
        let condition = payload::condition_for(&data);
        let reply = tokio::time::timeout(Duration::from_secs(6), async {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Binary(data) = message else {
                    continue;
                };
                let Ok(frame) = BtpPacket::parse(data) else {
                    continue;
                };
                if frame.request_id() != request_id {
                    continue;
                }
                let ilp = frame
                    .primary()
                    .filter(|entry| entry.is_named(btp::PROTOCOL_ILP))
                    .map(|entry| entry.data.clone());
                // A probe's Fulfill reached the sender too: it belongs in the log.
                if let (Some(log), Some(fulfill)) = (
                    &options.fulfilled_log,
                    ilp.clone().and_then(|ilp| Fulfill::parse(ilp).ok()),
                ) {
                    if crate::ilp::fulfillment_matches(fulfill.fulfillment(), &condition) {
                        if let Err(error) = log.record(&condition, fulfill.fulfillment()) {
                            eprintln!("m2m-loadgen: cannot write --fulfilled-log: {error}");
                        }
                    }
                }
                return Some(
                    ilp.and_then(|ilp| Reject::parse(ilp).ok())
                        .map(|reject| reject.code()),
                );
            }
            None
        })
        .await;
        match reply {
            Ok(Some(Some(code))) if code == crate::ilp::ErrorCode::T01_PEER_UNREACHABLE => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Fulfilled, rejected otherwise, a BTP Error, no answer or a closed link: the run
            // itself will show it.
            _ => return probes,
        }
    }
    probes
}

/// Runs the sender on an authenticated socket.
pub async fn run_on(
    socket: ClientSocket,
    options: &SenderOptions,
    stop: watch::Receiver<bool>,
) -> SenderReport {
    let window = options.window.max(1);
    let capacity = (window * 2).next_power_of_two().max(2);
    let shared = Arc::new(Shared {
        slots: (0..capacity).map(|_| Slot::new()).collect(),
        mask: (capacity - 1) as u32,
        in_flight: AtomicUsize::new(0),
        space: Notify::new(),
        closed: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        started: Instant::now(),
    });
    let (sink, stream) = socket.split();
    let (reader_stop, reader_stop_rx) = oneshot::channel();
    let reader = tokio::spawn(read_loop(
        stream,
        shared.clone(),
        options.fulfilled_log.clone(),
        reader_stop_rx,
    ));
    let writer = tokio::spawn(write_loop(sink, shared.clone(), options.clone(), stop));
    let progress = options
        .progress
        .then(|| tokio::spawn(progress_loop(shared.clone())));

    let written = writer.await.unwrap_or_else(|error| WriterResult {
        sent: shared.sent.load(Ordering::Relaxed),
        swept: 0,
        ended_ns: shared.now_ns(),
        error: Some(format!("writer task failed: {error}")),
    });
    let _ = reader_stop.send(());
    let read = reader.await.unwrap_or_else(|error| ReaderResult {
        error: Some(format!("reader task failed: {error}")),
        ..ReaderResult::new()
    });
    if let Some(progress) = progress {
        progress.abort();
    }
    let unanswered = shared.in_flight.load(Ordering::Acquire) as u64;
    SenderReport {
        sent: written.sent,
        fulfilled: read.fulfilled,
        rejected: read
            .rejected
            .into_iter()
            .map(|(code, count)| (String::from_utf8_lossy(&code).into_owned(), count))
            .collect(),
        fulfill_invalid: read.fulfill_invalid,
        link_errors: read.link_errors,
        timeouts: written.swept + unanswered,
        late_replies: read.late_replies,
        unexpected_frames: read.unexpected_frames,
        seconds: written.ended_ns as f64 / 1e9,
        window,
        probes: 0,
        latency_us: read.latency_us,
        error: written.error.or(read.error),
    }
}

struct WriterResult {
    sent: u64,
    swept: u64,
    /// When the last reply came in or the drain gave up, since `Shared::started`.
    ended_ns: u64,
    error: Option<String>,
}

async fn write_loop(
    mut sink: SplitSink<ClientSocket, Message>,
    shared: Arc<Shared>,
    options: SenderOptions,
    mut stop: watch::Receiver<bool>,
) -> WriterResult {
    let window = options.window.max(1);
    let deadline = tokio::time::Instant::from_std(shared.started) + options.duration;
    let reply_limit_ns = (Duration::from_millis(options.expiry_ms) + REPLY_GRACE).as_nanos() as u64;
    let run_id: u64 = rand::random();
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    let mut scratch = BytesMut::with_capacity(1024);
    let mut destination = String::with_capacity(options.destination.len() + 24);
    let mut burst: Vec<(u32, Bytes)> = Vec::with_capacity(BURST_MAX);
    let mut next_request_id: u32 = 1;
    let mut sent: u64 = 0;
    let mut swept: u64 = 0;
    let mut next_sweep = tokio::time::Instant::now() + SWEEP_INTERVAL;
    let mut error = None;

    // Issue until the count, the time or a stop is reached.
    loop {
        if sent >= options.packets || *stop.borrow() || shared.closed.load(Ordering::Acquire) {
            break;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_sweep {
            swept += shared.sweep(shared.now_ns().saturating_sub(reply_limit_ns));
            next_sweep = now + SWEEP_INTERVAL;
        }
        let free = window.saturating_sub(shared.in_flight.load(Ordering::Acquire));
        if free == 0 {
            tokio::select! {
                _ = shared.space.notified() => {}
                _ = tokio::time::sleep_until(deadline.min(next_sweep)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut count = free.min(BURST_MAX).min((options.packets - sent).min(BURST_MAX as u64) as usize);
        if let Some(rate) = options.rate {
            // Packets due by now at `rate`, from the start of the run; none due: sleep until the
            // next one is (tokio's timer has millisecond granularity, so at high rates they go
            // out in small bursts, each on time on average).
            let elapsed = now.saturating_duration_since(tokio::time::Instant::from_std(shared.started));
            let due = (elapsed.as_nanos() * u128::from(rate) / 1_000_000_000) as u64 + 1;
            let allowed = due.saturating_sub(sent);
            if allowed == 0 {
                let next_due = Duration::from_nanos((u128::from(sent) * 1_000_000_000 / u128::from(rate)) as u64);
                let wake = tokio::time::Instant::from_std(shared.started) + next_due;
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.min(next_sweep).min(wake)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            count = count.min(usize::try_from(allowed).unwrap_or(usize::MAX));
        }
        let expires_at_ms = timestamp::now_ms() + options.expiry_ms as i64;
        for _ in 0..count {
            // A slot still held by a straggler keeps its id's index busy: take the next id.
            let mut tries = 0;
            while shared.slot(next_request_id).state.load(Ordering::Acquire) != 0
                && tries <= shared.mask
            {
                next_request_id = next_id(next_request_id);
                tries += 1;
            }
            if tries > shared.mask {
                break;
            }
            let request_id = next_request_id;
            next_request_id = next_id(next_request_id);
            let counter = sent + burst.len() as u64;
            let data = payload::data_for(run_id, counter);
            let condition = payload::condition_for(&data);
            let destination = if options.unique_suffix {
                use std::fmt::Write;
                destination.clear();
                let _ = write!(destination, "{}.p{counter}", options.destination);
                destination.as_str()
            } else {
                options.destination.as_str()
            };
            scratch.clear();
            let built = PrepareBuilder {
                amount: options.amount,
                expires_at_ms,
                execution_condition: condition,
                destination,
                data: &data,
            }
            .write(&mut scratch);
            if let Err(build_error) = built {
                error = Some(format!("cannot build a Prepare: {build_error}"));
                break;
            }
            btp::write_ilp_frame(&mut buffer, btp::TYPE_MESSAGE, request_id, scratch.len());
            buffer.extend_from_slice(&scratch);
            shared.slot(request_id).store_condition(&condition);
            burst.push((request_id, buffer.split().freeze()));
        }
        if burst.is_empty() {
            if error.is_some() {
                break;
            }
            // Every slot is held by a straggler: wait for a reply or the sweep.
            tokio::select! {
                _ = shared.space.notified() => {}
                _ = tokio::time::sleep_until(deadline.min(next_sweep)) => {}
            }
            continue;
        }
        // One clock read per burst, taken once the frames are built, just before they go out.
        shared.in_flight.fetch_add(burst.len(), Ordering::AcqRel);
        let sent_ns = shared.now_ns();
        for (request_id, _) in &burst {
            let slot = shared.slot(*request_id);
            slot.sent_ns.store(sent_ns, Ordering::Relaxed);
            slot.state.store(*request_id, Ordering::Release);
        }
        sent += burst.len() as u64;
        shared.sent.store(sent, Ordering::Relaxed);
        let mut failed = None;
        for (_, frame) in burst.drain(..) {
            if failed.is_none() {
                if let Err(send_error) = sink.feed(Message::Binary(frame)).await {
                    failed = Some(send_error);
                }
            }
        }
        let flushed = match failed {
            Some(send_error) => Err(send_error),
            None => sink.flush().await,
        };
        if let Err(send_error) = flushed {
            error = Some(format!("link lost while sending: {send_error}"));
            break;
        }
    }

    // Drain: wait for the outstanding replies, at most until every packet has expired.
    let drain_deadline =
        tokio::time::Instant::now() + Duration::from_millis(options.expiry_ms) + DRAIN_GRACE;
    while shared.in_flight.load(Ordering::Acquire) > 0 && !shared.closed.load(Ordering::Acquire) {
        let now = tokio::time::Instant::now();
        if now >= drain_deadline {
            break;
        }
        if now >= next_sweep {
            swept += shared.sweep(shared.now_ns().saturating_sub(reply_limit_ns));
            next_sweep = now + SWEEP_INTERVAL;
        }
        tokio::select! {
            _ = shared.space.notified() => {}
            _ = tokio::time::sleep_until(drain_deadline.min(next_sweep)) => {}
        }
    }
    let ended_ns = shared.now_ns();
    if shared.closed.load(Ordering::Acquire) && error.is_none() {
        error = Some("link closed by the connector".into());
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    WriterResult {
        sent,
        swept,
        ended_ns,
        error,
    }
}

fn next_id(request_id: u32) -> u32 {
    request_id.checked_add(1).unwrap_or(1)
}

struct ReaderResult {
    fulfilled: u64,
    rejected: BTreeMap<[u8; 3], u64>,
    fulfill_invalid: u64,
    link_errors: u64,
    late_replies: u64,
    unexpected_frames: u64,
    latency_us: Histogram<u64>,
    error: Option<String>,
}

impl ReaderResult {
    fn new() -> ReaderResult {
        ReaderResult {
            fulfilled: 0,
            rejected: BTreeMap::new(),
            fulfill_invalid: 0,
            link_errors: 0,
            late_replies: 0,
            unexpected_frames: 0,
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("valid histogram bounds"),
            error: None,
        }
    }
}

async fn read_loop(
    mut stream: SplitStream<ClientSocket>,
    shared: Arc<Shared>,
    fulfilled_log: Option<Arc<FulfilledLog>>,
    mut stop: oneshot::Receiver<()>,
) -> ReaderResult {
    let mut result = ReaderResult::new();
    loop {
        let message = tokio::select! {
            biased;
            message = stream.next() => message,
            _ = &mut stop => break,
        };
        match message {
            Some(Ok(Message::Binary(data))) => {
                handle_frame(data, &shared, fulfilled_log.as_deref(), &mut result)
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                result.error = Some(format!("link error: {error}"));
                break;
            }
        }
    }
    shared.closed.store(true, Ordering::Release);
    shared.space.notify_one();
    result
}

fn handle_frame(
    data: Bytes,
    shared: &Shared,
    fulfilled_log: Option<&FulfilledLog>,
    result: &mut ReaderResult,
) {
    let Ok(frame) = BtpPacket::parse(data) else {
        result.unexpected_frames += 1;
        return;
    };
    let request_id = frame.request_id();
    let reply = match frame {
        BtpPacket::Error { .. } => Reply::LinkError,
        BtpPacket::Response {
            mut protocol_data, ..
        }
        | BtpPacket::Message {
            mut protocol_data, ..
        } => match protocol_data.first_mut() {
            Some(entry) if entry.is_named(btp::PROTOCOL_ILP) => {
                let ilp = std::mem::take(&mut entry.data);
                match PacketType::peek(&ilp) {
                    Some(PacketType::Fulfill) => match Fulfill::parse(ilp) {
                        Ok(fulfill) => Reply::Fulfill(*fulfill.fulfillment()),
                        Err(_) => Reply::LinkError,
                    },
                    Some(PacketType::Reject) => match Reject::parse(ilp) {
                        Ok(reject) => Reply::Reject(reject.code().0),
                        Err(_) => Reply::LinkError,
                    },
                    _ => {
                        result.unexpected_frames += 1;
                        return;
                    }
                }
            }
            _ => {
                result.unexpected_frames += 1;
                return;
            }
        },
        BtpPacket::Transfer { .. } => {
            result.unexpected_frames += 1;
            return;
        }
    };
    let Some((sent_ns, condition)) = shared.take(request_id) else {
        result.late_replies += 1;
        return;
    };
    let round_trip_us = shared.now_ns().saturating_sub(sent_ns) / 1000;
    result.latency_us.saturating_record(round_trip_us.max(1));
    shared.answered.fetch_add(1, Ordering::Relaxed);
    match reply {
        Reply::Fulfill(fulfillment)
            if crate::ilp::fulfillment_matches(&fulfillment, &condition) =>
        {
            result.fulfilled += 1;
            if let Some(log) = fulfilled_log {
                if let Err(error) = log.record(&condition, &fulfillment) {
                    // The log is the point of a run that asks for it: fail the run, loudly.
                    result
                        .error
                        .get_or_insert_with(|| format!("cannot write --fulfilled-log: {error}"));
                }
            }
        }
        Reply::Fulfill(_) => result.fulfill_invalid += 1,
        Reply::Reject(code) => *result.rejected.entry(code).or_default() += 1,
        Reply::LinkError => result.link_errors += 1,
    }
}

enum Reply {
    Fulfill([u8; 32]),
    Reject([u8; 3]),
    /// A BTP Error, or an ILP reply we cannot read.
    LinkError,
}

async fn progress_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last_answered = 0;
    loop {
        tick.tick().await;
        let answered = shared.answered.load(Ordering::Relaxed);
        eprintln!(
            "[{:>6.1}s] sent {:>10}  answered {:>10}  in flight {:>6}  {:>9} replies/s",
            shared.started.elapsed().as_secs_f64(),
            shared.sent.load(Ordering::Relaxed),
            answered,
            shared.in_flight.load(Ordering::Relaxed),
            answered - last_answered
        );
        last_answered = answered;
    }
}
