//! The durable journal store on sled 0.34.
//!
//! Trees: `frames` (first seq, big-endian → frame, see `frame.rs`), `snapshots` (seq,
//! big-endian → a bincode snapshot of the forwarder's state at that seq), `checkpoints`
//! (projection name → last applied seq). sled's own log is flushed explicitly, once per batch
//! (group commit); its background flusher is turned off so nothing else decides durability.
//! sled holds an exclusive lock on the directory, so a second node on the same journal fails to
//! start instead of interleaving writes.
//!
//! The journal writer's store has a commit log ([`super::commit_log`]): a batch is made durable
//! by appending its frames there and fdatasyncing, and sled itself is flushed only when the log
//! is full and at stop. Opening a journal copies into sled any frame that only the commit log
//! holds (written before a crash, after sled's last flush), so readers only ever read sled.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::commit_log::{self, CommitLog};
use super::event::JournalEntry;
use super::frame::{self, FrameError};
use super::{JournalError, Store};

/// How much the writer inserts into sled before it has sled write its buffer (see
/// `Store::after_release` for `SledStore`): well below a segment, so sled never fills one and
/// writes it on its own. At W=256, 256 KiB beat 64 KiB and 1 MiB in alternating runs
/// (BENCHMARKS.md, "The commit log").
const SLED_WRITE_EVERY_BYTES: usize = 256 << 10;

/// The file sled keeps its log in, inside the journal directory.
const SLED_LOG_FILE: &str = "db";

/// sled's page cache. The journal is written once and read sequentially, so a modest cache is
/// enough; passed explicitly so a library default can't change memory use.
const CACHE_CAPACITY_BYTES: u64 = 64 << 20;

/// sled's segment size, which is also the size of the buffer its IO threads write at once.
/// Smaller writes keep the commit log's fdatasync from queueing behind a large one: at W=256,
/// 2 MiB instead of 8 MiB halved p99.9 (BENCHMARKS.md, "The commit log"). A frame larger than a
/// quarter of a segment (512 KiB, ~4,000 typical events) is stored by sled as a blob file:
/// slower, equally durable (see the test `a_frame_larger_than_a_quarter_segment_reads_back`).
const SEGMENT_SIZE_BYTES: usize = 2 << 20;

pub struct SledStore {
    db: sled::Db,
    frames: sled::Tree,
    snapshots: sled::Tree,
    checkpoints: sled::Tree,
    dir: PathBuf,
    buffer: Vec<u8>,
    /// Size of the last frame written, for the frame-size metric.
    last_frame_size: usize,
    /// Whether `Store::flush` reaches the disk (see `JournalConfig::durable`).
    durable: bool,
    /// sled's log file, for the fdatasync that sled's own flush leaves out (see `flush`).
    log_file: Arc<std::fs::File>,
    /// The journal writer's commit log (see [`SledStore::attach_commit_log`]); clones have none.
    commit_log: Option<CommitLog>,
    /// The last seq written by `write_frame` (what a sled flush makes durable).
    last_written_seq: u64,
    /// Bytes inserted into sled since it last wrote its buffer (see `after_release`).
    sled_unwritten_bytes: usize,
    /// What opening copied from the commit log: frames, and the last seq they reached.
    copied_from_commit_log: Option<(usize, u64)>,
}

impl Clone for SledStore {
    /// A handle on the same journal, for reading (and for checkpoints, retention and tools,
    /// which flush sled themselves). It has no commit log: only the writer's store writes one.
    fn clone(&self) -> SledStore {
        SledStore {
            db: self.db.clone(),
            frames: self.frames.clone(),
            snapshots: self.snapshots.clone(),
            checkpoints: self.checkpoints.clone(),
            dir: self.dir.clone(),
            buffer: Vec::new(),
            last_frame_size: 0,
            durable: self.durable,
            log_file: self.log_file.clone(),
            commit_log: None,
            last_written_seq: self.last_written_seq,
            sled_unwritten_bytes: 0,
            copied_from_commit_log: self.copied_from_commit_log,
        }
    }
}

/// One frame read back: its key and events.
pub struct StoredFrame {
    pub key: u64,
    pub size: usize,
    pub entries: Vec<JournalEntry>,
}

/// What a scan of the whole journal found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalSummary {
    pub frame_count: u64,
    pub event_count: u64,
    pub size_bytes: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

