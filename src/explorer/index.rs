//! The Explorer's index: a projection of the journal that answers history queries without
//! scanning the journal.
//!
//! It lives in its own directory (`EXPLORER_INDEX_DIR`, default `<journal dir>/../explorer-index`),
//! so its writes never share a log, a cache or a flush with the journal. What grows with every
//! packet is kept in two plain files, written with one positioned write per 4 KiB and never read
//! back on the write path: sled paid several microseconds per key and its IO threads took CPU
//! from the packet path (the one cost of the index that the W=256 runs could see). The rest, a
//! few keys a second, is in a sled database in the same directory.
//!
//! | where | key | value |
//! |---|---|---|
//! | `packets.bin` | offset packet id × 16 | (seq of the Prepare, seq of the end), big-endian, 0 where none (a sparse file: ids are consecutive) |
//! | `conditions.bin` | runs, one after another | (condition's first 8 bytes, packet id) pairs, sorted within a run, in blocks of 256 (4 KiB) |
//! | sled `postings` | dimension (`p` peer, `c` reject code, `k` event kind) + name + 0xff + first seq (8) | up to [`CHUNK_SEQS`] seqs, ascending: the first in 8 bytes, then varint deltas, a run of consecutive seqs as 0 and its length (`chunk_value`) |
//! | sled `seconds` | Unix second (8, order-preserving) | first seq of that second (8) |
//! | sled `undelivered` | packet id (8) | seq of its `FulfillUndelivered` |
//! | sled `runs` | the run's offset in `conditions.bin` (8) | its size, the first key of each of its blocks, the position it was written at; written once, at the first durable point after the run |
//! | sled `meta` | `position`, `counts`, `runs` | last applied seq; event counts per kind, peer, code; where the next run goes and what the runs cover (a few bytes however many runs there are) |
//!
//! Conditions (random keys, the worst case for a B-tree) are gathered in memory and written as
//! sorted runs of 65,536 or more (an LSM's first level): a lookup binary-searches each run's block
//! index and reads one or two blocks per run.
//!
//! Event kinds are posted except the three packet events, which are most of the journal (a
//! "types" filter on them reads the journal's frames, where they are dense). A chunk is written
//! again after each batch that added to it; it closes at [`CHUNK_SEQS`] entries and the next
//! starts at the next seq.
//!
//! Readers see the index as of its last write (every [`PERSIST_EVENTS`] events, or
//! [`PERSIST_INTERVAL`] after the last one when traffic pauses): the position, counts and runs
//! they use are published in memory. The durable `meta` is written at most every
//! [`DURABLE_INTERVAL`], and only after both files are synced, so whatever `position` survives a
//! crash or a power loss, everything before it did too. On resume, what was written past that
//! position is written again, to the same places, with the same content (slots are fixed, a
//! condition run starts where the last durable one ended, posting chunks close at the same
//! seqs). Removing the directory rebuilds the index at the next start; `journal replay
//! --projection explorer` rebuilds it offline.
//!
//! Once retention removes the journal's oldest frames, each sync also punches the packet slots
//! and condition runs that name only removed events out of the two files ([`ExplorerIndex::trim`]),
//! and removes the posting chunks and seconds that name only removed events from sled: they
//! would otherwise grow by 24 bytes a packet, and a few bytes an event, for as long as the node
//! runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::live::{Live, OpenPacket, PeerTotals};
use crate::journal::{Event, JournalEntry, SledStore};
use crate::projections::balances::Balances;
use crate::projections::{Projection, ProjectionError};

/// The projection's name: checkpoints, the lag gauge, `journal replay --projection`.
pub const NAME: &str = "explorer";

/// Seqs in one posting chunk (4 KiB).
pub const CHUNK_SEQS: usize = 512;

/// Packets per chunk of `packets.bin` (the unit the writer keeps in memory and writes), and the
/// bytes of one packet's slot.
const PACKETS_PER_KEY: u64 = 256;
const PACKET_SLOT: usize = 16;
const PACKET_CHUNK: usize = PACKETS_PER_KEY as usize * PACKET_SLOT;

/// Conditions gathered before they are written as one sorted run.
const RUN_CONDITIONS: usize = 65_536;
const RUN_BLOCK: usize = 256;
/// Bytes of one condition pair in `conditions.bin`: narrow (the usual) or wide (see
/// [`RunIndex::narrow_base`]).
const NARROW_PAIR: usize = 8;
const WIDE_PAIR: usize = 16;

/// The index writes what changed every this many events, or this long after its last write
/// once the runner is idle (queries see the index as of its last write).
const PERSIST_EVENTS: usize = 65_536;

/// The layout of the index's values; an index written with another is rebuilt at open.
/// 2: posting chunks delta-encoded ([`chunk_value`]). 3: packets and conditions in plain files.
/// 4: each run's index a key of its own ([`RunsMeta`]). 5: narrow condition pairs, 8 bytes
/// instead of 16 ([`RunIndex::narrow_base`]), and runs of consecutive seqs in posting chunks.
const INDEX_FORMAT: u8 = 5;
const PERSIST_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// How often at most the index syncs its files and writes its durable `meta`: a crash costs the
/// next start at most this much replay, and the disk sees one sync a second, not one a write.
const DURABLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Packet chunks `trim` reads and frees at most per call (64 MiB of slots).
const TRIM_CHUNKS_MAX: u64 = 16_384;

/// Posting chunks `trim_trees` removes at most per call (about 8 million events' worth).
const TRIM_KEYS_MAX: usize = 16_384;

const PACKETS_FILE: &str = "packets.bin";
const CONDITIONS_FILE: &str = "conditions.bin";

const POLL_MS: u64 = 10;

/// How often the peers' totals are handed to the live state while events flow.
const TOTALS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

use super::live::is_packet_event;

/// Packet chunks kept in memory between batches (the newest; an older one is read again when
/// a late end arrives for it).
const PACKET_CHUNKS_CACHED: usize = 64;

/// The kind's index in [`Event::KINDS`].
pub fn kind_byte(event: &Event) -> u8 {
    let kind = event.kind();
    Event::KINDS.iter().position(|name| *name == kind).unwrap_or(0) as u8
}

pub fn is_packet_kind(kind: &str) -> bool {
    matches!(kind, "PacketPrepared" | "PacketFulfilled" | "PacketRejected")
}

