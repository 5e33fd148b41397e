//! What the Explorer knows of the present: recent per-second windows (packets, outcomes, reject
//! codes, latency), totals since this run started, accounts, sessions, and the next frame of the
//! live stream. All of it is derived from the events the index applies (journal time, never the
//! wall clock); readers take a snapshot under a short lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::journal::{Event, JournalEntry, PeerTerms};
use crate::projections::balances::Balances;

/// Seconds of per-second buckets kept (the longest stats window).
pub const WINDOW_SECONDS_MAX: i64 = 300;

/// Frames a WebSocket client may be behind before it skips ahead to the newest.
pub const FRAME_BACKLOG: usize = 16;

/// How often a frame is sent (at most 10 a second).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(100);

/// Events sampled into one frame; the rest are counted only.
pub const FRAME_SAMPLE_MAX: usize = 32;

/// Position points kept per peer (one per journal second in which it moved, at most).
const POSITION_POINTS_MAX: usize = 600;

/// How stale `/api/accounts` may be while the index is busy (it is fresh once it catches up).
const ACCOUNTS_REFRESH: Duration = Duration::from_millis(100);


pub struct Live {
    state: Mutex<LiveState>,
    /// The accounts, kept by the `balances` projection's thread ([`AccountsWatcher`]) under
    /// their own lock: that thread never waits for the index (which runs at the lowest CPU
    /// priority and takes `state` once a batch, see [`LiveBatch`]). Lock order: `state`, then
    /// `accounts`.
    accounts: Mutex<AccountsState>,
    /// The next frame's sample size, so the index samples a batch without the lock.
    sample_len: AtomicUsize,
}

impl Live {
    pub fn new(config: &crate::config::Config) -> Live {
        let node = NodeInfo {
            id: config.node.id.clone(),
            address: config.node.ilp_address.clone(),
            asset_code: config.node.asset_code.clone(),
            asset_scale: config.node.asset_scale,
        };
        Live { state: Mutex::new(LiveState { node, ..LiveState::default() }), accounts: Mutex::default(), sample_len: AtomicUsize::new(0) }
    }

    /// Live state for an offline rebuild of the index (nothing reads it).
    pub fn detached() -> Live {
        Live { state: Mutex::new(LiveState::default()), accounts: Mutex::default(), sample_len: AtomicUsize::new(0) }
    }

    pub fn lock(&self) -> MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_accounts(&self) -> MutexGuard<'_, AccountsState> {
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `/api/accounts` (and the accounts of a frame).
    pub fn accounts(&self) -> Value {
        let state = self.lock();
        let accounts = self.lock_accounts();
        let mut value = state.accounts(&accounts);
        value["index_position"] = json!(state.position);
        value["accounts_position"] = json!(accounts.position);
        value
    }

    /// Takes the frame built since the last one (None when nothing happened), for
    /// [`Live::render`] and [`Frame::absorb`].
    pub fn take_frame(&self) -> Option<Frame> {
        let mut state = self.lock();
        if state.frame.events == 0 {
            return None;
        }
        let frame = std::mem::take(&mut state.frame);
        self.sample_len.store(0, Ordering::Relaxed);
        Some(frame)
    }

    /// A frame as JSON: its counts and sample, with the present's position, totals since start,
    /// sessions (when they changed) and accounts (when they may have). The sample is rendered
    /// after the lock is released.
    pub fn render(&self, frame: &Frame) -> Value {
        let state = self.lock();
        let mut value = state.frame_header(frame);
        if frame.accounts_changed {
            value["accounts"] = state.accounts(&self.lock_accounts())["accounts"].take();
        }
        drop(state);
        let sample: Vec<Value> = frame
            .sample
            .iter()
            .zip(&frame.sample_peers)
            .map(|(entry, peers)| super::api::event_json(entry, [peers[0].as_deref(), peers[1].as_deref()]))
            .collect();
        value["sample"] = Value::Array(sample);
        value
    }