impl SledStore {
    /// Opens (creating if needed) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, JournalError> {
        std::fs::create_dir_all(dir).map_err(|error| JournalError::Storage(format!(
            "cannot create journal directory {}: {error}",
            dir.display()
        )))?;
        let db = open_db(dir)?;
        let tree = |name: &str| db.open_tree(name).map_err(|error| storage(format!("opening tree {name}"), error));
        let mut store = SledStore {
            frames: tree("frames")?,
            snapshots: tree("snapshots")?,
            checkpoints: tree("checkpoints")?,
            db,
            dir: dir.to_path_buf(),
            buffer: Vec::with_capacity(64 << 10),
            last_frame_size: 0,
            durable: true,
            log_file: Arc::new(std::fs::File::open(dir.join(SLED_LOG_FILE)).map_err(|error| {
                JournalError::Storage(format!("cannot open sled's log file in {}: {error}", dir.display()))
            })?),
            commit_log: None,
            last_written_seq: 0,
            sled_unwritten_bytes: 0,
            copied_from_commit_log: None,
        };
        store.copy_from_commit_log()?;
        store.last_written_seq = store.last_seq()?;
        Ok(store)
    }

    /// Copies into sled the frames that only the commit log holds: those written after sled's
    /// last flush by a node that then stopped without closing (a crash, a kill, a power loss).
    fn copy_from_commit_log(&mut self) -> Result<(), JournalError> {
        let log_error = |error: std::io::Error| {
            JournalError::Storage(format!(
                "cannot read the commit log {}: {error}",
                self.dir.join(commit_log::FILE_NAME).display()
            ))
        };
        let Some(scan) = commit_log::scan(&self.dir).map_err(log_error)? else { return Ok(()) };
        let held = self.last_seq()?;
        let mut last = held;
        let mut copied = 0usize;
        let to_copy = commit_log::frames_to_copy(&scan, held).map_err(|error| match error {
            commit_log::CopyError::Gap { held, continues_at } => JournalError::Storage(format!(
                "the commit log in {} continues at seq {continues_at} but the journal ends at seq {held}: \
                 frames are missing between them",
                self.dir.display(),
            )),
            commit_log::CopyError::Corrupt { first_seq, reason } => corrupt(&self.dir, first_seq, reason),
        })?;
        for logged in to_copy {
            self.frames
                .insert(seq_key(logged.first_seq), logged.bytes.as_slice())
                .map_err(|error| storage("copying a frame from the commit log".into(), error))?;
            last = logged.first_seq.saturating_add(u64::from(logged.events) - 1);
            copied += 1;
        }
        if copied > 0 {
            self.sync_sled()?;
            self.copied_from_commit_log = Some((copied, last));
            tracing::info!(
                dir = %self.dir.display(),
                frames = copied,
                last_seq = last,
                "journal: copied frames written before the last stop from the commit log into sled"
            );
        }
        Ok(())
    }

    /// Frames this open copied from the commit log into sled (written before a crash, after
    /// sled's last flush), and the last seq they reached; None when there were none.
    pub fn copied_from_commit_log(&self) -> Option<(usize, u64)> {
        self.copied_from_commit_log
    }

    /// Gives this store the commit log (the journal writer's store only): from now on a flush
    /// writes and fdatasyncs the log instead of flushing sled. Without durability (benchmarks of
    /// what it costs) there is nothing to attach.
    pub fn attach_commit_log(&mut self, capacity: u64) -> Result<(), JournalError> {
        if !self.durable {
            return Ok(());
        }
        // The log starts over at what sled holds, so sled must hold it durably.
        self.sync_sled()?;
        let log = CommitLog::open(&self.dir, capacity, self.last_written_seq).map_err(|error| {
            JournalError::Storage(format!(
                "cannot open the commit log {}: {error}",
                self.dir.join(commit_log::FILE_NAME).display()
            ))
        })?;
        self.commit_log = Some(log);
        Ok(())
    }

    /// sled's flush plus the fdatasync it leaves out: every insert so far is durable in sled.
    fn sync_sled(&self) -> Result<(), JournalError> {
        SledStore::flush(self)?;
        // sled 0.34 ends its flush with sync_file_range, which writes the pages but doesn't
        // flush the disk's volatile cache or the file's metadata: a power loss could still lose
        // them. fdatasync makes them durable.
        self.log_file
            .sync_data()
            .map_err(|error| JournalError::Storage(format!("fdatasync of the journal failed: {error}")))
    }

    /// Turns off the flush per batch (benchmarks of what durability costs only).
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size in bytes of the last frame written (for metrics).
    pub fn last_frame_size(&self) -> usize {
        self.last_frame_size
    }

    /// The highest sequence number stored, 0 for an empty journal.
    pub fn last_seq(&self) -> Result<u64, JournalError> {
        let Some((key, value)) = self.frames.last().map_err(|error| storage("reading the last frame".into(), error))? else {
            return Ok(0);
        };
        let key = key_seq(&key);
        let entries = frame::decode(key, &value).map_err(|reason| corrupt(&self.dir, key, reason))?;
        Ok(entries.last().map_or(key, |entry| entry.seq))
    }

    /// Frames holding events with seq ≥ `from_seq`, in order, decoded and checked. The first
    /// frame may start before `from_seq`; callers skip the entries they already have.
    pub fn frames_from(&self, from_seq: u64) -> impl Iterator<Item = Result<StoredFrame, JournalError>> + '_ {
        let (start, lookup_error) = match self.frames.range(..=seq_key(from_seq)).next_back() {
            Some(Ok((key, _))) => (key_seq(&key), None),
            Some(Err(error)) => (from_seq, Some(storage("finding the frame of a seq".into(), error))),
            None => (from_seq, None),
        };
        let frames = self.frames.range(seq_key(start)..).map(move |item| {
            let (key, value) = item.map_err(|error| storage("reading a frame".into(), error))?;
            let key = key_seq(&key);
            let entries = frame::decode(key, &value).map_err(|reason| corrupt(&self.dir, key, reason))?;
            Ok(StoredFrame { key, size: value.len(), entries })
        });
        // A failed lookup is reported first instead of silently starting a frame late.
        lookup_error.map(Err).into_iter().chain(frames)
    }

    /// The frame holding `seq`, decoded (None when no frame does: before the first, or after
    /// the last event).
    pub fn frame_containing(&self, seq: u64) -> Result<Option<StoredFrame>, JournalError> {
        let Some(item) = self.frames.range(..=seq_key(seq)).next_back() else {
            return Ok(None);
        };
        let (key, value) = item.map_err(|error| storage("finding the frame of a seq".into(), error))?;
        let key = key_seq(&key);
        let entries = frame::decode(key, &value).map_err(|reason| corrupt(&self.dir, key, reason))?;
        if entries.last().is_none_or(|last| last.seq < seq) {
            return Ok(None);
        }
        Ok(Some(StoredFrame { key, size: value.len(), entries }))
    }

    /// Frames holding events with seq ≤ `to_seq`, newest first, decoded and checked. The first
    /// frame may end after `to_seq`; callers skip those entries.
    pub fn frames_back_from(&self, to_seq: u64) -> impl Iterator<Item = Result<StoredFrame, JournalError>> + '_ {
        self.frames.range(..=seq_key(to_seq)).rev().map(move |item| {
            let (key, value) = item.map_err(|error| storage("reading a frame".into(), error))?;
            let key = key_seq(&key);
            let entries = frame::decode(key, &value).map_err(|reason| corrupt(&self.dir, key, reason))?;
            Ok(StoredFrame { key, size: value.len(), entries })
        })
    }

    /// Events with seq ≥ `from_seq`, in order.
    pub fn entries_from(&self, from_seq: u64) -> impl Iterator<Item = Result<JournalEntry, JournalError>> + '_ {
        self.frames_from(from_seq).flat_map(move |frame| {
            let entries: Vec<Result<JournalEntry, JournalError>> = match frame {
                Ok(frame) => frame.entries.into_iter().filter(|entry| entry.seq >= from_seq).map(Ok).collect(),
                Err(error) => vec![Err(error)],
            };
            entries
        })
    }

    /// Checks every frame's checksum and that sequence numbers continue without gaps from frame
    /// to frame, decoding only the first and last event of each frame. Names the first bad frame.
    pub fn verify(&self) -> Result<JournalSummary, JournalError> {
        let mut summary = JournalSummary::default();
        let mut expected_key: Option<u64> = None;
        for item in self.frames.iter() {
            let (key, value) = item.map_err(|error| storage("reading a frame".into(), error))?;
            let key = key_seq(&key);
            let entries = frame::decode(key, &value).map_err(|reason| corrupt(&self.dir, key, reason))?;
            if let Some(expected) = expected_key {
                if key != expected {
                    return Err(corrupt(&self.dir, key, FrameError::Sequence { expected, found: key }));
                }
            }
            let last = entries.last().expect("decode rejects empty frames").seq;
            summary.first_seq.get_or_insert(key);
            summary.last_seq = Some(last);
            summary.frame_count += 1;
            summary.event_count += entries.len() as u64;
            summary.size_bytes += value.len() as u64;
            expected_key = Some(last + 1);
        }
        Ok(summary)
    }

    /// Checks every frame's checksum without decoding events: cheap enough for every start.
    pub fn check_checksums(&self) -> Result<u64, JournalError> {
        let mut count = 0;
        for item in self.frames.iter() {
            let (key, value) = item.map_err(|error| storage("reading a frame".into(), error))?;
            frame::check(&value).map_err(|reason| corrupt(&self.dir, key_seq(&key), reason))?;
            count += 1;
        }
        Ok(count)
    }

    /// The newest snapshot: its seq and bytes.
    pub fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        let last = self.snapshots.last().map_err(|error| storage("reading the latest snapshot".into(), error))?;
        Ok(last.map(|(key, value)| (key_seq(&key), value.to_vec())))
    }

    /// The newest snapshot at or before `seq`.
    pub fn latest_snapshot_at_most(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        let found = self.snapshots.range(..=seq_key(seq)).next_back();
        match found {
            Some(Ok((key, value))) => Ok(Some((key_seq(&key), value.to_vec()))),
            Some(Err(error)) => Err(storage("reading a snapshot".into(), error)),
            None => Ok(None),
        }
    }

    pub fn snapshot_seqs(&self) -> Result<Vec<u64>, JournalError> {
        self.snapshots
            .iter()
            .keys()
            .map(|key| key.map(|key| key_seq(&key)).map_err(|error| storage("listing snapshots".into(), error)))
            .collect()
    }

    /// Removes frames that end before `seq` (used by retention once a snapshot covers them),
    /// handing each to `archive` first. Returns how many were removed.
    pub fn remove_frames_before(
        &self,
        seq: u64,
        mut archive: impl FnMut(u64, &[u8]) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        let mut removed = 0;
        for item in self.frames.range(..seq_key(seq)) {
            let (key, value) = item.map_err(|error| storage("reading a frame".into(), error))?;
            let first = key_seq(&key);
            let entries = frame::decode(first, &value).map_err(|reason| corrupt(&self.dir, first, reason))?;
            if entries.last().is_some_and(|entry| entry.seq >= seq) {
                break;
            }
            archive(first, &value)?;
            self.frames.remove(&key).map_err(|error| storage("removing an archived frame".into(), error))?;
            removed += 1;
        }
        self.flush()?;
        Ok(removed)
    }

    /// A projection's checkpoint: the last seq it applied and the state it saved with it
    /// (empty for projections whose state lives elsewhere, such as TigerBeetle).
    pub fn checkpoint(&self, projection: &str) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        let value = self.checkpoints.get(projection).map_err(|error| storage("reading a checkpoint".into(), error))?;
        Ok(value.filter(|value| value.len() >= 8).map(|value| (key_seq(&value[..8]), value[8..].to_vec())))
    }

    /// Every checkpoint: projection name and seq.
    pub fn checkpoints(&self) -> Result<Vec<(String, u64)>, JournalError> {
        self.checkpoints
            .iter()
            .map(|item| {
                let (name, value) = item.map_err(|error| storage("listing checkpoints".into(), error))?;
                Ok((String::from_utf8_lossy(&name).into_owned(), key_seq(&value[..value.len().min(8)])))
            })
            .collect()
    }

    /// Saves a checkpoint and flushes it: a checkpoint must never claim more than was applied.
    pub fn save_checkpoint(&self, projection: &str, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        let mut value = Vec::with_capacity(8 + state.len());
        value.extend_from_slice(&seq.to_be_bytes());
        value.extend_from_slice(state);
        self.checkpoints
            .insert(projection, value)
            .map_err(|error| storage("writing a checkpoint".into(), error))?;
        self.flush()
    }

    /// Raw access for `journal verify`-style tools and corruption tests.
    pub fn raw_frame(&self, key: u64) -> Result<Option<Vec<u8>>, JournalError> {
        let value = self.frames.get(seq_key(key)).map_err(|error| storage("reading a frame".into(), error))?;
        Ok(value.map(|value| value.to_vec()))
    }

    /// The key (first seq) of the oldest frame held, without walking the others.
    pub fn first_frame_key(&self) -> Result<Option<u64>, JournalError> {
        let first = self.frames.first().map_err(|error| storage("reading the first frame".into(), error))?;
        Ok(first.map(|(key, _)| key_seq(&key)))
    }

    pub fn frame_keys(&self) -> Result<Vec<u64>, JournalError> {
        self.frames
            .iter()
            .keys()
            .map(|key| key.map(|key| key_seq(&key)).map_err(|error| storage("listing frames".into(), error)))
            .collect()
    }

    /// Overwrites a frame's stored bytes. Only for tests and repair tooling.
    pub fn put_raw_frame(&self, key: u64, value: &[u8]) -> Result<(), JournalError> {
        self.frames.insert(seq_key(key), value).map_err(|error| storage("writing a frame".into(), error))?;
        self.flush()
    }

    fn flush(&self) -> Result<(), JournalError> {
        self.db.flush().map_err(|error| storage("flushing".into(), error))?;
        Ok(())
    }
}

