//! The forwarder: routing, risk checks, journaling and reply matching, on one thread.
//!
//! Input: [`Input`] messages from the BTP sessions over two bounded queues — replies and session
//! changes (drained first: fulfillments take priority over new Prepares, RFC 18) and Prepares.
//! Output: forwarded Prepares and upstream replies written to session queues, and one journal
//! [`Commit`] per batch. Fulfills are not sent upstream here: they ride in the commit and leave
//! only once the journal has made their `PacketFulfilled` durable (DESIGN.md invariant 3).
//!
//! Bounds: at most `in_flight_max` packets in flight (beyond it, T03), at most
//! [`BATCH_INPUTS_MAX`] inputs per batch. It never blocks on a session (sends are `try_send`);
//! it blocks only on the journal's queue, which is how a slow disk pushes back on new Prepares.
//! It reads the clock once per batch and nowhere else.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use rustc_hash::FxHashMap;

use super::policy::{outgoing_expiry_ms, Conversion, TokenBucket};
use super::routes::Routes;
use super::routing::PeerIndex;
use super::{IncomingPrepare, Input, LinkHandle, Reply, ReplySlot, SessionId};

mod ccp;
mod settlement;
#[cfg(test)]
mod tests;
use crate::btp::packet::{self as btp, reply_frame};
use crate::config::{Config, Relation};
use crate::health::{ComponentStatus, Health};
use crate::ilp::error_code::ErrorCode;
use crate::ilp::packet::{truncate_message, FulfillBuilder, Prepare, RejectBuilder, MESSAGE_SIZE_MAX};
use crate::ilp::{self, ildcp, timestamp};
use crate::journal::{
    journaled_message, AppliedRate, Commit, ConfigurationApplied, ConfiguredRoute, Event, PeerRelation, RoutingConfigured, FulfillUndelivered, JournalEntry, JournalStatus,
    PacketFulfilled, PacketPrepared, PacketRejected, PeerTerms, Release, Stage, UndeliveredReason,
};
use crate::metrics::{self, PacketKind, PacketStatus, PeerMetrics, RejectOrigin, ReplyKind};
use crate::projections::balances::Balances;
use crate::projections::Projection;

/// Inputs handled per batch before the journal commit and the expiry sweep; bounds the latency
/// a reply waits behind a burst of Prepares.
pub const BATCH_INPUTS_MAX: usize = 256;

/// Longest a stopping forwarder waits for the journal writer to release what it holds.
const STOP_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Longest the forwarder sleeps with nothing to do, so a stopped pipeline is noticed.
const IDLE_WAIT_MAX: Duration = Duration::from_millis(250);

/// A frame held until the journal has made the events before it durable.
pub enum Held {
    /// A Fulfill for the sender of a packet, delivered only if its Prepare has not expired and
    /// its session is still there; otherwise reported as [`Undelivered`].
    Fulfill { slot: ReplySlot, frame: Bytes, expires_at_in_ms: i64, packet: Undelivered },
    /// An answer to a peer's request (the verdict on a claim, a channel message), in the slot
    /// reserved for it when the request arrived.
    Reply { slot: ReplySlot, frame: Bytes },
    /// A request of ours that must not leave before its event is durable (a claim we signed).
    Request { sender: tokio::sync::mpsc::Sender<Bytes>, frame: Bytes },
    /// Released after everything held before it: the forwarder waits on it when it stops.
    Barrier(crossbeam_channel::Sender<()>),
}

/// A Fulfill the journal writer could not deliver upstream, reported back to the forwarder,
/// which journals it as `FulfillUndelivered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undelivered {
    pub packet_id: u64,
    pub from_peer: PeerIndex,
    pub amount_in: u64,
    pub reason: UndeliveredReason,
}

impl Release for Held {
    type Report = Sender<Undelivered>;

    fn release(self, now_ms: i64, report: &Sender<Undelivered>) {
        match self {
            Held::Fulfill { slot, frame, expires_at_in_ms, mut packet } => {
                let delivered = if now_ms > expires_at_in_ms {
                    // The sender has given up on the packet: sending the Fulfill now would only
                    // charge it for what it already counts as rejected.
                    drop(slot);
                    packet.reason = UndeliveredReason::Expired;
                    false
                } else {
                    // The slot was reserved when the Prepare arrived, so there is room; a
                    // session that has closed gets nothing.
                    packet.reason = UndeliveredReason::UpstreamGone;
                    slot.deliver(frame)
                };
                if !delivered {
                    // Unbounded, and the forwarder outlives the writer's releases but for the
                    // stop (see `Forwarder::run`): the report is lost only with the node.
                    let _ = report.send(packet);
                }
            }
            Held::Reply { slot, frame } => {
                slot.send(frame);
            }
            // A full or closed queue loses the frame; the claim's answer then times out and the
            // claim is sent again.
            Held::Request { sender, frame } => {
                let _ = sender.try_send(frame);
            }
            Held::Barrier(passed) => {
                let _ = passed.send(());
            }
        }
    }
}

struct PeerState {
    id: String,
    relation: Relation,
    asset: usize,
    asset_code: String,
    asset_scale: u8,
    max_packet_amount: Option<u64>,
    credit_limit: u64,
    packets: Option<TokenBucket>,
    throughput: Option<TokenBucket>,
    balance_index: usize,
    sessions: Vec<SessionId>,
    next_session: usize,
    metrics: Arc<PeerMetrics>,
}

struct SessionState {
    peer: PeerIndex,
    link: LinkHandle,
    next_request_id: u32,
}

/// A forwarded packet awaiting the next hop's reply.
struct InFlight {
    reply: ReplySlot,
    from_session: SessionId,
    from_request_id: u32,
    to_session: SessionId,
    to_request_id: u32,
    to_peer: PeerIndex,
    from_peer: PeerIndex,
    amount_in: u64,
    condition: [u8; 32],
    expires_at_in_ms: i64,
    expires_at_out_ms: i64,
    received_at: Instant,
}