/// What a posting list is about.
#[derive(Debug, Clone, Copy)]
pub enum Dimension<'a> {
    Peer(&'a str),
    Code(&'a [u8; 3]),
    Kind(u8),
}

impl Dimension<'_> {
    /// The key prefix of its chunks: tag, name, 0xff (never in a name: peer ids are ASCII).
    pub fn prefix(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(16);
        self.write_prefix(&mut key);
        key
    }

    fn write_prefix(&self, key: &mut Vec<u8>) {
        match self {
            Dimension::Peer(peer) => {
                key.push(b'p');
                key.extend_from_slice(peer.as_bytes());
            }
            Dimension::Code(code) => {
                key.push(b'c');
                key.extend_from_slice(&code[..]);
            }
            Dimension::Kind(kind) => {
                key.push(b'k');
                key.push(*kind);
            }
        }
        key.push(0xff);
    }
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

/// The index's files and trees, shared by the projection (writer) and the API (readers).
#[derive(Clone)]
pub struct IndexReader {
    postings: sled::Tree,
    packets: Arc<File>,
    conditions: Arc<File>,
    seconds: sled::Tree,
    meta: sled::Tree,
    /// What readers go by: the position, counts and runs as of the writer's last write.
    published: Arc<ArcSwap<Published>>,
    /// Packet id → seq of its `FulfillUndelivered` (rare: a third event for a packet).
    undelivered: sled::Tree,
    /// Conditions not yet in a run (shared with the writer): first 8 bytes → packet id.
    pending: PendingConditions,
}

/// Conditions not yet in a run: first 8 bytes and packet id, shared by the writer and readers.
type PendingConditions = Arc<std::sync::Mutex<Vec<([u8; 8], u64)>>>;

/// The condition runs written so far. Each run's block index is shared (`Arc`), so handing
/// readers the runs copies a pointer a run, never the keys.
#[derive(Debug, Clone, Default)]
struct Runs {
    runs: Vec<Arc<RunIndex>>,
    /// Every condition of a Prepare at or below this seq is in a run.
    through_seq: u64,
    /// Where the next run goes in `conditions.bin`: past every run written, including those
    /// trimmed since (a reader may still hold them), so offsets only grow.
    end: u64,
}

/// What `meta` keeps of the runs: a few bytes, however many runs there are. Each run's own
/// index is a key of the `runs` tree, written once; `meta` used to hold them all and was
/// rewritten every second, a write that grew with every run (~2 KiB each, one every 65,536
/// Prepares) for as long as the node ran.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct RunsMeta {
    through_seq: u64,
    end: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RunIndex {
    /// Where the run starts in `conditions.bin`, and its pairs.
    offset: u64,
    pairs: u64,
    /// Each block's first key, as the run stores keys ([`RunIndex::key`]).
    first_keys: Vec<[u8; 8]>,
    /// The position when it was written: it holds conditions of Prepares up to this seq.
    through_seq: u64,
    /// The run's lowest packet id when its pairs are narrow: 8 bytes each, the condition's
    /// first 4 bytes and the packet id's distance from this base (u32, both big-endian). None:
    /// 16 bytes each, the first 8 bytes and the packet id, for a run whose ids span more than
    /// a u32 (billions of refused packets between two Prepares).
    narrow_base: Option<u64>,
}

impl RunIndex {
    fn pair_len(&self) -> u64 {
        if self.narrow_base.is_some() { NARROW_PAIR as u64 } else { WIDE_PAIR as u64 }
    }

    fn end(&self) -> u64 {
        self.offset + self.pairs * self.pair_len()
    }

    /// A condition's first 8 bytes as this run keys them (narrow: the first 4, then zeros), so
    /// keys compare in the run's order.
    fn key(&self, prefix: &[u8; 8]) -> [u8; 8] {
        let mut key = *prefix;
        if self.narrow_base.is_some() {
            key[4..].fill(0);
        }
        key
    }

    /// The key and packet id of one stored pair.
    fn pair(&self, bytes: &[u8]) -> ([u8; 8], u64) {
        match self.narrow_base {
            Some(base) => {
                let mut key = [0u8; 8];
                key[..4].copy_from_slice(&bytes[..4]);
                (key, base + u64::from(u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes"))))
            }
            None => (bytes[..8].try_into().expect("8 bytes"), seq_from(&bytes[8..16])),
        }
    }
}

/// The runs `meta` names, read from the `runs` tree; a run written after the last durable
/// `meta` (past its `end`) is removed: the replay from `position` writes it again.
fn load_runs(tree: &sled::Tree, meta: RunsMeta) -> anyhow::Result<Runs> {
    let mut runs = Runs { runs: Vec::new(), through_seq: meta.through_seq, end: meta.end };
    let mut stale = sled::Batch::default();
    for item in tree.iter() {
        let (key, value) = item?;
        match decode::<RunIndex>(Some(&value)) {
            Some(run) if run.end() <= meta.end && run.offset == seq_from(&key) => runs.runs.push(Arc::new(run)),
            _ => stale.remove(key),
        }
    }
    tree.apply_batch(stale)?;
    Ok(runs)
}

/// The index as readers see it (see [`IndexReader::published`]).
#[derive(Debug, Clone, Default)]
struct Published {
    position: u64,
    counts: Counts,
    runs: Runs,
}

impl IndexReader {
    pub fn position(&self) -> u64 {
        self.published.load().position
    }

    pub fn counts(&self) -> Counts {
        self.published.load().counts.clone()
    }

    /// The packet ids whose condition starts as `condition` does (its first 8 bytes: the
    /// caller checks the whole condition against the packet's Prepare), newest run first.
    pub fn packets_of_condition(&self, condition: &[u8; 32]) -> Vec<u64> {
        // A narrow run keys the first 4 bytes only: more packets may match, and the caller
        // drops them on checking the whole condition.
        let prefix: [u8; 8] = condition[..8].try_into().expect("8 bytes");
        // Appended in journal order (a push per Prepare is cheaper than a map insert), so a
        // lookup scans them: at most RUN_CONDITIONS pairs, well under a millisecond.
        let mut found: Vec<u64> = {
            let pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.iter().rev().filter(|(known, _)| *known == prefix).map(|(_, packet)| *packet).collect()
        };
        let published = self.published.load();
        let mut value = vec![0u8; RUN_BLOCK * WIDE_PAIR];
        for run_index in published.runs.runs.iter().rev() {
            let key = run_index.key(&prefix);
            let pair_len = run_index.pair_len();
            // The last block whose first key is at or below the prefix holds it, or (when it
            // starts a block) the block before may end with it too.
            let last = run_index.first_keys.partition_point(|first| *first <= key);
            if last == 0 {
                continue;
            }
            for block in (last.saturating_sub(2)..last).rev() {
                let first_pair = block as u64 * RUN_BLOCK as u64;
                let pairs = (run_index.pairs.saturating_sub(first_pair)).min(RUN_BLOCK as u64) as usize;
                let value = &mut value[..pairs * pair_len as usize];
                if self.conditions.read_exact_at(value, run_index.offset + first_pair * pair_len).is_err() {
                    continue;
                }
                for pair in value.chunks_exact(pair_len as usize) {
                    let (stored, packet_id) = run_index.pair(pair);
                    if stored == key {
                        found.push(packet_id);
                    }
                }
            }
        }
        found
    }

    /// The seqs of a packet's events (its Prepare and its end), at or below the index's
    /// position; empty for a packet the index does not hold.
    pub fn packet_seqs(&self, packet_id: u64) -> Vec<u64> {
        let position = self.position();
        let mut pair = [0u8; PACKET_SLOT];
        let Some(offset) = packet_id.checked_mul(PACKET_SLOT as u64) else { return Vec::new() };
        if self.packets.read_exact_at(&mut pair, offset).is_err() {
            return Vec::new();
        }
        let mut seqs = vec![seq_from(&pair[..8]), seq_from(&pair[8..])];
        if let Some(seq) = self.undelivered.get(packet_id.to_be_bytes()).ok().flatten() {
            seqs.push(seq_from(&seq));
        }
        seqs.retain(|seq| *seq != 0 && *seq <= position);
        seqs
    }

    /// The seqs posted under `dimension` in `lower..=upper`, newest first.
    pub fn postings_rev(&self, dimension: Dimension, lower: u64, upper: u64) -> impl Iterator<Item = u64> + use<> {
        let prefix = dimension.prefix();
        let mut high = prefix.clone();
        high.extend_from_slice(&upper.to_be_bytes());
        let chunks = self.postings.range(prefix.clone()..=high).rev();
        let mut chunks = chunks.filter_map(|item| item.ok());
        let mut current: Vec<u64> = Vec::new();
        let mut done = false;
        std::iter::from_fn(move || loop {
            if let Some(seq) = current.pop() {
                if seq > upper {
                    continue;
                }
                if seq < lower {
                    done = true;
                    current.clear();
                    return None;
                }
                return Some(seq);
            }
            if done {
                return None;
            }
            let (_, value) = chunks.next()?;
            current = chunk_seqs(&value);
        })
    }

    /// The first seq at or after `ms`, from the per-second index (the journal's clock moves
    /// forward; a second the clock skipped back over resolves to where it first appeared).
    pub fn seq_at_or_after(&self, ms: i64) -> Option<u64> {
        let second = ms.div_euclid(1000);
        let (_, value) = self.seconds.range(second_key(second)..).next()?.ok()?;
        Some(seq_from(&value))
    }

    /// The last seq before `ms`'s next second (its first seq minus one), or None when `ms` is
    /// past every indexed second.
    pub fn seq_before(&self, ms: i64) -> Option<u64> {
        let second = ms.div_euclid(1000) + 1;
        let (_, value) = self.seconds.range(second_key(second)..).next()?.ok()?;
        Some(seq_from(&value).saturating_sub(1))
    }
}

/// A peer the index has seen (see `ExplorerIndex::peers`).
struct PeerSlot {
    name: String,
    tail: usize,
    count: u64,
    totals: PeerTotals,
}

/// A prepared packet waiting for its end, in the `open` ring (`packet_id` 0: a free slot).
#[derive(Clone, Copy)]
struct OpenSlot {
    packet_id: u64,
    from: u32,
    to: u32,
    packet: OpenPacket,
}

impl OpenSlot {
    const EMPTY: OpenSlot = OpenSlot { packet_id: 0, from: 0, to: 0, packet: OpenPacket { prepared_ms: 0, amount_in: 0, amount_out: 0 } };
}

/// Slots of the open-packet ring: far more than the packets a node has in flight (8,192 per
/// pipeline by default), and 2.5 MiB.
const OPEN_RING: usize = 1 << 16;

/// Open packets kept beside the ring before they are forgotten (they only feed the live view's
/// latency and totals; the journal has them all).
const OPEN_OVERFLOW_MAX: usize = 1 << 20;

/// The open chunk of one posting list.
struct Tail {
    first: u64,
    seqs: Vec<u64>,
    dirty: bool,
}

pub struct ExplorerIndex {
    /// `explorer-bench` only: the slot being counted, and its events so far.
    #[cfg(feature = "explorer-bench")]
    bench_slot: Option<(i64, u64)>,
    db: sled::Db,
    reader: IndexReader,
    position: u64,
    counts: Counts,
    last_second: Option<i64>,
    /// The open chunk of each posting list touched since the start, with its key prefix.
    tails: Vec<(Vec<u8>, Tail)>,
    /// Where each key prefix's tail is in `tails`.
    tail_index: FxHashMap<Vec<u8>, usize>,
    /// The peers seen, each with its posting list's place in `tails`, its events since the last
    /// persist and its totals; `peer_slots` finds one by name (one map lookup per peer per
    /// event instead of four, and none for a packet's end, whose peers come from `open`).
    peers: Vec<PeerSlot>,
    peer_slots: FxHashMap<String, usize>,
    /// Packets prepared and not yet ended: a ring indexed by packet id (ids are consecutive, so
    /// a packet's slot is free long before the id comes round again), and a map for the rare
    /// packet still open when its slot is needed again.
    open: Vec<OpenSlot>,
    open_overflow: FxHashMap<u64, OpenSlot>,
    /// Events per kind since the last persist (kinds are `&'static str`s: compared by address).
    kind_counts: Vec<(&'static str, u64)>,
    /// Reused for posting keys (no allocation per event).
    key_buffer: Vec<u8>,
    /// What `persist` writes to the files, kept between calls: a fresh buffer of half a
    /// megabyte each time took new pages from the OS (zeroed by the kernel) on every persist.
    write_buffer: Vec<u8>,
    /// A run's conditions in order, and the bucket counts that put them there (kept, as above).
    run_sorted: Vec<([u8; 8], u64)>,
    run_buckets: Vec<u32>,
    /// Packet chunks evicted from `packet_chunks`, reused for new ones (same reason).
    spare_chunks: Vec<Vec<u8>>,
    /// The journal, to learn how far retention has removed it (see [`ExplorerIndex::trim`]).
    store: SledStore,
    /// `packets.bin` holds nothing below this chunk (punched out by `trim`), and the journal's
    /// first seq when `trim` last ran.
    packets_trimmed_below: u64,
    trimmed_for: u64,
    /// The cutoff the postings and seconds were last trimmed for, and where an unfinished trim
    /// resumes (see [`ExplorerIndex::trim_trees`]).
    trees_trimmed_for: u64,
    trees_trim_from: Vec<u8>,
    /// [`TRIM_KEYS_MAX`] (smaller in a test of the resume).
    trim_keys_max: usize,
    /// Chunks that filled during the current batch: written with it.
    sealed: Vec<(Vec<u8>, Vec<u8>)>,
    /// Seconds seen since the last persist, with their first seq.
    seconds: Vec<(i64, u64)>,
    /// Events applied since the last persist, and when that was.
    unpersisted: usize,
    persisted_at: std::time::Instant,
    /// Chunks of `packets.bin` in memory, and whether this batch changed them.
    packet_chunks: BTreeMap<u64, (Vec<u8>, bool)>,
    /// Every chunk of `packets.bin` that was ever written is below this id.
    packet_chunks_written_below: u64,
    /// The condition runs written (the durable `meta` may lag them by [`DURABLE_INTERVAL`]).
    runs: Runs,
    /// Each run's index, by its offset (see [`RunsMeta`]).
    runs_tree: sled::Tree,
    /// The runs that start before this offset are in `runs_tree`.
    runs_stored_end: u64,
    /// When the files were last synced and `meta` written, and the position it holds.
    durable_at: std::time::Instant,
    durable_position: u64,
    /// The accounts as of the index's start, then its settlement events: the peers of a packet
    /// prepared before the start, and of a channel (the live accounts view is kept by the
    /// `balances` projection, see [`super::live::AccountsWatcher`]).
    balances: Balances,
    /// When the peers' totals were last handed to the live state.
    totals_published: std::time::Instant,
    live: Arc<Live>,
    /// Whether this thread has been given the lowest CPU priority yet.
    niced: bool,
    /// The live view's share of the batch being applied (kept to reuse its buffer).
    live_batch: super::live::LiveBatch,
    /// This index's thread, for the starvation watchdog ([`IndexThread`]).
    thread: Arc<IndexThread>,
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
            // No periodic fsync: the index is rebuilt from the journal past its position (a
            // recovered sled keeps a prefix of its writes, `meta` last in each persist).
            .flush_every_ms(None)
            .open()
            .with_context(|| format!("cannot open the Explorer index in {} (another node on it?)", dir.display()))?;
        let tree = |name: &str| db.open_tree(name).with_context(|| format!("Explorer index tree {name}"));
        let file = |name: &str| {
            let path = dir.join(name);
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map(Arc::new)
                .with_context(|| format!("cannot open the Explorer index file {}", path.display()))
        };
        let meta = tree("meta")?;
        let position = meta.get(b"position")?.map_or(0, |value| seq_from(&value));
        let counts: Counts = decode(meta.get(b"counts")?.as_deref()).unwrap_or_default();
        let runs_meta: RunsMeta = decode(meta.get(b"runs")?.as_deref()).unwrap_or_default();
        let runs_tree = tree("runs")?;
        let runs = load_runs(&runs_tree, runs_meta)?;
        let reader = IndexReader {
            postings: tree("postings")?,
            packets: file(PACKETS_FILE)?,
            conditions: file(CONDITIONS_FILE)?,
            seconds: tree("seconds")?,
            meta,
            undelivered: tree("undelivered")?,
            published: Arc::new(ArcSwap::from_pointee(Published { position, counts: counts.clone(), runs: runs.clone() })),
            pending: Arc::default(),
        };
        let mut index = ExplorerIndex {
            position,
            counts,
            runs,
            durable_at: std::time::Instant::now(),
            durable_position: position,
            last_second: reader.seconds.last()?.map(|(key, _)| second_from(&key)),
            db,
            runs_tree,
            runs_stored_end: runs_meta.end,
            reader,
            tails: Vec::new(),
            tail_index: FxHashMap::default(),
            peers: Vec::new(),
            peer_slots: FxHashMap::default(),
            open: vec![OpenSlot::EMPTY; OPEN_RING],
            open_overflow: FxHashMap::default(),
            kind_counts: Vec::new(),
            sealed: Vec::new(),
            key_buffer: Vec::new(),
            write_buffer: Vec::new(),
            run_sorted: Vec::new(),
            run_buckets: Vec::new(),
            spare_chunks: Vec::new(),
            store: store.clone(),
            packets_trimmed_below: 0,
            trimmed_for: 0,
            trees_trimmed_for: 0,
            trees_trim_from: Vec::new(),
            trim_keys_max: TRIM_KEYS_MAX,
            packet_chunks: BTreeMap::new(),
            packet_chunks_written_below: 0,
            seconds: Vec::new(),
            unpersisted: 0,
            persisted_at: std::time::Instant::now(),
            balances: Balances::new(),
            totals_published: std::time::Instant::now(),
            live,
            niced: false,
            #[cfg(feature = "explorer-bench")]
            bench_slot: None,
            live_batch: Default::default(),
            thread: Arc::default(),
        };
        // An older index kept packets and conditions in sled trees: dropped with the rebuild.
        for old in ["packets", "conditions"] {
            if index.db.tree_names().iter().any(|name| &name[..] == old.as_bytes()) {
                index.db.drop_tree(old)?;
            }
        }
        let format = index.reader.meta.get(b"format")?.map(|value| value.to_vec());
        if format.as_deref() != Some(&[INDEX_FORMAT][..]) {
            if index.position > 0 {
                tracing::info!(format = INDEX_FORMAT, "the Explorer index was written by another version; rebuilding it");
            }
            index.clear(0)?;
            index.reader.meta.insert("format", &[INDEX_FORMAT])?;
        }
        let journal_last = store.last_seq()?;
        if index.position > journal_last {
            // An index from another journal (or a journal restored from an older copy).
            tracing::warn!(index = index.position, journal = journal_last, "the Explorer index is ahead of the journal; rebuilding it");
            index.clear(0)?;
        }
        let first_frame = store.first_frame_key()?.unwrap_or(1);
        if index.position + 1 < first_frame {
            // Retention removed what came before: the index starts where the journal does.
            tracing::info!(from = first_frame, "the Explorer index starts at the journal's first frame (older frames were removed by retention)");
            index.clear(first_frame)?;
        }
        index.balances = balances_at(store, index.position)?;
        let packets_len = index.reader.packets.metadata()?.len();
        index.packet_chunks_written_below = packets_len.div_ceil(PACKET_CHUNK as u64);
        index.packets_trimmed_below = first_data(&index.reader.packets)?.map_or(0, |offset| offset / PACKET_CHUNK as u64);
        index.reload_pending(store)?;
        index.publish();
        if index.position > 0 {
            tracing::info!(position = index.position, "Explorer index resumes");
        }
        Ok(index)
    }

    /// Opens the index in `dir` emptied, to be written again from `first_seq` on
    /// (`journal replay --projection explorer`). Fails if a node holds it.
    pub fn rebuild(dir: &Path, store: &SledStore, live: Arc<Live>, first_seq: u64) -> anyhow::Result<ExplorerIndex> {
        let mut index = ExplorerIndex::open(dir, store, live)?;
        index.clear(first_seq)?;
        index.balances = balances_at(store, index.position)?;
        Ok(index)
    }

    /// The conditions of Prepares after the last run, up to the position, gathered again from
    /// the journal (they were in memory only).
    fn reload_pending(&mut self, store: &SledStore) -> anyhow::Result<()> {
        let through_seq = self.runs.through_seq;
        let mut pending = self.reader.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.clear();
        if through_seq < self.position {
            for entry in store.entries_from(through_seq + 1) {
                let entry = entry?;
                if entry.seq > self.position {
                    break;
                }
                if let Event::PacketPrepared(prepared) = &entry.event {
                    pending.push((prepared.condition[..8].try_into().expect("8 bytes"), prepared.packet_id));
                }
            }
        }
        Ok(())
    }

    /// Writes the gathered conditions as the next sorted run, if there are enough of them, at
    /// the end of the last run (past which the file holds nothing a reader uses).
    fn write_run(&mut self) -> std::io::Result<()> {
        let mut pending = self.reader.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() < RUN_CONDITIONS {
            return Ok(());
        }
        // Sorted into a kept buffer, and `pending` cleared below: both keep their capacity
        // (growing a new one to RUN_CONDITIONS pairs took fresh pages from the OS every run).
        sort_conditions(&pending, &mut self.run_sorted, &mut self.run_buckets);
        let pairs = &self.run_sorted;
        let offset = self.runs.end;
        let bytes = &mut self.write_buffer;
        bytes.clear();
        // Narrow pairs (half the bytes) when every packet id is within a u32 of the lowest:
        // always, unless billions of refused packets came between two of the run's Prepares.
        let low = pairs.iter().map(|(_, packet)| *packet).min().unwrap_or(0);
        let high = pairs.iter().map(|(_, packet)| *packet).max().unwrap_or(0);
        let narrow_base = (high - low <= u64::from(u32::MAX)).then_some(low);
        let mut run = RunIndex { offset, pairs: pairs.len() as u64, first_keys: Vec::with_capacity(pairs.len() / RUN_BLOCK + 1), through_seq: self.position, narrow_base };
        for block in pairs.chunks(RUN_BLOCK) {
            run.first_keys.push(run.key(&block[0].0));
            for (prefix, packet) in block {
                match narrow_base {
                    Some(base) => {
                        bytes.extend_from_slice(&prefix[..4]);
                        bytes.extend_from_slice(&((packet - base) as u32).to_be_bytes());
                    }
                    None => {
                        bytes.extend_from_slice(prefix);
                        bytes.extend_from_slice(&packet.to_be_bytes());
                    }
                }
            }
        }
        self.reader.conditions.write_all_at(bytes, offset)?;
        self.runs.end = run.end();
        self.runs.runs.push(Arc::new(run));
        self.runs.through_seq = self.position;
        pending.clear();
        Ok(())
    }

    /// Hands readers the position, counts and runs as of now (what they name is written).
    fn publish(&self) {
        self.reader.published.store(Arc::new(Published {
            position: self.position,
            counts: self.counts.clone(),
            runs: self.runs.clone(),
        }));
    }

    /// Syncs both files, then writes `meta`: the one record a restart resumes from.
    fn make_durable(&mut self) -> std::io::Result<()> {
        self.reader.packets.sync_data()?;
        self.reader.conditions.sync_data()?;
        // The runs written since the last durable point, then `meta` (sled keeps a prefix of
        // its writes, so a `meta` that survives finds its runs).
        let mut new_runs = sled::Batch::default();
        for run in self.runs.runs.iter().filter(|run| run.offset >= self.runs_stored_end) {
            new_runs.insert(&run.offset.to_be_bytes(), encode(&**run));
        }
        self.runs_tree.apply_batch(new_runs)?;
        self.runs_stored_end = self.runs.end;
        let mut meta = sled::Batch::default();
        meta.insert("runs", encode(&RunsMeta { through_seq: self.runs.through_seq, end: self.runs.end }));
        meta.insert("counts", encode(&self.counts));
        meta.insert("position", &self.position.to_be_bytes());
        self.reader.meta.apply_batch(meta)?;
        self.durable_at = std::time::Instant::now();
        self.durable_position = self.position;
        if let Err(error) = self.trim() {
            crate::internal_events::emit(crate::internal_events::ExplorerIndexFailed { action: "trimming (retried with the next sync)", error: &error });
        }
        Ok(())
    }

    /// Frees what retention made useless: once the journal no longer holds the events before
    /// its first frame, the packet slots and condition runs that name only those events are
    /// punched out of the files (sparse: the space goes back to the filesystem, offsets stay).
    /// Lookups of those packets then find nothing, as the journal has nothing to show for them.
    /// Without this the two files grew by 24 bytes a packet for as long as the node ran.
    /// Posting chunks and seconds go in [`ExplorerIndex::trim_trees`].
    fn trim(&mut self) -> std::io::Result<()> {
        let first = self.store.first_frame_key().map_err(std::io::Error::other)?.unwrap_or(0);
        let cutoff = first.min(self.position + 1);
        self.trim_trees(cutoff)?;
        if cutoff <= self.trimmed_for.max(1) {
            return Ok(());
        }
        // Packets: whole chunks whose every seq is before the cutoff, from the oldest chunk held
        // up to (not including) the newest written, a bounded number per call.
        let from = self.packets_trimmed_below;
        let mut below = from;
        let mut chunk = vec![0u8; PACKET_CHUNK];
        while below + 1 < self.packet_chunks_written_below && below - from < TRIM_CHUNKS_MAX {
            chunk.fill(0);
            read_up_to(&self.reader.packets, &mut chunk, below * PACKET_CHUNK as u64)?;
            if chunk.chunks_exact(8).map(seq_from).max().unwrap_or(0) >= cutoff {
                break;
            }
            below += 1;
        }
        if below > from {
            punch_hole(&self.reader.packets, from * PACKET_CHUNK as u64, (below - from) * PACKET_CHUNK as u64)?;
            self.packets_trimmed_below = below;
            self.packet_chunks.retain(|chunk_id, (_, dirty)| *chunk_id >= below || *dirty);
        }
        // Conditions: the oldest runs, each once every Prepare in it is before the cutoff.
        let stale = self.runs.runs.iter().take_while(|run| run.through_seq < cutoff).count();
        if stale > 0 {
            let start = self.runs.runs[0].offset;
            let end = self.runs.runs[stale - 1].end();
            punch_hole(&self.reader.conditions, start, end - start)?;
            let mut removed = sled::Batch::default();
            for run in self.runs.runs.drain(..stale) {
                removed.remove(&run.offset.to_be_bytes());
            }
            self.runs_tree.apply_batch(removed)?;
            self.publish();
        }
        if below - from < TRIM_CHUNKS_MAX {
            self.trimmed_for = cutoff;
        }
        Ok(())
    }

    /// Removes from sled what names only events before `cutoff`: each posting chunk whose last
    /// seq is before it, and the first-seq-of-a-second keys before it. At most
    /// [`TRIM_KEYS_MAX`] chunks a call, resumed at the next; within a posting list the chunks
    /// are in seq order, so the scan skips to the next list at its first chunk that is kept.
    /// Without this the postings grew by a few bytes an event for as long as the node ran,
    /// whatever the journal's retention.
    fn trim_trees(&mut self, cutoff: u64) -> std::io::Result<()> {
        if cutoff <= self.trees_trimmed_for.max(1) {
            return Ok(());
        }
        let mut removed = sled::Batch::default();
        let mut count = 0usize;
        let mut from = std::mem::take(&mut self.trees_trim_from);
        let mut finished = true;
        'lists: loop {
            for item in self.reader.postings.range(from.as_slice()..) {
                let (key, value) = item?;
                if key.len() < 8 {
                    continue;
                }
                let (prefix, first) = key.split_at(key.len() - 8);
                let last = chunk_seqs(&value).last().copied().unwrap_or(0);
                if seq_from(first) >= cutoff || last >= cutoff {
                    // Kept, and so is every later chunk of this list: on to the next list.
                    match next_prefix(prefix) {
                        Some(next) => {
                            from = next;
                            continue 'lists;
                        }
                        None => break 'lists,
                    }
                }
                let mut next = key.to_vec();
                removed.remove(key);
                count += 1;
                if count >= self.trim_keys_max {
                    next.push(0);
                    self.trees_trim_from = next;
                    finished = false;
                    break 'lists;
                }
            }
            break;
        }
        self.reader.postings.apply_batch(removed)?;
        let mut seconds = sled::Batch::default();
        for item in self.reader.seconds.iter() {
            let (key, value) = item?;
            if seq_from(&value) >= cutoff {
                break;
            }
            seconds.remove(key);
        }
        self.reader.seconds.apply_batch(seconds)?;
        if finished {
            self.trees_trimmed_for = cutoff;
        }
        Ok(())
    }

    /// Empties every tree; the next event applied must be `first_seq` (or later).
    fn clear(&mut self, first_seq: u64) -> std::io::Result<()> {
        let r = &self.reader;
        for tree in [&r.postings, &r.seconds, &r.meta, &r.undelivered] {
            tree.clear()?;
        }
        r.packets.set_len(0)?;
        r.conditions.set_len(0)?;
        self.runs_tree.clear()?;
        r.meta.insert("format", &[INDEX_FORMAT])?;
        self.runs = Runs::default();
        self.runs_stored_end = 0;
        self.packets_trimmed_below = 0;
        self.trimmed_for = 0;
        self.trees_trimmed_for = 0;
        self.trees_trim_from.clear();
        self.position = first_seq.saturating_sub(1);
        self.durable_position = 0;
        self.counts = Counts { first_seq: self.position + 1, ..Counts::default() };
        self.last_second = None;
        self.tails.clear();
        self.tail_index.clear();
        self.peers.clear();
        self.peer_slots.clear();
        self.open.fill(OpenSlot::EMPTY);
        self.open_overflow.clear();
        self.kind_counts.clear();
        self.sealed.clear();
        self.packet_chunks.clear();
        self.packet_chunks_written_below = 0;
        self.seconds.clear();
        self.unpersisted = 0;
        self.reader.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.publish();
        Ok(())
    }

    /// The index's thread, for the starvation watchdog.
    pub fn thread(&self) -> Arc<IndexThread> {
        self.thread.clone()
    }

    pub fn reader(&self) -> IndexReader {
        self.reader.clone()
    }

    /// Writes what is pending and flushes the index at a stop (a crash loses only what the next
    /// start writes again).
    pub fn close(mut self) {
        if self.unpersisted > 0 {
            if let Err(error) = self.persist() {
                crate::internal_events::emit(crate::internal_events::ExplorerIndexFailed { action: "writing at the stop", error: &error });
            }
        }
        if let Err(error) = self.make_durable() {
            crate::internal_events::emit(crate::internal_events::ExplorerIndexFailed { action: "syncing at the stop", error: &error });
        }
        if let Err(error) = self.db.flush() {
            crate::internal_events::emit(crate::internal_events::ExplorerIndexFailed { action: "flushing at the stop", error: &error });
        }
    }

    /// Appends `seq` to a posting list, loading its open chunk on first use (and dropping what
    /// it holds past the position: written by a batch whose `meta` did not make it).
    fn post(&mut self, dimension: Dimension, seq: u64) -> std::io::Result<()> {
        let mut key = std::mem::take(&mut self.key_buffer);
        key.clear();
        dimension.write_prefix(&mut key);
        let at = self.tail_at(&key, seq);
        self.key_buffer = key;
        self.post_at(at?, seq);
        Ok(())
    }

    /// The slot of a peer, made on first sight.
    fn peer_slot(&mut self, peer: &str, seq: u64) -> std::io::Result<usize> {
        if let Some(&slot) = self.peer_slots.get(peer) {
            return Ok(slot);
        }
        let tail = self.tail_at(&Dimension::Peer(peer).prefix(), seq)?;
        let slot = self.peers.len();
        self.peers.push(PeerSlot { name: peer.to_owned(), tail, count: 0, totals: PeerTotals::default() });
        self.peer_slots.insert(peer.to_owned(), slot);
        Ok(slot)
    }

    /// Posts `seq` under a peer and counts the event for it.
    fn post_slot(&mut self, slot: usize, seq: u64) {
        self.peers[slot].count += 1;
        let tail = self.peers[slot].tail;
        self.post_at(tail, seq);
    }

    fn open_insert(&mut self, open: OpenSlot) {
        let at = (open.packet_id as usize) & (OPEN_RING - 1);
        let previous = std::mem::replace(&mut self.open[at], open);
        if previous.packet_id != 0 {
            if self.open_overflow.len() >= OPEN_OVERFLOW_MAX {
                // Packets that never ended (a journal cut short): forget them rather than grow.
                self.open_overflow.clear();
            }
            self.open_overflow.insert(previous.packet_id, previous);
        }
    }

    fn open_take(&mut self, packet_id: u64) -> Option<OpenSlot> {
        let at = (packet_id as usize) & (OPEN_RING - 1);
        if self.open[at].packet_id == packet_id && packet_id != 0 {
            return Some(std::mem::replace(&mut self.open[at], OpenSlot::EMPTY));
        }
        self.open_overflow.remove(&packet_id)
    }

    /// The place in `tails` of the posting list with this key prefix, its open chunk loaded
    /// from the index on first use.
    fn tail_at(&mut self, prefix: &[u8], seq: u64) -> std::io::Result<usize> {
        if let Some(&at) = self.tail_index.get(prefix) {
            return Ok(at);
        }
        let prefix = prefix.to_vec();
        let mut high = prefix.clone();
        high.extend_from_slice(&self.position.to_be_bytes());
        let tail = match self.reader.postings.range(prefix.clone()..=high).next_back() {
            Some(item) => {
                let (key, value) = item?;
                let mut seqs: Vec<u64> = chunk_seqs(&value);
                seqs.retain(|known| *known <= self.position);
                Tail { first: seq_from(&key), seqs, dirty: false }
            }
            None => Tail { first: seq, seqs: Vec::new(), dirty: false },
        };
        let at = self.tails.len();
        self.tails.push((prefix.clone(), tail));
        self.tail_index.insert(prefix, at);
        Ok(at)
    }

    fn post_at(&mut self, at: usize, seq: u64) {
        let (prefix, tail) = &mut self.tails[at];
        if tail.seqs.len() >= CHUNK_SEQS {
            // The chunk is full: written as it stands (if this batch added to it), and the
            // next one starts here.
            if tail.dirty {
                self.sealed.push((chunk_key(prefix, tail.first), chunk_value(&tail.seqs)));
            }
            *tail = Tail { first: seq, seqs: Vec::with_capacity(CHUNK_SEQS), dirty: false };
        }
        if tail.seqs.is_empty() {
            tail.first = seq;
        }
        tail.seqs.push(seq);
        tail.dirty = true;
    }

    /// Records one of a packet's seqs (`end`: its end, else its Prepare) in its chunk.
    fn packet_seq(&mut self, packet_id: u64, end: bool, seq: u64) -> std::io::Result<()> {
        let chunk_id = packet_id / PACKETS_PER_KEY;
        let (chunk, dirty) = match self.packet_chunks.entry(chunk_id) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                // A chunk past the newest one written is new (no read); an older one is read
                // again for a late end.
                let mut chunk = match self.spare_chunks.pop() {
                    Some(mut spare) => {
                        spare.fill(0);
                        spare
                    }
                    None => vec![0u8; PACKET_CHUNK],
                };
                if chunk_id < self.packet_chunks_written_below {
                    read_up_to(&self.reader.packets, &mut chunk, chunk_id * PACKET_CHUNK as u64)?;
                }
                entry.insert((chunk, false))
            }
        };
        let at = (packet_id % PACKETS_PER_KEY) as usize * PACKET_SLOT + if end { 8 } else { 0 };
        chunk[at..at + 8].copy_from_slice(&seq.to_be_bytes());
        *dirty = true;
        Ok(())
    }

    fn write(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        let pending = self.reader.pending.clone();
        let mut pending = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut live = std::mem::take(&mut self.live_batch);
        live.begin(self.live.sample_len());
        // The live view gets what was applied even when a write fails part-way: the position
        // has moved past those events.
        let applied = self.apply_entries(entries, &mut pending, &mut live);
        drop(pending);
        self.live.merge(&mut live, self.position);
        self.live_batch = live;
        applied?;
        if self.totals_published.elapsed() >= TOTALS_INTERVAL {
            self.live.lock().set_peer_totals(self.peers.iter().map(|peer| (peer.name.as_str(), &peer.totals)));
            self.totals_published = std::time::Instant::now();
        }
        self.unpersisted += entries.len();
        if self.unpersisted >= PERSIST_EVENTS {
            self.persist()?;
        }
        Ok(())
    }

    fn apply_entries(&mut self, entries: &[JournalEntry], pending: &mut Vec<([u8; 8], u64)>, live: &mut super::live::LiveBatch) -> std::io::Result<()> {
        for entry in entries {
            if entry.seq <= self.position {
                continue;
            }
            let seq = entry.seq;
            // The packet's (or event's) peers, by slot, and what is known of a packet that ends.
            let (mut from, mut to): (Option<usize>, Option<usize>) = (None, None);
            let mut ended: Option<OpenPacket> = None;
            match &entry.event {
                Event::PacketPrepared(prepared) => {
                    self.packet_seq(prepared.packet_id, false, seq)?;
                    pending.push((prepared.condition[..8].try_into().expect("8 bytes"), prepared.packet_id));
                    let sender = self.peer_slot(&prepared.from_peer, seq)?;
                    let next_hop = self.peer_slot(&prepared.to_peer, seq)?;
                    self.open_insert(OpenSlot {
                        packet_id: prepared.packet_id,
                        from: sender as u32,
                        to: next_hop as u32,
                        packet: OpenPacket { prepared_ms: entry.timestamp_ms, amount_in: prepared.amount_in, amount_out: prepared.amount_out },
                    });
                    (from, to) = (Some(sender), Some(next_hop));
                    self.counts.packets += 1;
                }
                Event::PacketFulfilled(fulfilled) => {
                    self.packet_seq(fulfilled.packet_id, true, seq)?;
                    match self.open_take(fulfilled.packet_id) {
                        Some(open) => {
                            let (sender, next_hop) = (open.from as usize, open.to as usize);
                            let totals = &mut self.peers[sender].totals;
                            totals.incoming_fulfilled += 1;
                            totals.incoming_amount += u128::from(open.packet.amount_in);
                            let totals = &mut self.peers[next_hop].totals;
                            totals.outgoing_fulfilled += 1;
                            totals.outgoing_amount += u128::from(open.packet.amount_out);
                            (from, to) = (Some(sender), Some(next_hop));
                            ended = Some(open.packet);
                        }
                        // Prepared before this index's run began: the accounts know its peers.
                        None => {
                            if let Some((sender, next_hop)) = self.balances.open_packet_peers(fulfilled.packet_id) {
                                let (sender, next_hop) = (sender.to_owned(), next_hop.to_owned());
                                from = Some(self.peer_slot(&sender, seq)?);
                                to = Some(self.peer_slot(&next_hop, seq)?);
                            }
                        }
                    }
                }
                Event::PacketRejected(rejected) => {
                    self.packet_seq(rejected.packet_id, true, seq)?;
                    self.post(Dimension::Code(&rejected.code), seq)?;
                    let code = String::from_utf8_lossy(&rejected.code);
                    match self.counts.codes.get_mut(&*code) {
                        Some(count) => *count += 1,
                        None => {
                            self.counts.codes.insert(code.into_owned(), 1);
                        }
                    }
                    if rejected.prepared {
                        match self.open_take(rejected.packet_id) {
                            Some(open) => to = Some(open.to as usize),
                            None => {
                                if let Some((_, next_hop)) = self.balances.open_packet_peers(rejected.packet_id) {
                                    let next_hop = next_hop.to_owned();
                                    to = Some(self.peer_slot(&next_hop, seq)?);
                                }
                            }
                        }
                    } else {
                        self.counts.packets += 1;
                    }
                    let sender = self.peer_slot(&rejected.from_peer, seq)?;
                    self.peers[sender].totals.incoming_rejected += 1;
                    from = Some(sender);
                }
                Event::FulfillUndelivered(undelivered) => {
                    // Rare; written at once (a crash before `meta` leaves it past the position,
                    // where readers ignore it, and the replay writes it again).
                    self.reader.undelivered.insert(undelivered.packet_id.to_be_bytes(), &seq.to_be_bytes())?;
                    self.post(Dimension::Kind(kind_byte(&entry.event)), seq)?;
                    from = Some(self.peer_slot(&undelivered.from_peer, seq)?);
                }
                other => {
                    self.post(Dimension::Kind(kind_byte(other)), seq)?;
                    if let Some(peer) = event_peer(other, &self.balances) {
                        let peer = peer.to_owned();
                        from = Some(self.peer_slot(&peer, seq)?);
                    }
                }
            }
            if from == to {
                to = None;
            }
            for slot in [from, to].into_iter().flatten() {
                self.post_slot(slot, seq);
            }
            let entry_second = entry.timestamp_ms.div_euclid(1000);
            if self.last_second.is_none_or(|last| entry_second > last) {
                self.seconds.push((entry_second, seq));
                self.last_second = Some(entry_second);
            }
            let kind = entry.event.kind();
            match self.kind_counts.iter_mut().find(|(known, _)| std::ptr::eq(*known, kind)) {
                Some((_, count)) => *count += 1,
                None => self.kind_counts.push((kind, 1)),
            }
            self.counts.events += 1;
            let name = |slot: Option<usize>| slot.map(|slot| self.peers[slot].name.as_str());
            live.push(entry, ended.as_ref(), [name(from), name(to)]);
            // Only what names a packet's or a channel's peers is needed here (the accounts view
            // comes from the `balances` projection): packets are skipped, settlement events
            // (rare) are applied.
            if !is_packet_event(&entry.event) && entry.seq > self.balances.position() {
                self.balances.apply(entry);
            }
            self.position = entry.seq;
        }
        Ok(())
    }

    /// Writes what the batches since the last call changed: the open chunks, packet chunks,
    /// seconds, a condition run when one is full; publishes the new position to readers; and,
    /// at most every [`DURABLE_INTERVAL`], syncs and writes `meta`. Called every
    /// [`PERSIST_EVENTS`] events, when the runner is idle [`PERSIST_INTERVAL`] after the last
    /// call, and at a stop: rewriting the open 4 KiB chunks after every small batch cost the
    /// packet path a third of its throughput at W=256 in sled's IO threads.
    fn persist(&mut self) -> std::io::Result<()> {
        self.unpersisted = 0;
        self.persisted_at = std::time::Instant::now();
        let mut postings = sled::Batch::default();
        for (key, value) in self.sealed.drain(..) {
            postings.insert(key, value);
        }
        for (prefix, tail) in &mut self.tails {
            if tail.dirty && !tail.seqs.is_empty() {
                postings.insert(chunk_key(prefix, tail.first), chunk_value(&tail.seqs));
                tail.dirty = false;
            }
        }
        self.reader.postings.apply_batch(postings)?;
        // Dirty chunks are consecutive ids: written as runs of adjacent chunks, one write each.
        let mut run = std::mem::take(&mut self.write_buffer);
        run.clear();
        let mut run_first = 0u64;
        for (&chunk_id, (chunk, dirty)) in &mut self.packet_chunks {
            if !*dirty {
                continue;
            }
            *dirty = false;
            self.packet_chunks_written_below = self.packet_chunks_written_below.max(chunk_id + 1);
            if !run.is_empty() && run_first + (run.len() / PACKET_CHUNK) as u64 != chunk_id {
                self.reader.packets.write_all_at(&run, run_first * PACKET_CHUNK as u64)?;
                run.clear();
            }
            if run.is_empty() {
                run_first = chunk_id;
            }
            run.extend_from_slice(chunk);
        }
        if !run.is_empty() {
            self.reader.packets.write_all_at(&run, run_first * PACKET_CHUNK as u64)?;
        }
        self.write_buffer = run;
        while self.packet_chunks.len() > PACKET_CHUNKS_CACHED {
            if let Some((_, (chunk, _))) = self.packet_chunks.pop_first() {
                if self.spare_chunks.len() < 4 * PACKET_CHUNKS_CACHED {
                    self.spare_chunks.push(chunk);
                }
            }
        }
        let mut seconds = sled::Batch::default();
        for (second, seq) in self.seconds.drain(..) {
            seconds.insert(&second_key(second)[..], &seq.to_be_bytes());
        }
        self.reader.seconds.apply_batch(seconds)?;
        self.fold_counts();
        self.write_run()?;
        self.publish();
        if self.durable_at.elapsed() >= DURABLE_INTERVAL {
            self.make_durable()?;
        }
        Ok(())
    }
}