impl Store for SledStore {
    fn write_frame(&mut self, entries: &[JournalEntry]) -> Result<(), JournalError> {
        let Some(first) = entries.first() else { return Ok(()) };
        frame::encode(entries, &mut self.buffer).map_err(|error| JournalError::Storage(format!("encoding a frame: {error}")))?;
        self.last_frame_size = self.buffer.len();
        self.frames
            .insert(seq_key(first.seq), self.buffer.as_slice())
            .map_err(|error| storage("writing a frame".into(), error))?;
        let last = entries.last().map_or(first.seq, |entry| entry.seq);
        self.last_written_seq = last;
        self.sled_unwritten_bytes += self.buffer.len();
        if let Some(log) = &mut self.commit_log {
            log.append(first.seq, (last - first.seq + 1) as u32, &self.buffer);
        }
        Ok(())
    }

    /// Makes the batch durable, which is what releasing its Fulfills promises: with the commit
    /// log, one write and fdatasync of it (or, when it is full, a sled flush and a fresh log);
    /// without (tools and tests), a sled flush.
    fn flush(&mut self) -> Result<(), JournalError> {
        let started = Instant::now();
        if self.durable {
            let log_error = |what: &str, error: std::io::Error| {
                JournalError::Storage(format!("{what} of the commit log in {} failed: {error}", self.dir.display()))
            };
            match self.commit_log.take() {
                Some(mut log) => {
                    // Full, sled takes everything written so far durably and the log starts
                    // over after it.
                    let durable = log.make_durable(self.last_written_seq, || self.sync_sled(), log_error);
                    self.commit_log = Some(log);
                    if durable? == commit_log::Durable::StartedOver {
                        crate::metrics::global().journal_commit_log_restarted();
                    }
                }
                None => self.sync_sled()?,
            }
        }
        crate::metrics::global().journal_flushed(started.elapsed(), self.last_frame_size);
        Ok(())
    }