    /// The next frame's sample size when last published (for [`LiveBatch::begin`]).
    pub fn sample_len(&self) -> usize {
        self.sample_len.load(Ordering::Relaxed)
    }

    /// Applies a batch of the index's events under the lock (integer updates and a few moves,
    /// no I/O, no JSON), sets the index's position, and empties the batch.
    pub fn merge(&self, batch: &mut LiveBatch, position: u64) {
        let mut state = self.lock();
        state.merge(batch);
        state.set_position(position);
        self.sample_len.store(state.frame.sample.len(), Ordering::Relaxed);
    }

    /// What a new WebSocket client gets first.
    pub fn hello(&self, now_ms: i64) -> Value {
        let state = self.lock();
        let accounts = state.accounts(&self.lock_accounts())["accounts"].take();
        json!({"type": "hello", "node": state.node, "position": state.position, "stats": state.stats(now_ms), "accounts": accounts})
    }
}

/// The accounts as the `balances` projection has them: a view rebuilt at most every
/// [`ACCOUNTS_REFRESH`] while events flow, and a position point per peer per journal second.
#[derive(Default)]
pub struct AccountsState {
    view: Option<BalancesView>,
    positions: BTreeMap<String, VecDeque<(i64, String)>>,
    /// The `balances` projection's position when the view was taken.
    position: u64,
}

/// Keeps [`AccountsState`] from the `balances` projection's thread (see
/// [`crate::projections::balances::Watcher`]); the index then replays no accounts of its own.
pub struct AccountsWatcher {
    live: Arc<Live>,
    second: i64,
    dirty: bool,
    refreshed: Option<std::time::Instant>,
}

impl AccountsWatcher {
    pub fn new(live: Arc<Live>) -> AccountsWatcher {
        AccountsWatcher { live, second: i64::MIN, dirty: true, refreshed: None }
    }
}

impl crate::projections::balances::Watcher for AccountsWatcher {
    fn applied(&mut self, entry: &JournalEntry, balances: &Balances) {
        self.dirty = true;
        let second = entry.timestamp_ms.div_euclid(1000);
        if second == self.second {
            return;
        }
        self.second = second;
        let mut accounts = self.live.lock_accounts();
        for (peer, balance) in balances.iter() {
            let position = balance.position.to_string();
            let points = match accounts.positions.get_mut(peer) {
                Some(points) => points,
                None => accounts.positions.entry(peer.to_owned()).or_default(),
            };
            if points.back().is_some_and(|(_, last)| *last == position) {
                continue;
            }
            if points.len() >= POSITION_POINTS_MAX {
                points.pop_front();
            }
            points.push_back((entry.timestamp_ms, position));
        }
    }