pub struct Forwarder {
    node_address: String,
    min_message_window_ms: u64,
    max_hold_time_ms: u64,
    reflection: bool,
    in_flight_max: usize,
    peers: Vec<PeerState>,
    /// Configured and learned routes, and the table looked up per packet.
    routes: Routes,
    /// Route exchange with peers (see `forwarder/ccp.rs`).
    ccp: ccp::CcpRuntime,
    /// `rates[from_asset][to_asset]`; None when no rate is known.
    rates: Vec<Vec<Option<PairRate>>>,
    /// The (code, scale) of each asset index.
    assets: Vec<(String, u8)>,
    balances: Balances,
    sessions: FxHashMap<SessionId, SessionState>,
    in_flight: FxHashMap<u64, InFlight>,
    by_request: FxHashMap<(SessionId, u32), u64>,
    deadlines: BinaryHeap<Reverse<(i64, u64)>>,
    next_packet_id: u64,
    next_seq: u64,
    entries: Vec<JournalEntry>,
    held: Vec<Held>,
    journal: Sender<Commit<Held>>,
    journal_status: Arc<JournalStatus>,
    journal_failed: bool,
    snapshot_every: u64,
    events_since_snapshot: u64,
    /// Packets left open by a previous run, ended (R00) once their incoming expiry has passed:
    /// (expires_at_in_ms, packet_id), soonest last.
    orphans: Vec<(i64, u64)>,
    health: Arc<Health>,
    now_ms: i64,
    in_flight_published: Arc<std::sync::atomic::AtomicUsize>,
    /// The seq of the last event appended, stored as it is appended (before any reply that
    /// follows from it leaves): with the durable seq, what tests wait on instead of sleeping.
    head_published: Arc<std::sync::atomic::AtomicU64>,
    /// Settlement, when enabled (see `forwarder/settlement.rs`).
    settlement: Option<settlement::SettlementRuntime>,
}

/// What the forwarder starts from: the state rebuilt from the journal.
pub struct Recovered {
    pub balances: Balances,
    /// Sequence number of the last event in the journal (0 when it is empty).
    pub last_seq: u64,
}

impl Forwarder {
    pub fn new(
        config: &Config,
        journal: Sender<Commit<Held>>,
        journal_status: Arc<JournalStatus>,
        health: Arc<Health>,
        in_flight_max: usize,
        recovered: Recovered,
        settlement_link: Option<crate::settlement::SettlementLink>,
    ) -> Self {
        let now_ms = timestamp::now_ms();
        let Recovered { mut balances, last_seq } = recovered;
        let mut orphans: Vec<(i64, u64)> =
            balances.open_packets().into_iter().map(|(packet_id, expires)| (expires, packet_id)).collect();
        orphans.sort_unstable_by(|a, b| b.cmp(a));
        let mut assets: Vec<(String, u8)> = Vec::new();
        let mut asset_index = |code: &str, scale: u8| -> usize {
            match assets.iter().position(|(c, s)| c == code && *s == scale) {
                Some(index) => index,
                None => {
                    assets.push((code.to_owned(), scale));
                    assets.len() - 1
                }
            }
        };
        let peers: Vec<PeerState> = config
            .peers
            .iter()
            .map(|peer| PeerState {
                id: peer.id.clone(),
                relation: peer.relation,
                asset: asset_index(&peer.asset_code, peer.asset_scale),
                asset_code: peer.asset_code.clone(),
                asset_scale: peer.asset_scale,
                max_packet_amount: peer.max_packet_amount,
                credit_limit: peer.credit_limit,
                packets: peer
                    .packets_per_second_max
                    .map(|rate| TokenBucket::new(u64::from(rate), now_ms)),
                throughput: peer.throughput_per_second_max.map(|rate| TokenBucket::new(rate, now_ms)),
                balance_index: balances.peer_index(&peer.id),
                sessions: Vec::new(),
                next_session: 0,
                metrics: {
                    let metrics = metrics::global().register_peer(&peer.id, &peer.asset_code);
                    metrics.set_credit_limit(peer.credit_limit);
                    metrics
                },
            })
            .collect();
        let rates = rate_matrix(&assets, &crate::rates::StaticSource::new(&config.rates).update());
        let peer_ids: Vec<&str> = config.peers.iter().map(|peer| peer.id.as_str()).collect();
        let settlement = settlement_link.map(|link| settlement::SettlementRuntime::new(link, &peer_ids));
        let mut forwarder = Forwarder {
            node_address: config.node.ilp_address.clone(),
            min_message_window_ms: config.node.min_message_window_ms,
            max_hold_time_ms: config.node.max_hold_time_ms,
            reflection: config.node.reflection,
            in_flight_max,
            peers,
            routes: Routes::new(&routing_configured(config), ccp::new_table_id(), now_ms),
            ccp: ccp::CcpRuntime::new(config, now_ms),
            rates,
            assets,
            balances,
            sessions: FxHashMap::default(),
            in_flight: FxHashMap::default(),
            by_request: FxHashMap::default(),
            deadlines: BinaryHeap::new(),
            next_packet_id: 0,
            next_seq: last_seq + 1,
            entries: Vec::new(),
            held: Vec::new(),
            journal,
            journal_status,
            journal_failed: false,
            snapshot_every: config.journal.snapshot_every.max(1),
            events_since_snapshot: 0,
            orphans,
            health,
            now_ms,
            in_flight_published: Arc::default(),
            head_published: Arc::new(std::sync::atomic::AtomicU64::new(last_seq)),
            settlement,
        };
        forwarder.next_packet_id = forwarder.balances.packet_id_max() + 1;
        forwarder.append(Event::ConfigurationApplied(configuration_applied(config)));
        forwarder.append(Event::RoutingConfigured(routing_configured(config)));
        forwarder.settlement_start();
        forwarder
    }

