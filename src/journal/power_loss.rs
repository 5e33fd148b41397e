//! Power loss, simulated (issue 12): a deterministic, seeded run of the journal's durability
//! path over a disk that keeps only what was synced.
//!
//! A SIGKILL keeps the page cache, so the crash tests (tests/it/crash.rs) pass even with the
//! fdatasync removed. Here the commit log runs over [`SimFile`], the [`LogFile`] seam: a write
//! reaches the "platter" only when a sync follows it; at a power loss each unsynced write is
//! lost, kept, or torn (a prefix kept), independently. sled is modelled the same way: what its
//! last flush made durable, plus a prefix of the inserts since (its log is sequential).
//!
//! The writer path is the real one: frames encoded by `frame::encode`, appended to the real
//! [`CommitLog`] and made durable by its `make_durable` (sync, or sync the store and start
//! over when full); recovery is the real `scan_from` and `frames_to_copy`. Each seed runs
//! random batches, loses power at a random I/O (a write, a sync, a grow, a start-over), recovers,
//! carries on after what it recovered, and does it again. After every recovery: every frame
//! decodes and checks, the seqs run from 1 without a gap, what was recovered is exactly what
//! was written, and every batch whose Fulfills were released (its flush returned) is in it.
//!
//! `CommitLog::skip_sync` is the bug this exists for; the second test shows the simulation
//! catches it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::commit_log::{self, CommitLog, LogFile};
use super::event::{Event, JournalEntry, PacketFulfilled};
use super::frame;

/// A small, deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the disk was asked to do since its last sync.
enum Op {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Default)]
struct Disk {
    /// What survives a power loss.
    platter: Vec<u8>,
    /// What reads see now (the page cache).
    cache: Vec<u8>,
    unsynced: Vec<Op>,
    /// I/O calls left before the power goes (None: never).
    power_left: Option<u64>,
}

impl Disk {
    fn apply(image: &mut Vec<u8>, op: &Op) {
        match op {
            Op::Write { offset, bytes } => {
                let end = *offset as usize + bytes.len();
                if image.len() < end {
                    image.resize(end, 0);
                }
                image[*offset as usize..end].copy_from_slice(bytes);
            }
            Op::SetLen(size) => image.resize(*size as usize, 0),
        }
    }

