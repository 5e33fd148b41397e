//! The journal's schema: past-tense facts about the packet path.
//!
//! Every decision the pipeline makes is one of these events. Projections (balances, the
//! TigerBeetle ledger, settlement, the Explorer) are pure functions of the sequence of events, so
//! events carry everything a projection needs (peers, amounts, times) and nothing that can't be
//! replayed (no pointers into live state). Time is the event's own `timestamp_ms`.

use serde::{Deserialize, Serialize};

/// An event with its place in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in the journal, starting at 1, without gaps.
    pub seq: u64,
    /// Wall-clock time of the decision, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    ConfigurationApplied(ConfigurationApplied),
    PeerConnected { peer: String, session: u64 },
    PeerDisconnected { peer: String, session: u64 },
    PacketPrepared(PacketPrepared),
    PacketFulfilled(PacketFulfilled),
    PacketRejected(PacketRejected),
    // Settlement (issue 9). Appended after the packet events, so journals written before them
    // still decode (bincode numbers enum variants in order).
    SettlementConfigured(SettlementConfigured),
    SettlementChainReady(SettlementChainReady),
    SettlementTriggered(SettlementTriggered),
    ClaimSent(ClaimSent),
    ClaimReceived(ClaimReceived),
    ChannelObserved(ChannelObserved),
    SettlementCompleted(SettlementCompleted),
    SettlementFailed(SettlementFailed),
    ChannelActionFailed(ChannelActionFailed),
    ChainScanned(ChainScanned),
    ChannelCloseRequested(ChannelCloseRequested),
    CooperativeSettleAgreed(CooperativeSettleAgreed),
    SettlementCorrected(SettlementCorrected),
    // Issue 12: appended last, so journals written before it still decode.
    FulfillUndelivered(FulfillUndelivered),
    // Issue 13: route exchange (CCP). Appended last, so older journals still decode.
    RoutingConfigured(RoutingConfigured),
    RouteLearned(RouteLearned),
    RouteWithdrawn(RouteWithdrawn),
}

impl Event {
    /// A short name for logs, metrics and `journal inspect --type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ConfigurationApplied(_) => "ConfigurationApplied",
            Event::PeerConnected { .. } => "PeerConnected",
            Event::PeerDisconnected { .. } => "PeerDisconnected",
            Event::PacketPrepared(_) => "PacketPrepared",
            Event::PacketFulfilled(_) => "PacketFulfilled",
            Event::PacketRejected(_) => "PacketRejected",
            Event::SettlementConfigured(_) => "SettlementConfigured",
            Event::SettlementChainReady(_) => "SettlementChainReady",
            Event::SettlementTriggered(_) => "SettlementTriggered",
            Event::ClaimSent(_) => "ClaimSent",
            Event::ClaimReceived(_) => "ClaimReceived",
            Event::ChannelObserved(_) => "ChannelObserved",
            Event::SettlementCompleted(_) => "SettlementCompleted",
            Event::SettlementFailed(_) => "SettlementFailed",
            Event::ChannelActionFailed(_) => "ChannelActionFailed",
            Event::ChainScanned(_) => "ChainScanned",
            Event::ChannelCloseRequested(_) => "ChannelCloseRequested",
            Event::CooperativeSettleAgreed(_) => "CooperativeSettleAgreed",
            Event::SettlementCorrected(_) => "SettlementCorrected",
            Event::FulfillUndelivered(_) => "FulfillUndelivered",
            Event::RoutingConfigured(_) => "RoutingConfigured",
            Event::RouteLearned(_) => "RouteLearned",
            Event::RouteWithdrawn(_) => "RouteWithdrawn",
        }
    }

    /// Every kind [`Event::kind`] returns, for `journal inspect --type`.
    pub const KINDS: [&'static str; 23] = [
        "ConfigurationApplied",
        "PeerConnected",
        "PeerDisconnected",
        "PacketPrepared",
        "PacketFulfilled",
        "PacketRejected",
        "SettlementConfigured",
        "SettlementChainReady",
        "SettlementTriggered",
        "ClaimSent",
        "ClaimReceived",
        "ChannelObserved",
        "SettlementCompleted",
        "SettlementFailed",
        "ChannelActionFailed",
        "ChainScanned",
        "ChannelCloseRequested",
        "CooperativeSettleAgreed",
        "SettlementCorrected",
        "FulfillUndelivered",
        "RoutingConfigured",
        "RouteLearned",
        "RouteWithdrawn",
    ];

    /// Whether this event is a settlement decision: the events the settlement ledger derives from
    /// the journal before them, which `audit settlements` re-derives and compares.
    pub fn is_settlement_decision(&self) -> bool {
        matches!(self, Event::SettlementTriggered(_) | Event::ClaimSent(_) | Event::SettlementCorrected(_))
    }
}

