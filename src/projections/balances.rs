//! Per-peer positions: the only projection the packet path reads (for credit limits).
//!
//! Conventions (DESIGN.md §3): a peer's position is what it owes us minus what we owe it, in its
//! own asset units. A Prepare from peer A reserves its amount against A's credit limit; when
//! fulfilled A's position rises by it; when rejected the reservation is released. A fulfilled
//! Prepare to peer B lowers B's position by the outgoing amount.
//!
//! The forwarder calls the typed methods with peer indices (no string hashing per packet);
//! replay goes through [`Projection::apply`], which resolves names and calls the same methods,
//! so live and replayed state cannot diverge.

use rustc_hash::FxHashMap;

use super::Projection;
use crate::journal::{Event, JournalEntry};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerBalance {
    /// What the peer owes us minus what we owe it.
    pub position: i128,
    /// Sum of incoming Prepares from this peer that are still in flight.
    pub reserved: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    from: usize,
    amount_in: u64,
    to: usize,
    amount_out: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    peers: Vec<(String, PeerBalance)>,
    index: FxHashMap<String, usize>,
    pending: FxHashMap<u64, Pending>,
    position: u64,
}

impl Balances {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of `peer`, registering it with a zero balance if new.
    pub fn peer_index(&mut self, peer: &str) -> usize {
        if let Some(&index) = self.index.get(peer) {
            return index;
        }
        self.peers.push((peer.to_owned(), PeerBalance::default()));
        self.index.insert(peer.to_owned(), self.peers.len() - 1);
        self.peers.len() - 1
    }

    pub fn balance(&self, index: usize) -> PeerBalance {
        self.peers[index].1
    }

    pub fn balance_of(&self, peer: &str) -> Option<PeerBalance> {
        self.index.get(peer).map(|&index| self.peers[index].1)
    }

    /// Every peer with its balance, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, PeerBalance)> {
        self.peers.iter().map(|(peer, balance)| (peer.as_str(), *balance))
    }

    pub fn in_flight_count(&self) -> usize {
        self.pending.len()
    }

    /// Whether reserving `amount` more keeps the peer within `credit_limit`.
    pub fn can_reserve(&self, index: usize, amount: u64, credit_limit: u64) -> bool {
        let balance = &self.peers[index].1;
        // position ≤ i128::MAX/2 and reserved ≤ u64::MAX × packets, so this cannot overflow in
        // practice; saturate anyway so a corrupt state can only refuse, never wrap.
        let reserved = i128::try_from(balance.reserved).unwrap_or(i128::MAX);
        let exposure = balance.position.saturating_add(reserved).saturating_add(i128::from(amount));
        exposure <= i128::from(credit_limit)
    }

    pub fn prepared(&mut self, packet_id: u64, from: usize, amount_in: u64, to: usize, amount_out: u64) {
        self.peers[from].1.reserved += u128::from(amount_in);
        let previous = self.pending.insert(packet_id, Pending { from, amount_in, to, amount_out });
        assert!(previous.is_none(), "packet {packet_id} prepared twice");
    }

    pub fn fulfilled(&mut self, packet_id: u64) {
        let Some(pending) = self.pending.remove(&packet_id) else {
            panic!("packet {packet_id} fulfilled but not in flight");
        };
        let from = &mut self.peers[pending.from].1;
        from.reserved -= u128::from(pending.amount_in);
        from.position += i128::from(pending.amount_in);
        self.peers[pending.to].1.position -= i128::from(pending.amount_out);
    }

    pub fn rejected(&mut self, packet_id: u64) {
        let Some(pending) = self.pending.remove(&packet_id) else {
            panic!("prepared packet {packet_id} rejected but not in flight");
        };
        self.peers[pending.from].1.reserved -= u128::from(pending.amount_in);
    }

    pub fn set_position(&mut self, seq: u64) {
        self.position = seq;
    }
}

impl Projection for Balances {
    fn name(&self) -> &'static str {
        "balances"
    }

    fn apply(&mut self, entry: &JournalEntry) {
        match &entry.event {
            Event::ConfigurationApplied(configuration) => {
                for terms in &configuration.peers {
                    self.peer_index(&terms.peer);
                }
            }
            Event::PacketPrepared(prepared) => {
                let from = self.peer_index(&prepared.from_peer);
                let to = self.peer_index(&prepared.to_peer);
                self.prepared(prepared.packet_id, from, prepared.amount_in, to, prepared.amount_out);
            }
            Event::PacketFulfilled(fulfilled) => self.fulfilled(fulfilled.packet_id),
            Event::PacketRejected(rejected) if rejected.prepared => self.rejected(rejected.packet_id),
            Event::PacketRejected(_) | Event::PeerConnected { .. } | Event::PeerDisconnected { .. } => {}
        }
        self.position = entry.seq;
    }

    fn position(&self) -> u64 {
        self.position
    }
}
