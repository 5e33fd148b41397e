//! Route exchange (CCP) in the forwarder (issue 13): the two roles wired to sessions, the
//! journal and the clock.
//!
//! - Receiving: when a peer we take routes from (`receive_routes`) connects, we send it a route
//!   control request; its route updates are checked ([`super::super::ccp_receiver`]), journaled
//!   (`RouteLearned`, `RouteWithdrawn`) and applied to the table. A peer that sends no update
//!   within the hold-down time it announced loses its routes.
//! - Sending: a peer we give routes to (`send_routes`) that asked (route control, `Sync`) gets
//!   an update as soon as our table changes, and a heartbeat once a broadcast interval, one
//!   update in flight at a time; a failed one is sent again at the next interval.
//!
//! Our requests are zero-amount Prepares with the peer-protocol condition, sent on one of the
//! peer's sessions and matched by request id like any reply. They move no money and are not
//! held for the journal.

use bytes::Bytes;
use rustc_hash::FxHashMap;

use super::{Forwarder, PeerIndex, SessionId};
use crate::btp::packet::{BtpPacket, ProtocolData, CONTENT_OCTET_STREAM, PROTOCOL_ILP};
use crate::config::{Config, Relation};
use crate::ilp::ccp::{self, Mode, RouteControlRequest, RouteUpdateRequest, RoutingTableId};
use crate::ilp::error_code::ErrorCode;
use crate::ilp::packet::{PrepareBuilder, DATA_SIZE_MAX};
use crate::ilp::{self};
use crate::journal::{Event, RouteLearned, RouteWithdrawn, RouteWithdrawnReason};
use crate::metrics;
use crate::pipeline::ccp_receiver::{Policy, Receiver};
use crate::pipeline::ccp_sender::{Sender, EPOCHS_PER_UPDATE_MAX};
use crate::pipeline::routes::{PeerRouting, RoutesPublished, RoutesView};
use crate::pipeline::Reply;

/// How long a peer has to answer our route control or update (and the expiry of its Prepare).
const REQUEST_TIMEOUT_MS: i64 = 30_000;

/// How soon a failed route control request is sent again: the first retry (a peer that has
/// just connected may not be ready to route yet), doubling up to the last.
const CONTROL_RETRY_FIRST_MS: i64 = 500;
const CONTROL_RETRY_MAX_MS: i64 = 30_000;

/// CCP messages a peer may send us per second (a burst of as many): the reference sends at
/// most one update every 150 ms, and each update costs the forwarder thread up to a few ms
/// (see BENCHMARKS.md), so a flood is refused (T05) rather than let it slow forwarding.
const MESSAGES_PER_SECOND_MAX: u64 = 20;

/// The most often the published view is rebuilt while routes keep changing.
const PUBLISH_INTERVAL_MS: i64 = 100;

enum Request {
    Control,
    Update(RouteUpdateRequest),
}

struct Pending {
    peer: PeerIndex,
    request: Request,
    deadline_ms: i64,
}

struct PeerCcp {
    send: bool,
    receive: bool,
    receiver: Receiver,
    sender: Sender,
    update_in_flight: bool,
    /// When the next update (or heartbeat) is due, if the peer is in sync mode.
    next_update_ms: i64,
    control_in_flight: bool,
    /// A route control request waiting to be (re)sent at this time.
    control_due_ms: Option<i64>,
    /// The wait before the next retry of a failed route control request.
    control_retry_ms: i64,
    /// For a child: since when it has had no session.
    down_since_ms: Option<i64>,
    /// Bounds the CCP messages the peer sends us.
    incoming: crate::pipeline::policy::TokenBucket,
}

pub(super) struct CcpRuntime {
    broadcast_interval_ms: i64,
    route_expiry_ms: u32,
    peers: Vec<PeerCcp>,
    pending: FxHashMap<(SessionId, u32), Pending>,
    published: RoutesPublished,
    /// The routing table id the senders' epochs refer to.
    table_id: RoutingTableId,
    dirty: bool,
    next_publish_ms: i64,
}