/// The routes a start configures, right after its `ConfigurationApplied`: with the learned
/// routes that follow, what a replay rebuilds the routing table from. Children's addresses and
/// the default route (the only parent) follow from `peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingConfigured {
    pub node_address: String,
    /// Every peer and its relation, in the configuration's order.
    pub peers: Vec<PeerRelation>,
    /// `[[routes]]`: prefix → peer.
    pub routes: Vec<ConfiguredRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRelation {
    pub peer: String,
    /// `parent`, `peer` or `child`.
    pub relation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredRoute {
    pub prefix: String,
    pub peer: String,
}

/// A peer announced a route (CCP) and it passed the checks: `prefix` is reachable through
/// `peer` along `path` (the peer first). Whether it becomes the route we use is decided by the
/// table (configured routes first, then the relation, then the shortest path), the same way
/// live and in a replay. Learned routes do not outlive the process: every
/// `ConfigurationApplied` (a start) begins with none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLearned {
    pub peer: String,
    pub prefix: String,
    pub path: Vec<String>,
}

/// A route learned from `peer` is gone: the peer withdrew it, restarted with a new routing
/// table, or sent no update within its hold-down time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteWithdrawn {
    pub peer: String,
    pub prefix: String,
    pub reason: RouteWithdrawnReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteWithdrawnReason {
    /// The peer's update withdrew it.
    Withdrawn,
    /// The peer started a new routing table (it restarted) without it.
    NewTable,
    /// No update from the peer within the hold-down time it announced.
    Expired,
}

impl RouteWithdrawnReason {
    pub fn label(self) -> &'static str {
        match self {
            RouteWithdrawnReason::Withdrawn => "withdrawn",
            RouteWithdrawnReason::NewTable => "new_table",
            RouteWithdrawnReason::Expired => "expired",
        }
    }
}

/// The limits in force from this event on, so a replay can judge decisions by the rules of
/// their time. Tokens are never recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationApplied {
    pub node_address: String,
    pub asset_code: String,
    pub asset_scale: u8,
    pub min_message_window_ms: u64,
    pub max_hold_time_ms: u64,
    pub peers: Vec<PeerTerms>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTerms {
    pub peer: String,
    pub relation: String,
    pub asset_code: String,
    pub asset_scale: u8,
    pub max_packet_amount: Option<u64>,
    pub credit_limit: u64,
    pub packets_per_second_max: Option<u32>,
    pub throughput_per_second_max: Option<u64>,
    pub settlement_threshold: Option<u64>,
    pub settle_to: Option<u64>,
}

/// A Prepare accepted for forwarding: the incoming amount is reserved against `from_peer`'s
/// credit limit until the packet ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketPrepared {
    pub packet_id: u64,
    pub from_peer: String,
    pub to_peer: String,
    pub amount_in: u64,
    pub amount_out: u64,
    pub expires_at_in_ms: i64,
    pub expires_at_out_ms: i64,
    pub condition: [u8; 32],
    pub destination: String,
    /// The exchange rate the packet was converted at, between two different assets (None when
    /// both peers are in the same asset): what a later rate change can never alter.
    pub rate: Option<AppliedRate>,
}

/// An exchange rate as applied: one unit of the incoming asset (at scale 0) is worth
/// `numerator / denominator` units of the outgoing one; the scales are the peers'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRate {
    #[serde(with = "super::wide::u128_text")]
    pub numerator: u128,
    #[serde(with = "super::wide::u128_text")]
    pub denominator: u128,
}

/// The next hop fulfilled a prepared packet with a fulfillment that hashes to its condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketFulfilled {
    pub packet_id: u64,
    pub fulfillment: [u8; 32],
}