    fn batch_done(&mut self, balances: &Balances, idle: bool) {
        let due = idle || self.refreshed.is_none_or(|at| at.elapsed() >= ACCOUNTS_REFRESH);
        if !(self.dirty && due) {
            return;
        }
        // Built outside the lock; readers wait only for the swap.
        let view = balances_view(balances);
        let mut accounts = self.live.lock_accounts();
        accounts.view = Some(view);
        accounts.position = crate::projections::Projection::position(balances);
        drop(accounts);
        self.dirty = false;
        self.refreshed = Some(std::time::Instant::now());
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeInfo {
    pub id: String,
    pub address: String,
    pub asset_code: String,
    pub asset_scale: u8,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Outcomes {
    pub prepared: u64,
    pub fulfilled: u64,
    pub rejected: u64,
}

struct Bucket {
    second: i64,
    outcomes: Outcomes,
    codes: BTreeMap<[u8; 3], u64>,
    latency_ms: Histogram<u64>,
}

impl Bucket {
    fn new(second: i64) -> Bucket {
        Bucket {
            second,
            outcomes: Outcomes::default(),
            codes: BTreeMap::new(),
            latency_ms: Histogram::new_with_bounds(1, 3_600_000, 2).expect("valid histogram bounds"),
        }
    }
}

/// What the live view needs of a prepared packet when it ends (the index keeps them).
#[derive(Debug, Clone, Copy)]
pub struct OpenPacket {
    pub prepared_ms: i64,
    pub amount_in: u64,
    pub amount_out: u64,
}

/// What the live view needs of a packet's event.
#[derive(Debug, Clone, Copy)]
enum PacketOutcome {
    Prepared,
    /// With its Prepare→Fulfill time in ms, when the index knew the Prepare.
    Fulfilled { latency_ms: Option<u64> },
    Rejected { code: [u8; 3], prepared: bool },
}

type Sample = (JournalEntry, [Option<String>; 2]);

enum Staged {
    Packet { timestamp_ms: i64, outcome: PacketOutcome, sample: Option<Box<Sample>> },
    Other { entry: Box<JournalEntry>, peers: [Option<String>; 2] },
}

/// The live state's share of one of the index's batches, gathered without the lock and applied
/// by [`Live::merge`] in one short critical section. The index runs at SCHED_IDLE: holding the
/// lock for a whole batch, it could be preempted with it held, and the frame ticker and the
/// API's readers would wait behind a thread that gets no CPU.
#[derive(Default)]
pub struct LiveBatch {
    staged: Vec<Staged>,
    /// Packet events sampled into this batch.
    samples: usize,
    /// The frame's sample size when the batch began (from [`Live::sample_len`]).
    sample_len: usize,
}

impl LiveBatch {
    /// Starts gathering a batch; `sample_len` is [`Live::sample_len`].
    pub fn begin(&mut self, sample_len: usize) {
        self.sample_len = sample_len;
    }

    /// One event; `ended` is what the index knew of the packet this event ends (its Prepare's
    /// time and amounts), `peers` the event's peers. Packets are copied into the sample only
    /// while the frame has room, so a busy batch clones at most [`FRAME_SAMPLE_MAX`] of them.
    pub fn push(&mut self, entry: &JournalEntry, ended: Option<&OpenPacket>, peers: [Option<&str>; 2]) {
        let owned = || [peers[0].map(str::to_owned), peers[1].map(str::to_owned)];
        let outcome = match &entry.event {
            Event::PacketPrepared(_) => PacketOutcome::Prepared,
            Event::PacketFulfilled(_) => PacketOutcome::Fulfilled {
                latency_ms: ended.map(|open| ((entry.timestamp_ms - open.prepared_ms).max(1) as u64).min(3_600_000)),
            },
            Event::PacketRejected(rejected) => PacketOutcome::Rejected { code: rejected.code, prepared: rejected.prepared },
            _ => {
                self.staged.push(Staged::Other { entry: Box::new(entry.clone()), peers: owned() });
                return;
            }
        };
        let sample = (self.sample_len + self.samples < FRAME_SAMPLE_MAX).then(|| {
            self.samples += 1;
            Box::new((entry.clone(), owned()))
        });
        self.staged.push(Staged::Packet { timestamp_ms: entry.timestamp_ms, outcome, sample });
    }

    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }
}

/// Per peer: what passed through it, since the index started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerTotals {
    /// Prepares from this peer that were fulfilled, and their amount (in its units).
    pub incoming_fulfilled: u64,
    pub incoming_amount: u128,
    /// Prepares we forwarded to it that were fulfilled, and their amount (in its units).
    pub outgoing_fulfilled: u64,
    pub outgoing_amount: u128,
    /// Prepares from this peer that were rejected (by us or downstream).
    pub incoming_rejected: u64,
}

#[derive(Default)]
pub struct LiveState {
    pub node: NodeInfo,
    position: u64,
    last_timestamp_ms: i64,
    buckets: VecDeque<Bucket>,
    /// Since the latest `ConfigurationApplied` (this run, once the index caught up).
    since_start: Outcomes,
    since_start_codes: BTreeMap<[u8; 3], u64>,
    started_at_ms: i64,
    terms: BTreeMap<String, PeerTerms>,
    sessions: BTreeMap<String, Vec<u64>>,
    peer_totals: BTreeMap<String, PeerTotals>,
    frame: Frame,
}

/// What the next live frame carries.
#[derive(Default)]
pub struct Frame {
    outcomes: Outcomes,
    codes: BTreeMap<[u8; 3], u64>,
    events: u64,
    sample: Vec<JournalEntry>,
    sample_peers: Vec<[Option<String>; 2]>,
    accounts_changed: bool,
    peers_changed: bool,
}

impl Frame {
    /// Folds the next frame into this one, for the stream of a frame a second: counts add up;
    /// the sample keeps every event that is not a packet's (up to [`FRAME_SAMPLE_MAX`]) and the
    /// newest [`FRAME_SAMPLE_MAX`] packet events, in journal order.
    pub fn absorb(&mut self, next: Frame) {
        self.outcomes.prepared += next.outcomes.prepared;
        self.outcomes.fulfilled += next.outcomes.fulfilled;
        self.outcomes.rejected += next.outcomes.rejected;
        for (code, count) in next.codes {
            *self.codes.entry(code).or_default() += count;
        }
        self.events += next.events;
        self.accounts_changed |= next.accounts_changed;
        self.peers_changed |= next.peers_changed;
        let mut packets = Vec::new();
        let mut others = Vec::new();
        let all = std::mem::take(&mut self.sample).into_iter().zip(std::mem::take(&mut self.sample_peers));
        for (entry, peers) in all.chain(next.sample.into_iter().zip(next.sample_peers)) {
            if is_packet_event(&entry.event) {
                packets.push((entry, peers));
            } else if others.len() < FRAME_SAMPLE_MAX {
                others.push((entry, peers));
            }
        }
        let newest = packets.len().saturating_sub(FRAME_SAMPLE_MAX);
        let mut kept: Vec<_> = others.into_iter().chain(packets.into_iter().skip(newest)).collect();
        kept.sort_by_key(|(entry, _)| entry.seq);
        (self.sample, self.sample_peers) = kept.into_iter().unzip();
    }
}

pub(super) fn is_packet_event(event: &Event) -> bool {
    matches!(event, Event::PacketPrepared(_) | Event::PacketFulfilled(_) | Event::PacketRejected(_))
}

impl LiveState {
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// Applies a batch gathered by [`LiveBatch::push`], in its order, and empties it.
    fn merge(&mut self, batch: &mut LiveBatch) {
        for staged in batch.staged.drain(..) {
            match staged {
                Staged::Packet { timestamp_ms, outcome, sample } => {
                    self.apply_packet(timestamp_ms, outcome);
                    if let Some(sample) = sample {
                        if self.frame.sample.len() < FRAME_SAMPLE_MAX {
                            let (entry, peers) = *sample;
                            self.frame.sample.push(entry);
                            self.frame.sample_peers.push(peers);
                        }
                    }
                }
                Staged::Other { entry, peers } => self.apply_other(*entry, peers),
            }
        }
        batch.samples = 0;
    }