impl CcpRuntime {
    pub(super) fn new(config: &Config, now_ms: i64) -> CcpRuntime {
        let enabled = config.routing.enabled;
        CcpRuntime {
            broadcast_interval_ms: config.routing.broadcast_interval_ms as i64,
            route_expiry_ms: config.routing.route_expiry_ms,
            peers: config
                .peers
                .iter()
                .enumerate()
                .map(|(index, peer)| PeerCcp {
                    send: enabled && peer.send_routes,
                    receive: enabled && peer.receive_routes,
                    receiver: Receiver::new(),
                    sender: Sender::new(index),
                    update_in_flight: false,
                    next_update_ms: i64::MAX,
                    control_in_flight: false,
                    control_due_ms: None,
                    control_retry_ms: CONTROL_RETRY_FIRST_MS,
                    down_since_ms: Some(now_ms),
                    incoming: crate::pipeline::policy::TokenBucket::new(MESSAGES_PER_SECOND_MAX, now_ms),
                })
                .collect(),
            pending: FxHashMap::default(),
            published: RoutesPublished::default(),
            table_id: RoutingTableId::default(),
            dirty: true,
            next_publish_ms: 0,
        }
    }

    pub(super) fn is_pending(&self, session: SessionId, request_id: u32) -> bool {
        self.pending.contains_key(&(session, request_id))
    }
}

/// A new routing table id for this run.
pub(super) fn new_table_id() -> RoutingTableId {
    RoutingTableId(rand::random())
}

impl Forwarder {
    /// Where the forwarder publishes its routing table for readers off the packet path.
    pub fn routes_published(&self) -> RoutesPublished {
        self.ccp.published.clone()
    }

    /// A peer's first session came up.
    pub(super) fn ccp_peer_up(&mut self, peer: PeerIndex) {
        let state = &mut self.ccp.peers[peer];
        state.down_since_ms = None;
        if state.receive {
            state.control_due_ms = Some(self.now_ms);
        }
        self.routes.set_child_live(peer, true);
        self.ccp.dirty = true;
        self.ccp_send_controls_due();
    }

    /// A peer's last session went down.
    pub(super) fn ccp_peer_down(&mut self, peer: PeerIndex) {
        let state = &mut self.ccp.peers[peer];
        state.down_since_ms = Some(self.now_ms);
        state.update_in_flight = false;
        state.control_in_flight = false;
        state.control_due_ms = None;
        self.ccp.pending.retain(|_, pending| pending.peer != peer);
    }

    /// A session went down: its requests will get no answer.
    pub(super) fn ccp_session_down(&mut self, session: SessionId) {
        let lost: Vec<(SessionId, u32)> = self.ccp.pending.keys().filter(|(s, _)| *s == session).copied().collect();
        for key in lost {
            if let Some(pending) = self.ccp.pending.remove(&key) {
                self.ccp_request_failed(pending, "the session closed");
            }
        }
    }

    /// A peer's route control request: `Ok` is the Fulfill's data.
    pub(super) fn ccp_handle_control(&mut self, peer: PeerIndex, data: &[u8]) -> Result<Bytes, (ErrorCode, &'static str)> {
        let global = metrics::global();
        if !self.ccp.peers[peer].send {
            global.ccp_message("control", "received", "refused");
            return Err((ErrorCode::F00_BAD_REQUEST, "route exchange: we are configured not to send routes to you"));
        }
        if !self.ccp.peers[peer].incoming.try_take(1, self.now_ms) {
            global.ccp_message("control", "received", "rate_limited");
            return Err((ErrorCode::T05_RATE_LIMITED, "route exchange: too many messages; slow down"));
        }
        let control = RouteControlRequest::parse(data).map_err(|error| {
            global.ccp_message("control", "received", "invalid");
            tracing::warn!(peer = %self.peers[peer].id, %error, "invalid route control request");
            (ErrorCode::F01_INVALID_PACKET, "invalid route control request")
        })?;
        global.ccp_message("control", "received", "ok");
        tracing::debug!(peer = %self.peers[peer].id, mode = ?control.mode, epoch = control.last_known_epoch, "route control request");
        let state = &mut self.ccp.peers[peer];
        state.sender.handle_control(&control, self.routes.log());
        state.next_update_ms = if control.mode == Mode::Sync { self.now_ms } else { i64::MAX };
        self.ccp.dirty = true;
        Ok(Bytes::new())
    }