impl ExplorerIndex {
    /// Adds the per-peer and per-kind counts kept since the last persist into `counts`.
    fn fold_counts(&mut self) {
        for peer in &mut self.peers {
            if peer.count > 0 {
                *self.counts.peers.entry(peer.name.clone()).or_default() += peer.count;
                peer.count = 0;
            }
        }
        for (kind, count) in &mut self.kind_counts {
            if *count > 0 {
                *self.counts.kinds.entry((*kind).to_owned()).or_default() += *count;
                *count = 0;
            }
        }
    }
}

impl Projection for ExplorerIndex {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, entry: &JournalEntry) {
        if let Err(error) = self.write(std::slice::from_ref(entry)) {
            crate::internal_events::emit(crate::internal_events::ExplorerIndexFailed { action: "writing an event", error: &error });
        }
    }

    fn position(&self) -> u64 {
        self.position
    }

    /// 10 ms: fewer, larger batches (each wake costs a context switch and two locks), and the
    /// journal's feed (64 batches) still holds them at W=256.
    fn poll_interval(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_millis(POLL_MS))
    }

    fn on_idle(&mut self) {
        self.live.lock().set_peer_totals(self.peers.iter().map(|peer| (peer.name.as_str(), &peer.totals)));
        self.totals_published = std::time::Instant::now();
        if self.unpersisted > 0 && self.persisted_at.elapsed() >= PERSIST_INTERVAL {
            if let Err(error) = self.persist() {
                crate::internal_events::emit(crate::internal_events::ExplorerIndexFailed { action: "writing (retried at the next batch)", error: &error });
                self.unpersisted = 1;
            }
        } else if self.unpersisted == 0 && self.durable_position < self.position && self.durable_at.elapsed() >= DURABLE_INTERVAL {
            // Traffic paused: what readers see becomes what a restart resumes from.
            if let Err(error) = self.make_durable() {
                crate::internal_events::emit(crate::internal_events::ExplorerIndexFailed { action: "syncing (retried when idle)", error: &error });
            }
        }
    }

    fn apply_batch(&mut self, entries: &[JournalEntry]) -> Result<(), ProjectionError> {
        if !self.niced {
            self.niced = true;
            lowest_priority();
            self.thread.record_current();
        }
        let before = self.position;
        #[cfg(feature = "explorer-bench")]
        if let Some(slot_ms) = bench::slot_ms() {
            return bench::apply_alternate_slots(self, entries, slot_ms)
                .map_err(|error| ProjectionError { message: format!("Explorer index write failed after seq {before}: {error}") });
        }
        self.write(entries).map_err(|error| {
            ProjectionError { message: format!("Explorer index write failed after seq {before}: {error}") }
        })
    }
}