    /// With the commit log, sled would write its buffer (a segment, 2 MiB) from its own IO
    /// threads whenever it fills, and that write would hold up the commit log's next fdatasync
    /// (one disk queue): at W=256 that made ~10 flushes a second take milliseconds. Instead the
    /// writer has sled write what it holds every `SLED_WRITE_EVERY_BYTES`, here, after the
    /// batch's Fulfills have left and before the next batch: no fdatasync (the commit log has
    /// the durability), just sled's write, on the writer's own schedule.
    fn after_release(&mut self) -> Result<(), JournalError> {
        if self.commit_log.is_none() || self.sled_unwritten_bytes < SLED_WRITE_EVERY_BYTES {
            return Ok(());
        }
        self.sled_unwritten_bytes = 0;
        SledStore::flush(self)
    }

    /// At stop: sled takes everything durably and the commit log starts over empty, so the next
    /// start copies nothing.
    fn close(&mut self) -> Result<(), JournalError> {
        if !self.durable || self.commit_log.is_none() {
            return Ok(());
        }
        self.sync_sled()?;
        let through = self.last_written_seq;
        if let Some(log) = &mut self.commit_log {
            log.start_over(through).map_err(|error| {
                JournalError::Storage(format!("starting the commit log over in {} failed: {error}", self.dir.display()))
            })?;
        }
        Ok(())
    }