/// A packet's Fulfill, journaled as `PacketFulfilled`, did not reach its sender: when the
/// journal made it durable, the sender's Prepare had expired, or its session was gone. The next
/// hop is still owed (it fulfilled in time); the sender is not charged (on its side the packet
/// expired or its connection dropped, RFC 18), so `amount_in` comes off its position and is the
/// connector's loss. Follows the packet's `PacketFulfilled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillUndelivered {
    pub packet_id: u64,
    pub from_peer: String,
    pub amount_in: u64,
    pub reason: UndeliveredReason,
}

/// Why a Fulfill was not delivered upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndeliveredReason {
    /// The sender's Prepare had expired by the time the Fulfill was durable (it was not sent:
    /// the sender has rejected the packet on its side).
    Expired,
    /// The session the Prepare came on had closed.
    UpstreamGone,
}

impl UndeliveredReason {
    pub const ALL: [UndeliveredReason; 2] = [UndeliveredReason::Expired, UndeliveredReason::UpstreamGone];

    /// The metrics label and JSON name.
    pub fn label(self) -> &'static str {
        match self {
            UndeliveredReason::Expired => "expired",
            UndeliveredReason::UpstreamGone => "upstream_gone",
        }
    }
}

/// A packet ended without payment, before or after it was prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketRejected {
    pub packet_id: u64,
    /// Whether a `PacketPrepared` for this packet precedes this event (its reservation is
    /// released now). False for packets refused before forwarding.
    pub prepared: bool,
    pub from_peer: String,
    pub amount_in: u64,
    /// The destination for packets refused before forwarding; empty when `prepared` (it is on
    /// the `PacketPrepared`, and keeping it per in-flight packet would cost an allocation).
    pub destination: String,
    /// ILP error code, three ASCII bytes.
    pub code: [u8; 3],
    /// Address of the node that created the Reject (ours for local decisions).
    pub triggered_by: String,
    /// The Reject's message, at most [`MESSAGE_JOURNALED_MAX`] bytes ([`journaled_message`]):
    /// the upstream gets the Reject as the next hop wrote it, the journal keeps its head.
    pub message: String,
    pub stage: Stage,
}

/// Most bytes of a Reject message the journal keeps. A peer may send 8 KiB of message with
/// every Reject; kept in full it would make each rejected packet cost the journal, its
/// projections and the Explorer 8 KiB. Longer messages keep their head and end with
/// [`MESSAGE_TRUNCATED_MARK`] and the number of bytes cut, all within the cap.
pub const MESSAGE_JOURNALED_MAX: usize = 512;
/// What ends a journaled message that was cut, before the count of bytes cut.
pub const MESSAGE_TRUNCATED_MARK: &str = "…[cut ";

/// `message` as the journal keeps it: unchanged up to [`MESSAGE_JOURNALED_MAX`] bytes; longer,
/// its head on a character boundary then `…[cut N bytes]`, at most the cap in all.
pub fn journaled_message(message: &str) -> String {
    if message.len() <= MESSAGE_JOURNALED_MAX {
        return message.to_owned();
    }
    // The mark's length depends on the count, which depends on where the head ends: reserve
    // room for the longest count a message can have (8191 bytes: 4 digits, more is harmless).
    let suffix_room = MESSAGE_TRUNCATED_MARK.len() + " bytes]".len() + 20;
    let mut end = MESSAGE_JOURNALED_MAX - suffix_room;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MESSAGE_TRUNCATED_MARK}{} bytes]", &message[..end], message.len() - end)
}

/// Which part of the connector ended the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Expiry, peer protocol and address checks at the pipeline's entry.
    Admission,
    /// No route, reflection, next hop not connected.
    Routing,
    /// Max packet amount, rate and throughput limits, credit limit, exchange.
    Risk,
    /// The next hop's queue was full or its session went away.
    Egress,
    /// The next hop (or one after it) rejected; the Reject was relayed.
    Downstream,
    /// The fulfillment did not match the condition, or came after the expiry.
    Settle,
    /// No reply from the next hop before the outgoing expiry.
    Expiry,
    /// Ended at start-up: the packet was in flight when the node stopped.
    Recovery,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Admission => "admission",
            Stage::Routing => "routing",
            Stage::Risk => "risk",
            Stage::Egress => "egress",
            Stage::Downstream => "downstream",
            Stage::Settle => "settle",
            Stage::Expiry => "expiry",
            Stage::Recovery => "recovery",
        }
    }
}