    /// A peer's route update: checked, journaled and applied.
    pub(super) fn ccp_handle_update(&mut self, peer: PeerIndex, data: &[u8]) -> Result<Bytes, (ErrorCode, &'static str)> {
        let global = metrics::global();
        if !self.ccp.peers[peer].receive {
            global.ccp_message("update", "received", "refused");
            return Err((ErrorCode::F00_BAD_REQUEST, "route exchange: we are configured not to receive routes from you"));
        }
        if !self.ccp.peers[peer].incoming.try_take(1, self.now_ms) {
            global.ccp_message("update", "received", "rate_limited");
            return Err((ErrorCode::T05_RATE_LIMITED, "route exchange: too many messages; slow down"));
        }
        let update = RouteUpdateRequest::parse(data).map_err(|error| {
            global.ccp_message("update", "received", "invalid");
            tracing::warn!(peer = %self.peers[peer].id, %error, "invalid route update");
            (ErrorCode::F01_INVALID_PACKET, "invalid route update")
        })?;
        global.ccp_message("update", "received", "ok");
        let peer_id = self.peers[peer].id.clone();
        let child_address = (self.peers[peer].relation == Relation::Child).then(|| format!("{}.{}", self.node_address, peer_id));
        let policy = Policy { own_address: &self.node_address, global_prefix: self.routes.global_prefix(), child_address: child_address.as_deref() };
        let receiver = &mut self.ccp.peers[peer].receiver;
        let new_table = update.routing_table_id != receiver.table_id();
        // Paths held before, to journal only what changed (a peer resends what we hold after a
        // resync or its heartbeat with no news).
        let held: FxHashMap<&str, &Vec<String>> = update
            .new_routes
            .iter()
            .filter_map(|route| receiver.routes().get(&route.prefix).map(|learned| (route.prefix.as_str(), &learned.path)))
            .collect();
        let unchanged: Vec<bool> = update.new_routes.iter().map(|route| !new_table && held.get(route.prefix.as_str()) == Some(&&route.path)).collect();
        let applied = receiver.apply(&update, self.now_ms, &policy);
        let learned: rustc_hash::FxHashSet<&str> = applied.learned.iter().map(String::as_str).collect();
        let reason = if new_table { RouteWithdrawnReason::NewTable } else { RouteWithdrawnReason::Withdrawn };
        let learned: Vec<&str> = update
            .new_routes
            .iter()
            .zip(unchanged)
            .filter(|(route, unchanged)| !unchanged && learned.contains(route.prefix.as_str()))
            .map(|(route, _)| route.prefix.as_str())
            .collect();
        let learned: rustc_hash::FxHashSet<&str> = learned.into_iter().collect();
        for prefix in applied.withdrawn {
            self.route_withdrawn(peer, prefix, reason);
        }
        for route in &update.new_routes {
            if !learned.contains(route.prefix.as_str()) {
                continue;
            }
            self.append(Event::RouteLearned(RouteLearned { peer: peer_id.clone(), prefix: route.prefix.clone(), path: route.path.clone() }));
            self.routes.learn(peer, &route.prefix, route.path.clone(), route.auth, self.now_ms);
            self.ccp.dirty = true;
        }
        for (prefix, why) in applied.refused {
            global.ccp_route_refused(&peer_id, why.label());
            tracing::warn!(peer = %peer_id, prefix = %prefix, reason = why.label(), "refused a route the peer announced");
        }
        if applied.resync.is_some() {
            tracing::info!(peer = %peer_id, epoch = self.ccp.peers[peer].receiver.epoch(), from = update.from_epoch_index, "gap in the peer's route updates: asking again");
            self.ccp.peers[peer].control_due_ms = Some(self.now_ms);
            self.ccp_send_controls_due();
        }
        Ok(Bytes::new())
    }

    fn route_withdrawn(&mut self, peer: PeerIndex, prefix: String, reason: RouteWithdrawnReason) {
        self.routes.withdraw(peer, &prefix, self.now_ms);
        self.append(Event::RouteWithdrawn(RouteWithdrawn { peer: self.peers[peer].id.clone(), prefix, reason }));
        self.ccp.dirty = true;
    }

    /// A reply on `(session, request_id)` that matched no packet: the answer to a CCP request
    /// of ours, if it matches one. Returns whether it did.
    pub(super) fn ccp_answered(&mut self, session: SessionId, request_id: u32, reply: &Reply) -> bool {
        let Some(pending) = self.ccp.pending.remove(&(session, request_id)) else { return false };
        match reply {
            Reply::Fulfill(_) => {
                let state = &mut self.ccp.peers[pending.peer];
                match pending.request {
                    Request::Control => {
                        metrics::global().ccp_message("control", "sent", "ok");
                        state.control_in_flight = false;
                        state.control_retry_ms = CONTROL_RETRY_FIRST_MS;
                    }
                    Request::Update(update) => {
                        metrics::global().ccp_message("update", "sent", "ok");
                        state.update_in_flight = false;
                        state.sender.confirmed(&update, self.routes.log());
                        // More to send goes at once; otherwise the next heartbeat.
                        state.next_update_ms = if state.sender.confirmed_epoch() < self.routes.log().epoch() {
                            self.now_ms
                        } else {
                            self.now_ms + self.ccp.broadcast_interval_ms
                        };
                        self.ccp.dirty = true;
                    }
                }
            }
            Reply::Reject(reject) => {
                let text = format!("rejected with {}: {}", reject.code(), reject.message_lossy());
                self.ccp_request_failed(pending, &text);
            }
            Reply::LinkError { message } => self.ccp_request_failed(pending, &format!("BTP error: {message}")),
            Reply::Ack | Reply::Channel(_) => self.ccp_request_failed(pending, "answered without an ILP packet"),
        }
        true
    }