    fn save_snapshot(&mut self, seq: u64, snapshot: &[u8]) -> Result<(), JournalError> {
        self.snapshots
            .insert(seq_key(seq), snapshot)
            .map_err(|error| storage("writing a snapshot".into(), error))?;
        // Keep the two newest: the latest, and one to fall back on.
        let keys = self.snapshot_seqs()?;
        for old in keys.iter().rev().skip(2) {
            self.snapshots.remove(seq_key(*old)).map_err(|error| storage("removing an old snapshot".into(), error))?;
        }
        Ok(())
    }
}

pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn key_seq(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let size = key.len().min(8);
    bytes[8 - size..].copy_from_slice(&key[..size]);
    u64::from_be_bytes(bytes)
}

fn storage(what: String, error: sled::Error) -> JournalError {
    JournalError::Storage(format!("{what}: {error}"))
}

fn corrupt(dir: &Path, key: u64, reason: FrameError) -> JournalError {
    JournalError::Corrupt { dir: dir.to_path_buf(), frame: key, reason }
}

/// How long `open` waits for a lock that a just-stopped node in this process may still hold
/// (sled's threads release it a moment after the last handle is dropped).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The segment size an existing journal was created with (sled refuses to open a database with
/// another): journals made before [`SEGMENT_SIZE_BYTES`] changed keep theirs. sled records it in
/// the text file `conf` as a line `segment_size: N`.
fn existing_segment_size(dir: &Path) -> Option<usize> {
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: "))
        .and_then(|value| value.trim().parse().ok())
        .filter(|size: &usize| size.is_power_of_two() && (256..=1 << 24).contains(size))
}

