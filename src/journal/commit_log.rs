//! The commit log: where a batch of the journal becomes durable, with one write and one
//! fdatasync on the writer's own thread.
//!
//! Frames still go into sled's `frames` tree, which stays the store of record: every reader,
//! projection and tool reads sled. What changes is how a batch is made durable. sled 0.34's
//! flush seals its buffer, hands the write to its IO thread pool (waking all seven idle workers
//! of that pool) and waits for it; the journal then needs its own fdatasync on top, because
//! sled's flush ends with sync_file_range. Measured here (BENCHMARKS.md), that costs ~250 µs per
//! flush and a fifth of a core in wake-ups at high load. The commit log instead appends the
//! batch's frames to a preallocated file and fdatasyncs it (~90 µs on this disk); sled is
//! flushed only when the log is full, after which the log starts over.
//!
//! On disk (`commit.log` in the journal directory), all integers little-endian:
//!
//! ```text
//! record  = magic (4) | crc32 (4) | first_seq (8) | events (4) | len (4) | payload (len)
//! base    = a record with magic "M2MB", events = len = 0: sled holds every frame up to and
//!           including seq `first_seq` durably; always at offset 0
//! frame   = a record with magic "M2MF": the frame stored under key `first_seq`, byte for byte
//!           as in sled, holding `events` events
//! ```
//!
//! The checksum covers the 16 bytes after it and the payload. A scan reads the base, then frame
//! records while each one checks and continues the sequence (its first seq is the previous
//! record's first seq plus its events, the first one's is the base's seq plus one). It stops at
//! the first that doesn't: the torn end of an interrupted write, zeros not yet written, or older
//! records left over from before the log last started over (their seqs are lower). Opening a
//! journal copies the frames found after what sled holds into sled ([`recover`]).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What the commit log needs of its file: the seam under it. The node uses a real [`File`]; the
/// power-loss simulation (`journal::power_loss`) uses a file that keeps only what was synced
/// when it "loses power".
#[allow(clippy::len_without_is_empty)] // a file's length, not a collection's
pub trait LogFile: Send + 'static {
    fn len(&self) -> std::io::Result<u64>;
    fn set_len(&self, size: u64) -> std::io::Result<()>;
    fn write_at_offset(&self, bytes: &[u8], offset: u64) -> std::io::Result<()>;
    /// fdatasync: every write so far survives a power loss.
    fn sync_data(&self) -> std::io::Result<()>;
    /// fsync: the same, with the file's size and other metadata.
    fn sync_all(&self) -> std::io::Result<()>;
}

impl LogFile for File {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn set_len(&self, size: u64) -> std::io::Result<()> {
        File::set_len(self, size)
    }
    fn write_at_offset(&self, bytes: &[u8], offset: u64) -> std::io::Result<()> {
        FileExt::write_all_at(self, bytes, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        File::sync_data(self)
    }
    fn sync_all(&self) -> std::io::Result<()> {
        File::sync_all(self)
    }
}

/// The file's name in the journal directory.
pub const FILE_NAME: &str = "commit.log";

/// Size of a record header.
pub const HEADER_SIZE: usize = 24;

/// Largest size the log grows to before it starts over, unless `[journal] commit_log_mib` says
/// otherwise (defined with the configuration, which sits below the journal).
pub const CAPACITY_DEFAULT: u64 = crate::config::COMMIT_LOG_BYTES_DEFAULT;

/// Smallest capacity accepted.
pub const CAPACITY_MIN: u64 = 1 << 20;

/// The file grows in steps of at most this many zeroed bytes (written, not sparse: overwriting
/// allocated blocks lets fdatasync skip the metadata an append or a hole would need), and at
/// most a quarter of the capacity.
const GROW_STEP_MAX: u64 = 4 << 20;

const MAGIC_BASE: [u8; 4] = *b"M2MB";
const MAGIC_FRAME: [u8; 4] = *b"M2MF";

/// How [`CommitLog::make_durable`] made a batch durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Its records were written to the log and synced.
    Synced,
    /// The log was full: the store was synced and the log started over.
    StartedOver,
}

