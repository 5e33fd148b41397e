//! The Explorer's index: a projection of the journal into sled trees that answer history
//! queries without scanning the journal.
//!
//! Its own sled database (`EXPLORER_INDEX_DIR`, default `<journal dir>/../explorer-index`), so
//! its writes never share a log, a cache or a flush with the journal. Every key ends with the
//! event's seq in big-endian, so each tree iterates in journal order and a page is a range:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `by_packet` | packet id (8) + seq (8) | |
//! | `by_condition` | condition (32) | packet id (8) |
//! | `by_peer` | peer id + 0xff + seq (8) | |
//! | `by_code` | reject code (3) + seq (8) | |
//! | `by_kind` | kind (1) + seq (8), every kind but the three packet events | |
//! | `by_second` | Unix second (8, offset) | first seq of that second (8) |
//! | `meta` | `position`, `counts` | last applied seq; event counts per kind, peer, code |
//!
//! Written in one sled batch per tree per journal batch, then `meta`: sled recovers a prefix of
//! its operations after a crash, so whatever `position` survived, every entry before it did
//! too, and the counts saved with it are exact for that prefix. Entries after it are written
//! again on resume (same keys, same values). Removing the directory rebuilds the index from the
//! journal at the next start; `journal replay --projection explorer` rebuilds it offline.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::live::Live;
use crate::journal::{Event, JournalEntry, SledStore};
use crate::projections::balances::Balances;
use crate::projections::{Projection, ProjectionError};

/// The projection's name: checkpoints, the lag gauge, `journal replay --projection`.
pub const NAME: &str = "explorer";

/// Kinds indexed in `by_kind`: the packet events are most of the journal and have their own
/// trees (a "types" filter on them scans the journal, where they are dense).
pub fn kind_byte(event: &Event) -> u8 {
    let kind = event.kind();
    Event::KINDS.iter().position(|name| *name == kind).unwrap_or(0) as u8
}

pub fn is_packet_kind(kind: &str) -> bool {
    matches!(kind, "PacketPrepared" | "PacketFulfilled" | "PacketRejected")
}

/// Event counts the index keeps beside its position, for `total` in `/api/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub events: u64,
    pub kinds: BTreeMap<String, u64>,
    pub peers: BTreeMap<String, u64>,
    pub codes: BTreeMap<String, u64>,
    pub packets: u64,
    /// The first seq the index holds (later than 1 when retention removed older frames before
    /// the index was built).
    pub first_seq: u64,
}

/// The sled trees, shared by the projection (writer) and the API (readers).
#[derive(Clone)]
pub struct IndexReader {
    pub by_packet: sled::Tree,
    pub by_condition: sled::Tree,
    pub by_peer: sled::Tree,
    pub by_code: sled::Tree,
    pub by_kind: sled::Tree,
    pub by_second: sled::Tree,
    meta: sled::Tree,
}

impl IndexReader {
    pub fn position(&self) -> u64 {
        self.meta.get(b"position").ok().flatten().map_or(0, |value| seq_from(&value))
    }

    pub fn counts(&self) -> Counts {
        self.meta
            .get(b"counts")
            .ok()
            .flatten()
            .and_then(|value| bincode::serde::decode_from_slice(&value, bincode::config::standard()).ok())
            .map(|(counts, _)| counts)
            .unwrap_or_default()
    }

    /// The packet id a condition (or, hashed, a fulfillment) belongs to.
    pub fn packet_of_condition(&self, condition: &[u8; 32]) -> Option<u64> {
        self.by_condition.get(condition).ok().flatten().map(|value| seq_from(&value))
    }

    /// The first seq at or after `ms`, from the per-second index (the journal's clock moves
    /// forward; a second the clock skipped back over resolves to where it first appeared).
    pub fn seq_at_or_after(&self, ms: i64) -> Option<u64> {
        let second = ms.div_euclid(1000);
        let (_, value) = self.by_second.range(second_key(second)..).next()?.ok()?;
        Some(seq_from(&value))
    }