    /// Runs until an input queue is closed (the node is stopping). `undelivered` carries the
    /// Fulfills the journal writer could not deliver (see [`Held::Fulfill`]).
    pub fn run(
        mut self,
        replies: Receiver<Input>,
        prepares: Receiver<Input>,
        undelivered: Receiver<Undelivered>,
        stopping: Arc<AtomicBool>,
    ) {
        // The start's ConfigurationApplied goes out at once, not with the first traffic.
        self.commit();
        while !stopping.load(Ordering::Relaxed) {
            let wait = self.wait_duration();
            let first = crossbeam_channel::select_biased! {
                recv(replies) -> input => match input { Ok(input) => Some(Ok(input)), Err(_) => break },
                recv(undelivered) -> report => match report { Ok(report) => Some(Err(report)), Err(_) => break },
                recv(prepares) -> input => match input { Ok(input) => Some(Ok(input)), Err(_) => break },
                default(wait) => None,
            };
            self.now_ms = timestamp::now_ms();
            match first {
                Some(Ok(input)) => {
                    self.handle(input);
                    crate::fault::hit("forwarder");
                }
                Some(Err(report)) => self.fulfill_undelivered(report),
                None => {}
            }
            while let Ok(report) = undelivered.try_recv() {
                self.fulfill_undelivered(report);
            }
            self.drain(&replies, &prepares);
            self.expire_due();
            self.settlement_tick();
            self.ccp_tick();
            self.commit();
            self.in_flight_published.store(self.in_flight.len(), Ordering::Release);
        }
        self.commit();
        self.journal_last_undelivered(&undelivered);
        // A final snapshot: the next start replays nothing, and it records the live state for
        // auditors to compare with a replay.
        let snapshot = Some((self.next_seq - 1, self.balances.to_snapshot()));
        let _ = self.journal.send(Commit { entries: Vec::new(), releases: Vec::new(), snapshot });
    }

    /// At the stop: waits until the writer has released every Fulfill held so far, then
    /// journals those it could not deliver, so no undelivered Fulfill stays charged upstream.
    fn journal_last_undelivered(&mut self, undelivered: &Receiver<Undelivered>) {
        let (passed, barrier) = crossbeam_channel::bounded(1);
        self.held.push(Held::Barrier(passed));
        self.commit();
        // Dropped unreleased (the journal failed) or released: either way nothing more comes.
        let _ = barrier.recv_timeout(STOP_RELEASE_WAIT);
        self.now_ms = timestamp::now_ms();
        while let Ok(report) = undelivered.try_recv() {
            self.fulfill_undelivered(report);
        }
        self.commit();
    }

    /// A Fulfill already journaled (`PacketFulfilled`) did not reach its sender: its charge
    /// comes off the sender's position and is the connector's loss (`FulfillUndelivered`).
    fn fulfill_undelivered(&mut self, report: Undelivered) {
        let Undelivered { packet_id, from_peer, amount_in, reason } = report;
        let peer_id = self.peers[from_peer].id.clone();
        tracing::warn!(
            packet_id,
            peer = %peer_id,
            amount = amount_in,
            reason = reason.label(),
            "Fulfill not delivered upstream ({}): {peer_id} is not charged, the next hop is still \
             owed; the connector bears the loss",
            match reason {
                UndeliveredReason::Expired => "the Prepare expired before the Fulfill was durable",
                UndeliveredReason::UpstreamGone => "the sender's session had closed",
            }
        );
        self.append(Event::FulfillUndelivered(FulfillUndelivered { packet_id, from_peer: peer_id, amount_in, reason }));
        metrics::global().fulfill_undelivered(reason);
        self.update_balance_gauges(from_peer, from_peer);
    }

    fn wait_duration(&self) -> Duration {
        let idle_max = if self.settlement.is_some() {
            Duration::from_millis(settlement::TICK_INTERVAL_MS as u64)
        } else {
            IDLE_WAIT_MAX
        };
        self.wait_duration_for_deadlines().min(idle_max)
    }

    fn wait_duration_for_deadlines(&self) -> Duration {
        match self.deadlines.peek() {
            Some(Reverse((deadline_ms, _))) => {
                let now_ms = timestamp::now_ms();
                let remaining_ms = deadline_ms.saturating_sub(now_ms).max(0) as u64;
                Duration::from_millis(remaining_ms).min(IDLE_WAIT_MAX)
            }
            // Orphans are swept on the idle tick; their expiries are not urgent.
            None => IDLE_WAIT_MAX,
        }
    }

    fn drain(&mut self, replies: &Receiver<Input>, prepares: &Receiver<Input>) {
        let mut handled = 0;
        while handled < BATCH_INPUTS_MAX {
            let input = match replies.try_recv() {
                Ok(input) => input,
                Err(_) => match prepares.try_recv() {
                    Ok(input) => input,
                    Err(_) => break,
                },
            };
            self.handle(input);
            handled += 1;
        }
        let global = metrics::global();
        global.batch_size(metrics::PipelineStage::Router, handled as u64);
        global.set_queue_depth(metrics::PipelineStage::Admission, prepares.len() as i64);
        global.set_queue_depth(metrics::PipelineStage::Settle, replies.len() as i64);
        global.set_queue_depth(metrics::PipelineStage::Journal, self.journal.len() as i64);
    }