/// `count` consecutive `PacketFulfilled` entries from seq `first` (packet id = seq): filler
/// for the journal's unit tests.
#[cfg(test)]
pub(crate) fn fulfilled_entries(first: u64, count: u64) -> Vec<JournalEntry> {
    (first..first + count)
        .map(|seq| JournalEntry {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq as i64,
            event: Event::PacketFulfilled(PacketFulfilled { packet_id: seq, fulfillment: [seq as u8; 32] }),
        })
        .collect()
}

// --- Settlement --------------------------------------------------------------------------------
//
// Positions change through these events only (DESIGN.md §3): a `ClaimSent` raises the payee's
// position (we owe it less), an accepted `ClaimReceived` lowers the payer's (it owes us less),
// and a channel's settlement on chain corrects both by whatever the chain paid out differently
// from the claims (see `settlement::ledger`). Chain facts (`ChannelObserved`) come from the
// watcher at the confirmation depth; decisions (`SettlementTriggered`, `ClaimSent`) are derived
// from the journal before them, and `audit settlements` derives them again.

/// A claim, chain-agnostic: what the journal stores and the settlement ledger reasons about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The chain, as a CAIP-2 id (`eip155:8453` for Base).
    pub chain: String,
    /// The contract holding the channel (the TokenNetwork on EVM), canonical lower-case hex.
    pub contract: String,
    /// The channel's id, canonical lower-case hex.
    pub channel_id: String,
    /// Grows with every claim on the channel; the newest claim is the one that counts.
    pub nonce: u64,
    /// What the signer has transferred on this channel in total, in token units.
    #[serde(with = "crate::journal::wide::u128_text")]
    pub cumulative: u128,
    /// The signer's signature (65 bytes r‖s‖v on EVM).
    pub signature: Vec<u8>,
}


/// The settlement terms in force from this event on: journaled at every start with settlement
/// enabled, so a replay judges each decision by the terms of its time. No key, no RPC URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementConfigured {
    /// CAIP-2 chain id, e.g. `eip155:8453`.
    pub chain: String,
    /// The TokenNetworkRegistry.
    pub registry: String,
    /// The token (`M2M_TOKEN_ADDRESS`).
    pub token: String,
    /// This node's account (the address of `EVM_PRIVATE_KEY`).
    pub account: String,
    /// Blocks a chain event must be buried under before it is journaled.
    pub confirmations: u64,
    pub peers: Vec<PeerSettlementTerms>,
}

/// One peer's settlement terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSettlementTerms {
    pub peer: String,
    /// The peer's account on the chain: the signer of its claims, our channel counterparty.
    pub address: String,
    /// We pay this peer (send claims) when we owe it `threshold`.
    pub pays_peer: bool,
    /// This peer pays us (we accept its claims).
    pub peer_pays: bool,
    pub threshold: u64,
    pub settle_to: u64,
    /// How far a claim from the peer may exceed what it owes us (prepayment).
    pub prepayment_allowance: u64,
    /// Deposit policy for the channel we fund: first deposit, top-up step, most in total.
    pub deposit_initial: u64,
    pub deposit_topup: u64,
    pub deposit_max: u64,
    /// Challenge period of channels we open, in seconds.
    pub settle_timeout_s: u64,
}

/// The chain side is ready: the token network for the configured token was found (claims can be
/// signed and verified from here on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementChainReady {
    pub chain: String,
    /// The TokenNetwork contract: every claim's `contract`.
    pub contract: String,
    pub token: String,
    pub token_decimals: u8,
}

/// What we owe a peer reached its threshold: pay it down to `settle_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementTriggered {
    pub settlement_id: u64,
    pub peer: String,
    /// The peer's position when the decision was made (negative: we owe it).
    #[serde(with = "crate::journal::wide::i128_text")]
    pub position: i128,
    pub threshold: u64,
    pub settle_to: u64,
    #[serde(with = "crate::journal::wide::u128_text")]
    pub amount: u128,
}