    fn apply_packet(&mut self, timestamp_ms: i64, outcome: PacketOutcome) {
        let second = timestamp_ms.div_euclid(1000);
        self.last_timestamp_ms = self.last_timestamp_ms.max(timestamp_ms);
        self.frame.events += 1;
        match outcome {
            PacketOutcome::Prepared => {
                self.bucket(second).outcomes.prepared += 1;
                self.since_start.prepared += 1;
                self.frame.outcomes.prepared += 1;
            }
            PacketOutcome::Fulfilled { latency_ms } => {
                let bucket = self.bucket(second);
                bucket.outcomes.fulfilled += 1;
                if let Some(latency) = latency_ms {
                    let _ = bucket.latency_ms.record(latency);
                }
                self.since_start.fulfilled += 1;
                self.frame.outcomes.fulfilled += 1;
                self.frame.accounts_changed = true;
            }
            PacketOutcome::Rejected { code, prepared } => {
                let bucket = self.bucket(second);
                bucket.outcomes.rejected += 1;
                *bucket.codes.entry(code).or_default() += 1;
                self.since_start.rejected += 1;
                *self.since_start_codes.entry(code).or_default() += 1;
                self.frame.outcomes.rejected += 1;
                *self.frame.codes.entry(code).or_default() += 1;
                self.frame.accounts_changed |= prepared;
            }
        }
    }