    /// Handles one input at `self.now_ms`. Public for deterministic tests.
    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Prepare(incoming) => self.handle_prepare(incoming),
            Input::Reply { session, request_id, reply } => self.handle_reply(session, request_id, reply),
            Input::SessionUp(link) => self.session_up(link),
            Input::SessionDown { session } => self.session_down(session),
            Input::Claim(claim) => self.handle_claim(claim),
            Input::Settlement(input) => self.handle_settlement_input(input),
            Input::ChannelMessage(message) => self.handle_channel_message(message),
            Input::Admin(request) => self.handle_admin(request),
            Input::Rates(update) => self.rates_update(update),
        }
    }

    /// Sets the forwarder's clock (tests drive time explicitly).
    pub fn set_now_ms(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    /// What the loop does after a batch of inputs, at `now_ms`: the expiry sweep, then the
    /// journal commit. With [`Forwarder::handle`] and [`Forwarder::set_now_ms`], the clock hook
    /// tests drive the forwarder through, deterministically.
    pub fn tick_at(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        self.expire_due();
        self.ccp_tick();
        self.commit();
    }

    pub fn balances(&self) -> &Balances {
        &self.balances
    }

    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// A counter of packets in flight that the forwarder updates after every batch (the node
    /// waits on it to drain before it stops).
    pub fn in_flight_published(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.in_flight_published.clone()
    }

    /// The seq of the last event appended, as it is appended.
    pub fn head_published(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.head_published.clone()
    }

    /// Appends an event and applies it to the in-line state, exactly as a replay would.
    fn append(&mut self, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = JournalEntry { seq, timestamp_ms: self.now_ms, event };
        self.balances.apply(&entry);
        self.entries.push(entry);
        self.head_published.store(seq, Ordering::Release);
    }

    /// Hands the batch's events (and the replies waiting on them) to the journal writer, with a
    /// snapshot of the state every `snapshot_every` events.
    pub fn commit(&mut self) {
        if self.journal_status.failed.load(std::sync::atomic::Ordering::Acquire) && !self.journal_failed {
            self.journal_failed = true;
            tracing::error!("journal storage failed: refusing new Prepares with T00 until restarted");
            self.health.set_component("journal", ComponentStatus::Failed("journal storage failed; see the log".into()));
        }
        if self.entries.is_empty() && self.held.is_empty() {
            return;
        }
        self.events_since_snapshot += self.entries.len() as u64;
        let snapshot = (self.events_since_snapshot >= self.snapshot_every).then(|| {
            self.events_since_snapshot = 0;
            (self.next_seq - 1, self.balances.to_snapshot())
        });
        metrics::global().journal_head(self.next_seq - 1);
        let commit = Commit {
            entries: std::mem::take(&mut self.entries),
            releases: std::mem::take(&mut self.held),
            snapshot,
        };
        if self.journal.send(commit).is_err() && !self.journal_failed {
            tracing::error!("journal writer stopped; refusing new Prepares with T00");
            metrics::global().error(metrics::ErrorKind::Journal, &"journal writer stopped");
            self.journal_failed = true;
        }
    }

    fn session_up(&mut self, link: LinkHandle) {
        let peer = link.peer;
        let session = link.session;
        self.sessions.insert(session, SessionState { peer, link, next_request_id: 1 });
        let state = &mut self.peers[peer];
        state.sessions.push(session);
        state.metrics.connection_opened();
        let first = state.sessions.len() == 1;
        if first {
            self.health.peer_connected();
        }
        let peer_id = state.id.clone();
        self.append(Event::PeerConnected { peer: peer_id, session });
        if first {
            self.ccp_peer_up(peer);
        }
    }

    fn session_down(&mut self, session: SessionId) {
        let Some(state) = self.sessions.remove(&session) else { return };
        let peer = &mut self.peers[state.peer];
        peer.sessions.retain(|&s| s != session);
        peer.metrics.connection_closed();
        let last = peer.sessions.is_empty();
        if last {
            self.health.peer_disconnected();
        }
        let peer_id = peer.id.clone();
        self.append(Event::PeerDisconnected { peer: peer_id, session });
        self.ccp_session_down(session);
        if last {
            self.ccp_peer_down(state.peer);
        }
        // Replies for packets sent on this session can no longer arrive: end them now.
        let orphaned: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, packet)| packet.to_session == session)
            .map(|(&packet_id, _)| packet_id)
            .collect();
        for packet_id in orphaned {
            if let Some(packet) = self.take_in_flight(packet_id) {
                self.reject_in_flight(
                    packet_id,
                    packet,
                    ErrorCode::T01_PEER_UNREACHABLE,
                    "next hop disconnected",
                    Stage::Egress,
                );
            }
        }
        self.settlement_session_down(session);
    }

    fn handle_prepare(&mut self, incoming: IncomingPrepare) {
        if !self.sessions.contains_key(&incoming.session) {
            // The session closed (its SessionDown overtook its queued Prepares): nobody can
            // receive the answer, so the packet is not forwarded and nothing is charged.
            metrics::global().btp_frame_dropped(metrics::FrameDropReason::UnexpectedResponse);
            return;
        }
        let prepare = &incoming.prepare;
        if prepare.destination().starts_with("peer.") {
            self.handle_peer_protocol(incoming);
            return;
        }
        let packet_id = self.next_packet_id;
        self.next_packet_id += 1;
        match self.decide(&incoming) {
            Ok(decision) => self.forward(packet_id, incoming, decision),
            Err(refusal) => self.refuse(packet_id, incoming, refusal),
        }
    }

    /// Every check of RFC 27's forwarding algorithm, in order; pure apart from the rate
    /// buckets, whose tokens are given back if a later check refuses the packet.
    fn decide(&mut self, incoming: &IncomingPrepare) -> Result<Decision, Refusal> {
        let prepare = &incoming.prepare;
        let from = incoming.peer;
        if self.journal_failed {
            return Err(Refusal::new(ErrorCode::T00_INTERNAL_ERROR, "journal unavailable", Stage::Admission));
        }
        let expires_at_out_ms = outgoing_expiry_ms(
            prepare.expires_at_ms(),
            self.now_ms,
            self.min_message_window_ms,
            self.max_hold_time_ms,
        )
        .map_err(|code| {
            let message = if code == ErrorCode::R00_TRANSFER_TIMED_OUT {
                "packet expired before it was forwarded"
            } else {
                "too little time left to forward the packet"
            };
            Refusal::new(code, message, Stage::Admission)
        })?;
        let amount_in = prepare.amount();
        let peer = &self.peers[from];
        if let Some(maximum) = peer.max_packet_amount {
            if amount_in > maximum {
                let mut refusal = Refusal::new(ErrorCode::F08_AMOUNT_TOO_LARGE, "amount exceeds the maximum packet amount", Stage::Risk);
                refusal.data = Some(ilp::error_code::amount_too_large_data(amount_in, maximum));
                return Err(refusal);
            }
        }
        let to = self.route(prepare.destination(), from)?;
        self.take_rate_tokens(from, amount_in)?;
        let decision = self.price_and_reserve(from, to, amount_in, expires_at_out_ms);
        if decision.is_err() {
            self.give_back_rate_tokens(from, amount_in);
        }
        decision
    }

    fn route(&self, destination: &str, from: PeerIndex) -> Result<PeerIndex, Refusal> {
        let under_own_address = destination.len() > self.node_address.len()
            && destination.starts_with(self.node_address.as_str())
            && destination.as_bytes()[self.node_address.len()] == b'.';
        let to = if destination == self.node_address {
            None
        } else if under_own_address {
            // Only routes below our own address (our children) may serve it: never a shorter
            // prefix such as a `test` route to the parent, or the packet could loop.
            self.routes.table().lookup_below(destination, self.node_address.len())
        } else {
            self.routes.table().lookup(destination)
        };
        let Some(to) = to else {
            return Err(Refusal::new(ErrorCode::F02_UNREACHABLE, "no route to destination", Stage::Routing));
        };
        if to == from && !self.reflection {
            return Err(Refusal::new(ErrorCode::F02_UNREACHABLE, "route leads back to the sender", Stage::Routing));
        }
        Ok(to)
    }

    fn take_rate_tokens(&mut self, from: PeerIndex, amount_in: u64) -> Result<(), Refusal> {
        let now_ms = self.now_ms;
        let peer = &mut self.peers[from];
        if let Some(bucket) = peer.packets.as_mut() {
            if !bucket.try_take(1, now_ms) {
                return Err(Refusal::new(ErrorCode::T05_RATE_LIMITED, "packet rate limit exceeded", Stage::Risk));
            }
        }
        if let Some(bucket) = peer.throughput.as_mut() {
            if !bucket.try_take(amount_in, now_ms) {
                if let Some(packets) = peer.packets.as_mut() {
                    packets.give_back(1);
                }
                return Err(Refusal::new(ErrorCode::T04_INSUFFICIENT_LIQUIDITY, "throughput limit exceeded", Stage::Risk));
            }
        }
        Ok(())
    }

    fn give_back_rate_tokens(&mut self, from: PeerIndex, amount_in: u64) {
        let peer = &mut self.peers[from];
        if let Some(bucket) = peer.packets.as_mut() {
            bucket.give_back(1);
        }
        if let Some(bucket) = peer.throughput.as_mut() {
            bucket.give_back(amount_in);
        }
    }

    fn price_and_reserve(
        &self,
        from: PeerIndex,
        to: PeerIndex,
        amount_in: u64,
        expires_at_out_ms: i64,
    ) -> Result<Decision, Refusal> {
        let (asset_in, asset_out) = (self.peers[from].asset, self.peers[to].asset);
        let pair = self.rates[asset_in][asset_out].as_ref().ok_or_else(|| {
            metrics::global().rate_reject(&self.assets[asset_in].0, &self.assets[asset_out].0, "missing");
            Refusal::new(ErrorCode::T00_INTERNAL_ERROR, "no exchange rate between the two assets", Stage::Risk)
        })?;
        if pair.fresh_until_ms.is_some_and(|until| self.now_ms > until) {
            metrics::global().rate_reject(&self.assets[asset_in].0, &self.assets[asset_out].0, "stale");
            return Err(Refusal::new(ErrorCode::T00_INTERNAL_ERROR, "exchange rate between the two assets is stale (its feed has not updated it)", Stage::Risk));
        }
        let (conversion, rate) = (pair.conversion, (asset_in != asset_out).then_some(pair.rate));
        let amount_out = conversion.apply(amount_in).map_err(|code| {
            let message = if code == ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT {
                "amount rounds to zero after conversion"
            } else {
                "converted amount does not fit in 64 bits"
            };
            Refusal::new(code, message, Stage::Risk)
        })?;
        let peer = &self.peers[from];
        if !self.balances.can_reserve(peer.balance_index, amount_in, peer.credit_limit) {
            return Err(Refusal::new(ErrorCode::T04_INSUFFICIENT_LIQUIDITY, "credit limit exceeded", Stage::Risk));
        }
        if self.in_flight.len() >= self.in_flight_max {
            return Err(Refusal::new(ErrorCode::T03_CONNECTOR_BUSY, "too many packets in flight", Stage::Egress));
        }
        let to_session = self.pick_session(to).ok_or_else(|| {
            Refusal::new(ErrorCode::T01_PEER_UNREACHABLE, "next hop is not connected", Stage::Routing)
        })?;
        Ok(Decision { to, to_session, amount_out, expires_at_out_ms, rate })
    }

    /// A rate source read: its quotes replace what we held for those pairs. Packets already in
    /// flight keep the amounts they were prepared with.
    fn rates_update(&mut self, update: crate::rates::RatesUpdate) {
        let pairs = apply_quotes(&mut self.rates, &self.assets, &update);
        tracing::debug!(source = %update.source, quotes = update.quotes.len(), pairs, "exchange rates updated");
    }

    fn pick_session(&self, peer: PeerIndex) -> Option<SessionId> {
        let state = &self.peers[peer];
        if state.sessions.is_empty() {
            return None;
        }
        Some(state.sessions[state.next_session % state.sessions.len()])
    }

    fn forward(&mut self, packet_id: u64, incoming: IncomingPrepare, decision: Decision) {
        let from = incoming.peer;
        let prepare = &incoming.prepare;
        let to_peer = &mut self.peers[decision.to];
        to_peer.next_session = to_peer.next_session.wrapping_add(1);
        let session = self.sessions.get_mut(&decision.to_session).expect("picked session exists");
        let mut to_request_id = session.next_request_id;
        while self.by_request.contains_key(&(decision.to_session, to_request_id)) {
            to_request_id = to_request_id.wrapping_add(1);
        }
        session.next_request_id = to_request_id.wrapping_add(1);
        let frame = forwarded_frame(prepare, to_request_id, decision.amount_out, decision.expires_at_out_ms);
        let sent = session.link.requests.try_send(frame).is_ok();

        let amount_in = prepare.amount();
        let condition = *prepare.execution_condition();
        self.append(Event::PacketPrepared(PacketPrepared {
            packet_id,
            from_peer: self.peers[from].id.clone(),
            to_peer: self.peers[decision.to].id.clone(),
            amount_in,
            amount_out: decision.amount_out,
            expires_at_in_ms: prepare.expires_at_ms(),
            expires_at_out_ms: decision.expires_at_out_ms,
            condition,
            destination: prepare.destination().to_owned(),
            rate: decision.rate,
        }));
        let packet = InFlight {
            reply: incoming.reply,
            from_session: incoming.session,
            from_request_id: incoming.request_id,
            to_session: decision.to_session,
            to_request_id,
            to_peer: decision.to,
            from_peer: from,
            amount_in,
            condition,
            expires_at_in_ms: prepare.expires_at_ms(),
            expires_at_out_ms: decision.expires_at_out_ms,
            received_at: incoming.received_at,
        };
        if !sent {
            self.give_back_rate_tokens(from, amount_in);
            self.reject_in_flight(packet_id, packet, ErrorCode::T03_CONNECTOR_BUSY, "next hop's queue is full", Stage::Egress);
            return;
        }
        self.peers[from].metrics.packet_in();
        self.peers[decision.to].metrics.packet_out();
        metrics::global().packets_in_flight_inc();
        self.by_request.insert((decision.to_session, to_request_id), packet_id);
        self.deadlines.push(Reverse((decision.expires_at_out_ms, packet_id)));
        self.in_flight.insert(packet_id, packet);
    }

    /// A request id on `session` that no request of ours awaiting an answer uses.
    fn next_request_id(&mut self, session: SessionId) -> u32 {
        let Some(state) = self.sessions.get(&session) else { return 0 };
        let mut request_id = state.next_request_id;
        let taken = |request_id: u32, forwarder: &Self| {
            forwarder.by_request.contains_key(&(session, request_id))
                || forwarder.ccp.is_pending(session, request_id)
                || forwarder.settlement_request_pending(session, request_id)
        };
        while taken(request_id, self) {
            request_id = request_id.wrapping_add(1);
        }
        if let Some(state) = self.sessions.get_mut(&session) {
            state.next_request_id = request_id.wrapping_add(1);
        }
        request_id
    }

    fn take_in_flight(&mut self, packet_id: u64) -> Option<InFlight> {
        let packet = self.in_flight.remove(&packet_id)?;
        self.by_request.remove(&(packet.to_session, packet.to_request_id));
        metrics::global().packets_in_flight_dec();
        Some(packet)
    }

    fn handle_reply(&mut self, session: SessionId, request_id: u32, reply: Reply) {
        let Some(&packet_id) = self.by_request.get(&(session, request_id)) else {
            if self.ccp_answered(session, request_id, &reply) {
                return;
            }
            if let Reply::Channel(data) = &reply {
                self.channel_message_answered(session, request_id, Ok(data.clone()));
                return;
            }
            let refusal = match &reply {
                Reply::Ack => Some(None),
                Reply::LinkError { message } => Some(Some(message.clone())),
                Reply::Fulfill(_) | Reply::Reject(_) | Reply::Channel(_) => None,
            };
            if let Some(refusal) = refusal {
                if self.claim_answered(session, request_id, refusal.clone()) {
                    return;
                }
                if let Some(message) = refusal {
                    if self.channel_message_answered(session, request_id, Err(message)) {
                        return;
                    }
                }
            }
            // Late (after expiry) or never requested: drop without answering (RFC 23).
            metrics::global().btp_frame_dropped(metrics::FrameDropReason::UnexpectedResponse);
            tracing::debug!(session, request_id, "reply matches no packet in flight; dropped");
            return;
        };
        let packet = self.take_in_flight(packet_id).expect("indexed packet is in flight");
        match reply {
            Reply::Fulfill(fulfill) => {
                if self.now_ms > packet.expires_at_out_ms {
                    self.reject_in_flight(packet_id, packet, ErrorCode::R00_TRANSFER_TIMED_OUT, "fulfillment arrived after the packet expired", Stage::Settle);
                } else if !ilp::fulfillment_matches(fulfill.fulfillment(), &packet.condition) {
                    metrics::global().packet_processed(PacketKind::Fulfill, PacketStatus::Invalid);
                    tracing::warn!(packet_id, peer = %self.peers[packet.to_peer].id, "fulfillment does not match the condition");
                    self.reject_in_flight(packet_id, packet, ErrorCode::F05_WRONG_CONDITION, "fulfillment does not match the condition", Stage::Settle);
                } else {
                    self.fulfilled(packet_id, packet, fulfill.fulfillment(), fulfill.as_bytes());
                }
            }
            Reply::Reject(reject) => {
                let code = reject.code();
                let triggered_by = String::from_utf8_lossy(reject.triggered_by_raw()).into_owned();
                let message = reject.message_lossy();
                let frame = reply_frame(packet.from_request_id, reject.as_bytes());
                self.ended_rejected(packet_id, &packet, code, triggered_by, &message, Stage::Downstream, false);
                packet.reply.send(frame);
            }
            Reply::LinkError { message } => {
                let text = format!("next hop answered with a BTP error: {message}");
                self.reject_in_flight(packet_id, packet, ErrorCode::T01_PEER_UNREACHABLE, &text, Stage::Egress);
            }
            Reply::Ack | Reply::Channel(_) => {
                let text = "next hop answered our Prepare without an ILP packet";
                self.reject_in_flight(packet_id, packet, ErrorCode::T01_PEER_UNREACHABLE, text, Stage::Egress);
            }
        }
    }

    fn fulfilled(&mut self, packet_id: u64, packet: InFlight, fulfillment: &[u8; 32], fulfill_bytes: &[u8]) {
        self.append(Event::PacketFulfilled(PacketFulfilled { packet_id, fulfillment: *fulfillment }));
        let frame = reply_frame(packet.from_request_id, fulfill_bytes);
        let (from_peer, to_peer, received_at) = (packet.from_peer, packet.to_peer, packet.received_at);
        let undelivered = Undelivered { packet_id, from_peer, amount_in: packet.amount_in, reason: UndeliveredReason::UpstreamGone };
        if self.sessions.contains_key(&packet.from_session) {
            self.held.push(Held::Fulfill { slot: packet.reply, frame, expires_at_in_ms: packet.expires_at_in_ms, packet: undelivered });
        } else {
            // The sender's session closed while its packet was in flight: nobody can take the
            // Fulfill (the writer checks again when it releases, for a session that closes
            // in between).
            drop(packet.reply);
            self.fulfill_undelivered(undelivered);
        }
        let global = metrics::global();
        global.packet_processed(PacketKind::Prepare, PacketStatus::Fulfilled);
        global.packet_processed(PacketKind::Fulfill, PacketStatus::Relayed);
        global.packet_latency(ReplyKind::Fulfill, received_at.elapsed());
        self.update_balance_gauges(from_peer, to_peer);
        self.settle_after_fulfill(from_peer, to_peer);
    }

    /// Ends a prepared packet with a Reject created here, sent upstream at once.
    fn reject_in_flight(&mut self, packet_id: u64, packet: InFlight, code: ErrorCode, message: &str, stage: Stage) {
        let reject = self.local_reject(code, message, &[]);
        let frame = reply_frame(packet.from_request_id, &reject);
        let triggered_by = self.node_address.clone();
        self.ended_rejected(packet_id, &packet, code, triggered_by, message, stage, true);
        packet.reply.send(frame);
    }

    #[allow(clippy::too_many_arguments)]
    fn ended_rejected(
        &mut self,
        packet_id: u64,
        packet: &InFlight,
        code: ErrorCode,
        triggered_by: String,
        message: &str,
        stage: Stage,
        local: bool,
    ) {
        self.append(Event::PacketRejected(PacketRejected {
            packet_id,
            prepared: true,
            from_peer: self.peers[packet.from_peer].id.clone(),
            amount_in: packet.amount_in,
            destination: String::new(),
            code: code.0,
            triggered_by,
            message: journaled_message(message),
            stage,
        }));
        let global = metrics::global();
        global.packet_processed(PacketKind::Prepare, PacketStatus::Rejected);
        let status = if local { PacketStatus::Generated } else { PacketStatus::Relayed };
        global.packet_processed(PacketKind::Reject, status);
        global.reject(code.0, if local { RejectOrigin::Local } else { RejectOrigin::Downstream });
        global.packet_latency(ReplyKind::Reject, packet.received_at.elapsed());
    }

    /// Refuses a Prepare before forwarding it: journaled, answered at once, no balance touched.
    fn refuse(&mut self, packet_id: u64, incoming: IncomingPrepare, refusal: Refusal) {
        let data: &[u8] = refusal.data.as_ref().map_or(&[], |data| &data[..]);
        let reject = self.local_reject(refusal.code, refusal.message, data);
        let prepare = &incoming.prepare;
        self.append(Event::PacketRejected(PacketRejected {
            packet_id,
            prepared: false,
            from_peer: self.peers[incoming.peer].id.clone(),
            amount_in: prepare.amount(),
            destination: prepare.destination().to_owned(),
            code: refusal.code.0,
            triggered_by: self.node_address.clone(),
            message: refusal.message.to_owned(),
            stage: refusal.stage,
        }));
        let global = metrics::global();
        global.packet_processed(PacketKind::Prepare, PacketStatus::Rejected);
        global.packet_processed(PacketKind::Reject, PacketStatus::Generated);
        global.reject(refusal.code.0, RejectOrigin::Local);
        global.packet_latency(ReplyKind::Reject, incoming.received_at.elapsed());
        incoming.reply.send(reply_frame(incoming.request_id, &reject));
    }

    fn local_reject(&self, code: ErrorCode, message: &str, data: &[u8]) -> Bytes {
        // Messages can quote a peer (a BTP Error's text): cut them to the limit rather than
        // trust their length.
        let message = truncate_message(message, MESSAGE_SIZE_MAX);
        RejectBuilder { code, triggered_by: &self.node_address, message, data }
            .build()
            .expect("a Reject with our address, a bounded message and at most 16 bytes of data is valid")
    }

    /// Ends packets a previous run left open, once their incoming expiry has passed: by then no
    /// Fulfill can be owed upstream, and the next hop's connection is long gone.
    fn end_orphans_due(&mut self) {
        while let Some(&(expires_at_in_ms, packet_id)) = self.orphans.last() {
            if expires_at_in_ms > self.now_ms {
                break;
            }
            self.orphans.pop();
            let Some((from_peer, amount_in)) = self.balances.open_packet_sender(packet_id) else { continue };
            let from_peer = from_peer.to_owned();
            tracing::info!(packet_id, peer = %from_peer, "ending a packet left in flight by the previous run");
            self.append(Event::PacketRejected(PacketRejected {
                packet_id,
                prepared: true,
                from_peer,
                amount_in,
                destination: String::new(),
                code: ErrorCode::R00_TRANSFER_TIMED_OUT.0,
                triggered_by: self.node_address.clone(),
                message: "connector restarted; packet ended after its expiry".into(),
                stage: Stage::Recovery,
            }));
        }
    }

    fn expire_due(&mut self) {
        self.end_orphans_due();
        // Ended packets leave their deadline behind; rebuild when those dominate, so the heap
        // stays proportional to the packets in flight rather than to the traffic rate.
        if self.deadlines.len() > 2 * self.in_flight.len() + 1024 {
            let in_flight = &self.in_flight;
            self.deadlines.retain(|Reverse((deadline_ms, packet_id))| {
                in_flight.get(packet_id).is_some_and(|packet| packet.expires_at_out_ms == *deadline_ms)
            });
        }
        while let Some(&Reverse((deadline_ms, packet_id))) = self.deadlines.peek() {
            if deadline_ms > self.now_ms {
                break;
            }
            self.deadlines.pop();
            let still_waiting = self
                .in_flight
                .get(&packet_id)
                .is_some_and(|packet| packet.expires_at_out_ms == deadline_ms);
            if !still_waiting {
                continue;
            }
            let packet = self.take_in_flight(packet_id).expect("checked above");
            tracing::debug!(packet_id, peer = %self.peers[packet.to_peer].id, "no reply before expiry");
            self.reject_in_flight(packet_id, packet, ErrorCode::R00_TRANSFER_TIMED_OUT, "no reply from the next hop before expiry", Stage::Expiry);
        }
    }

    fn update_balance_gauges(&self, from: PeerIndex, to: PeerIndex) {
        for peer in [from, to] {
            let state = &self.peers[peer];
            state.metrics.set_balance(self.balances.balance(state.balance_index).position);
        }
    }

    /// `peer.*` destinations are answered here and never forwarded (RFC 34). They move no
    /// money, so they are not journaled themselves (the routes a route update teaches are).
    fn handle_peer_protocol(&mut self, incoming: IncomingPrepare) {
        let prepare = &incoming.prepare;
        let reply = if prepare.expires_at_ms() <= self.now_ms {
            Err((ErrorCode::R00_TRANSFER_TIMED_OUT, "peer protocol request expired"))
        } else if prepare.amount() != 0 {
            // Peer protocols move no money; an amount here would be taken without accounting.
            Err((ErrorCode::F01_INVALID_PACKET, "peer protocol requests carry no amount"))
        } else if prepare.execution_condition() != &ilp::PEER_PROTOCOL_CONDITION {
            Err((ErrorCode::F01_INVALID_PACKET, "peer protocol requests use the zero fulfillment's condition"))
        } else {
            match prepare.destination() {
                "peer.config" => self.ildcp_response(incoming.peer),
                ilp::ccp::CONTROL_DESTINATION => self.ccp_handle_control(incoming.peer, prepare.data()),
                ilp::ccp::UPDATE_DESTINATION => self.ccp_handle_update(incoming.peer, prepare.data()),
                _ => Err((ErrorCode::F01_INVALID_PACKET, "unknown peer protocol")),
            }
        };
        let packet = match reply {
            Ok(data) => FulfillBuilder { fulfillment: ilp::PEER_PROTOCOL_FULFILLMENT, data: &data }
                .build()
                .expect("peer protocol Fulfill is within limits"),
            Err((code, message)) => self.local_reject(code, message, &[]),
        };
        incoming.reply.send(reply_frame(incoming.request_id, &packet));
    }

    fn ildcp_response(&self, peer: PeerIndex) -> Result<Bytes, (ErrorCode, &'static str)> {
        let state = &self.peers[peer];
        if state.relation != Relation::Child {
            return Err((ErrorCode::F00_BAD_REQUEST, "IL-DCP is served to child peers only"));
        }
        let response = ildcp::Response {
            client_address: ilp::Address::parse(&format!("{}.{}", self.node_address, state.id))
                .map_err(|_| (ErrorCode::F00_BAD_REQUEST, "peer id does not make a valid child address"))?,
            asset_scale: state.asset_scale,
            asset_code: state.asset_code.clone(),
        };
        Ok(Bytes::from(response.encode_fulfill_data()))
    }
}