    /// Counts one I/O call; fails once the power is gone.
    fn io(&mut self) -> std::io::Result<()> {
        match &mut self.power_left {
            Some(0) => Err(std::io::Error::other("power lost")),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The power goes: each unsynced operation is lost, kept, or (a write) torn to a prefix.
    fn lose_power(&mut self, rng: &mut Rng) {
        for op in std::mem::take(&mut self.unsynced) {
            match (rng.below(3), op) {
                (0, _) => {}
                (1, op) => Disk::apply(&mut self.platter, &op),
                (_, Op::Write { offset, mut bytes }) => {
                    bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
                    Disk::apply(&mut self.platter, &Op::Write { offset, bytes });
                }
                (_, op) => Disk::apply(&mut self.platter, &op),
            }
        }
        self.cache = self.platter.clone();
        self.power_left = None;
    }
}

/// The commit log's file on the simulated disk.
#[derive(Clone, Default)]
struct SimFile(Arc<Mutex<Disk>>);

impl SimFile {
    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0.lock().expect("the simulated disk")
    }
}

impl LogFile for SimFile {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.disk().cache.len() as u64)
    }
    fn set_len(&self, size: u64) -> std::io::Result<()> {
        let mut disk = self.disk();
        disk.io()?;
        let op = Op::SetLen(size);
        Disk::apply(&mut disk.cache, &op);
        disk.unsynced.push(op);
        Ok(())
    }
    fn write_at_offset(&self, bytes: &[u8], offset: u64) -> std::io::Result<()> {
        let mut disk = self.disk();
        disk.io()?;
        let op = Op::Write { offset, bytes: bytes.to_vec() };
        Disk::apply(&mut disk.cache, &op);
        disk.unsynced.push(op);
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let mut disk = self.disk();
        disk.io()?;
        for op in std::mem::take(&mut disk.unsynced) {
            Disk::apply(&mut disk.platter, &op);
        }
        Ok(())
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// sled, as far as durability goes: its last flush, plus a prefix of the inserts since.
#[derive(Default)]
struct Sled {
    frames: BTreeMap<u64, Vec<u8>>,
    durable: BTreeMap<u64, Vec<u8>>,
    since_flush: Vec<(u64, Vec<u8>)>,
}

impl Sled {
    fn insert(&mut self, key: u64, bytes: Vec<u8>) {
        self.frames.insert(key, bytes.clone());
        self.since_flush.push((key, bytes));
    }

    fn flush(&mut self) {
        self.durable = self.frames.clone();
        self.since_flush.clear();
    }

    fn lose_power(&mut self, rng: &mut Rng) {
        let kept = rng.below(self.since_flush.len() as u64 + 1) as usize;
        for (key, bytes) in self.since_flush.drain(..).take(kept) {
            self.durable.insert(key, bytes);
        }
        self.frames = self.durable.clone();
    }

    /// Every frame decoded and checked, in key order.
    fn entries(&self) -> Result<Vec<JournalEntry>, String> {
        let mut entries = Vec::new();
        for (key, bytes) in &self.frames {
            entries.extend(frame::decode(*key, bytes).map_err(|error| format!("frame {key}: {error}"))?);
        }
        Ok(entries)
    }
}

/// The journal writer's durability path over the simulated disk and sled.
struct Journal {
    log: CommitLog<SimFile>,
    last_written: u64,
    buffer: Vec<u8>,
}

/// A commit log this small starts over every few batches.
const CAPACITY: u64 = 4096;

impl Journal {
    /// Opens after a power loss, as `SledStore::open` then `attach_commit_log` do: copy the
    /// frames only the log holds into sled, flush sled, start the log over.
    fn open(file: &SimFile, sled: &mut Sled, skip_sync: bool, stats: &mut Stats) -> Result<Journal, String> {
        let image = file.disk().cache.clone();
        let scan = commit_log::scan_from(&image[..], image.len() as u64).map_err(|error| error.to_string())?;
        let held = sled.entries()?.last().map_or(0, |entry| entry.seq);
        let copy = commit_log::frames_to_copy(&scan, held).map_err(|error| format!("{error:?}"))?;
        let mut last = held;
        for logged in copy {
            stats.copied += 1;
            sled.insert(logged.first_seq, logged.bytes.clone());
            last = logged.first_seq + u64::from(logged.events) - 1;
        }
        sled.flush();
        let mut log = CommitLog::with_file(file.clone(), PathBuf::from("sim/commit.log"), CAPACITY, last, |_| Ok(()))
            .map_err(|error| format!("opening the log: {error}"))?;
        log.skip_sync = skip_sync;
        Ok(Journal { log, last_written: last, buffer: Vec::new() })
    }

    fn write_frame(&mut self, sled: &mut Sled, entries: &[JournalEntry]) {
        frame::encode(entries, &mut self.buffer).expect("encoding a frame");
        let (first, last) = (entries[0].seq, entries[entries.len() - 1].seq);
        sled.insert(first, self.buffer.clone());
        self.log.append(first, (last - first + 1) as u32, &self.buffer);
        self.last_written = last;
    }

    fn flush(&mut self, sled: &mut Sled, stats: &mut Stats) -> std::io::Result<()> {
        let durable = self.log
            .make_durable(
                self.last_written,
                || {
                    sled.flush();
                    Ok(())
                },
                |_, error| error,
            )?;
        if durable == commit_log::Durable::StartedOver {
            stats.started_over += 1;
        }
        Ok(())
    }
}

/// What the runs went through, so the test can tell they reached the interesting paths.
#[derive(Debug, Default)]
struct Stats {
    /// Frames recovery copied from the commit log (in it, not in sled).
    copied: u64,
    /// Flushes that found the log full: sled flushed, the log started over.
    started_over: u64,
}

/// One seed: `crashes` power losses, each after a random number of I/O calls. Err says what
/// the recovered journal got wrong.
fn run(seed: u64, crashes: u32, skip_sync: bool, stats: &mut Stats) -> Result<(), String> {
    let mut rng = Rng(seed);
    let file = SimFile::default();
    let mut sled = Sled::default();
    // What was written, by seq - 1 (truncated to what each recovery found).
    let mut written: Vec<JournalEntry> = Vec::new();
    let mut released = 0u64;
    for crash in 0..crashes {
        let mut journal = Journal::open(&file, &mut sled, skip_sync, stats)?;
        file.disk().power_left = Some(rng.below(60));
        'batches: for _ in 0..40 {
            let frames = 1 + rng.below(3);
            for _ in 0..frames {
                let events = 1 + rng.below(6);
                let first = written.len() as u64 + 1;
                let entries: Vec<JournalEntry> = (first..first + events)
                    .map(|seq| JournalEntry {
                        seq,
                        timestamp_ms: seq as i64,
                        event: Event::PacketFulfilled(PacketFulfilled { packet_id: rng.next(), fulfillment: [seq as u8; 32] }),
                    })
                    .collect();
                journal.write_frame(&mut sled, &entries);
                written.extend(entries);
            }
            match journal.flush(&mut sled, stats) {
                // Durable: the batch's Fulfills leave.
                Ok(()) => released = written.len() as u64,
                Err(_) => break 'batches,
            }
        }
        file.disk().lose_power(&mut rng);
        sled.lose_power(&mut rng);
        let recovered = Journal::open(&file, &mut sled, skip_sync, stats).map(|_| ()).and_then(|()| sled.entries());
        let recovered = recovered.map_err(|error| format!("seed {seed}, crash {crash}: recovery failed: {error}"))?;
        for (index, entry) in recovered.iter().enumerate() {
            if entry.seq != index as u64 + 1 || written.get(index) != Some(entry) {
                return Err(format!("seed {seed}, crash {crash}: recovered seq {} differs from what was written at {}", entry.seq, index + 1));
            }
        }
        let last = recovered.len() as u64;
        if last < released {
            return Err(format!(
                "seed {seed}, crash {crash}: Fulfills through seq {released} were released but the journal recovered only through {last}"
            ));
        }
        written.truncate(recovered.len());
        released = last;
    }
    Ok(())
}

/// Seeds per run: thousands, within seconds even unoptimized.
const SEEDS: u64 = 5_000;

#[test]
fn no_released_fulfill_is_lost_to_a_power_loss() {
    let mut stats = Stats::default();
    for seed in 0..SEEDS {
        if let Err(failure) = run(seed, 3, false, &mut stats) {
            panic!("{failure}");
        }
    }
    // The runs went through both ways to durability and recovered from the log.
    assert!(stats.copied > SEEDS && stats.started_over > SEEDS, "{stats:?}");
}

#[test]
fn the_simulation_catches_a_commit_log_that_skips_its_sync() {
    let mut stats = Stats::default();
    let caught = (0..SEEDS).filter_map(|seed| run(seed, 3, true, &mut stats).err()).next();
    let failure = caught.expect("with the sync skipped, some seed must lose a released Fulfill");
    assert!(failure.contains("were released but the journal recovered only through"), "{failure}");
}