    /// The last seq before `ms` (its second's first seq minus one), or None when `ms` is past
    /// every indexed second.
    pub fn seq_before(&self, ms: i64) -> Option<u64> {
        let second = ms.div_euclid(1000) + 1;
        let (_, value) = self.by_second.range(second_key(second)..).next()?.ok()?;
        Some(seq_from(&value).saturating_sub(1))
    }
}

pub struct ExplorerIndex {
    db: sled::Db,
    reader: IndexReader,
    position: u64,
    counts: Counts,
    last_second: Option<i64>,
    /// The accounts as the journal has them, for the live state and the peer of a packet's end.
    balances: Balances,
    live: Arc<Live>,
    /// Whether this thread has been given the lowest CPU priority yet.
    niced: bool,
}

impl ExplorerIndex {
    /// Opens the index in `dir`, creating it empty (it then rebuilds from the journal's first
    /// frame). The accounts start from the journal's newest snapshot at or before the index's
    /// position, replayed up to it.
    pub fn open(dir: &Path, store: &SledStore, live: Arc<Live>) -> anyhow::Result<ExplorerIndex> {
        use anyhow::Context;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the Explorer index directory {}", dir.display()))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(32 << 20)
            .flush_every_ms(Some(1000))
            .open()
            .with_context(|| format!("cannot open the Explorer index in {} (another node on it?)", dir.display()))?;
        let tree = |name: &str| db.open_tree(name).with_context(|| format!("Explorer index tree {name}"));
        let reader = IndexReader {
            by_packet: tree("by_packet")?,
            by_condition: tree("by_condition")?,
            by_peer: tree("by_peer")?,
            by_code: tree("by_code")?,
            by_kind: tree("by_kind")?,
            by_second: tree("by_second")?,
            meta: tree("meta")?,
        };
        let mut position = reader.position();
        let mut counts = reader.counts();
        let journal_last = store.last_seq()?;
        if position > journal_last {
            // An index from another journal (or a journal restored from an older copy).
            tracing::warn!(index = position, journal = journal_last, "the Explorer index is ahead of the journal; rebuilding it");
            for tree in [&reader.by_packet, &reader.by_condition, &reader.by_peer, &reader.by_code, &reader.by_kind, &reader.by_second, &reader.meta] {
                // (The same seven trees as `trees()`; the index is not built yet here.)
                tree.clear()?;
            }
            position = 0;
            counts = Counts::default();
        }
        let first_frame = store.first_frame_key()?.unwrap_or(1);
        if position + 1 < first_frame {
            // Retention removed what came before: the index starts where the journal does.
            tracing::info!(from = first_frame, "the Explorer index starts at the journal's first frame (older frames were removed by retention)");
            position = first_frame - 1;
            counts.first_seq = first_frame;
        }
        if counts.first_seq == 0 {
            counts.first_seq = position + 1;
        }
        let balances = balances_at(store, position)?;
        let last_second = reader.by_second.last()?.map(|(key, _)| second_from(&key));
        if position > 0 {
            tracing::info!(position, "Explorer index resumes");
        }
        Ok(ExplorerIndex { db, reader, position, counts, last_second, balances, live, niced: false })
    }

    /// Opens the index in `dir` emptied, to be written again from the journal's first event
    /// (`journal replay --projection explorer`). Fails if a node holds it.
    pub fn rebuild(dir: &Path, store: &SledStore, live: Arc<Live>, first_seq: u64) -> anyhow::Result<ExplorerIndex> {
        let mut index = ExplorerIndex::open(dir, store, live)?;
        for tree in index.trees() {
            tree.clear()?;
        }
        index.position = first_seq.saturating_sub(1);
        index.counts = Counts { first_seq: index.position + 1, ..Counts::default() };
        index.last_second = None;
        index.balances = balances_at(store, index.position)?;
        Ok(index)
    }

    fn trees(&self) -> [&sled::Tree; 7] {
        let r = &self.reader;
        [&r.by_packet, &r.by_condition, &r.by_peer, &r.by_code, &r.by_kind, &r.by_second, &r.meta]
    }