struct Decision {
    to: PeerIndex,
    to_session: SessionId,
    amount_out: u64,
    expires_at_out_ms: i64,
    /// The rate converted at, between two assets.
    rate: Option<AppliedRate>,
}

/// The rate held for one pair of assets.
#[derive(Debug, Clone, Copy)]
struct PairRate {
    conversion: Conversion,
    rate: AppliedRate,
    /// Journal time after which it may not be used (None: a configured rate, never stale).
    fresh_until_ms: Option<i64>,
}

struct Refusal {
    code: ErrorCode,
    message: &'static str,
    stage: Stage,
    data: Option<[u8; 16]>,
}

impl Refusal {
    fn new(code: ErrorCode, message: &'static str, stage: Stage) -> Self {
        Refusal { code, message, stage, data: None }
    }
}

/// A BTP Message carrying the Prepare with its amount and expiry rewritten.
fn forwarded_frame(prepare: &Prepare, request_id: u32, amount: u64, expires_at_ms: i64) -> Bytes {
    let ilp_len = prepare.forwarded_len();
    let mut out = BytesMut::with_capacity(btp::ilp_frame_len(ilp_len));
    btp::write_ilp_frame(&mut out, btp::TYPE_MESSAGE, request_id, ilp_len);
    prepare.write_forwarded(amount, expires_at_ms, &mut out);
    out.freeze()
}