    /// An event that is not a packet's: rare, and each one is sampled (up to twice a frame's
    /// sample of packets).
    fn apply_other(&mut self, entry: JournalEntry, peers: [Option<String>; 2]) {
        self.last_timestamp_ms = self.last_timestamp_ms.max(entry.timestamp_ms);
        self.frame.events += 1;
        match &entry.event {
            Event::ConfigurationApplied(configuration) => {
                self.since_start = Outcomes::default();
                self.since_start_codes.clear();
                self.started_at_ms = entry.timestamp_ms;
                self.terms = configuration.peers.iter().map(|terms| (terms.peer.clone(), terms.clone())).collect();
                // A new run: sessions of the previous one are gone.
                self.sessions.clear();
                self.frame.peers_changed = true;
                self.frame.accounts_changed = true;
            }
            Event::PeerConnected { peer, session } => {
                self.sessions.entry(peer.clone()).or_default().push(*session);
                self.frame.peers_changed = true;
            }
            Event::PeerDisconnected { peer, session } => {
                if let Some(sessions) = self.sessions.get_mut(peer) {
                    sessions.retain(|known| known != session);
                }
                self.frame.peers_changed = true;
            }
            _ => self.frame.accounts_changed = true,
        }
        if self.frame.sample.len() < FRAME_SAMPLE_MAX * 2 {
            self.frame.sample.push(entry);
            self.frame.sample_peers.push(peers);
        }
    }

    /// Per peer, what passed through it since the index started (kept by the index).
    pub fn set_peer_totals<'a>(&mut self, totals: impl Iterator<Item = (&'a str, &'a PeerTotals)>) {
        for (peer, peer_totals) in totals {
            match self.peer_totals.get_mut(peer) {
                Some(known) => *known = peer_totals.clone(),
                None => {
                    self.peer_totals.insert(peer.to_owned(), peer_totals.clone());
                }
            }
        }
    }

    fn bucket(&mut self, second: i64) -> &mut Bucket {
        let newest = self.buckets.back().map_or(i64::MIN, |bucket| bucket.second);
        if second > newest {
            self.buckets.push_back(Bucket::new(second));
            while self.buckets.front().is_some_and(|bucket| bucket.second <= second - WINDOW_SECONDS_MAX) {
                self.buckets.pop_front();
            }
            return self.buckets.back_mut().expect("just pushed");
        }
        // An older second (the clock stepped back): count it in the bucket it falls in, or the
        // newest one if it is gone.
        let index = self.buckets.iter().rposition(|bucket| bucket.second <= second).unwrap_or(self.buckets.len() - 1);
        &mut self.buckets[index]
    }

