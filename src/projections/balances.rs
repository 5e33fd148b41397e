//! Per-peer positions: the only projection the packet path reads (for credit limits).
//!
//! Conventions (DESIGN.md §3): a peer's position is what it owes us minus what we owe it, in its
//! own asset units. A Prepare from peer A reserves its amount against A's credit limit; when
//! fulfilled A's position rises by it; when rejected the reservation is released. A fulfilled
//! Prepare to peer B lowers B's position by the outgoing amount.
//!
//! It also holds what a restart needs: the packets prepared but not yet ended (with their
//! incoming expiry) and the highest packet id used. The forwarder applies every event it
//! appends through [`Projection::apply`], exactly as a replay does, so live and replayed state
//! cannot diverge; a snapshot is this struct, serialized.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Projection;
use crate::journal::{Event, JournalEntry};
use crate::settlement::ledger::SettlementLedger;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerBalance {
    /// What the peer owes us minus what we owe it.
    pub position: i128,
    /// Sum of incoming Prepares from this peer that are still in flight.
    pub reserved: u128,
    /// Fulfills for this peer's packets that did not reach it (`FulfillUndelivered`): taken
    /// off its position, paid to the next hop all the same. The connector's loss, in this
    /// peer's units.
    pub undelivered: u128,
}

/// A snapshot of version 3 (before `undelivered`), still read: retention may have removed the
/// frames before it.
#[derive(Deserialize)]
struct PeerBalanceV3 {
    position: i128,
    reserved: u128,
}

#[derive(Deserialize)]
struct BalancesV3 {
    peers: Vec<(String, PeerBalanceV3)>,
    index: FxHashMap<String, usize>,
    pending: FxHashMap<u64, Pending>,
    packet_id_max: u64,
    position: u64,
    settlement: SettlementLedger,
}

impl From<BalancesV3> for Balances {
    fn from(old: BalancesV3) -> Balances {
        let BalancesV3 { peers, index, pending, packet_id_max, position, settlement } = old;
        let peers = peers
            .into_iter()
            .map(|(peer, PeerBalanceV3 { position, reserved })| (peer, PeerBalance { position, reserved, undelivered: 0 }))
            .collect();
        Balances { peers, index, pending, packet_id_max, position, settlement }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    from: usize,
    amount_in: u64,
    to: usize,
    amount_out: u64,
    expires_at_in_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    peers: Vec<(String, PeerBalance)>,
    index: FxHashMap<String, usize>,
    pending: FxHashMap<u64, Pending>,
    /// Highest packet id seen in any event; a restarted forwarder continues after it.
    packet_id_max: u64,
    position: u64,
    /// Channels, claims and settlements in progress (issue 9); the source of settlement
    /// decisions and of the position changes settlement makes.
    settlement: SettlementLedger,
}

/// First byte of a serialized snapshot; a snapshot of another version is not used (recovery
/// then replays the journal from an older snapshot or from the start). 3: the settlement ledger;
/// 4: `PeerBalance::undelivered` (3 is still read, see [`BalancesV3`]).
const SNAPSHOT_VERSION: u8 = 4;
const SNAPSHOT_VERSION_V3: u8 = 3;

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

    pub fn packet_id_max(&self) -> u64 {
        self.packet_id_max
    }

    /// Packets prepared and not yet ended, with the expiry their sender gave them.
    pub fn open_packets(&self) -> Vec<(u64, i64)> {
        let mut open: Vec<(u64, i64)> =
            self.pending.iter().map(|(&packet_id, pending)| (packet_id, pending.expires_at_in_ms)).collect();
        open.sort_unstable();
        open
    }

    /// Who sent an open packet, and its incoming amount.
    pub fn open_packet_sender(&self, packet_id: u64) -> Option<(&str, u64)> {
        let pending = self.pending.get(&packet_id)?;
        Some((self.peers[pending.from].0.as_str(), pending.amount_in))
    }

