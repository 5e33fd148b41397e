//! The TigerBeetle ledger as a projection of the journal (DESIGN.md §3, invariant 5).
//!
//! Input: batches of durable journal entries from the runner. Output: accounts and two-phase
//! transfers in a TigerBeetle cluster, one `create_accounts` request when new accounts appear and
//! then `create_transfers` requests of up to `batch_max` transfers, in journal order. The mapping
//! (ledger, account and transfer ids, timeouts) is a pure function of the events, documented in
//! ARCHITECTURE.md ("TigerBeetle mapping"), so re-applying the journal yields `exists`, never a
//! duplicate. Every result of every request is checked: `exists` for a replay is fine, anything
//! else is an alert (log line, `connector_errors_total{type="ledger"}`, the `tigerbeetle` health
//! component degraded), never a silent drop.
//!
//! Bounds: one request in flight; a batch is at most the runner's `BATCH_EVENTS_MAX` events, so
//! at most two transfers per event. It never reads the clock for ledger data (timeouts come from
//! event fields); it reads it only to report how long TigerBeetle has not answered.
//!
//! When TigerBeetle is unreachable a request simply waits (the client retries by itself): the
//! packet path never waits for this projection, `/health` reports the wait and the lag, and the
//! batch completes when the cluster is back. A failed batch is retried whole by the runner; the
//! mapping state only moves when the whole batch is applied.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tigerbeetle_unofficial as tb;
use tb::account::Flags as AccountFlags;
use tb::error::{CreateAccountErrorKind, CreateTransferErrorKind, SendErrorKind};
use tb::transfer::Flags as TransferFlags;
use tb::{Account, Transfer};

use super::{Projection, ProjectionError};
use crate::health::{ComponentStatus, Health};
use crate::journal::{ConfigurationApplied, Event, JournalEntry, JournalStatus, PacketPrepared};
use crate::metrics::ErrorKind;

/// The name of the projection (checkpoints, `projection_lag_events`) and of its health component.
pub const NAME: &str = "tigerbeetle";

/// Seconds a pending transfer outlives its packet's incoming expiry. TigerBeetle counts a
/// timeout from the transfer's arrival at the cluster, and a post or void must arrive before it
/// runs out, so the margin covers how late this projection may run behind the journal (a
/// TigerBeetle outage, a restart, a catch-up) plus clock skew between the connector and the
/// cluster. The timeout is only a safety net (every packet ends in the journal, invariant 4),
/// so it can be generous: an hour. A post that still arrives after the expiry is applied as two
/// single-phase transfers instead, with an alert (see [`Action::PostLate`]).
pub const TIMEOUT_MARGIN_SECONDS: u64 = 3600;

/// `/health/ready` (with `READY_REQUIRES_TIGERBEETLE=true`) answers 503 while the projection is
/// more than this many events behind the journal's durable head: eight runner batches, so a
/// node catching up normally stays ready while one that fell minutes behind does not.
pub const READY_LAG_EVENTS_MAX: u64 = 65_536;

/// How long a request may go unanswered before `/health` says TigerBeetle is not answering.
/// Requests normally take milliseconds; two seconds rides out a leader election.
const REPLY_SLOW: Duration = Duration::from_secs(2);

/// How long a stopping node waits for an unanswered request before giving up on it (the runner
/// retries the batch on the next start; every id is idempotent).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Ids per `lookup_accounts` request in `ledger reconcile`: 200 accounts of 128 bytes fit the
/// 32 KiB replies of a `--development` server. Peers are few, so the number of requests doesn't
/// matter.
pub const LOOKUP_IDS_MAX: usize = 200;

/// First byte of a checkpoint's state; another version is not used (the projection then
/// replays the journal from the start, which only yields `exists`).
const CHECKPOINT_VERSION: u8 = 1;

/// Account codes (TigerBeetle requires a nonzero code on every account).
pub const ACCOUNT_CODE_PEER: u16 = 1;
pub const ACCOUNT_CODE_CONNECTOR: u16 = 2;
pub const ACCOUNT_CODE_SETTLEMENT: u16 = 3;

/// Transfer codes: which leg of a packet a transfer carries.
pub const TRANSFER_CODE_INCOMING: u16 = 1;
pub const TRANSFER_CODE_OUTGOING: u16 = 2;
/// Settlement (issue 9), single-phase on the peer's ledger against its settlement account: a
/// claim we sent (debit the peer: it is owed less), a claim we accepted (credit the peer: it owes
/// less), and a correction when a channel settled differently from its claims.
pub const TRANSFER_CODE_CLAIM_SENT: u16 = 3;
pub const TRANSFER_CODE_CLAIM_RECEIVED: u16 = 4;
pub const TRANSFER_CODE_SETTLEMENT_CORRECTION: u16 = 5;
/// A Fulfill that did not reach its sender (`FulfillUndelivered`): single-phase on the sender's
/// ledger, debit the connector, credit the sender, `amount_in`: the sender's charge reversed,
/// the connector's loss. User data joins it to the packet, like the packet's legs.
pub const TRANSFER_CODE_FULFILL_UNDELIVERED: u16 = 6;

// ---------------------------------------------------------------------------------------------
// Ids: pure functions of journal data
// ---------------------------------------------------------------------------------------------

/// A leg of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// From the sender: it owes us `amount_in` on its ledger.
    Incoming = 1,
    /// To the next hop: we owe it `amount_out` on its ledger.
    Outgoing = 2,
}

/// What a transfer does to a packet's leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `PacketPrepared`: the pending transfer.
    Pending = 1,
    /// `PacketFulfilled`: posts the pending transfer.
    Post = 2,
    /// `PacketRejected` after `PacketPrepared`: voids it.
    Void = 3,
    /// `PacketFulfilled` whose pending transfer had already expired in TigerBeetle: the same
    /// amounts as a single-phase transfer, so the ledger still matches the journal.
    PostLate = 4,
    /// A settlement transfer (one transfer, not a pair).
    Settlement = 5,
}

/// SHA-256 over a namespace and length-prefixed parts, first 16 bytes big-endian. 0 and 2^128−1
/// (which TigerBeetle refuses as ids) become 1 and 2^128−2; with a 128-bit hash neither happens.
fn hash_u128(namespace: &str, parts: &[&[u8]]) -> u128 {
    let digest = digest(namespace, parts);
    let value = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
    value.clamp(1, u128::MAX - 1)
}