    fn ccp_request_failed(&mut self, pending: Pending, why: &str) {
        let peer_id = self.peers[pending.peer].id.clone();
        let timeout = why == "no answer in time";
        let outcome = if timeout { "timeout" } else { "rejected" };
        let state = &mut self.ccp.peers[pending.peer];
        match pending.request {
            Request::Control => {
                metrics::global().ccp_message("control", "sent", outcome);
                tracing::info!(peer = %peer_id, "route control request failed ({why}); trying again in {} ms", state.control_retry_ms);
                state.control_in_flight = false;
                state.control_due_ms = Some(self.now_ms + state.control_retry_ms);
                state.control_retry_ms = (state.control_retry_ms * 2).min(CONTROL_RETRY_MAX_MS);
            }
            Request::Update(_) => {
                metrics::global().ccp_message("update", "sent", outcome);
                tracing::info!(peer = %peer_id, "route update failed ({why}); trying again at the next broadcast");
                state.update_in_flight = false;
                state.next_update_ms = self.now_ms + self.ccp.broadcast_interval_ms;
            }
        }
    }

    /// The routing part of the loop: timeouts, expiry, updates and heartbeats due, and the
    /// view for readers.
    pub(super) fn ccp_tick(&mut self) {
        let now_ms = self.now_ms;
        let timed_out: Vec<(SessionId, u32)> =
            self.ccp.pending.iter().filter(|(_, pending)| pending.deadline_ms <= now_ms).map(|(key, _)| *key).collect();
        for key in timed_out {
            if let Some(pending) = self.ccp.pending.remove(&key) {
                self.ccp_request_failed(pending, "no answer in time");
            }
        }
        for peer in 0..self.ccp.peers.len() {
            if self.ccp.peers[peer].receiver.expired(now_ms) {
                let prefixes = self.ccp.peers[peer].receiver.withdraw_all();
                tracing::info!(peer = %self.peers[peer].id, routes = prefixes.len(), "no route update within the hold-down time: withdrawing its routes");
                for prefix in prefixes {
                    self.route_withdrawn(peer, prefix, RouteWithdrawnReason::Expired);
                }
            }
            let gone_since = self.ccp.peers[peer].down_since_ms;
            if gone_since.is_some_and(|since| now_ms - since > i64::from(self.ccp.route_expiry_ms)) && self.routes.child_live(peer) {
                tracing::info!(child = %self.peers[peer].id, "child disconnected for longer than the route expiry: no longer announced");
                self.routes.set_child_live(peer, false);
                self.ccp.dirty = true;
            }
        }
        self.ccp_send_controls_due();
        self.ccp_send_updates_due();
        if self.ccp.dirty && now_ms >= self.ccp.next_publish_ms {
            self.ccp_publish();
        }
    }

    fn ccp_send_controls_due(&mut self) {
        for peer in 0..self.ccp.peers.len() {
            let state = &self.ccp.peers[peer];
            if state.control_in_flight || state.control_due_ms.is_none_or(|due| due > self.now_ms) || self.peers[peer].sessions.is_empty() {
                continue;
            }
            let control = state.receiver.control_request();
            self.ccp.peers[peer].control_due_ms = None;
            if self.ccp_send(peer, ccp::CONTROL_DESTINATION, &control.encode(), Request::Control) {
                self.ccp.peers[peer].control_in_flight = true;
            } else {
                self.ccp.peers[peer].control_due_ms = Some(self.now_ms + CONTROL_RETRY_FIRST_MS);
            }
        }
    }