/// A benchmark instrument, compiled only with the `explorer-bench` feature (never in a release
/// build or the image): `M2M_BENCH_INDEX_SLOT_MS=N` makes the index apply only the events whose
/// journal time falls in odd N-ms slots and step over the rest (the index is then incomplete:
/// for measuring only), and print each slot's event count to stderr (`bench-slot SLOT COUNT`).
/// Throughput in a slot where the index worked against its neighbours where it did not, in one
/// process under one load, measures what the index's work costs the packet path without the
/// run-to-run spread of separate runs (`scripts/explorer-index-paired.sh`).
#[cfg(feature = "explorer-bench")]
mod bench {
    use super::ExplorerIndex;
    use crate::journal::JournalEntry;

    pub fn slot_ms() -> Option<i64> {
        static SLOT: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
        *SLOT.get_or_init(|| std::env::var("M2M_BENCH_INDEX_SLOT_MS").ok().and_then(|value| value.parse().ok()).filter(|ms| *ms > 0))
    }

    pub fn apply_alternate_slots(index: &mut ExplorerIndex, entries: &[JournalEntry], slot_ms: i64) -> std::io::Result<()> {
        let slot_of = |entry: &JournalEntry| entry.timestamp_ms.div_euclid(slot_ms);
        let mut start = 0;
        while start < entries.len() {
            let parity = slot_of(&entries[start]) % 2;
            let end = start + entries[start..].iter().take_while(|entry| slot_of(entry) % 2 == parity).count();
            for entry in &entries[start..end] {
                let slot = slot_of(entry);
                match index.bench_slot {
                    Some((current, ref mut count)) if current == slot => *count += 1,
                    Some((current, count)) if slot > current => {
                        eprintln!("bench-slot {current} {count}");
                        index.bench_slot = Some((slot, 1));
                    }
                    Some(_) => {} // a late event of an earlier slot: not counted
                    None => index.bench_slot = Some((slot, 1)),
                }
            }
            if parity == 0 {
                index.position = index.position.max(entries[end - 1].seq);
            } else {
                index.write(&entries[start..end])?;
            }
            start = end;
        }
        Ok(())
    }
}