    pub fn reader(&self) -> IndexReader {
        self.reader.clone()
    }

    /// Flushes the index at a stop (a crash loses only what the next start writes again).
    pub fn close(self) {
        if let Err(error) = self.db.flush() {
            tracing::warn!(%error, "flushing the Explorer index failed");
        }
    }

    fn write(&mut self, entries: &[JournalEntry]) -> Result<(), sled::Error> {
        let mut packet = sled::Batch::default();
        let mut condition = sled::Batch::default();
        let mut peer = sled::Batch::default();
        let mut code = sled::Batch::default();
        let mut kind = sled::Batch::default();
        let mut second = sled::Batch::default();
        let mut live = self.live.lock();
        for entry in entries {
            if entry.seq <= self.position {
                continue;
            }
            let seq = entry.seq.to_be_bytes();
            let mut peers: [Option<String>; 2] = [None, None];
            match &entry.event {
                Event::PacketPrepared(prepared) => {
                    packet.insert(&key2(&prepared.packet_id.to_be_bytes(), &seq)[..], &[]);
                    condition.insert(&prepared.condition[..], &prepared.packet_id.to_be_bytes());
                    peers = [Some(prepared.from_peer.clone()), Some(prepared.to_peer.clone())];
                    self.counts.packets += 1;
                }
                Event::PacketFulfilled(fulfilled) => {
                    packet.insert(&key2(&fulfilled.packet_id.to_be_bytes(), &seq)[..], &[]);
                    if let Some((from, to)) = self.balances.open_packet_peers(fulfilled.packet_id) {
                        peers = [Some(from.to_owned()), Some(to.to_owned())];
                    }
                }
                Event::PacketRejected(rejected) => {
                    packet.insert(&key2(&rejected.packet_id.to_be_bytes(), &seq)[..], &[]);
                    code.insert(&key2(&rejected.code, &seq)[..], &[]);
                    *self.counts.codes.entry(String::from_utf8_lossy(&rejected.code).into_owned()).or_default() += 1;
                    let to = match self.balances.open_packet_peers(rejected.packet_id) {
                        Some((_, to)) if rejected.prepared => Some(to.to_owned()),
                        _ => None,
                    };
                    if !rejected.prepared {
                        self.counts.packets += 1;
                    }
                    peers = [Some(rejected.from_peer.clone()), to];
                }
                other => {
                    kind.insert(&key2(&[kind_byte(other)], &seq)[..], &[]);
                    peers[0] = event_peer(other, &self.balances).map(str::to_owned);
                }
            }
            if peers[0] == peers[1] {
                peers[1] = None;
            }
            for name in peers.iter().flatten() {
                peer.insert(peer_key(name, entry.seq), &[]);
                *self.counts.peers.entry(name.clone()).or_default() += 1;
            }
            let entry_second = entry.timestamp_ms.div_euclid(1000);
            if self.last_second.is_none_or(|last| entry_second > last) {
                second.insert(&second_key(entry_second)[..], &seq);
                self.last_second = Some(entry_second);
            }
            *self.counts.kinds.entry(entry.event.kind().to_owned()).or_default() += 1;
            self.counts.events += 1;
            live.apply(entry, &self.balances, [peers[0].as_deref(), peers[1].as_deref()]);
            if entry.seq > self.balances.position() {
                self.balances.apply(entry);
            }
            live.after_balances(entry, &self.balances);
            self.position = entry.seq;
        }
        live.set_position(self.position);
        live.refresh_accounts(&self.balances);
        drop(live);
        self.reader.by_packet.apply_batch(packet)?;
        self.reader.by_condition.apply_batch(condition)?;
        self.reader.by_peer.apply_batch(peer)?;
        self.reader.by_code.apply_batch(code)?;
        self.reader.by_kind.apply_batch(kind)?;
        self.reader.by_second.apply_batch(second)?;
        let counts = bincode::serde::encode_to_vec(&self.counts, bincode::config::standard()).unwrap_or_default();
        let mut meta = sled::Batch::default();
        meta.insert("counts", counts);
        meta.insert("position", &self.position.to_be_bytes());
        self.reader.meta.apply_batch(meta)
    }
}

