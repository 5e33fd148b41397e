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
}

/// The next hop fulfilled a prepared packet with a fulfillment that hashes to its condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketFulfilled {
    pub packet_id: u64,
    pub fulfillment: [u8; 32],
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
    pub message: String,
    pub stage: Stage,
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