/// A claim we signed for a settlement. From this event on the payee can redeem it, so the
/// payee's position has risen by `amount`; it is sent (and re-sent) until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSent {
    pub settlement_id: u64,
    pub peer: String,
    #[serde(with = "crate::journal::wide::u128_text")]
    pub amount: u128,
    pub claim: Claim,
}

/// A claim a peer sent us, with our verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimReceived {
    pub peer: String,
    pub claim: Claim,
    /// The account the signature recovers to; empty when it recovers to none.
    pub signer: String,
    pub verdict: ClaimVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimVerdict {
    /// The peer's position fell by `increase`.
    Accepted { #[serde(with = "crate::journal::wide::u128_text")] increase: u128 },
    /// The position is unchanged; the peer got a BTP Error naming the reason.
    Rejected { reason: ClaimRejection, detail: String },
}

/// Why a claim was refused. Also the `reason` label of `claim_verification_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimRejection {
    /// Settlement is off, the peer has no settlement terms, or it does not pay us by claims.
    NotAccepted,
    /// The token network is not known yet (the chain has not been reached since start).
    NotReady,
    /// Another chain or contract than ours.
    WrongChain,
    /// No channel with this id between us and this peer (or not confirmed yet).
    UnknownChannel,
    /// The channel is closed or settled.
    ChannelNotOpen,
    /// The signature does not recover to the peer's account.
    BadSignature,
    /// The nonce is not above the newest accepted one.
    StaleNonce,
    /// The cumulative amount is below the newest accepted one.
    Decreasing,
    /// The cumulative amount exceeds the peer's deposit.
    OverDeposit,
    /// The increase exceeds what the peer owes plus its prepayment allowance.
    OverOwed,
    /// The claim's bytes do not decode (answered at the session, never journaled).
    Malformed,
    /// The session sent more settlement messages than allowed per second (answered at the
    /// session, never journaled).
    RateLimited,
}

impl ClaimRejection {
    pub const ALL: [ClaimRejection; 12] = [
        ClaimRejection::NotAccepted,
        ClaimRejection::NotReady,
        ClaimRejection::WrongChain,
        ClaimRejection::UnknownChannel,
        ClaimRejection::ChannelNotOpen,
        ClaimRejection::BadSignature,
        ClaimRejection::StaleNonce,
        ClaimRejection::Decreasing,
        ClaimRejection::OverDeposit,
        ClaimRejection::OverOwed,
        ClaimRejection::Malformed,
        ClaimRejection::RateLimited,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ClaimRejection::NotAccepted => "not_accepted",
            ClaimRejection::NotReady => "not_ready",
            ClaimRejection::WrongChain => "wrong_chain",
            ClaimRejection::UnknownChannel => "unknown_channel",
            ClaimRejection::ChannelNotOpen => "channel_not_open",
            ClaimRejection::BadSignature => "bad_signature",
            ClaimRejection::StaleNonce => "stale_nonce",
            ClaimRejection::Decreasing => "decreasing",
            ClaimRejection::OverDeposit => "over_deposit",
            ClaimRejection::OverOwed => "over_owed",
            ClaimRejection::Malformed => "malformed",
            ClaimRejection::RateLimited => "rate_limited",
        }
    }
}