fn digest(namespace: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(namespace.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The ledger of an asset: the first 4 bytes of SHA-256("m2m-connector/ledger/v1", code,
/// scale), big-endian, never 0. Two assets on one ledger would be an alert.
pub fn ledger_id(asset_code: &str, asset_scale: u8) -> u32 {
    let digest = digest("m2m-connector/ledger/v1", &[asset_code.as_bytes(), &[asset_scale]]);
    u32::from_be_bytes(digest[..4].try_into().expect("4 bytes")).max(1)
}

/// A peer's account on a ledger: debits are what the peer owes us, credits what we owe it.
pub fn peer_account_id(peer: &str, ledger: u32) -> u128 {
    hash_u128("m2m-connector/account/v1", &[b"peer", peer.as_bytes(), &ledger.to_be_bytes()])
}

/// The connector's own account on a ledger: the other side of every leg, so across ledgers its
/// balances are the connector's spread.
pub fn connector_account_id(ledger: u32) -> u128 {
    hash_u128("m2m-connector/account/v1", &[b"connector", &ledger.to_be_bytes()])
}

/// Reserved for the settlement issue: payments to and from peers on this ledger.
pub fn settlement_account_id(ledger: u32) -> u128 {
    hash_u128("m2m-connector/account/v1", &[b"settlement", &ledger.to_be_bytes()])
}

/// Names the connector whose packet ids these are (from `ConfigurationApplied.node_address`):
/// several connector pods share one cluster, each with its own packet-id sequence.
pub fn node_key(node_address: &str) -> u64 {
    let digest = digest("m2m-connector/node/v1", &[node_address.as_bytes()]);
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A transfer's id: the packet id (64 bits), the node key's top 48 bits, the leg and the action
/// (8 bits each), so a node's ids increase with its packet ids. TigerBeetle keeps transfers in an
/// LSM tree keyed by id: increasing ids land in order, where random (hashed) ids made every
/// existence check and post/void lookup read blocks no cache held (BENCHMARKS.md, "With the
/// TigerBeetle projection"). Ids from several nodes interleave by packet id and stay distinct
/// by their node bits. Never 0 (packet ids start at 1) nor 2^128−1.
pub fn transfer_id(node_key: u64, packet_id: u64, leg: Leg, action: Action) -> u128 {
    let id = (u128::from(packet_id) << 64)
        | (u128::from(node_key >> 16) << 16)
        | (u128::from(leg as u8) << 8)
        | u128::from(action as u8);
    id.clamp(1, u128::MAX - 1)
}

/// A settlement transfer's id, from the seq of the event it mirrors: bit 127 set (packet ids
/// stay below it), the seq in bits 64..127, the node key's top 48 bits, the transfer code. A
/// node's settlement ids increase with its seqs; never 0 nor 2^128−1.
pub fn settlement_transfer_id(node_key: u64, seq: u64, code: u16) -> u128 {
    let id = (1u128 << 127)
        | (u128::from(seq & (u64::MAX >> 1)) << 64)
        | (u128::from(node_key >> 16) << 16)
        | u128::from(code);
    id.clamp(1, u128::MAX - 1)
}

/// `user_data_32` of a packet's transfers: the first 4 bytes of SHA-256 of the peer on the leg.
pub fn peer_tag(peer: &str) -> u32 {
    let digest = digest("m2m-connector/peer/v1", &[peer.as_bytes()]);
    u32::from_be_bytes(digest[..4].try_into().expect("4 bytes"))
}

/// `user_data_128` of a packet's transfers: the node key and the packet id, so both legs (on
/// two ledgers) and their post or void join back to one journal packet.
pub fn packet_key(node_key: u64, packet_id: u64) -> u128 {
    (u128::from(node_key) << 64) | u128::from(packet_id)
}

/// Seconds a pending transfer may wait for its post or void: the packet's remaining time when it
/// was journaled (`expires_at_in_ms − timestamp_ms`, both from the event) plus the margin,
/// rounded up, at least 1 (0 would mean "never expires").
pub fn timeout_seconds(timestamp_ms: i64, expires_at_in_ms: i64) -> u32 {
    let remaining_ms = i128::from(expires_at_in_ms) - i128::from(timestamp_ms);
    let total_ms = remaining_ms.max(0) + i128::from(TIMEOUT_MARGIN_SECONDS) * 1000;
    let seconds = (total_ms + 999) / 1000;
    u32::try_from(seconds).unwrap_or(u32::MAX).max(1)
}

// ---------------------------------------------------------------------------------------------
// The mapping state and the plan of a batch (pure)
// ---------------------------------------------------------------------------------------------

/// One leg's transfer terms, kept while the packet is in flight (for a late post).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegTerms {
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    pub ledger: u32,
    pub amount: u64,
    pub peer_tag: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub node_key: u64,
    pub incoming: LegTerms,
    pub outgoing: LegTerms,
}

/// What the mapping remembers between batches: the configuration in force and the packets in
/// flight. Saved with the checkpoint; everything else lives in TigerBeetle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingState {
    node_key: u64,
    /// Each configured peer's ledger, by its asset.
    peer_ledgers: BTreeMap<String, u32>,
    /// Every (peer, ledger) pair ever mapped: `ledger reconcile` sums a peer's accounts.
    peer_accounts: BTreeSet<(String, u32)>,
    /// Ledger → the asset it holds.
    ledgers: BTreeMap<u32, (String, u8)>,
    /// Accounts created (or found to exist) already.
    accounts: BTreeSet<u128>,
    in_flight: FxHashMap<u64, InFlight>,
}

impl MappingState {
    pub fn in_flight(&self) -> impl Iterator<Item = (u64, &InFlight)> {
        self.in_flight.iter().map(|(&packet_id, in_flight)| (packet_id, in_flight))
    }

    /// The ledger of each configured peer.
    pub fn peer_ledgers(&self) -> &BTreeMap<String, u32> {
        &self.peer_ledgers
    }

    /// Every (peer, ledger) account the journal ever mapped.
    pub fn peer_accounts(&self) -> &BTreeSet<(String, u32)> {
        &self.peer_accounts
    }

    pub fn ledgers(&self) -> &BTreeMap<u32, (String, u8)> {
        &self.ledgers
    }

    /// Applies a batch's plan to the state: the batch is fully in TigerBeetle.
    pub fn commit(&mut self, delta: StateDelta) {
        self.node_key = delta.node_key;
        self.peer_ledgers = delta.peer_ledgers;
        self.peer_accounts = delta.peer_accounts;
        self.ledgers = delta.ledgers;
        self.accounts.extend(delta.accounts_new);
        for packet_id in delta.ended {
            self.in_flight.remove(&packet_id);
        }
        self.in_flight.extend(delta.prepared);
    }
}

/// A linked pair of transfers (incoming leg first), applied all or nothing; or one settlement
/// transfer (`count` 1, in `transfers[0]`).
#[derive(Debug, Clone)]
pub struct Chain {
    /// The packet id, or the seq of a settlement event.
    pub packet_id: u64,
    pub action: Action,
    pub transfers: [Transfer; 2],
    /// How many of `transfers` are sent: 2 for a packet's legs, 1 for a settlement transfer.
    pub count: usize,
    /// For a post: the single-phase pair that replaces it if the pending pair has expired.
    pub late: Option<[Transfer; 2]>,
}

/// What a batch changes in the state, applied once every request of the batch succeeded.
#[derive(Debug, Clone, Default)]
pub struct StateDelta {
    node_key: u64,
    peer_ledgers: BTreeMap<String, u32>,
    peer_accounts: BTreeSet<(String, u32)>,
    ledgers: BTreeMap<u32, (String, u8)>,
    accounts_new: BTreeSet<u128>,
    /// Packets prepared in this batch and still in flight at its end.
    prepared: FxHashMap<u64, InFlight>,
    /// Packets prepared before this batch that ended in it.
    ended: FxHashSet<u64>,
}

/// The requests for one batch, in order: accounts first, then the transfer chains.
#[derive(Debug, Default)]
pub struct Plan {
    pub accounts: Vec<Account>,
    pub chains: Vec<Chain>,
    /// Problems found in the events themselves (a packet naming an unconfigured peer, two
    /// assets hashing to one ledger); reported as alerts once the batch is applied.
    pub alerts: Vec<String>,
    pub delta: StateDelta,
}

/// Turns a batch of events into requests, against `state` as of the batch's start. Pure: the
/// same state and events give the same plan.
pub fn plan(state: &MappingState, entries: &[JournalEntry]) -> Plan {
    let mut planner = Planner {
        state,
        plan: Plan {
            delta: StateDelta {
                node_key: state.node_key,
                peer_ledgers: state.peer_ledgers.clone(),
                peer_accounts: state.peer_accounts.clone(),
                ledgers: state.ledgers.clone(),
                ..StateDelta::default()
            },
            ..Plan::default()
        },
    };
    for entry in entries {
        match &entry.event {
            Event::ConfigurationApplied(configuration) => planner.configuration(configuration),
            Event::PacketPrepared(prepared) => planner.prepared(entry, prepared),
            Event::PacketFulfilled(fulfilled) => planner.ended(entry.seq, fulfilled.packet_id, Action::Post),
            Event::PacketRejected(rejected) if rejected.prepared => {
                planner.ended(entry.seq, rejected.packet_id, Action::Void)
            }
            Event::ClaimSent(sent) => {
                planner.settlement(entry, &sent.peer, i128::try_from(sent.amount).unwrap_or(i128::MAX), TRANSFER_CODE_CLAIM_SENT)
            }
            Event::ClaimReceived(received) => {
                if let crate::journal::ClaimVerdict::Accepted { increase } = received.verdict {
                    let delta = -i128::try_from(increase).unwrap_or(i128::MAX);
                    planner.settlement(entry, &received.peer, delta, TRANSFER_CODE_CLAIM_RECEIVED);
                }
            }
            Event::SettlementCorrected(corrected) => {
                planner.settlement(entry, &corrected.peer, corrected.delta, TRANSFER_CODE_SETTLEMENT_CORRECTION)
            }
            Event::FulfillUndelivered(undelivered) => planner.single(
                entry,
                &undelivered.from_peer,
                -i128::from(undelivered.amount_in),
                TRANSFER_CODE_FULFILL_UNDELIVERED,
                connector_account_id,
                undelivered.packet_id,
            ),
            _ => {}
        }
    }
    planner.plan
}

struct Planner<'a> {
    state: &'a MappingState,
    plan: Plan,
}

impl Planner<'_> {
    fn configuration(&mut self, configuration: &ConfigurationApplied) {
        let delta = &mut self.plan.delta;
        delta.node_key = node_key(&configuration.node_address);
        let own = self.ledger(&configuration.asset_code, configuration.asset_scale);
        self.ensure_ledger_accounts(own);
        let mut peer_ledgers = BTreeMap::new();
        for terms in &configuration.peers {
            let ledger = self.ledger(&terms.asset_code, terms.asset_scale);
            self.ensure_ledger_accounts(ledger);
            self.ensure_account(peer_account_id(&terms.peer, ledger), ledger, ACCOUNT_CODE_PEER);
            peer_ledgers.insert(terms.peer.clone(), ledger);
            self.plan.delta.peer_accounts.insert((terms.peer.clone(), ledger));
        }
        // Peers no longer configured keep their accounts; new packets can't name them.
        self.plan.delta.peer_ledgers = peer_ledgers;
    }

    /// The ledger of an asset, remembering it; two assets on one ledger is an alert.
    fn ledger(&mut self, asset_code: &str, asset_scale: u8) -> u32 {
        let ledger = ledger_id(asset_code, asset_scale);
        let asset = (asset_code.to_owned(), asset_scale);
        match self.plan.delta.ledgers.get(&ledger) {
            Some(known) if *known != asset => self.plan.alerts.push(format!(
                "assets {} (scale {}) and {asset_code} (scale {asset_scale}) both map to ledger \
                 {ledger}: their accounts would mix",
                known.0, known.1
            )),
            Some(_) => {}
            None => {
                self.plan.delta.ledgers.insert(ledger, asset);
            }
        }
        ledger
    }

    fn ensure_ledger_accounts(&mut self, ledger: u32) {
        self.ensure_account(connector_account_id(ledger), ledger, ACCOUNT_CODE_CONNECTOR);
        self.ensure_account(settlement_account_id(ledger), ledger, ACCOUNT_CODE_SETTLEMENT);
    }

    fn ensure_account(&mut self, id: u128, ledger: u32, code: u16) {
        if self.state.accounts.contains(&id) || !self.plan.delta.accounts_new.insert(id) {
            return;
        }
        // No flags: limits are the connector's job (in-line, from the journal); TigerBeetle
        // mirrors positions, which may be negative either way.
        self.plan.accounts.push(Account::new(id, ledger, code).with_flags(AccountFlags::empty()));
    }

    fn prepared(&mut self, entry: &JournalEntry, prepared: &PacketPrepared) {
        let delta = &self.plan.delta;
        let (Some(&from_ledger), Some(&to_ledger)) =
            (delta.peer_ledgers.get(&prepared.from_peer), delta.peer_ledgers.get(&prepared.to_peer))
        else {
            self.plan.alerts.push(format!(
                "packet {} (seq {}) from {} to {} names a peer no ConfigurationApplied configured: \
                 not mirrored in TigerBeetle",
                prepared.packet_id, entry.seq, prepared.from_peer, prepared.to_peer
            ));
            return;
        };
        let node_key = delta.node_key;
        let in_flight = InFlight {
            node_key,
            incoming: LegTerms {
                debit_account_id: peer_account_id(&prepared.from_peer, from_ledger),
                credit_account_id: connector_account_id(from_ledger),
                ledger: from_ledger,
                amount: prepared.amount_in,
                peer_tag: peer_tag(&prepared.from_peer),
            },
            outgoing: LegTerms {
                debit_account_id: connector_account_id(to_ledger),
                credit_account_id: peer_account_id(&prepared.to_peer, to_ledger),
                ledger: to_ledger,
                amount: prepared.amount_out,
                peer_tag: peer_tag(&prepared.to_peer),
            },
        };
        let timeout = timeout_seconds(entry.timestamp_ms, prepared.expires_at_in_ms);
        let packet_id = prepared.packet_id;
        let pending = |leg: Leg, terms: &LegTerms, code: u16, flags: TransferFlags| {
            Transfer::new(transfer_id(node_key, packet_id, leg, Action::Pending))
                .with_debit_account_id(terms.debit_account_id)
                .with_credit_account_id(terms.credit_account_id)
                .with_amount(u128::from(terms.amount))
                .with_ledger(terms.ledger)
                .with_code(code)
                .with_user_data_128(packet_key(node_key, packet_id))
                .with_user_data_64(packet_id)
                .with_user_data_32(terms.peer_tag)
                .with_timeout(timeout)
                .with_flags(flags)
        };
        let transfers = [
            pending(Leg::Incoming, &in_flight.incoming, TRANSFER_CODE_INCOMING, TransferFlags::PENDING | TransferFlags::LINKED),
            pending(Leg::Outgoing, &in_flight.outgoing, TRANSFER_CODE_OUTGOING, TransferFlags::PENDING),
        ];
        self.plan.chains.push(Chain { packet_id, action: Action::Pending, transfers, count: 2, late: None });
        if self.plan.delta.prepared.insert(packet_id, in_flight).is_some() || self.state.in_flight.contains_key(&packet_id) {
            self.plan.alerts.push(format!("packet {packet_id} (seq {}) prepared twice in the journal", entry.seq));
        }
    }

    fn ended(&mut self, seq: u64, packet_id: u64, action: Action) {
        let delta = &mut self.plan.delta;
        let in_flight = match delta.prepared.remove(&packet_id) {
            Some(in_flight) => in_flight,
            None => match self.state.in_flight.get(&packet_id) {
                Some(in_flight) if delta.ended.insert(packet_id) => *in_flight,
                _ => {
                    self.plan.alerts.push(format!(
                        "packet {packet_id} ended (seq {seq}) but no mirrored PacketPrepared is in \
                         flight: nothing to {}",
                        if action == Action::Post { "post" } else { "void" }
                    ));
                    return;
                }
            },
        };
        let node_key = in_flight.node_key;
        let (flags, amount) = match action {
            // AMOUNT_MAX posts the whole pending amount (TigerBeetle ≥ 0.16); 0 voids it all.
            Action::Post => (TransferFlags::POST_PENDING_TRANSFER, u128::MAX),
            _ => (TransferFlags::VOID_PENDING_TRANSFER, 0),
        };
        // Accounts, ledger, code and user data are left zero: TigerBeetle takes them from the
        // pending transfer (and checks them on a replay's `exists`).
        let resolve = |leg: Leg, linked: bool| {
            let flags = if linked { flags | TransferFlags::LINKED } else { flags };
            Transfer::new(transfer_id(node_key, packet_id, leg, action))
                .with_pending_id(transfer_id(node_key, packet_id, leg, Action::Pending))
                .with_amount(amount)
                .with_flags(flags)
        };
        let transfers = [resolve(Leg::Incoming, true), resolve(Leg::Outgoing, false)];
        let late = (action == Action::Post).then(|| {
            let single = |leg: Leg, terms: &LegTerms, code: u16, flags: TransferFlags| {
                Transfer::new(transfer_id(node_key, packet_id, leg, Action::PostLate))
                    .with_debit_account_id(terms.debit_account_id)
                    .with_credit_account_id(terms.credit_account_id)
                    .with_amount(u128::from(terms.amount))
                    .with_ledger(terms.ledger)
                    .with_code(code)
                    .with_user_data_128(packet_key(node_key, packet_id))
                    .with_user_data_64(packet_id)
                    .with_user_data_32(terms.peer_tag)
                    .with_flags(flags)
            };
            [
                single(Leg::Incoming, &in_flight.incoming, TRANSFER_CODE_INCOMING, TransferFlags::LINKED),
                single(Leg::Outgoing, &in_flight.outgoing, TRANSFER_CODE_OUTGOING, TransferFlags::empty()),
            ]
        });
        self.plan.chains.push(Chain { packet_id, action, transfers, count: 2, late });
    }

    /// A settlement event moved `peer`'s position by `delta` (position = what it owes us minus
    /// what we owe it = the peer account's debits minus credits): one transfer against the
    /// settlement account of the peer's ledger.
    fn settlement(&mut self, entry: &JournalEntry, peer: &str, delta: i128, code: u16) {
        self.single(entry, peer, delta, code, settlement_account_id, entry.seq);
    }

    /// One single-phase transfer moving `peer`'s position by `delta`, against the account
    /// `against` gives on the peer's ledger; `joins` goes in the user data (a packet id, or the
    /// event's seq). The id comes from the event's seq and `code`.
    fn single(&mut self, entry: &JournalEntry, peer: &str, delta: i128, code: u16, against: fn(u32) -> u128, joins: u64) {
        if delta == 0 {
            return;
        }
        let Some(&ledger) = self.plan.delta.peer_ledgers.get(peer) else {
            self.plan.alerts.push(format!(
                "{} (seq {}) names peer {peer}, which no ConfigurationApplied configured: not mirrored",
                entry.event.kind(),
                entry.seq
            ));
            return;
        };
        let (peer_account, other_account) = (peer_account_id(peer, ledger), against(ledger));
        let (debit, credit) = if delta > 0 { (peer_account, other_account) } else { (other_account, peer_account) };
        let node_key = self.plan.delta.node_key;
        let transfer = Transfer::new(settlement_transfer_id(node_key, entry.seq, code))
            .with_debit_account_id(debit)
            .with_credit_account_id(credit)
            .with_amount(delta.unsigned_abs())
            .with_ledger(ledger)
            .with_code(code)
            .with_user_data_128(packet_key(node_key, joins))
            .with_user_data_64(joins)
            .with_user_data_32(peer_tag(peer))
            .with_flags(TransferFlags::empty());
        self.plan.chains.push(Chain { packet_id: entry.seq, action: Action::Settlement, transfers: [transfer, transfer], count: 1, late: None });
    }
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// How a chain fared, from the results of its two transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOutcome {
    Created,
    /// Applied before (a replay): the first transfer `exists` with the same fields, so the
    /// linked second one, created atomically with it, does too.
    Exists,
    /// A post whose pending transfers expired in TigerBeetle: apply the late pair instead.
    PendingExpired,
    /// Anything else: an alert.
    Failed(String),
}