/// `pairs` sorted into `sorted` (by condition prefix, then packet id): counted and placed by
/// the prefix's first 16 bits, then each bucket sorted. Conditions are SHA-256 digests, so a
/// run's 65,536 spread about one to a bucket; in a micro-benchmark on the 2-core VM this sorts
/// a run in ~20 ns a condition against ~35–50 for `sort_unstable` on the pairs. Any input is
/// sorted right, only slower if the prefixes cluster.
fn sort_conditions(pairs: &[([u8; 8], u64)], sorted: &mut Vec<([u8; 8], u64)>, buckets: &mut Vec<u32>) {
    let bucket_of = |prefix: &[u8; 8]| usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    buckets.clear();
    buckets.resize((1 << 16) + 1, 0);
    for (prefix, _) in pairs {
        buckets[bucket_of(prefix) + 1] += 1;
    }
    for at in 1..buckets.len() {
        buckets[at] += buckets[at - 1];
    }
    sorted.clear();
    sorted.resize(pairs.len(), ([0; 8], 0));
    // `buckets[b]` is where bucket b's next pair goes; once placed, bucket b's pairs end at
    // `buckets[b]`, and start where bucket b - 1's end.
    for pair in pairs {
        let next = &mut buckets[bucket_of(&pair.0)];
        sorted[*next as usize] = *pair;
        *next += 1;
    }
    let mut start = 0;
    for &end in &buckets[..1 << 16] {
        let end = end as usize;
        if end - start > 1 {
            sorted[start..end].sort_unstable();
        }
        start = end;
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: Option<&[u8]>) -> Option<T> {
    bincode::serde::decode_from_slice(bytes?, bincode::config::standard()).ok().map(|(value, _)| value)
}

/// Gives `len` bytes from `offset` back to the filesystem; they read as zeros after.
fn punch_hole(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::other("a hole past the largest file offset"));
    };
    // SAFETY: a plain syscall on a descriptor this `File` owns; no memory is passed.
    let done = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, offset, len) };
    if done == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// The offset of the first byte of `file` that is not a hole, if any.