/// One frame record found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedFrame {
    pub first_seq: u64,
    pub events: u32,
    pub bytes: Vec<u8>,
}

/// What a scan of the log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The base record's seq: sled held every frame through it durably (0 without a base).
    pub base_seq: u64,
    pub frames: Vec<LoggedFrame>,
}

/// The writing side. Only the journal writer holds one.
pub struct CommitLog<F: LogFile = File> {
    file: F,
    path: PathBuf,
    capacity: u64,
    grow_step: u64,
    /// Bytes of the file that are allocated (zeroed or written).
    allocated: u64,
    /// Where the next record goes.
    offset: u64,
    /// Records appended since the last `write`.
    pending: Vec<u8>,
    /// Test-only: `sync` does nothing, the bug the power-loss simulation must catch.
    #[cfg(test)]
    pub(crate) skip_sync: bool,
}

impl CommitLog {
    /// Opens (creating if needed) the log in `dir` and starts it over with a base record at
    /// `durable_seq`. The caller guarantees sled holds every frame through `durable_seq` durably.
    pub fn open(dir: &Path, capacity: u64, durable_seq: u64) -> std::io::Result<CommitLog> {
        let path = dir.join(FILE_NAME);
        let created = !path.exists();
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        CommitLog::with_file(file, path, capacity.max(CAPACITY_MIN), durable_seq, |_| {
            if created {
                // The new name must survive a crash too.
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
    }
}

impl<F: LogFile> CommitLog<F> {
    /// The log over `file` (named `path` in messages), started over with a base record at
    /// `durable_seq`; `before_base` runs once the file is allocated, before the base is written.
    pub fn with_file(
        file: F,
        path: PathBuf,
        capacity: u64,
        durable_seq: u64,
        before_base: impl FnOnce(&CommitLog<F>) -> std::io::Result<()>,
    ) -> std::io::Result<CommitLog<F>> {
        let mut allocated = file.len()?;
        if allocated > capacity {
            // Made with a larger `commit_log_mib`: its records are in sled by now (a journal is
            // opened, and copied from its log, before a log is attached), so it can shrink.
            file.set_len(capacity)?;
            allocated = capacity;
        }
        let grow_step = (capacity / 4).min(GROW_STEP_MAX);
        let mut log = CommitLog {
            file,
            path,
            capacity,
            grow_step,
            allocated,
            offset: 0,
            pending: Vec::with_capacity(64 << 10),
            #[cfg(test)]
            skip_sync: false,
        };
        if allocated < grow_step {
            log.grow_to(grow_step)?;
        }
        before_base(&log)?;
        log.start_over(durable_seq)?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a frame record (written by the next [`write`](Self::write)).
    pub fn append(&mut self, first_seq: u64, events: u32, frame: &[u8]) {
        push_record(&mut self.pending, MAGIC_FRAME, first_seq, events, frame);
    }

    /// Whether the queued records fit before the capacity; if not, the caller flushes sled and
    /// calls [`start_over`](Self::start_over) instead of [`write`](Self::write).
    pub fn fits(&self) -> bool {
        self.offset + self.pending.len() as u64 <= self.capacity
    }

    /// Writes the queued records after the last ones (not yet durable: see [`sync`](Self::sync)).
    pub fn write(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let end = self.offset + self.pending.len() as u64;
        if end > self.allocated {
            self.grow_to((end.div_ceil(self.grow_step) * self.grow_step).min(self.capacity.max(end)))?;
        }
        self.file.write_at_offset(&self.pending, self.offset)?;
        self.offset = end;
        self.pending.clear();
        Ok(())
    }

    /// Makes every written record durable.
    pub fn sync(&self) -> std::io::Result<()> {
        #[cfg(test)]
        if self.skip_sync {
            return Ok(());
        }
        self.file.sync_data()
    }

    /// Drops the queued records and starts the log over: sled now holds every frame through
    /// `durable_seq` durably, so nothing before it is needed any more.
    pub fn start_over(&mut self, durable_seq: u64) -> std::io::Result<()> {
        self.pending.clear();
        let mut base = Vec::with_capacity(HEADER_SIZE);
        push_record(&mut base, MAGIC_BASE, durable_seq, 0, &[]);
        self.file.write_at_offset(&base, 0)?;
        self.file.sync_data()?;
        self.offset = HEADER_SIZE as u64;
        Ok(())
    }

    /// Makes the queued records durable, the journal writer's flush: written and synced when
    /// they fit; otherwise `sync_store` makes the store durable through `through` (every seq
    /// written so far) and the log starts over after it. `io_error` names the failed step.
    pub fn make_durable<E>(
        &mut self,
        through: u64,
        sync_store: impl FnOnce() -> Result<(), E>,
        io_error: impl Fn(&'static str, std::io::Error) -> E,
    ) -> Result<Durable, E> {
        if self.fits() {
            self.write().map_err(|error| io_error("the write", error))?;
            self.sync().map_err(|error| io_error("fdatasync", error))?;
            Ok(Durable::Synced)
        } else {
            sync_store()?;
            self.start_over(through).map_err(|error| io_error("starting over", error))?;
            Ok(Durable::StartedOver)
        }
    }

    /// Bytes of records written since the log last started over.
    pub fn used(&self) -> u64 {
        self.offset
    }

    fn grow_to(&mut self, size: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; (1 << 20).min(size.saturating_sub(self.allocated)) as usize];
        while self.allocated < size {
            let step = (size - self.allocated).min(zeros.len() as u64) as usize;
            self.file.write_at_offset(&zeros[..step], self.allocated)?;
            self.allocated += step as u64;
        }
        // Allocation (the file's size) is metadata: one fsync here keeps the per-batch
        // fdatasyncs free of it.
        self.file.sync_all()
    }
}

fn push_record(out: &mut Vec<u8>, magic: [u8; 4], first_seq: u64, events: u32, payload: &[u8]) {
    let mut fields = [0u8; 16];
    fields[..8].copy_from_slice(&first_seq.to_le_bytes());
    fields[8..12].copy_from_slice(&events.to_le_bytes());
    fields[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&fields);
    crc.update(payload);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&fields);
    out.extend_from_slice(payload);
}

/// Reads the log in `dir`: None if there is none. Never fails on content (a scan stops where
/// the records stop checking); fails only when the file can't be read.
pub fn scan(dir: &Path) -> std::io::Result<Option<Scan>> {
    let path = dir.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let size = file.metadata()?.len();
    scan_from(std::io::BufReader::with_capacity(1 << 20, file), size).map(Some)
}

/// [`scan`] over `size` bytes of any reader (the power-loss simulation scans what its file kept).
pub fn scan_from(mut reader: impl Read, size: u64) -> std::io::Result<Scan> {
    let reader = &mut reader;
    let mut scan = Scan::default();
    let Some(base) = read_record(reader, size, &mut Vec::new())? else {
        return Ok(scan);
    };
    if base.magic != MAGIC_BASE {
        return Ok(scan);
    }
    scan.base_seq = base.first_seq;
    let mut expected = base.first_seq.saturating_add(1);
    let mut remaining = size - (HEADER_SIZE + base.len) as u64;
    loop {
        let mut bytes = Vec::new();
        let Some(Header { magic, first_seq, events, len }) = read_record(reader, remaining, &mut bytes)? else {
            break;
        };
        if magic != MAGIC_FRAME || first_seq != expected || events == 0 {
            break;
        }
        remaining -= (HEADER_SIZE + len) as u64;
        expected = first_seq.saturating_add(u64::from(events));
        scan.frames.push(LoggedFrame { first_seq, events, bytes });
    }
    Ok(scan)
}

/// The frames of `scan` a journal whose store holds every seq through `held` must copy in, in
/// order, each checked: those after both `held` and the base. Fails when they do not continue
/// from `held` (frames missing between) or one does not check.
pub fn frames_to_copy(scan: &Scan, held: u64) -> Result<Vec<&LoggedFrame>, CopyError> {
    let mut last = held;
    let mut copy = Vec::new();
    for logged in scan.frames.iter().filter(|logged| logged.first_seq > held.max(scan.base_seq)) {
        if logged.first_seq != last + 1 {
            return Err(CopyError::Gap { held: last, continues_at: logged.first_seq });
        }
        super::frame::check(&logged.bytes).map_err(|reason| CopyError::Corrupt { first_seq: logged.first_seq, reason })?;
        last = logged.first_seq.saturating_add(u64::from(logged.events) - 1);
        copy.push(logged);
    }
    Ok(copy)
}

/// Why a commit log's frames cannot be copied into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyError {
    Gap { held: u64, continues_at: u64 },
    Corrupt { first_seq: u64, reason: super::frame::FrameError },
}

/// A record's header fields, once its checksum held.
struct Header {
    magic: [u8; 4],
    first_seq: u64,
    events: u32,
    len: usize,
}

/// Reads one record of at most `remaining` bytes into `payload`; None when it doesn't check.
fn read_record(reader: &mut impl Read, remaining: u64, payload: &mut Vec<u8>) -> std::io::Result<Option<Header>> {
    if remaining < HEADER_SIZE as u64 {
        return Ok(None);
    }
    let mut header = [0u8; HEADER_SIZE];
    if !read_all(reader, &mut header)? {
        return Ok(None);
    }
    let magic: [u8; 4] = header[..4].try_into().expect("4 bytes");
    if magic != MAGIC_BASE && magic != MAGIC_FRAME {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let first_seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let events = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(header[20..24].try_into().expect("4 bytes")) as usize;
    // The length is checked against what the file still holds before anything is allocated.
    if len as u64 > remaining - HEADER_SIZE as u64 || len > super::frame::PAYLOAD_SIZE_MAX + super::frame::HEADER_SIZE {
        return Ok(None);
    }
    payload.clear();
    payload.resize(len, 0);
    if !read_all(reader, payload)? {
        return Ok(None);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Ok(None);
    }
    Ok(Some(Header { magic, first_seq, events, len }))
}

/// `read_exact`, but a file that ends early (truncated by hand, or shorter than its records
/// claim) is the end of the log, not an error that would keep the journal from opening.
fn read_all(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, events: u32) -> (u64, u32, Vec<u8>) {
        (seq, events, format!("frame {seq}+{events}").into_bytes())
    }

    fn append_all(log: &mut CommitLog, frames: &[(u64, u32, Vec<u8>)]) {
        for (seq, events, bytes) in frames {
            log.append(*seq, *events, bytes);
        }
        log.write().unwrap();
        log.sync().unwrap();
    }

    fn found(dir: &Path) -> Vec<u64> {
        scan(dir).unwrap().unwrap().frames.iter().map(|frame| frame.first_seq).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Whatever the file holds (a valid log with bytes changed, or noise), a scan returns
        /// without error or panic, and what it returns continues the sequence from the base.
        #[test]
        fn any_file_scans_to_a_consistent_prefix(
            flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..6),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            use_noise in proptest::prelude::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE_NAME);
            let mut bytes = Vec::new();
            push_record(&mut bytes, MAGIC_BASE, 7, 0, &[]);
            for (index, seq) in [8u64, 10, 13].into_iter().enumerate() {
                push_record(&mut bytes, MAGIC_FRAME, seq, [2, 3, 1][index], &[seq as u8; 50]);
            }
            if use_noise {
                bytes = noise;
            }
            for (at, value) in flips {
                if let Some(byte) = bytes.get_mut(at) {
                    *byte ^= value;
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let scan = scan(dir.path()).unwrap().unwrap();
            let mut expected = scan.base_seq + 1;
            for frame in &scan.frames {
                proptest::prop_assert_eq!(frame.first_seq, expected);
                expected += u64::from(frame.events);
            }
        }
    }

    #[test]
    fn a_scan_finds_what_was_written_after_the_base() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(scan(dir.path()).unwrap(), None);
        let mut log = CommitLog::open(dir.path(), CAPACITY_DEFAULT, 10).unwrap();
        append_all(&mut log, &[frame(11, 3), frame(14, 1)]);
        append_all(&mut log, &[frame(15, 5)]);
        let scan = scan(dir.path()).unwrap().unwrap();
        assert_eq!(scan.base_seq, 10);
        assert_eq!(scan.frames.iter().map(|f| f.first_seq).collect::<Vec<_>>(), vec![11, 14, 15]);
        assert_eq!(scan.frames[2].bytes, b"frame 15+5");
    }

    #[test]
    fn a_torn_or_corrupt_record_ends_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CommitLog::open(dir.path(), CAPACITY_DEFAULT, 0).unwrap();
        append_all(&mut log, &[frame(1, 2), frame(3, 2), frame(5, 2)]);
        let third = HEADER_SIZE as u64 + 2 * (HEADER_SIZE as u64 + 9);
        let file = OpenOptions::new().write(true).open(dir.path().join(FILE_NAME)).unwrap();
        // A bit flipped in the third record's payload: its checksum fails.
        file.write_all_at(b"X", third + HEADER_SIZE as u64 + 2).unwrap();
        assert_eq!(found(dir.path()), vec![1, 3]);
        // A length pointing past the end of the file allocates nothing and stops the scan.
        file.write_all_at(&u32::MAX.to_le_bytes(), third + 20).unwrap();
        assert_eq!(found(dir.path()), vec![1, 3]);
    }