/// The result codes TigerBeetle returned for a chain's transfers (None: ok; a single settlement
/// transfer uses only the first).
pub fn chain_outcome(results: [Option<CreateTransferErrorKind>; 2], count: usize) -> ChainOutcome {
    use CreateTransferErrorKind as Kind;
    if count == 1 {
        return match results[0] {
            None => ChainOutcome::Created,
            Some(Kind::Exists) => ChainOutcome::Exists,
            Some(kind) => ChainOutcome::Failed(format!("settlement transfer: {kind:?}")),
        };
    }
    match results {
        [None, None] => ChainOutcome::Created,
        [Some(Kind::Exists), Some(Kind::LinkedEventFailed)] => ChainOutcome::Exists,
        [Some(Kind::PendingTransferExpired), Some(Kind::LinkedEventFailed)]
        | [Some(Kind::LinkedEventFailed), Some(Kind::PendingTransferExpired)] => ChainOutcome::PendingExpired,
        [first, second] => ChainOutcome::Failed(format!(
            "incoming leg: {}, outgoing leg: {}",
            first.map_or("ok".to_owned(), |kind| format!("{kind:?}")),
            second.map_or("ok".to_owned(), |kind| format!("{kind:?}")),
        )),
    }
}

/// Counts of what the projection did since it started (for tests, the bench and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub accounts_created: u64,
    pub accounts_existing: u64,
    pub chains_created: u64,
    pub chains_existing: u64,
    /// Posts applied as single-phase transfers because their pending transfers had expired.
    pub chains_posted_late: u64,
    pub alerts: u64,
    pub requests: u64,
}