    fn ccp_send_updates_due(&mut self) {
        if self.routes.log().table_id() != self.ccp.table_id {
            // Our log started over (see `Routes::compact_if_needed`): everyone from epoch 0.
            self.ccp.table_id = self.routes.log().table_id();
            for state in &mut self.ccp.peers {
                state.sender.restart();
            }
        }
        let epoch = self.routes.log().epoch();
        for peer in 0..self.ccp.peers.len() {
            let state = &self.ccp.peers[peer];
            if !state.send || state.update_in_flight || state.sender.mode() != Mode::Sync || self.peers[peer].sessions.is_empty() {
                continue;
            }
            // A change goes out at once; a quiet table waits for its heartbeat.
            if state.sender.confirmed_epoch() >= epoch && state.next_update_ms > self.now_ms {
                continue;
            }
            let mut epochs_max = EPOCHS_PER_UPDATE_MAX;
            let (update, data) = loop {
                let routes = &self.routes;
                let Some(update) = state.sender.next_update_of(routes.log(), &self.node_address, self.ccp.route_expiry_ms, |hop| routes.relation(hop), epochs_max)
                else {
                    break (None, Vec::new());
                };
                let data = update.encode();
                // A Prepare's data holds 32767 bytes: cut an update too large with fewer epochs.
                if data.len() <= DATA_SIZE_MAX || epochs_max == 1 {
                    break (Some(update), data);
                }
                epochs_max /= 2;
            };
            let Some(update) = update else { continue };
            if data.len() > DATA_SIZE_MAX {
                tracing::error!(peer = %self.peers[peer].id, bytes = data.len(), "one epoch's route update does not fit in a Prepare; not sent");
                self.ccp.peers[peer].next_update_ms = self.now_ms + self.ccp.broadcast_interval_ms;
                continue;
            }
            if self.ccp_send(peer, ccp::UPDATE_DESTINATION, &data, Request::Update(update)) {
                let state = &mut self.ccp.peers[peer];
                state.update_in_flight = true;
                state.next_update_ms = self.now_ms + self.ccp.broadcast_interval_ms;
            } else {
                self.ccp.peers[peer].next_update_ms = self.now_ms + self.ccp.broadcast_interval_ms;
            }
        }
    }

    /// Sends a peer-protocol Prepare to `destination` on one of `peer`'s sessions.
    fn ccp_send(&mut self, peer: PeerIndex, destination: &str, data: &[u8], request: Request) -> bool {
        let kind = if matches!(request, Request::Control) { "control" } else { "update" };
        let Some(session) = self.pick_session(peer) else { return false };
        let prepare = PrepareBuilder {
            amount: 0,
            expires_at_ms: self.now_ms + REQUEST_TIMEOUT_MS,
            execution_condition: ilp::PEER_PROTOCOL_CONDITION,
            destination,
            data,
        }
        .build();
        let prepare = match prepare {
            Ok(prepare) => prepare,
            Err(error) => {
                metrics::global().error(metrics::ErrorKind::Internal, &format!("building a CCP {kind} failed: {error}"));
                return false;
            }
        };
        let request_id = self.next_request_id(session);
        let Some(state) = self.sessions.get(&session) else { return false };
        let frame = BtpPacket::Message { request_id, protocol_data: vec![ProtocolData::new(PROTOCOL_ILP, CONTENT_OCTET_STREAM, prepare)] }.encode();
        if state.link.requests.try_send(frame).is_err() {
            metrics::global().ccp_message(kind, "sent", "refused");
            tracing::debug!(peer = %self.peers[peer].id, "session queue full: CCP {kind} not sent");
            return false;
        }
        self.ccp.pending.insert((session, request_id), Pending { peer, request, deadline_ms: self.now_ms + REQUEST_TIMEOUT_MS });
        true
    }

    fn ccp_publish(&mut self) {
        self.ccp.dirty = false;
        self.ccp.next_publish_ms = self.now_ms + PUBLISH_INTERVAL_MS;
        let routes = &self.routes;
        let peers = self
            .ccp
            .peers
            .iter()
            .enumerate()
            .map(|(index, state)| PeerRouting {
                peer: self.peers[index].id.clone(),
                send_routes: state.send,
                receive_routes: state.receive,
                sending: if state.sender.mode() == Mode::Sync { "sync" } else { "idle" },
                sent_epoch: state.sender.confirmed_epoch(),
                received_table_id: state.receiver.table_id().to_string(),
                received_epoch: state.receiver.epoch(),
                routes_learned: state.receiver.routes().len(),
            })
            .collect();
        let view = RoutesView { routing_table_id: routes.log().table_id().to_string(), epoch: routes.log().epoch(), routes: routes.rows(), peers };
        self.ccp.published.store(std::sync::Arc::new(view));
        let (children, configured, learned) = routes.counts();
        let global = metrics::global();
        global.set_routes("child", children);
        global.set_routes("static", configured);
        global.set_routes("learned", learned);
    }
}