    #[test]
    fn a_log_cut_short_ends_the_scan_and_a_smaller_capacity_shrinks_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CommitLog::open(dir.path(), CAPACITY_DEFAULT, 0).unwrap();
        append_all(&mut log, &[frame(1, 2), frame(3, 2)]);
        drop(log);
        let path = dir.path().join(FILE_NAME);
        // Cut in the middle of the second record.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len((HEADER_SIZE + HEADER_SIZE + 9 + HEADER_SIZE + 4) as u64).unwrap();
        assert_eq!(found(dir.path()), vec![1]);
        // Reopened with a smaller capacity than the file's size.
        file.set_len(CAPACITY_MIN * 3).unwrap();
        drop(CommitLog::open(dir.path(), CAPACITY_MIN, 4).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), CAPACITY_MIN);
    }

    #[test]
    fn records_from_before_a_start_over_are_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CommitLog::open(dir.path(), CAPACITY_DEFAULT, 0).unwrap();
        append_all(&mut log, &[frame(1, 100), frame(101, 100), frame(201, 100)]);
        log.start_over(300).unwrap();
        // A shorter record now sits where the old first one began; the old ones after it have
        // lower seqs and a misaligned start, so the scan stops after the new one.
        append_all(&mut log, &[frame(301, 1)]);
        assert_eq!(found(dir.path()), vec![301]);
        log.start_over(301).unwrap();
        assert_eq!(found(dir.path()), Vec::<u64>::new());
    }

    #[test]
    fn the_file_grows_in_zeroed_steps_up_to_the_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let step = GROW_STEP_MAX;
        let mut log = CommitLog::open(dir.path(), 4 * step, 0).unwrap();
        let len = || std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        assert_eq!(len(), step);
        let big = vec![7u8; (step * 9 / 4) as usize];
        log.append(1, 1, &big);
        assert!(log.fits());
        log.write().unwrap();
        assert_eq!(len(), 3 * step);
        log.append(2, 1, &big);
        assert!(!log.fits(), "a second record would pass the capacity");
        log.start_over(2).unwrap();
        assert_eq!(log.used(), HEADER_SIZE as u64);
        assert_eq!(len(), 3 * step, "starting over keeps the file");
        // A small log grows in quarters of its capacity.
        let small = tempfile::tempdir().unwrap();
        CommitLog::open(small.path(), CAPACITY_MIN, 0).unwrap();
        assert_eq!(std::fs::metadata(small.path().join(FILE_NAME)).unwrap().len(), CAPACITY_MIN / 4);
    }
}