// ---------------------------------------------------------------------------------------------
// The ledger client (IO, behind a trait so the projection can be driven without a cluster)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("TIGERBEETLE_REPLICAS: {0}")]
    Address(String),
    #[error("cannot create the TigerBeetle client: {0}")]
    Client(String),
    /// The request is larger than the cluster accepts: send smaller batches.
    #[error("request too large for the cluster's message size")]
    TooMuchData,
    #[error("TigerBeetle request failed: {0}")]
    Send(String),
    #[error("no reply from TigerBeetle after {0:?}; the node is stopping")]
    Stopping(Duration),
}

/// Called every second while a request is unanswered, with the time waited; returns false to
/// give up (the node is stopping).
pub type Waiting<'a> = &'a mut dyn FnMut(Duration) -> bool;

/// The three calls the projection and `ledger reconcile` make. Results list only the failures,
/// as (index in the request, kind), as TigerBeetle returns them.
pub trait LedgerClient {
    fn create_accounts(&mut self, accounts: &[Account], waiting: Waiting<'_>) -> Result<Vec<(u32, CreateAccountErrorKind)>, LedgerError>;
    fn create_transfers(&mut self, transfers: &[Transfer], waiting: Waiting<'_>) -> Result<Vec<(u32, CreateTransferErrorKind)>, LedgerError>;
    fn lookup_accounts(&mut self, ids: &[u128], waiting: Waiting<'_>) -> Result<Vec<Account>, LedgerError>;
}

/// The real client: `tigerbeetle-unofficial` driven from a plain thread by a current-thread
/// tokio runtime (the client's own IO thread completes requests through oneshot channels).
pub struct TigerBeetleClient {
    cluster_id: u128,
    replicas: Vec<String>,
    client: Option<tb::Client>,
    runtime: tokio::runtime::Runtime,
}

impl TigerBeetleClient {
    /// Makes no connection: the client connects on its first request (and keeps retrying), so
    /// a node starts while TigerBeetle is down. Host names are resolved at the first request.
    pub fn new(cluster_id: u128, replicas: &[String]) -> std::io::Result<TigerBeetleClient> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        Ok(TigerBeetleClient { cluster_id, replicas: replicas.to_vec(), client: None, runtime })
    }

    /// An error that ends the client (evicted, shut down) drops it, so the next request makes a
    /// new one; `TooMuchData` is the caller's to handle (smaller batches).
    fn finish<T>(&mut self, result: Result<T, tb::error::SendError>) -> Result<T, LedgerError> {
        result.map_err(|error| match error.kind() {
            SendErrorKind::TooMuchData => LedgerError::TooMuchData,
            _ => {
                self.client = None;
                LedgerError::Send(error.to_string())
            }
        })
    }
}

/// The client, created on first use (a free function: the request it makes borrows it while the
/// runtime, another field, drives the request).
fn ensure_client<'a>(client: &'a mut Option<tb::Client>, cluster_id: u128, replicas: &[String]) -> Result<&'a tb::Client, LedgerError> {
    if client.is_none() {
        let addresses = resolve_replicas(replicas)?;
        let created = tb::Client::new(cluster_id, addresses.as_str())
            .map_err(|error| LedgerError::Client(format!("{error} (addresses {addresses})")))?;
        *client = Some(created);
    }
    Ok(client.as_ref().expect("set above"))
}