fn routing_configured(config: &Config) -> RoutingConfigured {
    RoutingConfigured {
        node_address: config.node.ilp_address.clone(),
        peers: config
            .peers
            .iter()
            .map(|peer| PeerRelation { peer: peer.id.clone(), relation: peer.relation.as_str().to_owned() })
            .collect(),
        routes: config.routes.iter().map(|route| ConfiguredRoute { prefix: route.prefix.clone(), peer: route.peer.clone() }).collect(),
    }
}

/// The rates between every two assets the static rates give (each serves both directions);
/// same asset: 1.
fn rate_matrix(assets: &[(String, u8)], statics: &crate::rates::RatesUpdate) -> Vec<Vec<Option<PairRate>>> {
    let mut matrix: Vec<Vec<Option<PairRate>>> = vec![vec![None; assets.len()]; assets.len()];
    for (index, (_, scale)) in assets.iter().enumerate() {
        let rate = AppliedRate { numerator: 1, denominator: 1 };
        matrix[index][index] = Some(PairRate { conversion: Conversion::new(1, 1, *scale, *scale), rate, fresh_until_ms: None });
    }
    apply_quotes(&mut matrix, assets, statics);
    matrix
}

/// Sets the rates `update` quotes (and, for a pair it does not quote the other way, the
/// inverse) for every pair of assets with those codes.
fn apply_quotes(matrix: &mut [Vec<Option<PairRate>>], assets: &[(String, u8)], update: &crate::rates::RatesUpdate) -> usize {
    let fresh_until_ms = update.max_age_ms.map(|age| update.observed_at_ms.saturating_add(i64::try_from(age).unwrap_or(i64::MAX)));
    let quoted = |from: &str, to: &str| update.quotes.iter().any(|quote| quote.from == from && quote.to == to);
    let mut pairs = 0;
    // Inverses first, so a pair quoted in both directions keeps its own quote.
    for inverse in [true, false] {
        for quote in &update.quotes {
            let (from, to, numerator, denominator) = if inverse {
                if quoted(&quote.to, &quote.from) {
                    continue;
                }
                (&quote.to, &quote.from, quote.denominator, quote.numerator)
            } else {
                (&quote.from, &quote.to, quote.numerator, quote.denominator)
            };
            for (index_in, (code_in, scale_in)) in assets.iter().enumerate() {
                if code_in != from {
                    continue;
                }
                for (index_out, (code_out, scale_out)) in assets.iter().enumerate() {
                    if code_out != to {
                        continue;
                    }
                    let rate = AppliedRate { numerator, denominator };
                    matrix[index_in][index_out] = Some(PairRate { conversion: Conversion::new(numerator, denominator, *scale_in, *scale_out), rate, fresh_until_ms });
                    pairs += 1;
                }
            }
        }
    }
    pairs
}

fn configuration_applied(config: &Config) -> ConfigurationApplied {
    ConfigurationApplied {
        node_address: config.node.ilp_address.clone(),
        asset_code: config.node.asset_code.clone(),
        asset_scale: config.node.asset_scale,
        min_message_window_ms: config.node.min_message_window_ms,
        max_hold_time_ms: config.node.max_hold_time_ms,
        peers: config
            .peers
            .iter()
            .map(|peer| PeerTerms {
                peer: peer.id.clone(),
                relation: peer.relation.as_str().to_owned(),
                asset_code: peer.asset_code.clone(),
                asset_scale: peer.asset_scale,
                max_packet_amount: peer.max_packet_amount,
                credit_limit: peer.credit_limit,
                packets_per_second_max: peer.packets_per_second_max,
                throughput_per_second_max: peer.throughput_per_second_max,
                settlement_threshold: peer.settlement.as_ref().map(|s| s.threshold),
                settle_to: peer.settlement.as_ref().map(|s| s.settle_to),
            })
            .collect(),
    }
}