fn first_data(file: &File) -> std::io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor this `File` owns. It moves the shared offset,
    // which nothing here uses (every read and write is positioned).
    let offset = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_DATA) };
    if offset >= 0 {
        return Ok(Some(offset as u64));
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ENXIO) { Ok(None) } else { Err(error) }
}

/// Fills `buffer` from `offset` as far as the file goes (the rest stays as it was).
fn read_up_to(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buffer.len() {
        match file.read_at(&mut buffer[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(read) => done += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn chunk_key(prefix: &[u8], first: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&first.to_be_bytes());
    key
}

/// A posting chunk: its first seq as 8 big-endian bytes, then each next seq as the LEB128
/// varint of its distance from the one before (a list only grows, so a distance is never 0),
/// except that a run of [`RUN_MIN`] or more seqs each one past the one before is written as a
/// 0 and the varint of the run's length. A busy peer's list then takes about a byte per event
/// instead of eight, and a peer in every event (the usual list of a node with few peers) a few
/// bytes per chunk: what the index writes is what it costs the node.
fn chunk_value(seqs: &[u64]) -> Vec<u8> {
    fn varint(value: &mut Vec<u8>, mut number: u64) {
        while number >= 0x80 {
            value.push((number as u8) | 0x80);
            number >>= 7;
        }
        value.push(number as u8);
    }
    let mut value = Vec::with_capacity(8 + seqs.len() * 2);
    let Some((first, rest)) = seqs.split_first() else { return value };
    value.extend_from_slice(&first.to_be_bytes());
    let mut previous = *first;
    let mut at = 0;
    while at < rest.len() {
        let consecutive = rest[at..].iter().zip(std::iter::once(&previous).chain(&rest[at..])).take_while(|(seq, before)| **seq == **before + 1).count();
        if consecutive >= RUN_MIN {
            value.push(0);
            varint(&mut value, consecutive as u64);
            at += consecutive;
        } else {
            varint(&mut value, rest[at] - previous);
            at += 1;
        }
        previous = rest[at - 1];
    }
    value
}

/// Consecutive seqs that [`chunk_value`] writes as a run (a 0 and a length) rather than a byte
/// each.
const RUN_MIN: usize = 3;

/// The seqs of a chunk written by [`chunk_value`] (a truncated or malformed tail is dropped;
/// never more than [`CHUNK_SEQS`] seqs, whatever the bytes say).
fn chunk_seqs(value: &[u8]) -> Vec<u64> {
    let Some(first) = value.get(..8) else { return Vec::new() };
    let mut seqs = Vec::with_capacity(value.len().min(CHUNK_SEQS));
    let mut seq = seq_from(first);
    seqs.push(seq);
    let mut number = 0u64;
    let mut shift = 0u32;
    // After a 0: the next number is a run's length.
    let mut run = false;
    for &byte in &value[8..] {
        if shift >= 64 || seqs.len() >= CHUNK_SEQS {
            break;
        }
        number |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 != 0 {
            shift += 7;
            continue;
        }
        if run {
            let length = number.min((CHUNK_SEQS - seqs.len()) as u64);
            for _ in 0..length {
                seq = seq.saturating_add(1);
                seqs.push(seq);
            }
            run = false;
        } else if number == 0 {
            run = true;
        } else {
            seq = seq.saturating_add(number);
            seqs.push(seq);
        }
        number = 0;
        shift = 0;
    }
    seqs
}

/// The index's thread as the starvation watchdog sees it (`explorer::watch_index`). At SCHED_IDLE
/// the index gets no CPU at all while other threads keep both cores busy (four busy loops on the
/// 2-core VM starved it for 30 s and more), and the Explorer's history and live view freeze. The
/// watchdog then raises it to nice 19 (a small share of a busy core; allowed where the node has
/// CAP_SYS_NICE or an RLIMIT_NICE of 1 or more, else it only says so), and lowers it back to
/// SCHED_IDLE once it has caught up.
#[derive(Debug, Default)]
pub struct IndexThread {
    /// The thread's id (0 until the index applies its first batch).
    tid: std::sync::atomic::AtomicI32,
    raised: std::sync::atomic::AtomicBool,
}

impl IndexThread {
    fn record_current(&self) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: a plain syscall without arguments.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
            self.tid.store(tid, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn raised(&self) -> bool {
        self.raised.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// SCHED_IDLE → SCHED_OTHER at nice 19.
    pub fn raise(&self) -> std::io::Result<()> {
        let tid = self.tid.load(std::sync::atomic::Ordering::Relaxed);
        set_thread_priority(tid, false)?;
        self.raised.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Back to SCHED_IDLE (always allowed).
    pub fn lower(&self) -> std::io::Result<()> {
        let tid = self.tid.load(std::sync::atomic::Ordering::Relaxed);
        set_thread_priority(tid, true)?;
        self.raised.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// What the watchdog does to the index's priority (see [`IndexThread`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorityChange {
    Raise,
    Lower,
}

/// How long the index may lag without applying anything before it is raised.
pub const STARVED_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// A raised index goes back to SCHED_IDLE once its lag is below this.
pub const CAUGHT_UP_LAG: u64 = 1_000;

/// The watchdog's decision, from whether the index is raised, its lag (journal events not yet
/// applied) and how long it has applied nothing.
pub fn priority_change(raised: bool, lag: u64, stalled: std::time::Duration) -> Option<PriorityChange> {
    if !raised && lag > 0 && stalled >= STARVED_AFTER {
        Some(PriorityChange::Raise)
    } else if raised && lag < CAUGHT_UP_LAG {
        Some(PriorityChange::Lower)
    } else {
        None
    }
}

/// SCHED_IDLE (`idle`) or SCHED_OTHER at nice 19 for thread `tid` of this process.
fn set_thread_priority(tid: i32, idle: bool) -> std::io::Result<()> {
    if tid == 0 {
        return Err(std::io::Error::other("the index has not started"));
    }
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscalls on a thread id of this process; the one pointer is to a local,
        // initialised sched_param. Nice 19 is set first: leaving SCHED_IDLE is checked against
        // the nice value the thread will have.
        unsafe {
            if !idle && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let policy = if idle { libc::SCHED_IDLE } else { libc::SCHED_OTHER };
            if libc::sched_setscheduler(tid, policy, &param) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = idle;
        Err(std::io::Error::other("thread priorities are set on Linux only"))
    }
}

/// Gives the calling thread (the index's runner) the lowest CPU priority: SCHED_IDLE, so it runs
/// only when no other thread wants the core and is preempted at once when one does (nice 19
/// still took a fifth of a core from the packet path at W=256). On a busy node the index falls
/// behind and catches up when there is room. Linux applies both calls to one thread when given
/// its thread id; where SCHED_IDLE is refused, nice 19.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls; the only pointer is to a local, initialised sched_param.
        // Failure (not permitted) only leaves the priority as it was.
        let idle = unsafe {
            let thread = libc::syscall(libc::SYS_gettid) as libc::pid_t;
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(thread, libc::SCHED_IDLE, &param) == 0
        };
        let niced = idle || unsafe {
            let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, thread, 19) == 0
        };
        if !niced {
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
        Event::RouteLearned(event) => Some(&event.peer),
        Event::RouteWithdrawn(event) => Some(&event.peer),
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




/// Seconds as an order-preserving key (the sign bit flipped).
/// The smallest key after every key that starts with `prefix` (None: there is none).
fn next_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{PacketFulfilled, PacketPrepared, PacketRejected, Stage, Store};

    fn condition(packet_id: u64) -> [u8; 32] {
        let mut condition = [0u8; 32];
        condition[..8].copy_from_slice(&packet_id.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        condition[8] = 1;
        condition
    }

    /// `packets` packets from alice to bob, every 10th refused (F02) and every 10th + 5 ended
    /// with F99, the rest fulfilled; in frames of 4096 events.
    fn journal(dir: &Path, packets: u64) -> SledStore {
        let mut store = SledStore::open(dir).unwrap();
        let mut seq = 0;
        let mut frame = Vec::new();
        let mut push = |event: Event, frame: &mut Vec<JournalEntry>, store: &mut SledStore| {
            seq += 1;
            frame.push(JournalEntry { seq, timestamp_ms: 1_800_000_000_000 + seq as i64, event });
            if frame.len() == 4096 {
                store.write_frame(frame).unwrap();
                frame.clear();
            }
        };
        for packet_id in 1..=packets {
            if packet_id % 10 == 0 {
                let rejected = PacketRejected {
                    packet_id,
                    prepared: false,
                    from_peer: "alice".into(),
                    amount_in: 1,
                    destination: "test.a.nobody".into(),
                    code: *b"F02",
                    triggered_by: "test.a".into(),
                    message: String::new(),
                    stage: Stage::Routing,
                };
                push(Event::PacketRejected(rejected), &mut frame, &mut store);
                continue;
            }
            let prepared = PacketPrepared {
                packet_id,
                from_peer: "alice".into(),
                to_peer: "bob".into(),
                amount_in: 1,
                amount_out: 1,
                expires_at_in_ms: i64::MAX / 2,
                expires_at_out_ms: i64::MAX / 2,
                condition: condition(packet_id),
                destination: "test.a.bob".into(),
                rate: None,
            };
            push(Event::PacketPrepared(prepared), &mut frame, &mut store);
            let end = if packet_id % 10 == 5 {
                Event::PacketRejected(PacketRejected {
                    packet_id,
                    prepared: true,
                    from_peer: "alice".into(),
                    amount_in: 1,
                    destination: "test.a.bob".into(),
                    code: *b"F99",
                    triggered_by: "test.a.bob".into(),
                    message: String::new(),
                    stage: Stage::Downstream,
                })
            } else {
                Event::PacketFulfilled(PacketFulfilled { packet_id, fulfillment: [0; 32] })
            };
            push(end, &mut frame, &mut store);
        }
        if !frame.is_empty() {
            store.write_frame(&frame).unwrap();
        }
        store
    }

    fn index_all(index: &mut ExplorerIndex, store: &SledStore, from: u64) {
        for frame in store.frames_from(from) {
            let frame = frame.unwrap();
            index.apply_batch(&frame.entries).unwrap();
        }
    }

    #[test]
    fn conditions_are_found_in_runs_and_in_memory_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let packets = (RUN_CONDITIONS as u64) * 10 / 9 * 2 + 5_000; // two runs and a remainder
        let store = journal(&dir.path().join("journal"), packets);
        let index_dir = dir.path().join("index");
        let mut index = ExplorerIndex::open(&index_dir, &store, Arc::new(Live::detached())).unwrap();
        index_all(&mut index, &store, 1);
        index.persist().unwrap();
        let reader = index.reader();
        assert!(!reader.published.load().runs.runs.is_empty(), "runs written");
        assert!(reader.published.load().runs.runs.iter().all(|run| run.narrow_base.is_some()), "8-byte pairs");
        assert!(!reader.pending.lock().unwrap().is_empty(), "and the rest in memory");
        let check = |reader: &IndexReader| {
            for packet_id in [1, 2, 4_999, 70_001, 140_000, packets - 1, packets] {
                let found = reader.packets_of_condition(&condition(packet_id));
                if packet_id % 10 == 0 {
                    assert!(!found.contains(&packet_id), "refused packets have no condition");
                } else {
                    assert_eq!(found, vec![packet_id], "packet {packet_id}");
                }
                let seqs = reader.packet_seqs(packet_id);
                assert_eq!(seqs.len(), if packet_id % 10 == 0 { 1 } else { 2 }, "packet {packet_id}: {seqs:?}");
            }
            assert!(reader.packets_of_condition(&[0xee; 32]).is_empty());
        };
        check(&reader);
        let position = index.position();
        index.close();
        drop(reader);

        // A restart: what was in memory is gathered again from the journal.
        let index = ExplorerIndex::open(&index_dir, &store, Arc::new(Live::detached())).unwrap();
        assert_eq!(index.position(), position);
        check(&index.reader());
        let counts = index.reader().counts();
        assert_eq!(counts.codes["F02"], packets / 10);
        assert_eq!(counts.packets, packets);
        let f99: Vec<u64> = index.reader().postings_rev(Dimension::Code(b"F99"), 1, position).collect();
        assert_eq!(f99.len() as u64, (packets + 5) / 10);
        assert!(f99.windows(2).all(|pair| pair[0] > pair[1]), "newest first");
    }

    #[test]
    fn a_run_whose_packet_ids_span_more_than_a_u32_is_written_wide_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = journal(&dir.path().join("journal"), 10);
        let mut index = ExplorerIndex::open(&dir.path().join("index"), &store, Arc::new(Live::detached())).unwrap();
        let far = 3 + (1u64 << 33);
        let ids: Vec<u64> = (1..RUN_CONDITIONS as u64).chain([far]).collect();
        index.reader.pending.lock().unwrap().extend(ids.iter().map(|&id| (condition(id)[..8].try_into().unwrap(), id)));
        index.write_run().unwrap();
        index.publish();
        let reader = index.reader();
        let runs = reader.published.load().runs.runs.clone();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].narrow_base, None, "wide: {far} is more than a u32 past 1");
        assert_eq!(runs[0].end() - runs[0].offset, RUN_CONDITIONS as u64 * 16);
        for id in [1, 2, 40_000, RUN_CONDITIONS as u64 - 1, far] {
            assert_eq!(reader.packets_of_condition(&condition(id)), vec![id], "packet {id}");
        }

        // The next run, within a u32 again, is narrow, and both are found.
        let ids: Vec<u64> = (far + 1..far + 1 + RUN_CONDITIONS as u64).collect();
        index.reader.pending.lock().unwrap().extend(ids.iter().map(|&id| (condition(id)[..8].try_into().unwrap(), id)));
        index.write_run().unwrap();
        index.publish();
        let runs = reader.published.load().runs.runs.clone();
        assert_eq!(runs[1].narrow_base, Some(far + 1));
        assert_eq!(runs[1].offset, runs[0].end());
        assert_eq!(runs[1].end() - runs[1].offset, RUN_CONDITIONS as u64 * 8);
        for id in [far, far + 1, far + 30_000, far + RUN_CONDITIONS as u64] {
            assert_eq!(reader.packets_of_condition(&condition(id)), vec![id], "packet {id}");
        }
    }

    #[test]
    fn a_crash_between_durable_points_resumes_from_the_last_one_and_finds_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let packets = (RUN_CONDITIONS as u64) * 10 / 9 * 2 + 5_000;
        let store = journal(&dir.path().join("journal"), packets);
        let index_dir = dir.path().join("index");
        let mut index = ExplorerIndex::open(&index_dir, &store, Arc::new(Live::detached())).unwrap();
        let frames: Vec<_> = store.frames_from(1).map(Result::unwrap).collect();
        let (early, late) = frames.split_at(frames.len() / 2);
        for frame in early {
            index.apply_batch(&frame.entries).unwrap();
        }
        index.persist().unwrap();
        index.make_durable().unwrap();
        let durable = index.position();
        // The rest is written and published, but no durable point comes before the crash.
        index.durable_at = std::time::Instant::now() + std::time::Duration::from_secs(3_600);
        for frame in late {
            index.apply_batch(&frame.entries).unwrap();
        }
        index.persist().unwrap();
        assert_eq!(index.durable_position, durable);
        let durable_runs = index.runs_tree.len();
        assert!(durable_runs > 0 && durable_runs < index.runs.runs.len(), "the crash loses a written run ({durable_runs} of {} durable)", index.runs.runs.len());
        // A run whose key made it without its `meta` (past the durable end) is dropped at open.
        let late = index.runs.runs.last().unwrap().clone();
        index.runs_tree.insert(late.offset.to_be_bytes(), encode(&*late)).unwrap();
        drop(index); // no close: a crash

        let mut index = ExplorerIndex::open(&index_dir, &store, Arc::new(Live::detached())).unwrap();
        assert_eq!(index.position(), durable, "resumes from the last durable point");
        assert_eq!(index.runs_tree.len(), durable_runs, "the run past the durable end is gone");
        assert_eq!(index.runs.runs.len(), durable_runs);
        index_all(&mut index, &store, durable + 1);
        index.persist().unwrap();
        let reader = index.reader();
        for packet_id in (1..=packets).step_by(997).chain([packets]) {
            let found = reader.packets_of_condition(&condition(packet_id));
            let seqs = reader.packet_seqs(packet_id);
            if packet_id % 10 == 0 {
                assert!(!found.contains(&packet_id));
                assert_eq!(seqs.len(), 1, "packet {packet_id}");
            } else {
                assert_eq!(found, vec![packet_id], "packet {packet_id}: once, not twice");
                assert_eq!(seqs.len(), 2, "packet {packet_id}");
            }
        }
        assert_eq!(reader.counts().packets, packets, "counted once");
    }

    #[test]
    fn retention_frees_the_slots_and_runs_of_removed_events_and_keeps_the_rest() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let packets = (RUN_CONDITIONS as u64) * 10 / 9 * 5 + 5_000; // three runs or more, and a remainder
        let store = journal(&dir.path().join("journal"), packets);
        let index_dir = dir.path().join("index");
        let mut index = ExplorerIndex::open(&index_dir, &store, Arc::new(Live::detached())).unwrap();
        index_all(&mut index, &store, 1);
        index.persist().unwrap();
        index.make_durable().unwrap();
        let runs = index.runs.runs.len();
        assert!(runs >= 3, "{runs} runs");
        let allocated = |name: &str| std::fs::metadata(index_dir.join(name)).unwrap().blocks();
        let (packets_before, conditions_before) = (allocated(PACKETS_FILE), allocated(CONDITIONS_FILE));

        // Retention removes the frames before the second run's end: the first two runs and
        // the packets they cover go.
        let cutoff = index.runs.runs[1].through_seq + 1;
        store.remove_frames_before(cutoff, |_, _| Ok(())).unwrap();
        let first = store.first_frame_key().unwrap().unwrap();
        assert!(first > index.runs.runs[1].through_seq && first <= cutoff, "frames hold {first}..");
        // The postings are trimmed a few chunks a sync here, each sync resuming where the last
        // stopped.
        index.trim_keys_max = 5;
        let mut syncs = 0;
        while index.trees_trimmed_for < first {
            index.make_durable().unwrap();
            syncs += 1;
            assert!(syncs < 10_000, "the trim of the postings ends");
        }
        assert!(syncs > 3, "in several steps ({syncs})");
        assert_eq!(index.runs.runs.len(), runs - 2, "the two runs before the cutoff are dropped");
        assert_eq!(index.runs_tree.len(), runs - 2, "and their keys");
        // `meta` names the runs in a few bytes, however many there are.
        let meta_runs = index.reader.meta.get(b"runs").unwrap().unwrap();
        assert!(meta_runs.len() < 32, "meta's runs: {} bytes", meta_runs.len());
        // What the two runs held, about 2 / runs of each file, is given back.
        let kept = |before: u64| before * (runs as u64 - 1) / runs as u64;
        assert!(allocated(PACKETS_FILE) < kept(packets_before), "packets.bin: {} of {packets_before} blocks", allocated(PACKETS_FILE));
        assert!(allocated(CONDITIONS_FILE) < kept(conditions_before), "conditions.bin: {} of {conditions_before}", allocated(CONDITIONS_FILE));

        let check = |reader: &IndexReader| {
            // Early packets are gone from the index as they are from the journal.
            for packet_id in [1, 2, 1_001, 70_001] {
                assert!(reader.packet_seqs(packet_id).is_empty(), "packet {packet_id} trimmed");
                assert!(reader.packets_of_condition(&condition(packet_id)).is_empty(), "packet {packet_id} trimmed");
            }
            // The packets after the cutoff are all still found.
            for packet_id in (packets - 60_000..=packets).step_by(331) {
                if packet_id % 10 != 0 {
                    assert_eq!(reader.packets_of_condition(&condition(packet_id)), vec![packet_id], "packet {packet_id}");
                    assert_eq!(reader.packet_seqs(packet_id).len(), 2, "packet {packet_id}");
                }
            }
        };
        check(&index.reader());

        // `total` leaves out what retention removed: exact for all events (seqs are dense), an
        // upper bound marked as an estimate when it comes from the per-kind counts.
        let reader = index.reader();
        let query = |params: &[(&str, &str)]| {
            let params: std::collections::HashMap<String, String> = params.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
            super::super::query::run(&super::super::query::EventQuery::parse(&params).unwrap(), &reader, &store).unwrap()
        };
        let all = query(&[]);
        assert_eq!(all.total, reader.position() - first + 1, "the events the journal still holds");
        assert!(!all.total_is_estimate);
        let prepared = query(&[("types", "PacketPrepared")]);
        assert!(prepared.total_is_estimate, "counts that include removed events are an estimate");
        assert_eq!(prepared.total, packets - packets / 10, "the upper bound: every Prepare the index applied");
        assert_eq!(query(&[("packet", "1")]).total, 0, "a removed packet counts nothing, exactly");
        assert!(!query(&[("packet", "1")]).total_is_estimate);

        // The posting chunks and seconds that name only removed events are gone from sled; the
        // rest still answer, down to the first event the journal holds.
        for item in reader.postings.iter() {
            let (key, value) = item.unwrap();
            let last = *chunk_seqs(&value).last().unwrap();
            assert!(last >= first, "a chunk of removed events is kept: key {key:?}, last seq {last}");
        }
        for item in reader.seconds.iter() {
            let (_, value) = item.unwrap();
            assert!(seq_from(&value) >= first, "a second of removed events is kept");
        }
        let rejected = |cursor: Option<u64>| {
            let cursor = cursor.map(|seq| seq.to_string());
            let mut params = vec![("code", "F02"), ("limit", "1000")];
            if let Some(cursor) = &cursor {
                params.push(("cursor", cursor.as_str()));
            }
            query(&params)
        };
        let (mut seen, mut cursor) = (0u64, None);
        loop {
            let page = rejected(cursor);
            for (entry, _) in &page.events {
                assert!(entry.seq >= first);
                seen += 1;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let expected = store
            .entries_from(first)
            .filter(|entry| matches!(&entry.as_ref().unwrap().event, Event::PacketRejected(rejected) if rejected.code == *b"F02"))
            .count() as u64;
        assert!(expected > 0);
        assert_eq!(seen, expected, "every F02 the journal still holds, through the trimmed postings");

        // A restart finds where the slots start again (the journal here has no snapshot for a
        // whole reopen: real retention keeps one before the frames it removes).
        let data = first_data(&index.reader.packets).unwrap().unwrap();
        assert_eq!(data / PACKET_CHUNK as u64, index.packets_trimmed_below);
        // The next run goes after the trimmed ones, never over them.
        assert!(index.runs.end > index.runs.runs[0].offset);
        assert_eq!(index.runs.end, index.runs.runs.last().unwrap().end());
    }

    #[test]
    fn the_watchdog_raises_a_starved_index_and_lowers_it_once_caught_up() {
        use std::time::Duration;
        let starved = STARVED_AFTER;
        assert_eq!(priority_change(false, 5_000, starved), Some(PriorityChange::Raise), "behind and stalled");
        assert_eq!(priority_change(false, 5_000, starved - Duration::from_millis(1)), None, "not stalled long enough");
        assert_eq!(priority_change(false, 0, starved * 3), None, "idle, not starved: nothing to apply");
        assert_eq!(priority_change(true, 5_000, Duration::ZERO), None, "raised and still catching up");
        assert_eq!(priority_change(true, CAUGHT_UP_LAG - 1, Duration::ZERO), Some(PriorityChange::Lower));
        assert_eq!(priority_change(true, CAUGHT_UP_LAG, starved), None);
    }

    /// The calls the watchdog makes, on a real thread: lowering to SCHED_IDLE always works;
    /// raising works with CAP_SYS_NICE (or RLIMIT_NICE ≥ 1) and otherwise fails and changes
    /// nothing.
    #[cfg(target_os = "linux")]
    #[test]
    fn raising_and_lowering_a_thread_changes_its_policy() {
        let thread = Arc::new(IndexThread::default());
        assert!(thread.raise().is_err(), "no thread recorded yet");
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel::<i32>();
        let recorder = thread.clone();
        let worker = std::thread::spawn(move || {
            recorder.record_current();
            // SAFETY: a plain syscall.
            ready.send(unsafe { libc::syscall(libc::SYS_gettid) } as i32).unwrap();
            let _ = wait.recv();
        });
        let tid = started.recv().unwrap();
        // SAFETY: plain syscalls on a thread of this process.
        let policy = || unsafe { libc::sched_getscheduler(tid) };
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
        thread.lower().unwrap();
        assert_eq!(policy(), libc::SCHED_IDLE);
        assert!(!thread.raised());
        match thread.raise() {
            Ok(()) => {
                assert_eq!(policy(), libc::SCHED_OTHER);
                assert_eq!(nice(), 19);
                assert!(thread.raised());
                thread.lower().unwrap();
                assert_eq!(policy(), libc::SCHED_IDLE);
            }
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
                assert_eq!(policy(), libc::SCHED_IDLE, "a refused raise leaves it idle");
                assert!(!thread.raised());
            }
        }
        done.send(()).unwrap();
        worker.join().unwrap();
    }

    #[test]
    fn conditions_sort_like_a_plain_sort_whatever_their_prefixes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut sorted, mut buckets) = (Vec::new(), Vec::new());
        // Random digests; all in one bucket; many equal prefixes; none; one.
        let random: Vec<([u8; 8], u64)> = (0..20_000).map(|id| (next().to_be_bytes(), id)).collect();
        let clustered: Vec<([u8; 8], u64)> = (0..3_000).map(|id| ((next() >> 16).to_be_bytes(), 3_000 - id)).collect();
        let repeated: Vec<([u8; 8], u64)> = (0..3_000).map(|_| ((next() % 5).to_be_bytes(), next() % 7)).collect();
        for pairs in [random, clustered, repeated, Vec::new(), vec![([7; 8], 1)]] {
            let mut expected = pairs.clone();
            expected.sort_unstable();
            sort_conditions(&pairs, &mut sorted, &mut buckets);
            assert_eq!(sorted, expected);
        }
    }

    #[test]
    fn posting_chunks_round_trip_with_any_gaps() {
        let seqs = [1u64, 2, 3, 130, 131, 20_000, 20_001, 1 << 40, (1 << 40) + 1, u64::MAX];
        for end in 0..=seqs.len() {
            assert_eq!(chunk_seqs(&chunk_value(&seqs[..end])), &seqs[..end]);
        }
        assert_eq!(chunk_value(&[5, 7, 9, 11]).len(), 8 + 3, "a byte per close seq");
        assert_eq!(chunk_value(&[5, 6, 7]).len(), 8 + 2, "two consecutive seqs: a byte each");
        let dense: Vec<u64> = (1_000..1_000 + CHUNK_SEQS as u64).collect();
        assert_eq!(chunk_value(&dense).len(), 8 + 3, "a chunk of consecutive seqs: a run of 511");
        assert_eq!(chunk_seqs(&chunk_value(&dense)), dense);
        // Runs and gaps mixed, every way they can follow each other.
        let mixed: Vec<u64> = [1u64, 2, 3, 4, 10, 11, 12, 20, 21, 22, 23, 24, 25, 300, 301, 302, 303, 1 << 40, (1 << 40) + 1]
            .into_iter()
            .collect();
        for end in 0..=mixed.len() {
            for start in 0..end {
                assert_eq!(chunk_seqs(&chunk_value(&mixed[start..end])), &mixed[start..end], "{start}..{end}");
            }
        }
        assert_eq!(chunk_seqs(&[0, 0, 0]), Vec::<u64>::new(), "a truncated first seq");
        // A run longer than a chunk holds (corrupt bytes) stops at a chunk's worth.
        let mut corrupt = 7u64.to_be_bytes().to_vec();
        corrupt.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(chunk_seqs(&corrupt).len(), CHUNK_SEQS);
    }

    #[test]
    fn a_resume_after_a_lost_meta_writes_the_same_chunks_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = journal(&dir.path().join("journal"), 5_000);
        let index_dir = dir.path().join("index");
        let mut index = ExplorerIndex::open(&index_dir, &store, Arc::new(Live::detached())).unwrap();
        index_all(&mut index, &store, 1);
        index.persist().unwrap();
        let expected: Vec<u64> = index.reader().postings_rev(Dimension::Peer("bob"), 1, u64::MAX).collect();
        // As if the last batches' `meta` had not reached the disk: the position goes back while
        // the chunks written after it stay.
        let back = index.position() - 3_000;
        index.reader.meta.insert("position", &back.to_be_bytes()).unwrap();
        index.db.flush().unwrap();
        drop(index);
        let mut index = ExplorerIndex::open(&index_dir, &store, Arc::new(Live::detached())).unwrap();
        assert_eq!(index.position(), back);
        index_all(&mut index, &store, back + 1);
        index.persist().unwrap();
        let again: Vec<u64> = index.reader().postings_rev(Dimension::Peer("bob"), 1, u64::MAX).collect();
        assert_eq!(again, expected, "no duplicates, nothing lost");
    }
}