/// Drives `request` to its end on `runtime`, calling `waiting` every second it is unanswered.
fn wait<T>(runtime: &tokio::runtime::Runtime, request: impl Future<Output = T>, waiting: Waiting<'_>) -> Result<T, LedgerError> {
    runtime.block_on(async {
        tokio::pin!(request);
        let started = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(1), &mut request).await {
                Ok(result) => return Ok(result),
                Err(_) => {
                    let waited = started.elapsed();
                    if !waiting(waited) {
                        return Err(LedgerError::Stopping(waited));
                    }
                }
            }
        }
    })
}

impl LedgerClient for TigerBeetleClient {
    fn create_accounts(&mut self, accounts: &[Account], waiting: Waiting<'_>) -> Result<Vec<(u32, CreateAccountErrorKind)>, LedgerError> {
        let request = ensure_client(&mut self.client, self.cluster_id, &self.replicas)?.create_accounts(accounts.to_vec());
        let result = wait(&self.runtime, request, waiting)?;
        match result {
            Ok(()) => Ok(Vec::new()),
            Err(tb::error::CreateAccountsError::Api(errors)) => {
                Ok(errors.as_slice().iter().map(|e| (e.index(), e.kind())).collect())
            }
            Err(tb::error::CreateAccountsError::Send(error)) => self.finish(Err(error)),
            Err(other) => Err(LedgerError::Send(other.to_string())),
        }
    }

    fn create_transfers(&mut self, transfers: &[Transfer], waiting: Waiting<'_>) -> Result<Vec<(u32, CreateTransferErrorKind)>, LedgerError> {
        let request = ensure_client(&mut self.client, self.cluster_id, &self.replicas)?.create_transfers(transfers.to_vec());
        let result = wait(&self.runtime, request, waiting)?;
        match result {
            Ok(()) => Ok(Vec::new()),
            Err(tb::error::CreateTransfersError::Api(errors)) => {
                Ok(errors.as_slice().iter().map(|e| (e.index(), e.kind())).collect())
            }
            Err(tb::error::CreateTransfersError::Send(error)) => self.finish(Err(error)),
            Err(other) => Err(LedgerError::Send(other.to_string())),
        }
    }

    fn lookup_accounts(&mut self, ids: &[u128], waiting: Waiting<'_>) -> Result<Vec<Account>, LedgerError> {
        let request = ensure_client(&mut self.client, self.cluster_id, &self.replicas)?.lookup_accounts(ids.to_vec());
        let result = wait(&self.runtime, request, waiting)?;
        self.finish(result)
    }
}

/// `TIGERBEETLE_REPLICAS` items as the client takes them: a bare port stays as it is (the
/// client reads it as 127.0.0.1:port), `host:port` becomes `ip:port` (the client takes
/// addresses, not names).
pub fn resolve_replicas(replicas: &[String]) -> Result<String, LedgerError> {
    use std::net::ToSocketAddrs;
    let mut addresses = Vec::with_capacity(replicas.len());
    for item in replicas {
        if item.parse::<u16>().is_ok() || item.parse::<std::net::SocketAddr>().is_ok() {
            addresses.push(item.clone());
            continue;
        }
        let mut resolved = item
            .to_socket_addrs()
            .map_err(|error| LedgerError::Address(format!("cannot resolve `{item}`: {error}")))?;
        // Prefer IPv4 when a name has both: replicas usually listen on one address.
        let all: Vec<std::net::SocketAddr> = resolved.by_ref().collect();
        let address = all
            .iter()
            .find(|address| address.is_ipv4())
            .or(all.first())
            .ok_or_else(|| LedgerError::Address(format!("`{item}` resolves to no address")))?;
        addresses.push(address.to_string());
    }
    Ok(addresses.join(","))
}

// ---------------------------------------------------------------------------------------------
// The projection
// ---------------------------------------------------------------------------------------------

/// What the projection tells `/health` and `/health/ready`, and when it gives up a request.
#[derive(Default)]
pub struct Reporting {
    pub health: Option<Arc<Health>>,
    /// `READY_REQUIRES_TIGERBEETLE`.
    pub ready_required: bool,
    /// For the lag while a request waits (the runner's gauge is only set between batches).
    pub journal: Option<Arc<JournalStatus>>,
    /// Set when the node stops: an unanswered request is given up after [`STOP_GRACE`].
    pub stopping: Option<Arc<AtomicBool>>,
}

/// The live condition behind the `tigerbeetle` health component.
#[derive(Debug, Default)]
struct Condition {
    /// Why the last request did not complete (None once one did).
    failing: Option<String>,
    alerts: u64,
    last_alert: Option<String>,
}

pub struct TigerBeetleProjection<C: LedgerClient> {
    client: C,
    state: MappingState,
    position: u64,
    batch_max: usize,
    reporting: Reporting,
    condition: Condition,
    stats: Stats,
}

impl<C: LedgerClient> TigerBeetleProjection<C> {
    /// A projection at journal position 0 (it replays everything; a replay only yields `exists`).
    pub fn new(client: C, batch_max: usize, reporting: Reporting) -> Self {
        assert!(batch_max >= 2, "a batch must hold a linked pair");
        let projection = TigerBeetleProjection {
            client,
            state: MappingState::default(),
            position: 0,
            batch_max: batch_max - batch_max % 2,
            reporting,
            condition: Condition::default(),
            stats: Stats::default(),
        };
        projection.report(projection.lag());
        projection
    }