    /// `/api/stats`: windows ending at `now_ms` (the wall clock of the request).
    pub fn stats(&self, now_ms: i64) -> Value {
        let now_second = now_ms.div_euclid(1000);
        let windows: Vec<Value> = [10i64, 60, 300]
            .into_iter()
            .map(|seconds| {
                let mut outcomes = Outcomes::default();
                let mut codes: BTreeMap<String, u64> = BTreeMap::new();
                let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000, 2).expect("valid histogram bounds");
                for bucket in self.buckets.iter().filter(|bucket| bucket.second > now_second - seconds && bucket.second <= now_second) {
                    outcomes.prepared += bucket.outcomes.prepared;
                    outcomes.fulfilled += bucket.outcomes.fulfilled;
                    outcomes.rejected += bucket.outcomes.rejected;
                    for (code, count) in &bucket.codes {
                        *codes.entry(String::from_utf8_lossy(code).into_owned()).or_default() += count;
                    }
                    let _ = latency.add(&bucket.latency_ms);
                }
                let ended = outcomes.fulfilled + outcomes.rejected;
                let quantile = |q: f64| (!latency.is_empty()).then(|| latency.value_at_quantile(q));
                json!({
                    "seconds": seconds,
                    "packets_per_second": ended as f64 / seconds as f64,
                    "prepared": outcomes.prepared,
                    "fulfilled": outcomes.fulfilled,
                    "rejected": outcomes.rejected,
                    "success_rate": (ended > 0).then(|| outcomes.fulfilled as f64 / ended as f64),
                    "reject_codes": codes,
                    "latency_ms": {"p50": quantile(0.5), "p90": quantile(0.9), "p99": quantile(0.99), "max": (!latency.is_empty()).then(|| latency.max())},
                })
            })
            .collect();
        let series: Vec<Value> = self
            .buckets
            .iter()
            .filter(|bucket| bucket.second > now_second - WINDOW_SECONDS_MAX)
            .map(|bucket| {
                let quantile = |q: f64| (!bucket.latency_ms.is_empty()).then(|| bucket.latency_ms.value_at_quantile(q));
                json!([bucket.second, bucket.outcomes.fulfilled, bucket.outcomes.rejected, quantile(0.5), quantile(0.99)])
            })
            .collect();
        json!({
            "now_ms": now_ms,
            "windows": windows,
            "since_start": self.since_start_json(),
            "series": {"columns": ["second", "fulfilled", "rejected", "latency_p50_ms", "latency_p99_ms"], "rows": series},
            "index_position": self.position,
            "last_event_ms": self.last_timestamp_ms,
        })
    }

    fn since_start_json(&self) -> Value {
        let codes: BTreeMap<String, u64> =
            self.since_start_codes.iter().map(|(code, count)| (String::from_utf8_lossy(code).into_owned(), *count)).collect();
        json!({
            "started_at_ms": self.started_at_ms,
            "prepared": self.since_start.prepared,
            "fulfilled": self.since_start.fulfilled,
            "rejected": self.since_start.rejected,
            "reject_codes": codes,
        })
    }

    /// `/api/accounts`, from the accounts kept beside this state.
    fn accounts(&self, accounts: &AccountsState) -> Value {
        let Some(balances) = &accounts.view else {
            return json!({"accounts": []});
        };
        let accounts: Vec<Value> = balances
            .iter()
            .map(|(peer, view)| {
                let terms = self.terms.get(peer);
                json!({
                    "peer": peer,
                    "relation": terms.map(|terms| terms.relation.clone()),
                    "asset_code": terms.map(|terms| terms.asset_code.clone()),
                    "asset_scale": terms.map(|terms| terms.asset_scale),
                    "position": view.position,
                    "in_flight_amount": view.reserved,
                    "undelivered_amount": view.undelivered,
                    "credit_limit": terms.map(|terms| terms.credit_limit),
                    "settlement_threshold": terms.and_then(|terms| terms.settlement_threshold),
                    "settle_to": terms.and_then(|terms| terms.settle_to),
                    "totals": self.peer_totals.get(peer).cloned().unwrap_or_default(),
                    "settlement": view.settlement.clone(),
                    "history": accounts.positions.get(peer).map(|points| points.iter().collect::<Vec<_>>()).unwrap_or_default(),
                })
            })
            .collect();
        json!({"accounts": accounts})
    }

    /// Sessions per peer, as the journal has them.
    pub fn sessions(&self, peer: &str) -> Vec<u64> {
        self.sessions.get(peer).cloned().unwrap_or_default()
    }

    pub fn terms(&self) -> &BTreeMap<String, PeerTerms> {
        &self.terms
    }

    /// Takes the frame built since the last one (and whether it should carry the accounts);
    /// None when nothing happened.
    /// A frame's JSON without its sample: counts, position, totals since start, and the
    /// sessions when they changed.
    fn frame_header(&self, frame: &Frame) -> Value {
        let codes: BTreeMap<String, u64> =
            frame.codes.iter().map(|(code, count)| (String::from_utf8_lossy(code).into_owned(), *count)).collect();
        let mut value = json!({
            "type": "frame",
            "position": self.position,
            "last_event_ms": self.last_timestamp_ms,
            "events": frame.events,
            "outcomes": frame.outcomes,
            "reject_codes": codes,
            "sample": [],
            "sampled_all": frame.events as usize == frame.sample.len(),
            "since_start": self.since_start_json(),
        });
        if frame.peers_changed {
            let sessions: BTreeMap<&str, usize> = self.sessions.iter().map(|(peer, sessions)| (peer.as_str(), sessions.len())).collect();
            value["sessions"] = json!(sessions);
        }
        value
    }
}