/// A contract event about one of our channels, buried under the confirmation depth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelObserved {
    pub chain: String,
    pub contract: String,
    pub channel_id: String,
    pub tx_hash: String,
    pub block_number: u64,
    pub log_index: u64,
    /// The block's timestamp, seconds (challenge periods are measured in chain time).
    pub block_timestamp_s: u64,
    pub change: ChannelChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelChange {
    Opened { participant1: String, participant2: String, settle_timeout_s: u64 },
    Deposit { participant: String, #[serde(with = "crate::journal::wide::u128_text")] total: u128 },
    Withdraw { participant: String, #[serde(with = "crate::journal::wide::u128_text")] total: u128 },
    /// `closer` submitted the other participant's proof (`nonce`, `transferred`); the challenge
    /// period ends at `settle_at_s` (chain time).
    Closed { closer: String, nonce: u64, #[serde(with = "crate::journal::wide::u128_text")] transferred: u128, settle_at_s: u64 },
    /// The non-closing participant submitted the closer's proof.
    ProofUpdated { closer: String, nonce: u64, #[serde(with = "crate::journal::wide::u128_text")] transferred: u128 },
    Settled { #[serde(with = "crate::journal::wide::u128_text")] amount1: u128, #[serde(with = "crate::journal::wide::u128_text")] amount2: u128, cooperative: bool },
}

impl ChannelChange {
    pub fn label(&self) -> &'static str {
        match self {
            ChannelChange::Opened { .. } => "opened",
            ChannelChange::Deposit { .. } => "deposit",
            ChannelChange::Withdraw { .. } => "withdraw",
            ChannelChange::Closed { .. } => "closed",
            ChannelChange::ProofUpdated { .. } => "proof_updated",
            ChannelChange::Settled { .. } => "settled",
        }
    }
}

/// The payee acknowledged the settlement's claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementCompleted {
    pub settlement_id: u64,
    pub peer: String,
}

/// A step of a settlement failed; it is retried from `retry_at_ms` (the event's time plus a
/// capped exponential backoff). Forwarding is never affected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementFailed {
    pub settlement_id: u64,
    pub peer: String,
    pub attempt: u32,
    pub stage: SettlementStage,
    pub error: String,
    pub retry_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettlementStage {
    /// Opening or funding the channel on chain.
    Funding,
    /// Sending the claim to the peer, or waiting for its answer.
    Delivery,
    /// The peer refused the claim.
    Refused,
}

impl SettlementStage {
    pub fn label(self) -> &'static str {
        match self {
            SettlementStage::Funding => "funding",
            SettlementStage::Delivery => "delivery",
            SettlementStage::Refused => "refused",
        }
    }
}

/// A channel transaction outside a settlement (answering a close, settling after the challenge
/// period, closing on request) failed; it is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelActionFailed {
    pub peer: String,
    pub channel_id: String,
    pub action: String,
    pub error: String,
}

/// The watcher has read every block up to `block_number` (a marker every few minutes, so a
/// restart resumes the scan there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainScanned {
    pub chain: String,
    pub block_number: u64,
}

/// An operator asked to close the peer's channel: at once on chain with the peer's newest
/// proof (`cooperative` false), or by asking the peer to sign the final split. From here on no
/// claim is sent or accepted on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCloseRequested {
    pub peer: String,
    pub channel_id: String,
    pub cooperative: bool,
}

/// We signed a cooperative settle the peer proposed: the channel pays `our_balance` to us and
/// `their_balance` to the peer, the split our own journal gives. No claim moves on it any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooperativeSettleAgreed {
    pub peer: String,
    pub channel_id: String,
    #[serde(with = "crate::journal::wide::u128_text")]
    pub our_balance: u128,
    #[serde(with = "crate::journal::wide::u128_text")]
    pub their_balance: u128,
}

/// A channel settled on chain and paid us `our_payout` where the claims on record say
/// `expected_payout` (a claim never redeemed, a proof not submitted in time): the peer's position
/// moves by `delta` = expected − paid, so the books follow the chain. Derived from the journal
/// (the channel's deposits, claims and the settle event), like every settlement decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementCorrected {
    pub peer: String,
    pub channel_id: String,
    #[serde(with = "crate::journal::wide::u128_text")]
    pub our_payout: u128,
    #[serde(with = "crate::journal::wide::i128_text")]
    pub expected_payout: i128,
    #[serde(with = "crate::journal::wide::i128_text")]
    pub delta: i128,
}

#[cfg(test)]
mod message_cap_tests {
    use super::*;

    #[test]
    fn short_messages_are_kept_and_long_ones_cut_within_the_cap() {
        assert_eq!(journaled_message(""), "");
        let exact = "x".repeat(MESSAGE_JOURNALED_MAX);
        assert_eq!(journaled_message(&exact), exact);
        for length in [MESSAGE_JOURNALED_MAX + 1, 1000, 8191, 100_000] {
            for filler in ["x", "é", "€", "😀"] {
                let message = filler.repeat(length / filler.len() + 1);
                let kept = journaled_message(&message);
                assert!(kept.len() <= MESSAGE_JOURNALED_MAX, "{length} {filler}: {}", kept.len());
                let (head, tail) = kept.split_once(MESSAGE_TRUNCATED_MARK).unwrap();
                assert!(message.starts_with(head));
                assert_eq!(tail, format!("{} bytes]", message.len() - head.len()));
            }
        }
    }
}