    /// Resumes from a checkpoint (`seq`, state saved by [`Projection::checkpoint_state`]). An
    /// unreadable state starts from the beginning instead.
    pub fn restore(mut self, seq: u64, bytes: &[u8]) -> Self {
        match decode_checkpoint(bytes) {
            Ok(state) => {
                self.state = state;
                self.position = seq;
            }
            Err(reason) => {
                tracing::warn!(%reason, "tigerbeetle checkpoint unreadable; replaying the journal from the start (only `exists` results)");
            }
        }
        self.report(self.lag());
        self
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn state(&self) -> &MappingState {
        &self.state
    }

    pub fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    fn lag(&self) -> u64 {
        self.reporting.journal.as_ref().map_or(0, |journal| {
            journal.durable_seq.load(Ordering::Acquire).saturating_sub(self.position)
        })
    }

    /// Sets the health component and the readiness blocker from the condition and the lag.
    fn report(&self, lag: u64) {
        report(&self.reporting, &self.condition, lag);
    }

    fn alert(&mut self, message: String) {
        crate::metrics::global().error(ErrorKind::Ledger, &format_args!("tigerbeetle: {message}"));
        self.stats.alerts += 1;
        self.condition.alerts += 1;
        self.condition.last_alert = Some(message);
    }

    fn try_batch(&mut self, plan: &Plan, alerts: &mut Vec<String>) -> Result<Stats, LedgerError> {
        let mut stats = Stats::default();
        let TigerBeetleProjection { client, reporting, condition, batch_max, position, .. } = self;
        let lag_base = *position;
        let mut waiting = |waited: Duration| {
            if waited >= REPLY_SLOW {
                condition.failing = Some(format!("no reply from TigerBeetle for {} s", waited.as_secs()));
                let lag = reporting.journal.as_ref().map_or(0, |j| j.durable_seq.load(Ordering::Acquire).saturating_sub(lag_base));
                report(reporting, condition, lag);
            }
            let stopping = reporting.stopping.as_ref().is_some_and(|s| s.load(Ordering::Acquire));
            !(stopping && waited >= STOP_GRACE)
        };
        let mut start = 0;
        while start < plan.accounts.len() {
            let chunk = &plan.accounts[start..plan.accounts.len().min(start + *batch_max)];
            stats.requests += 1;
            let results = match client.create_accounts(chunk, &mut waiting) {
                Err(LedgerError::TooMuchData) if *batch_max > 2 => {
                    *batch_max = halve(*batch_max);
                    continue;
                }
                other => other?,
            };
            let mut existing = 0;
            for (index, kind) in results {
                let account = &chunk[index as usize];
                if matches!(kind, CreateAccountErrorKind::Exists) {
                    existing += 1;
                } else {
                    alerts.push(format!(
                        "create_accounts: account {:#034x} (ledger {}, code {}): {kind:?}",
                        account.id(), account.ledger(), account.code()
                    ));
                }
            }
            stats.accounts_existing += existing;
            stats.accounts_created += chunk.len() as u64 - existing;
            start += chunk.len();
        }
        let mut late: Vec<&Chain> = Vec::new();
        let mut start = 0;
        while start < plan.chains.len() {
            let chains = &plan.chains[start..plan.chains.len().min(start + *batch_max / 2)];
            let transfers: Vec<Transfer> = chains.iter().flat_map(|chain| chain.transfers[..chain.count].iter().copied()).collect();
            // Which chain and slot each transfer of the request is.
            let slots: Vec<(usize, usize)> =
                chains.iter().enumerate().flat_map(|(index, chain)| (0..chain.count).map(move |slot| (index, slot))).collect();
            stats.requests += 1;
            let results = match client.create_transfers(&transfers, &mut waiting) {
                Err(LedgerError::TooMuchData) if *batch_max > 2 => {
                    *batch_max = halve(*batch_max);
                    continue;
                }
                other => other?,
            };
            let mut by_chain: Vec<[Option<CreateTransferErrorKind>; 2]> = vec![[None, None]; chains.len()];
            for (index, kind) in results {
                let (chain, slot) = slots[index as usize];
                by_chain[chain][slot] = Some(kind);
            }
            for (chain, results) in chains.iter().zip(by_chain) {
                match chain_outcome(results, chain.count) {
                    ChainOutcome::Created => stats.chains_created += 1,
                    ChainOutcome::Exists => stats.chains_existing += 1,
                    ChainOutcome::PendingExpired if chain.late.is_some() => late.push(chain),
                    ChainOutcome::PendingExpired => alerts.push(format!(
                        "packet {}: the pending transfers expired in TigerBeetle before this {:?} \
                         reached it (their reservation is released all the same)",
                        chain.packet_id, chain.action
                    )),
                    ChainOutcome::Failed(why) => {
                        alerts.push(format!("packet {}: {:?} failed: {why}", chain.packet_id, chain.action))
                    }
                }
            }
            start += chains.len();
        }
        for chunk in late.chunks(*batch_max / 2) {
            let transfers: Vec<Transfer> = chunk.iter().flat_map(|chain| chain.late.expect("late")).collect();
            stats.requests += 1;
            let results = client.create_transfers(&transfers, &mut waiting)?;
            let mut by_chain: Vec<[Option<CreateTransferErrorKind>; 2]> = vec![[None, None]; chunk.len()];
            for (index, kind) in results {
                by_chain[index as usize / 2][index as usize % 2] = Some(kind);
            }
            for (chain, results) in chunk.iter().zip(by_chain) {
                match chain_outcome(results, 2) {
                    ChainOutcome::Created => {
                        stats.chains_posted_late += 1;
                        alerts.push(format!(
                            "packet {}: fulfilled, but its pending transfers had expired in \
                             TigerBeetle (projection too far behind?); posted as single-phase \
                             transfers instead",
                            chain.packet_id
                        ));
                    }
                    // Posted late by an earlier run, which raised the alert.
                    ChainOutcome::Exists => stats.chains_existing += 1,
                    other => alerts.push(format!("packet {}: late post failed: {other:?}", chain.packet_id)),
                }
            }
        }
        Ok(stats)
    }
}

/// The next smaller request size after `TooMuchData`: half, even (pairs never split), at least 2.
fn halve(batch_max: usize) -> usize {
    let smaller = (batch_max / 2).max(2);
    let smaller = smaller - smaller % 2;
    tracing::warn!(
        from = batch_max,
        to = smaller,
        "TigerBeetle refused a request as too large; halving the requests (set TIGERBEETLE_BATCH_MAX, \
         or start the cluster with --limit-request 1MiB)"
    );
    smaller
}

fn report(reporting: &Reporting, condition: &Condition, lag: u64) {
    let Some(health) = &reporting.health else { return };
    let mut problem = String::new();
    if let Some(failing) = &condition.failing {
        let _ = write!(problem, "{failing}; {lag} events behind the journal");
    } else if lag > READY_LAG_EVENTS_MAX {
        let _ = write!(problem, "catching up: {lag} events behind the journal");
    }
    if reporting.ready_required {
        health.set_ready_blocker(NAME, (!problem.is_empty()).then(|| problem.clone()));
    }
    if let Some(last) = &condition.last_alert {
        if !problem.is_empty() {
            problem.push_str("; ");
        }
        let _ = write!(problem, "{} ledger alerts since start (last: {last})", condition.alerts);
    }
    let status = if problem.is_empty() { ComponentStatus::Ok } else { ComponentStatus::Degraded(problem) };
    health.set_component(NAME, status);
}

fn decode_checkpoint(bytes: &[u8]) -> Result<MappingState, String> {
    match bytes.first() {
        Some(&CHECKPOINT_VERSION) => {}
        Some(version) => return Err(format!("checkpoint version {version} is not supported")),
        None => return Err("empty checkpoint state".into()),
    }
    let config = bincode::config::standard().with_limit::<{ 1 << 30 }>();
    bincode::serde::decode_from_slice(&bytes[1..], config)
        .map(|(state, _)| state)
        .map_err(|error| format!("checkpoint state does not decode: {error}"))
}

impl<C: LedgerClient> Projection for TigerBeetleProjection<C> {
    fn name(&self) -> &'static str {
        NAME
    }