/// What the accounts view shows of one peer, taken once per journal second.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub position: String,
    pub reserved: String,
    /// Fulfills that did not reach this peer: not charged to it, the connector's loss.
    pub undelivered: String,
    pub settlement: Value,
}

pub type BalancesView = Vec<(String, AccountView)>;

fn balances_view(balances: &Balances) -> BalancesView {
    let ledger = balances.settlement();
    balances
        .iter()
        .map(|(peer, balance)| {
            let channel = ledger.peer_channel(peer).map(|(id, channel)| {
                json!({
                    "channel_id": id,
                    "state": format!("{:?}", channel.state).to_lowercase(),
                    "closing": channel.closing,
                    "our_deposit": channel.ours.deposit.to_string(),
                    "their_deposit": channel.theirs.deposit.to_string(),
                    "sent_nonce": channel.ours.nonce,
                    "sent_cumulative": channel.ours.cumulative.to_string(),
                    "received_nonce": channel.theirs.nonce,
                    "received_cumulative": channel.theirs.cumulative.to_string(),
                })
            });
            let pending = ledger.pending().find(|(name, _)| *name == peer).map(|(_, pending)| format!("{pending:?}"));
            let settlement = json!({
                "configured": ledger.terms(peer).is_some(),
                "channel": channel,
                "in_progress": pending,
            });
            let view = AccountView {
                position: balance.position.to_string(),
                reserved: balance.reserved.to_string(),
                undelivered: balance.undelivered.to_string(),
                settlement,
            };
            (peer.to_owned(), view)
        })
        .collect()
}

/// Sends the pending frame to every WebSocket client of the fast stream every
/// [`FRAME_INTERVAL`], and the frames of the last [`SLOW_FRAME_TICKS`] folded into one to every
/// client of the slow stream (`/ws?every=1s`, what the UI takes: it renders once a second).
pub async fn tick(live: Arc<Live>, frames: Streams, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(FRAME_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut slow: Option<Frame> = None;
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        ticks += 1;
        // Taken even with nobody listening, so the next client starts fresh.
        if let Some(frame) = live.take_frame() {
            if frames.fast.receiver_count() > 0 {
                let _ = frames.fast.send(Arc::from(live.render(&frame).to_string()));
            }
            match slow.as_mut() {
                Some(slow) => slow.absorb(frame),
                None => slow = Some(frame),
            }
        }
        if ticks.is_multiple_of(SLOW_FRAME_TICKS) {
            if let Some(frame) = slow.take() {
                if frames.slow.receiver_count() > 0 {
                    let _ = frames.slow.send(Arc::from(live.render(&frame).to_string()));
                }
            }
        }
    }
}

/// Fast frames folded into one of the slow stream: a frame a second.
pub const SLOW_FRAME_TICKS: u64 = 10;

/// The two live streams: a frame every [`FRAME_INTERVAL`], or one a second.
#[derive(Clone)]
pub struct Streams {
    pub fast: broadcast::Sender<Arc<str>>,
    pub slow: broadcast::Sender<Arc<str>>,
}

impl Streams {
    pub fn new() -> Streams {
        Streams { fast: broadcast::channel(FRAME_BACKLOG).0, slow: broadcast::channel(FRAME_BACKLOG).0 }
    }

    pub fn receiver_count(&self) -> usize {
        self.fast.receiver_count() + self.slow.receiver_count()
    }
}

impl Default for Streams {
    fn default() -> Streams {
        Streams::new()
    }
}