fn open_db(dir: &Path) -> Result<sled::Db, JournalError> {
    let started = Instant::now();
    let segment_size = existing_segment_size(dir).unwrap_or(SEGMENT_SIZE_BYTES);
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .segment_size(segment_size)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|error| open_error(dir, error));
        match opened {
            Err(JournalError::Locked(_)) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn open_error(dir: &Path, error: sled::Error) -> JournalError {
    let text = error.to_string();
    if text.contains("could not acquire lock") {
        JournalError::Locked(dir.to_path_buf())
    } else {
        JournalError::Storage(format!("cannot open the journal in {}: {text}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::event::Event;
    use crate::journal::Store;

    fn entries(first: u64, count: u64) -> Vec<JournalEntry> {
        crate::journal::event::fulfilled_entries(first, count)
    }

    /// What a crash leaves on disk: a copy of every file of the journal taken while the node
    /// runs (written pages are in the copy, whatever sled still holds in memory is not).
    fn crash_image(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(&target).unwrap();
                crash_image(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    #[test]
    fn frames_flushed_to_the_commit_log_survive_a_crash_before_sleds_flush() {
        let live = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(live.path()).unwrap();
        store.write_frame(&entries(1, 10)).unwrap();
        Store::flush(&mut store).unwrap();
        store.attach_commit_log(commit_log::CAPACITY_DEFAULT).unwrap();
        for frame in 1..20 {
            store.write_frame(&entries(frame * 10 + 1, 10)).unwrap();
            Store::flush(&mut store).unwrap();
        }
        // Written but never flushed: may be lost, like an in-flight Prepare.
        store.write_frame(&entries(201, 10)).unwrap();

        let image = tempfile::tempdir().unwrap();
        crash_image(live.path(), image.path());
        // Without the commit log, sled alone lost what came after its last flush: this is what
        // the commit log is for (and why this test can fail).
        let sled_only = tempfile::tempdir().unwrap();
        crash_image(image.path(), sled_only.path());
        std::fs::remove_file(sled_only.path().join(commit_log::FILE_NAME)).unwrap();
        assert_eq!(SledStore::open(sled_only.path()).unwrap().last_seq().unwrap(), 10);

        let recovered = SledStore::open(image.path()).unwrap();
        assert_eq!(recovered.copied_from_commit_log(), Some((19, 200)));
        let summary = recovered.verify().unwrap();
        assert_eq!((summary.first_seq, summary.last_seq, summary.frame_count), (Some(1), Some(200), 20));
        drop(recovered);
        // Opening again copies nothing twice.
        let reopened = SledStore::open(image.path()).unwrap();
        assert_eq!(reopened.copied_from_commit_log(), None);
        let summary = reopened.verify().unwrap();
        assert_eq!((summary.last_seq, summary.frame_count), (Some(200), 20));
    }

    #[test]
    fn sled_writes_its_buffer_on_the_writers_schedule() {
        let live = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(live.path()).unwrap();
        store.attach_commit_log(commit_log::CAPACITY_DEFAULT).unwrap();
        // ~45 KiB per frame: the sixth frame passes 256 KiB, and after_release writes sled's
        // buffer; the seventh is only in sled's memory and the commit log.
        for frame in 0..7 {
            store.write_frame(&entries(frame * 1000 + 1, 1000)).unwrap();
            Store::flush(&mut store).unwrap();
            Store::after_release(&mut store).unwrap();
        }
        let image = tempfile::tempdir().unwrap();
        crash_image(live.path(), image.path());
        std::fs::remove_file(image.path().join(commit_log::FILE_NAME)).unwrap();
        assert_eq!(SledStore::open(image.path()).unwrap().last_seq().unwrap(), 6000);
    }

    #[test]
    fn a_frame_larger_than_a_quarter_segment_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path()).unwrap();
        store.attach_commit_log(commit_log::CAPACITY_MIN).unwrap();
        let long = |seq: u64| JournalEntry {
            seq,
            timestamp_ms: 1_700_000_000_000,
            event: Event::PacketPrepared(crate::journal::event::PacketPrepared {
                packet_id: seq,
                from_peer: "alice".into(),
                to_peer: "bob".into(),
                amount_in: 10,
                amount_out: 10,
                expires_at_in_ms: 1,
                expires_at_out_ms: 1,
                condition: [3; 32],
                destination: format!("test.m2m.{}", "x".repeat(1000)),
                rate: None,
            }),
        };
        let big: Vec<JournalEntry> = (1..=4096).map(long).collect();
        store.write_frame(&big).unwrap();
        assert!(store.last_frame_size() > SEGMENT_SIZE_BYTES / 4, "{}", store.last_frame_size());
        Store::flush(&mut store).unwrap();
        store.write_frame(&entries(4097, 10)).unwrap();
        Store::flush(&mut store).unwrap();
        Store::close(&mut store).unwrap();
        drop(store);
        let reopened = SledStore::open(dir.path()).unwrap();
        let read: Vec<JournalEntry> = reopened.entries_from(1).collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), 4106);
        assert_eq!(read[..4096], big[..]);
    }

    #[test]
    fn a_journal_keeps_the_segment_size_it_was_created_with() {
        let dir = tempfile::tempdir().unwrap();
        // A journal made by a build with 8 MiB segments.
        let old = sled::Config::new().path(dir.path()).segment_size(8 << 20).flush_every_ms(None).open().unwrap();
        old.open_tree("frames").unwrap().insert(seq_key(1), frame_bytes(1, 3)).unwrap();
        old.flush().unwrap();
        drop(old);
        assert_eq!(existing_segment_size(dir.path()), Some(8 << 20));
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.last_seq().unwrap(), 3);
        let fresh = tempfile::tempdir().unwrap();
        drop(SledStore::open(fresh.path()).unwrap());
        assert_eq!(existing_segment_size(fresh.path()), Some(SEGMENT_SIZE_BYTES));
    }

    fn frame_bytes(first: u64, count: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        frame::encode(&entries(first, count), &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_full_commit_log_flushes_sled_and_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path()).unwrap();
        // The smallest capacity the log accepts (1 MiB): frames of 1000 events (~45 KiB) fill
        // it after ~20 flushes.
        store.attach_commit_log(0).unwrap();
        for frame in 0..300 {
            store.write_frame(&entries(frame * 1000 + 1, 1000)).unwrap();
            Store::flush(&mut store).unwrap();
        }
        let log = store.commit_log.as_ref().unwrap();
        assert!(log.used() <= commit_log::CAPACITY_MIN);
        let scan = commit_log::scan(dir.path()).unwrap().unwrap();
        assert!(scan.base_seq > 100_000, "started over at least once: base {}", scan.base_seq);
        assert_eq!(scan.frames.last().unwrap().first_seq, 299_001);
        Store::close(&mut store).unwrap();
        let scan = commit_log::scan(dir.path()).unwrap().unwrap();
        assert_eq!((scan.base_seq, scan.frames.len()), (300_000, 0), "closed: sled holds everything");
    }
}