    /// One event at a time, for callers outside the runner; the runner uses `apply_batch`. A
    /// failure here (TigerBeetle down) leaves the position where it was, with a warning.
    fn apply(&mut self, entry: &JournalEntry) {
        if let Err(error) = self.apply_batch(std::slice::from_ref(entry)) {
            tracing::warn!(seq = entry.seq, %error, "tigerbeetle: event not applied");
        }
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn apply_batch(&mut self, entries: &[JournalEntry]) -> Result<(), ProjectionError> {
        let Some(last) = entries.last() else { return Ok(()) };
        let plan = plan(&self.state, entries);
        let mut alerts = Vec::new();
        match self.try_batch(&plan, &mut alerts) {
            Ok(stats) => {
                self.stats.accounts_created += stats.accounts_created;
                self.stats.accounts_existing += stats.accounts_existing;
                self.stats.chains_created += stats.chains_created;
                self.stats.chains_existing += stats.chains_existing;
                self.stats.chains_posted_late += stats.chains_posted_late;
                self.stats.requests += stats.requests;
                for message in plan.alerts.into_iter().chain(alerts) {
                    self.alert(message);
                }
                self.state.commit(plan.delta);
                self.position = last.seq;
                self.condition.failing = None;
                self.report(self.lag());
                Ok(())
            }
            Err(error) => {
                self.condition.failing = Some(error.to_string());
                self.report(self.lag());
                Err(ProjectionError { message: format!("tigerbeetle: {error}") })
            }
        }
    }

    fn checkpoint_state(&self) -> Vec<u8> {
        let mut bytes = vec![CHECKPOINT_VERSION];
        bincode::serde::encode_into_std_write(&self.state, &mut bytes, bincode::config::standard())
            .expect("encoding to a Vec cannot fail");
        bytes
    }
}

/// Starts the projection on the runner (node start-up, when `TIGERBEETLE_REPLICAS` is set),
/// resumed from its checkpoint: the last applied seq plus the mapping state; the ledger itself
/// lives in TigerBeetle. The returned thread ends when the runner does.
pub fn start(
    config: &crate::config::Config,
    store: crate::journal::SledStore,
    journal: Arc<JournalStatus>,
    health: Arc<Health>,
    stopping: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    use anyhow::Context;
    let tigerbeetle = &config.tigerbeetle;
    let client = TigerBeetleClient::new(tigerbeetle.cluster_id, &tigerbeetle.replicas)
        .context("cannot start the TigerBeetle client's runtime")?;
    let reporting = Reporting {
        health: Some(health),
        ready_required: tigerbeetle.ready_required,
        journal: Some(journal.clone()),
        stopping: Some(stopping.clone()),
    };
    let mut projection = TigerBeetleProjection::new(client, tigerbeetle.batch_max, reporting);
    if let Some((seq, state)) = store.checkpoint(NAME)? {
        projection = projection.restore(seq, &state);
    }
    tracing::info!(
        replicas = %tigerbeetle.replicas.join(","),
        cluster_id = %tigerbeetle.cluster_id,
        batch_max = tigerbeetle.batch_max,
        from_seq = projection.position() + 1,
        "tigerbeetle projection starting"
    );
    let runner_config = super::runner::RunnerConfig { checkpoint_every_events: config.journal.snapshot_every };
    let handle = super::runner::spawn(projection, store, journal, runner_config, stopping)?;
    let thread = std::thread::Builder::new().name("tigerbeetle-join".into()).spawn(move || {
        if let Ok(projection) = handle.join() {
            tracing::info!(stats = ?projection.stats(), position = projection.position(), "tigerbeetle projection stopped");
        }
    })?;
    Ok(thread)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{PacketFulfilled, PacketRejected, PeerTerms, Stage};

    fn terms(peer: &str, asset_code: &str) -> PeerTerms {
        PeerTerms {
            peer: peer.into(),
            relation: "peer".into(),
            asset_code: asset_code.into(),
            asset_scale: 2,
            max_packet_amount: None,
            credit_limit: 1000,
            packets_per_second_max: None,
            throughput_per_second_max: None,
            settlement_threshold: None,
            settle_to: None,
        }
    }

    fn entry(seq: u64, timestamp_ms: i64, event: Event) -> JournalEntry {
        JournalEntry { seq, timestamp_ms, event }
    }

    fn configuration() -> Event {
        Event::ConfigurationApplied(ConfigurationApplied {
            node_address: "test.m2m".into(),
            asset_code: "USD".into(),
            asset_scale: 2,
            min_message_window_ms: 1000,
            max_hold_time_ms: 30_000,
            peers: vec![terms("alice", "USD"), terms("bob", "EUR")],
        })
    }

    fn prepared(packet_id: u64, expires_at_in_ms: i64) -> Event {
        Event::PacketPrepared(PacketPrepared {
            packet_id,
            from_peer: "alice".into(),
            to_peer: "bob".into(),
            amount_in: 100,
            amount_out: 90,
            expires_at_in_ms,
            expires_at_out_ms: expires_at_in_ms - 1000,
            condition: [0; 32],
            destination: "test.bob.x".into(),
            rate: None,
        })
    }

    fn rejected(packet_id: u64) -> Event {
        Event::PacketRejected(PacketRejected {
            packet_id,
            prepared: true,
            from_peer: "alice".into(),
            amount_in: 100,
            destination: String::new(),
            code: *b"R00",
            triggered_by: "test.m2m".into(),
            message: String::new(),
            stage: Stage::Expiry,
        })
    }

    #[test]
    fn settlement_events_are_single_transfers_against_the_settlement_account() {
        use crate::journal::{ClaimReceived, ClaimSent, ClaimVerdict, SettlementCorrected};
        let claim = crate::settlement::claim::Claim {
            chain: "eip155:1".into(),
            contract: "0x01".into(),
            channel_id: "0x02".into(),
            nonce: 1,
            cumulative: 500,
            signature: vec![0; 65],
        };
        let entries = vec![
            entry(1, 0, configuration()),
            entry(2, 0, Event::ClaimSent(ClaimSent { settlement_id: 1, peer: "bob".into(), amount: 500, claim: claim.clone() })),
            entry(3, 0, Event::ClaimReceived(ClaimReceived {
                peer: "alice".into(),
                claim: claim.clone(),
                signer: String::new(),
                verdict: ClaimVerdict::Accepted { increase: 70 },
            })),
            entry(4, 0, Event::ClaimReceived(ClaimReceived {
                peer: "alice".into(),
                claim,
                signer: String::new(),
                verdict: ClaimVerdict::Rejected { reason: crate::journal::ClaimRejection::StaleNonce, detail: String::new() },
            })),
            entry(5, 0, Event::SettlementCorrected(SettlementCorrected {
                peer: "bob".into(),
                channel_id: "0x02".into(),
                our_payout: 10,
                expected_payout: 0,
                delta: -10,
            })),
        ];
        let plan = plan(&MappingState::default(), &entries);
        assert!(plan.alerts.is_empty(), "{:?}", plan.alerts);
        let (usd, eur) = (ledger_id("USD", 2), ledger_id("EUR", 2));
        let singles: Vec<(u128, u128, u128, u32, u16)> = plan
            .chains
            .iter()
            .map(|chain| {
                assert_eq!((chain.count, chain.action), (1, Action::Settlement));
                let transfer = chain.transfers[0];
                (transfer.debit_account_id(), transfer.credit_account_id(), transfer.amount(), transfer.ledger(), transfer.code())
            })
            .collect();
        assert_eq!(
            singles,
            vec![
                (peer_account_id("bob", eur), settlement_account_id(eur), 500, eur, TRANSFER_CODE_CLAIM_SENT),
                (settlement_account_id(usd), peer_account_id("alice", usd), 70, usd, TRANSFER_CODE_CLAIM_RECEIVED),
                (settlement_account_id(eur), peer_account_id("bob", eur), 10, eur, TRANSFER_CODE_SETTLEMENT_CORRECTION),
            ],
            "a rejected claim moves nothing"
        );
        let ids: Vec<u128> = plan.chains.iter().map(|chain| chain.transfers[0].id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids increase with seq");
        assert!(ids.iter().all(|id| *id >> 127 == 1), "settlement ids stay clear of packet ids");
        assert_eq!(plan.chains[0].transfers[0].id(), settlement_transfer_id(node_key("test.m2m"), 2, TRANSFER_CODE_CLAIM_SENT));
    }

    #[test]
    fn an_undelivered_fulfill_gives_the_sender_its_charge_back_from_the_connector() {
        use crate::journal::{FulfillUndelivered, UndeliveredReason};
        let entries = vec![
            entry(1, 0, configuration()),
            entry(2, 0, Event::FulfillUndelivered(FulfillUndelivered {
                packet_id: 42,
                from_peer: "alice".into(),
                amount_in: 900,
                reason: UndeliveredReason::Expired,
            })),
        ];
        let plan = plan(&MappingState::default(), &entries);
        assert!(plan.alerts.is_empty(), "{:?}", plan.alerts);
        assert_eq!(plan.chains.len(), 1);
        let usd = ledger_id("USD", 2);
        let transfer = plan.chains[0].transfers[0];
        assert_eq!(plan.chains[0].count, 1);
        assert_eq!(
            (transfer.debit_account_id(), transfer.credit_account_id(), transfer.amount(), transfer.ledger(), transfer.code()),
            (connector_account_id(usd), peer_account_id("alice", usd), 900, usd, TRANSFER_CODE_FULFILL_UNDELIVERED)
        );
        let key = node_key("test.m2m");
        assert_eq!((transfer.user_data_128(), transfer.user_data_64()), (packet_key(key, 42), 42), "joined to its packet");
        assert_eq!(transfer.id(), settlement_transfer_id(key, 2, TRANSFER_CODE_FULFILL_UNDELIVERED));
    }

    #[test]
    fn timeouts_cover_the_expiry_plus_the_margin_rounded_up() {
        let margin = TIMEOUT_MARGIN_SECONDS as u32;
        for (timestamp_ms, expires_at_in_ms, expect) in [
            (1_000, 31_000, margin + 30),
            (1_000, 31_001, margin + 31),
            (1_000, 1_000, margin),
            (5_000, 1_000, margin),
            (i64::MIN, i64::MAX, u32::MAX),
        ] {
            assert_eq!(timeout_seconds(timestamp_ms, expires_at_in_ms), expect, "{timestamp_ms} {expires_at_in_ms}");
        }
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let node = node_key("test.m2m");
        assert_eq!(node, node_key("test.m2m"));
        assert_ne!(node, node_key("test.other"));
        let other = node_key("test.other");
        let mut ids = BTreeSet::new();
        let mut last_pending = 0;
        for packet_id in 1..=50u64 {
            // A node's ids increase with its packet ids (locality in TigerBeetle's LSM).
            let pending = transfer_id(node, packet_id, Leg::Incoming, Action::Pending);
            assert!(pending > last_pending);
            last_pending = pending;
            for key in [node, other] {
                for leg in [Leg::Incoming, Leg::Outgoing] {
                    for action in [Action::Pending, Action::Post, Action::Void, Action::PostLate] {
                        assert!(ids.insert(transfer_id(key, packet_id, leg, action)));
                    }
                }
            }
        }
        assert_eq!(ledger_id("USD", 2), ledger_id("USD", 2));
        assert_ne!(ledger_id("USD", 2), ledger_id("USD", 6));
        assert_ne!(peer_account_id("alice", 1), peer_account_id("alice", 2));
        assert_ne!(connector_account_id(1), settlement_account_id(1));
    }

    #[test]
    fn a_batch_maps_to_accounts_then_linked_pairs() {
        let entries = [
            entry(1, 0, configuration()),
            entry(2, 10_000, prepared(7, 40_000)),
            entry(3, 11_000, Event::PacketFulfilled(PacketFulfilled { packet_id: 7, fulfillment: [1; 32] })),
            entry(4, 12_000, prepared(8, 42_000)),
        ];
        let plan = plan(&MappingState::default(), &entries);
        assert!(plan.alerts.is_empty(), "{:?}", plan.alerts);
        // Two ledgers (USD, EUR): connector + settlement each, plus alice's and bob's accounts.
        assert_eq!(plan.accounts.len(), 6);
        assert_eq!(plan.chains.len(), 3);
        let (usd, eur) = (ledger_id("USD", 2), ledger_id("EUR", 2));
        let [incoming, outgoing] = plan.chains[0].transfers;
        assert_eq!((incoming.ledger(), outgoing.ledger()), (usd, eur));
        assert_eq!(incoming.debit_account_id(), peer_account_id("alice", usd));
        assert_eq!(incoming.credit_account_id(), connector_account_id(usd));
        assert_eq!(outgoing.debit_account_id(), connector_account_id(eur));
        assert_eq!(outgoing.credit_account_id(), peer_account_id("bob", eur));
        assert_eq!((incoming.amount(), outgoing.amount()), (100, 90));
        assert_eq!(incoming.flags(), TransferFlags::PENDING | TransferFlags::LINKED);
        assert_eq!(outgoing.flags(), TransferFlags::PENDING);
        assert_eq!(incoming.timeout(), 30 + TIMEOUT_MARGIN_SECONDS as u32);
        assert_eq!(incoming.user_data_64(), 7);
        assert_eq!(outgoing.user_data_32(), peer_tag("bob"));
        let [post_in, post_out] = plan.chains[1].transfers;
        assert_eq!(post_in.pending_id(), incoming.id());
        assert_eq!(post_out.pending_id(), outgoing.id());
        assert_eq!(post_in.flags(), TransferFlags::POST_PENDING_TRANSFER | TransferFlags::LINKED);
        assert!(plan.chains[1].late.is_some());
        // Applying the plan leaves packet 8 in flight, and the same events plan the same ids.
        let mut state = MappingState::default();
        let again = super::plan(&state, &entries);
        state.commit(plan.delta);
        assert_eq!(state.in_flight().map(|(id, _)| id).collect::<Vec<_>>(), [8]);
        let ids = |plan: &Plan| plan.chains.iter().flat_map(|c| c.transfers.map(|t| t.id())).collect::<Vec<_>>();
        assert_eq!(ids(&again), ids(&super::plan(&MappingState::default(), &entries)));
        // The next batch voids packet 8 and needs no accounts.
        let next = super::plan(&state, &[entry(5, 13_000, rejected(8))]);
        assert!(next.accounts.is_empty() && next.alerts.is_empty());
        assert_eq!(next.chains[0].transfers[0].flags(), TransferFlags::VOID_PENDING_TRANSFER | TransferFlags::LINKED);
        state.commit(next.delta);
        assert_eq!(state.in_flight().count(), 0);
    }

    #[test]
    fn unmapped_packets_are_alerts() {
        let plan = plan(&MappingState::default(), &[entry(1, 0, prepared(1, 1000)), entry(2, 0, rejected(2))]);
        assert!(plan.chains.is_empty());
        assert_eq!(plan.alerts.len(), 2, "{:?}", plan.alerts);
    }

    #[test]
    fn chain_outcomes() {
        use CreateTransferErrorKind as Kind;
        assert_eq!(chain_outcome([None, None], 2), ChainOutcome::Created);
        assert_eq!(chain_outcome([Some(Kind::Exists), Some(Kind::LinkedEventFailed)], 2), ChainOutcome::Exists);
        assert_eq!(
            chain_outcome([Some(Kind::PendingTransferExpired), Some(Kind::LinkedEventFailed)], 2),
            ChainOutcome::PendingExpired
        );
        for results in [
            [Some(Kind::LinkedEventFailed), Some(Kind::Exists)],
            [Some(Kind::ExistsWithDifferentAmount), Some(Kind::LinkedEventFailed)],
            [Some(Kind::LinkedEventFailed), Some(Kind::OverflowsDebitsPending)],
        ] {
            assert!(matches!(chain_outcome(results, 2), ChainOutcome::Failed(_)), "{results:?}");
        }
    }

    #[test]
    fn checkpoint_state_round_trips() {
        let mut state = MappingState::default();
        state.commit(plan(&state, &[entry(1, 0, configuration()), entry(2, 0, prepared(3, 9000))]).delta);
        let mut bytes = vec![CHECKPOINT_VERSION];
        bincode::serde::encode_into_std_write(&state, &mut bytes, bincode::config::standard()).unwrap();
        assert_eq!(decode_checkpoint(&bytes).unwrap(), state);
        assert!(decode_checkpoint(&[9]).is_err());
    }
}