impl Projection for ExplorerIndex {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, entry: &JournalEntry) {
        if let Err(error) = self.write(std::slice::from_ref(entry)) {
            tracing::warn!(%error, "Explorer index write failed");
        }
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn apply_batch(&mut self, entries: &[JournalEntry]) -> Result<(), ProjectionError> {
        if !self.niced {
            self.niced = true;
            lowest_priority();
        }
        let before = self.position;
        self.write(entries).map_err(|error| {
            ProjectionError { message: format!("Explorer index write failed after seq {before}: {error}") }
        })
    }
}

/// Gives the calling thread (the index's runner) the lowest CPU priority (nice 19): on a busy
/// node the index falls behind instead of taking CPU from the packet path, and catches up when
/// there is room. Linux applies `setpriority` to one thread when given its thread id.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls with no pointers; failure (not permitted) only leaves the
        // priority as it was.
        let result = unsafe {
            let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, thread, 19)
        };
        if result != 0 {
            tracing::debug!("could not lower the Explorer index thread's priority");
        }
    }
}

/// The peer a non-packet event is about, if any.
fn event_peer<'a>(event: &'a Event, balances: &'a Balances) -> Option<&'a str> {
    match event {
        Event::PeerConnected { peer, .. } | Event::PeerDisconnected { peer, .. } => Some(peer),
        Event::SettlementTriggered(event) => Some(&event.peer),
        Event::ClaimSent(event) => Some(&event.peer),
        Event::ClaimReceived(event) => Some(&event.peer),
        Event::SettlementCompleted(event) => Some(&event.peer),
        Event::SettlementFailed(event) => Some(&event.peer),
        Event::ChannelActionFailed(event) => Some(&event.peer),
        Event::ChannelCloseRequested(event) => Some(&event.peer),
        Event::CooperativeSettleAgreed(event) => Some(&event.peer),
        Event::SettlementCorrected(event) => Some(&event.peer),
        Event::ChannelObserved(event) => balances.settlement().channel(&event.channel_id).map(|channel| channel.peer.as_str()),
        _ => None,
    }
}

/// The accounts at `position`: the journal's newest snapshot at or before it, replayed to it.
fn balances_at(store: &SledStore, position: u64) -> anyhow::Result<Balances> {
    let mut balances = match store.latest_snapshot_at_most(position)? {
        Some((seq, bytes)) => match Balances::from_snapshot(&bytes) {
            Ok(mut balances) => {
                balances.set_position(seq);
                balances
            }
            Err(_) => Balances::new(),
        },
        None => Balances::new(),
    };
    if balances.position() < position {
        for entry in store.entries_from(balances.position() + 1) {
            let entry = entry?;
            if entry.seq > position {
                break;
            }
            balances.apply(&entry);
        }
    }
    Ok(balances)
}

fn key2(prefix: &[u8], seq: &[u8; 8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(seq);
    key
}

pub fn peer_key(peer: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(peer.len() + 9);
    key.extend_from_slice(peer.as_bytes());
    key.push(0xff);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The prefix of a peer's keys (peer ids never hold 0xff, which is not UTF-8).
pub fn peer_prefix(peer: &str) -> Vec<u8> {
    let mut key = peer.as_bytes().to_vec();
    key.push(0xff);
    key
}

/// Seconds as an order-preserving key (the sign bit flipped).
fn second_key(second: i64) -> [u8; 8] {
    ((second as u64) ^ (1 << 63)).to_be_bytes()
}

fn second_from(key: &[u8]) -> i64 {
    (seq_from(key) ^ (1 << 63)) as i64
}

/// The big-endian u64 at the end of a key (or a whole 8-byte value).
pub fn seq_from(bytes: &[u8]) -> u64 {
    let tail: [u8; 8] = bytes[bytes.len().saturating_sub(8)..].try_into().unwrap_or([0; 8]);
    u64::from_be_bytes(tail)
}