    /// Serialized form for a snapshot or checkpoint: the same header as a journal frame
    /// (version byte, CRC-32 of the payload), so a flipped bit is caught rather than restored.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut bytes = vec![SNAPSHOT_VERSION, 0, 0, 0, 0];
        bincode::serde::encode_into_std_write(self, &mut bytes, bincode::config::standard())
            .expect("encoding to a Vec cannot fail");
        let checksum = crc32fast::hash(&bytes[5..]);
        bytes[1..5].copy_from_slice(&checksum.to_be_bytes());
        bytes
    }

    /// Whether `bytes` restore; the journal's retention keeps frames a snapshot covers until
    /// a newer one is held and the older one passes this.
    pub fn check_snapshot(bytes: &[u8]) -> Result<(), String> {
        Balances::from_snapshot(bytes).map(drop)
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Balances, String> {
        let version = match bytes.first() {
            Some(&version) if version == SNAPSHOT_VERSION || version == SNAPSHOT_VERSION_V3 => version,
            Some(version) => return Err(format!("snapshot version {version} is not supported")),
            None => return Err("empty snapshot".into()),
        };
        if bytes.len() < 5 {
            return Err("snapshot shorter than its header".into());
        }
        let stored = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        if crc32fast::hash(&bytes[5..]) != stored {
            return Err("snapshot checksum mismatch".into());
        }
        let config = bincode::config::standard().with_limit::<{ 1 << 30 }>();
        let decoded = if version == SNAPSHOT_VERSION_V3 {
            bincode::serde::decode_from_slice::<BalancesV3, _>(&bytes[5..], config).map(|(old, read)| (old.into(), read))
        } else {
            bincode::serde::decode_from_slice(&bytes[5..], config)
        };
        decoded.map(|(balances, _)| balances).map_err(|error| format!("snapshot does not decode: {error}"))
    }

    /// SHA-256 over a canonical rendering (sorted, so it doesn't depend on hash-map history):
    /// equal digests mean equal state.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.position.to_be_bytes());
        hasher.update(self.packet_id_max.to_be_bytes());
        let mut peers: Vec<&(String, PeerBalance)> = self.peers.iter().collect();
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        for (peer, balance) in peers {
            hasher.update((peer.len() as u64).to_be_bytes());
            hasher.update(peer.as_bytes());
            hasher.update(balance.position.to_be_bytes());
            hasher.update(balance.reserved.to_be_bytes());
            hasher.update(balance.undelivered.to_be_bytes());
        }
        for (packet_id, expires_at_in_ms) in self.open_packets() {
            let pending = &self.pending[&packet_id];
            hasher.update(packet_id.to_be_bytes());
            hasher.update(self.peers[pending.from].0.as_bytes());
            hasher.update(pending.amount_in.to_be_bytes());
            hasher.update(self.peers[pending.to].0.as_bytes());
            hasher.update(pending.amount_out.to_be_bytes());
            hasher.update(expires_at_in_ms.to_be_bytes());
        }
        hasher.update(self.settlement.digest());
        hasher.finalize().into()
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

    pub fn prepared(&mut self, packet_id: u64, from: usize, amount_in: u64, to: usize, amount_out: u64, expires_at_in_ms: i64) {
        self.peers[from].1.reserved += u128::from(amount_in);
        let pending = Pending { from, amount_in, to, amount_out, expires_at_in_ms };
        let previous = self.pending.insert(packet_id, pending);
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

    /// A fulfilled packet's Fulfill did not reach its sender `from`: its charge is reversed
    /// and counted as undelivered.
    pub fn undelivered(&mut self, from: usize, amount_in: u64) {
        let balance = &mut self.peers[from].1;
        balance.position = balance.position.saturating_sub(i128::from(amount_in));
        balance.undelivered += u128::from(amount_in);
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

    pub fn settlement(&self) -> &SettlementLedger {
        &self.settlement
    }

    /// The position of `peer` (0 for a peer never seen).
    pub fn position_of(&self, peer: &str) -> i128 {
        self.balance_of(peer).map_or(0, |balance| balance.position)
    }

    /// The peer ids of an open packet: (sender, next hop).
    pub fn open_packet_peers(&self, packet_id: u64) -> Option<(&str, &str)> {
        let pending = self.pending.get(&packet_id)?;
        Some((self.peers[pending.from].0.as_str(), self.peers[pending.to].0.as_str()))
    }

    fn settlement_event(&mut self, entry: &JournalEntry) {
        if let Some((peer, delta)) = self.settlement.apply(entry) {
            let index = self.peer_index(&peer);
            let balance = &mut self.peers[index].1;
            balance.position = balance.position.saturating_add(delta);
        }
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
                self.settlement_event(entry);
            }
            Event::PacketPrepared(prepared) => {
                let from = self.peer_index(&prepared.from_peer);
                let to = self.peer_index(&prepared.to_peer);
                self.prepared(
                    prepared.packet_id,
                    from,
                    prepared.amount_in,
                    to,
                    prepared.amount_out,
                    prepared.expires_at_in_ms,
                );
                self.packet_id_max = self.packet_id_max.max(prepared.packet_id);
            }
            Event::PacketFulfilled(fulfilled) => self.fulfilled(fulfilled.packet_id),
            Event::PacketRejected(rejected) => {
                if rejected.prepared {
                    self.rejected(rejected.packet_id);
                }
                self.packet_id_max = self.packet_id_max.max(rejected.packet_id);
            }
            Event::FulfillUndelivered(undelivered) => {
                let from = self.peer_index(&undelivered.from_peer);
                self.undelivered(from, undelivered.amount_in);
            }
            Event::PeerConnected { .. } | Event::PeerDisconnected { .. } => {}
            Event::RoutingConfigured(_) | Event::RouteLearned(_) | Event::RouteWithdrawn(_) => {}
            Event::SettlementConfigured(_)
            | Event::SettlementChainReady(_)
            | Event::SettlementTriggered(_)
            | Event::ClaimSent(_)
            | Event::ClaimReceived(_)
            | Event::ChannelObserved(_)
            | Event::SettlementCompleted(_)
            | Event::SettlementFailed(_)
            | Event::ChannelActionFailed(_)
            | Event::ChainScanned(_)
            | Event::ChannelCloseRequested(_)
            | Event::CooperativeSettleAgreed(_)
            | Event::SettlementCorrected(_) => self.settlement_event(entry),
        }
        self.position = entry.seq;
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn checkpoint_state(&self) -> Vec<u8> {
        self.to_snapshot()
    }
}

/// Something that follows the accounts as the `balances` projection applies the journal (the
/// Explorer's accounts view), so that it needs no replay of its own. Called on the projection's
/// thread: it must not block.
pub trait Watcher: Send {
    /// After `balances` applied `entry`.
    fn applied(&mut self, entry: &JournalEntry, balances: &Balances);
    /// After a batch (`idle`: the projection caught up with the journal and is about to wait).
    fn batch_done(&mut self, balances: &Balances, idle: bool);
}

/// The `balances` projection with a [`Watcher`]: the same name, position and checkpoints.
pub struct Watched {
    pub balances: Balances,
    watcher: Box<dyn Watcher>,
}

impl Watched {
    pub fn new(balances: Balances, watcher: Box<dyn Watcher>) -> Watched {
        Watched { balances, watcher }
    }
}

impl Projection for Watched {
    fn name(&self) -> &'static str {
        self.balances.name()
    }

    fn apply(&mut self, entry: &JournalEntry) {
        self.balances.apply(entry);
        self.watcher.applied(entry, &self.balances);
    }

    fn position(&self) -> u64 {
        self.balances.position()
    }

    fn apply_batch(&mut self, entries: &[JournalEntry]) -> Result<(), super::ProjectionError> {
        for entry in entries {
            self.apply(entry);
        }
        self.watcher.batch_done(&self.balances, false);
        Ok(())
    }

    fn checkpoint_state(&self) -> Vec<u8> {
        self.balances.checkpoint_state()
    }

    fn on_idle(&mut self) {
        self.watcher.batch_done(&self.balances, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_any_flipped_bit_is_refused() {
        let mut balances = Balances::new();
        let (alice, bob) = (balances.peer_index("alice"), balances.peer_index("bob"));
        balances.prepared(1, alice, 500, bob, 250, 1_000);
        balances.prepared(2, alice, 70, bob, 35, 2_000);
        balances.fulfilled(1);
        let bytes = balances.to_snapshot();
        assert_eq!(Balances::from_snapshot(&bytes).unwrap(), balances);
        for index in 0..bytes.len() {
            let mut corrupted = bytes.clone();
            corrupted[index] ^= 0x04;
            assert!(Balances::from_snapshot(&corrupted).is_err(), "flip at byte {index}");
        }
    }

    /// A version 3 snapshot (written before `undelivered`) still restores, with nothing
    /// undelivered, and an undelivered Fulfill moves the sender's position back.
    #[test]
    fn version_3_snapshots_restore_and_undelivered_fulfills_are_uncharged() {
        #[derive(Serialize)]
        struct PeerBalanceV3Out {
            position: i128,
            reserved: u128,
        }
        #[derive(Serialize)]
        struct BalancesV3Out<'a> {
            peers: Vec<(String, PeerBalanceV3Out)>,
            index: &'a FxHashMap<String, usize>,
            pending: &'a FxHashMap<u64, Pending>,
            packet_id_max: u64,
            position: u64,
            settlement: &'a SettlementLedger,
        }
        let mut balances = Balances::new();
        let (alice, bob) = (balances.peer_index("alice"), balances.peer_index("bob"));
        balances.prepared(1, alice, 500, bob, 250, 1_000);
        balances.prepared(2, alice, 70, bob, 35, 2_000);
        balances.fulfilled(1);
        let old = BalancesV3Out {
            peers: balances
                .peers
                .iter()
                .map(|(peer, balance)| (peer.clone(), PeerBalanceV3Out { position: balance.position, reserved: balance.reserved }))
                .collect(),
            index: &balances.index,
            pending: &balances.pending,
            packet_id_max: balances.packet_id_max,
            position: balances.position,
            settlement: &balances.settlement,
        };
        let mut bytes = vec![SNAPSHOT_VERSION_V3, 0, 0, 0, 0];
        bincode::serde::encode_into_std_write(&old, &mut bytes, bincode::config::standard()).unwrap();
        let checksum = crc32fast::hash(&bytes[5..]);
        bytes[1..5].copy_from_slice(&checksum.to_be_bytes());
        assert_eq!(Balances::from_snapshot(&bytes).unwrap(), balances);

        balances.fulfilled(2);
        balances.undelivered(alice, 70);
        let alice_balance = balances.balance(alice);
        assert_eq!(alice_balance.position, 500);
        assert_eq!(alice_balance.undelivered, 70);
        assert_eq!(balances.balance(bob).position, -285, "the next hop is owed both packets");
        assert_eq!(Balances::from_snapshot(&balances.to_snapshot()).unwrap(), balances);
    }
}
