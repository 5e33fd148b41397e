//! Retention: what happens to frames that a snapshot already covers (`JOURNAL_RETENTION`).
//!
//! The store keeps the two newest snapshots, S_old < S_new. Frames that end before S_old are
//! covered twice over (by S_new, and by S_old should S_new turn out unreadable), so they may
//! leave the live journal: `keep` leaves them, `delete` removes them, `archive` first writes them
//! to an archive file and fsyncs it, then removes them. Frames a projection has not yet
//! checkpointed past stay, whatever the policy: its runner resumes from the live journal.
//!
//! Archive format: files `frames-<first seq, 20 digits>.m2mj` in the archive directory, one per
//! retention run, each a sequence of records
//!
//! ```text
//! key (u64 big-endian: the frame's first seq) · length (u32 big-endian) · the frame's value bytes
//! ```
//!
//! The value bytes are exactly as sled stored them (`frame.rs`), so their checksums still apply.
//! A file is written under a `.tmp` name, fsynced, renamed and its directory fsynced before any
//! frame leaves sled: a crash leaves either a stray `.tmp` (ignored, and replaced by the next
//! run) or a complete file whose frames may also still be live (the next run removes them without
//! archiving them twice). [`ArchiveReader`] checks every frame as `frame::decode` does and the
//! sequence across records and files; a truncated or corrupt archive is an error, never skipped.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::event::JournalEntry;
use super::frame::{self, FrameError};
use super::store::{SledStore, StoredFrame};
use super::JournalError;
use crate::config::Retention;

/// How often the node applies the policy. Snapshots come every `JOURNAL_SNAPSHOT_EVERY` events
/// (100k by default, seconds apart under load), so a minute keeps at most a few snapshot
/// intervals of frames beyond what the policy needs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

const ARCHIVE_PREFIX: &str = "frames-";
const ARCHIVE_SUFFIX: &str = ".m2mj";
const RECORD_HEADER_SIZE: usize = 12;

/// Largest record value an archive may hold: a frame's header plus its largest payload. Checked
/// before allocating, so a corrupt length can't ask for more.
const RECORD_VALUE_SIZE_MAX: usize = frame::HEADER_SIZE + frame::PAYLOAD_SIZE_MAX;

/// Whether a snapshot's bytes can be restored from. The journal keeps snapshots as opaque
/// bytes; their format belongs to the balances projection above it, which the node passes in
/// (`Balances::check_snapshot`).
pub type SnapshotCheck = fn(&[u8]) -> Result<(), String>;

/// What one run of [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Frames ending before this seq were eligible; None when fewer than two snapshots are held.
    pub cutoff_seq: Option<u64>,
    pub frames_archived: u64,
    pub bytes_archived: u64,
    pub frames_removed: u64,
    /// The archive file written by this run, if any.
    pub archive_file: Option<PathBuf>,
}

/// Applies `policy` once: archives (to `archive_dir`) or deletes the frames that end before the
/// older of the two snapshots held (if `usable` says it can be restored from), and before every
/// projection's checkpoint.
pub fn apply(store: &SledStore, policy: Retention, archive_dir: &Path, usable: SnapshotCheck) -> Result<RetentionReport, JournalError> {
    let mut report = RetentionReport::default();
    if policy == Retention::Keep {
        return Ok(report);
    }
    let Some(cutoff_seq) = cutoff_seq(store, usable)? else {
        return Ok(report);
    };
    report.cutoff_seq = Some(cutoff_seq);
    match policy {
        Retention::Keep => {}
        Retention::Delete => {
            report.frames_removed = store.remove_frames_before(cutoff_seq, |_, _| Ok(()))?;
        }
        Retention::Archive => archive_then_remove(store, cutoff_seq, archive_dir, &mut report)?,
    }
    Ok(report)
}

/// The seq before which frames may go: the older snapshot held (if it decodes), lowered to
/// `checkpoint + 1` for every projection checkpoint.
fn cutoff_seq(store: &SledStore, usable: SnapshotCheck) -> Result<Option<u64>, JournalError> {
    let mut snapshot_seqs = store.snapshot_seqs()?;
    snapshot_seqs.sort_unstable();
    let [.., older_seq, _newer_seq] = snapshot_seqs[..] else {
        return Ok(None);
    };
    // The writer may have replaced it since the listing (it keeps two); then an older one, or
    // none, is found, and both are safe answers.
    let Some((older_seq, bytes)) = store.latest_snapshot_at_most(older_seq)? else {
        return Ok(None);
    };
    if let Err(reason) = usable(&bytes) {
        // The fallback snapshot is what makes removal safe; without it, keep everything.
        tracing::warn!(seq = older_seq, %reason, "journal snapshot unreadable; retention keeps every frame");
        return Ok(None);
    }
    let mut cutoff_seq = older_seq;
    for (_projection, checkpoint_seq) in store.checkpoints()? {
        cutoff_seq = cutoff_seq.min(checkpoint_seq.saturating_add(1));
    }
    Ok(Some(cutoff_seq))
}

fn archive_then_remove(
    store: &SledStore,
    cutoff_seq: u64,
    archive_dir: &Path,
    report: &mut RetentionReport,
) -> Result<(), JournalError> {
    fs::create_dir_all(archive_dir).map_err(|error| io_error("creating the archive directory", archive_dir, error))?;
    let archived_last_seq = last_archived_seq(archive_dir)?;
    // First pass: write every eligible frame not yet archived, and make the file durable.
    // (key → checksum and size) of what this run wrote, to check the removal pass against.
    let mut written: FxHashMap<u64, (u32, usize)> = FxHashMap::default();
    let mut writer: Option<ArchiveWriter> = None;
    for key in store.frame_keys()?.into_iter().take_while(|&key| key < cutoff_seq) {
        let Some(value) = store.raw_frame(key)? else { continue };
        let entries = decode_live(store, key, &value)?;
        let last_seq = entries.last().expect("decode rejects empty frames").seq;
        if last_seq >= cutoff_seq {
            break;
        }
        if let Some(archived_last_seq) = archived_last_seq {
            if last_seq <= archived_last_seq {
                continue; // Archived by an earlier run that stopped before removing it.
            }
            if key != archived_last_seq + 1 && writer.is_none() {
                return Err(JournalError::Storage(format!(
                    "the archive in {} ends at seq {archived_last_seq} but the journal's next frame \
                     starts at seq {key}: frames in between were deleted or the archive belongs to \
                     another journal; move the archive aside to start a new one",
                    archive_dir.display()
                )));
            }
        }
        let writer = match &mut writer {
            Some(writer) => writer,
            None => writer.insert(ArchiveWriter::create(archive_dir, key)?),
        };
        writer.append(key, &value)?;
        written.insert(key, (frame_checksum(&value), value.len()));
        report.frames_archived += 1;
        report.bytes_archived += value.len() as u64;
    }
    if let Some(writer) = writer {
        report.archive_file = Some(writer.commit()?);
    }
    // Second pass: remove what is now archived (this run or an earlier one), nothing else.
    report.frames_removed = store.remove_frames_before(cutoff_seq, |key, value| {
        if written.get(&key) == Some(&(frame_checksum(value), value.len())) {
            return Ok(());
        }
        let last_seq = decode_live(store, key, value)?.last().map_or(key, |entry| entry.seq);
        if archived_last_seq.is_some_and(|archived_last_seq| last_seq <= archived_last_seq) {
            return Ok(());
        }
        Err(JournalError::Storage(format!("frame {key} changed after it was archived; it stays in the journal")))
    })?;
    Ok(())
}

fn decode_live(store: &SledStore, key: u64, value: &[u8]) -> Result<Vec<JournalEntry>, JournalError> {
    frame::decode(key, value).map_err(|reason| JournalError::Corrupt { dir: store.dir().to_path_buf(), frame: key, reason })
}

fn frame_checksum(value: &[u8]) -> u32 {
    crc32fast::hash(value)
}

/// The seq of the last event in the archive, None for an empty or missing archive. Reads only
/// the newest file (checking each of its frames).
pub fn last_archived_seq(archive_dir: &Path) -> Result<Option<u64>, JournalError> {
    let files = archive_files(archive_dir)?;
    let Some(last) = files.last() else { return Ok(None) };
    let mut reader = ArchiveReader::from_files(vec![last.clone()]);
    let mut last_seq = None;
    for frame in &mut reader {
        last_seq = frame?.entries.last().map(|entry| entry.seq);
    }
    Ok(last_seq)
}

/// The archive files in `archive_dir`, oldest first (by the first seq in their name). A missing
/// directory is an empty archive.
pub fn archive_files(archive_dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let listing = match fs::read_dir(archive_dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("listing the archive", archive_dir, error)),
    };
    let mut files = Vec::new();
    for item in listing {
        let item = item.map_err(|error| io_error("listing the archive", archive_dir, error))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name.strip_prefix(ARCHIVE_PREFIX).and_then(|rest| rest.strip_suffix(ARCHIVE_SUFFIX)) else {
            continue; // `.tmp` files of an interrupted run, and anything else.
        };
        match digits.parse::<u64>() {
            Ok(first_seq) if digits.len() == 20 => files.push((first_seq, item.path())),
            _ => {
                return Err(JournalError::Storage(format!(
                    "unexpected file {} in the journal archive (names are {ARCHIVE_PREFIX}<20 digits>{ARCHIVE_SUFFIX})",
                    item.path().display()
                )))
            }
        }
    }
    files.sort_unstable();
    Ok(files)
}

fn archive_file_name(first_seq: u64) -> String {
    format!("{ARCHIVE_PREFIX}{first_seq:020}{ARCHIVE_SUFFIX}")
}

/// Writes one archive file: under a temporary name until [`ArchiveWriter::commit`].
pub struct ArchiveWriter {
    file: BufWriter<File>,
    temporary_path: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
}

impl ArchiveWriter {
    /// Starts the file for frames from `first_seq` on. Fails if that file already exists.
    pub fn create(dir: &Path, first_seq: u64) -> Result<ArchiveWriter, JournalError> {
        let final_path = dir.join(archive_file_name(first_seq));
        if final_path.exists() {
            return Err(JournalError::Storage(format!(
                "archive file {} already exists; it is never overwritten",
                final_path.display()
            )));
        }
        let temporary_path = dir.join(format!("{}.tmp", archive_file_name(first_seq)));
        let file = File::create(&temporary_path).map_err(|error| io_error("creating", &temporary_path, error))?;
        Ok(ArchiveWriter { file: BufWriter::new(file), temporary_path, final_path, dir: dir.to_path_buf() })
    }

    /// Appends one frame's stored bytes.
    pub fn append(&mut self, key: u64, value: &[u8]) -> Result<(), JournalError> {
        assert!(value.len() <= RECORD_VALUE_SIZE_MAX, "a stored frame is within the frame size bound");
        let length = u32::try_from(value.len()).expect("bounded above");
        let mut header = [0u8; RECORD_HEADER_SIZE];
        header[..8].copy_from_slice(&key.to_be_bytes());
        header[8..].copy_from_slice(&length.to_be_bytes());
        self.file
            .write_all(&header)
            .and_then(|()| self.file.write_all(value))
            .map_err(|error| io_error("writing", &self.temporary_path, error))
    }

    /// Makes the file durable under its final name; returns that name.
    pub fn commit(self) -> Result<PathBuf, JournalError> {
        let ArchiveWriter { file, temporary_path, final_path, dir } = self;
        let file = file.into_inner().map_err(|error| io_error("writing", &temporary_path, error.into_error()))?;
        file.sync_all().map_err(|error| io_error("syncing", &temporary_path, error))?;
        drop(file);
        fs::rename(&temporary_path, &final_path).map_err(|error| io_error("renaming", &temporary_path, error))?;
        File::open(&dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| io_error("syncing the archive directory", &dir, error))?;
        Ok(final_path)
    }
}

/// One frame read back from the archive.
#[derive(Debug)]
pub struct ArchivedFrame {
    pub key: u64,
    pub size: usize,
    pub entries: Vec<JournalEntry>,
}

/// Frames from archive files, in order, each checked; stops at the first error.
pub struct ArchiveReader {
    files: std::vec::IntoIter<(u64, PathBuf)>,
    current: Option<(PathBuf, BufReader<File>, u64)>,
    /// The key the next frame must have; None before the first.
    next_key: Option<u64>,
    /// First seq wanted: frames ending before it are read (and checked) but not yielded.
    from_seq: u64,
    failed: bool,
}

impl ArchiveReader {
    /// Every frame in `archive_dir`.
    pub fn open(archive_dir: &Path) -> Result<ArchiveReader, JournalError> {
        ArchiveReader::open_from(archive_dir, 1)
    }

    /// Frames holding events with seq ≥ `from_seq`, starting with the file that holds it.
    pub fn open_from(archive_dir: &Path, from_seq: u64) -> Result<ArchiveReader, JournalError> {
        let files = archive_files(archive_dir)?;
        let start = files.iter().rposition(|(first_seq, _)| *first_seq <= from_seq).unwrap_or(0);
        let mut reader = ArchiveReader::from_files(files[start..].to_vec());
        reader.from_seq = from_seq;
        Ok(reader)
    }

    fn from_files(files: Vec<(u64, PathBuf)>) -> ArchiveReader {
        ArchiveReader { files: files.into_iter(), current: None, next_key: None, from_seq: 1, failed: false }
    }

    fn next_frame(&mut self) -> Result<Option<ArchivedFrame>, JournalError> {
        loop {
            let Some((path, file, offset)) = &mut self.current else {
                let Some((first_seq, path)) = self.files.next() else { return Ok(None) };
                let file = File::open(&path).map_err(|error| io_error("opening", &path, error))?;
                if self.next_key.is_some_and(|next_key| next_key != first_seq) {
                    return Err(archive_error(&path, 0, format!(
                        "starts at seq {first_seq} but the previous file ends at seq {}",
                        self.next_key.unwrap_or(1) - 1
                    )));
                }
                self.next_key = Some(first_seq);
                self.current = Some((path, BufReader::new(file), 0));
                continue;
            };
            let mut header = [0u8; RECORD_HEADER_SIZE];
            let header_size = read_up_to(file, &mut header).map_err(|error| io_error("reading", path, error))?;
            if header_size == 0 {
                if *offset == 0 {
                    return Err(archive_error(path, 0, "is empty".into()));
                }
                self.current = None;
                continue;
            }
            if header_size < RECORD_HEADER_SIZE {
                return Err(archive_error(path, *offset, format!("is truncated: a record header of {header_size} of {RECORD_HEADER_SIZE} bytes")));
            }
            let key = u64::from_be_bytes(header[..8].try_into().expect("8 bytes"));
            let size = u32::from_be_bytes(header[8..].try_into().expect("4 bytes")) as usize;
            let expected_key = self.next_key.expect("set when the file was opened");
            if key != expected_key {
                return Err(archive_error(path, *offset, format!(
                    "holds frame {key} where frame {expected_key} was expected: {}",
                    FrameError::Sequence { expected: expected_key, found: key }
                )));
            }
            if size > RECORD_VALUE_SIZE_MAX {
                return Err(archive_error(path, *offset, format!("frame {key} claims {size} bytes, more than a frame can hold")));
            }
            let mut value = vec![0u8; size];
            let value_size = read_up_to(file, &mut value).map_err(|error| io_error("reading", path, error))?;
            if value_size < size {
                return Err(archive_error(path, *offset, format!("is truncated: frame {key} has {value_size} of its {size} bytes")));
            }
            let entries = frame::decode(key, &value)
                .map_err(|reason| archive_error(path, *offset, format!("frame {key} is corrupt: {reason}")))?;
            *offset += (RECORD_HEADER_SIZE + size) as u64;
            let last_seq = entries.last().expect("decode rejects empty frames").seq;
            self.next_key = Some(last_seq + 1);
            if last_seq >= self.from_seq {
                return Ok(Some(ArchivedFrame { key, size, entries }));
            }
        }
    }
}

impl Iterator for ArchiveReader {
    type Item = Result<ArchivedFrame, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.next_frame().transpose();
        if matches!(result, Some(Err(_))) {
            self.failed = true;
        }
        result
    }
}

/// Reads until `buffer` is full or the input ends; returns how many bytes were read.
fn read_up_to(input: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(size) => filled += size,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// A frame of the journal read through [`frames_with_archive`].
#[derive(Debug)]
pub struct Frame {
    pub key: u64,
    pub size: usize,
    pub entries: Vec<JournalEntry>,
    /// Read from the archive rather than the live journal.
    pub archived: bool,
}

/// The archive (when given) and then the live journal as one sequence of frames holding events
/// with seq ≥ `from_seq`, checking that each frame starts where the one before ended, across the
/// boundary too. Live frames still present that the archive already holds (a run interrupted
/// between archiving and removing) are passed over.
pub fn frames_with_archive<'a>(
    store: &'a SledStore,
    archive_dir: Option<&Path>,
    from_seq: u64,
) -> Result<impl Iterator<Item = Result<Frame, JournalError>> + 'a, JournalError> {
    let archive = match archive_dir {
        Some(dir) => Some(ArchiveReader::open_from(dir, from_seq)?),
        None => None,
    };
    let archived = archive.into_iter().flatten().map(|frame| {
        frame.map(|ArchivedFrame { key, size, entries }| Frame { key, size, entries, archived: true })
    });
    let live = store
        .frames_from(from_seq)
        .map(|frame| frame.map(|StoredFrame { key, size, entries }| Frame { key, size, entries, archived: false }));
    let dir = store.dir().to_path_buf();
    let mut next_key: Option<u64> = None;
    let mut failed = false;
    Ok(archived.chain(live).filter_map(move |frame| {
        if failed {
            return None;
        }
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                failed = true;
                return Some(Err(error));
            }
        };
        let last_seq = frame.entries.last().expect("decode rejects empty frames").seq;
        if let Some(expected) = next_key {
            if !frame.archived && last_seq < expected {
                return None; // Already read from the archive.
            }
            if frame.key != expected {
                failed = true;
                let reason = FrameError::Sequence { expected, found: frame.key };
                return Some(Err(JournalError::Corrupt { dir: dir.clone(), frame: frame.key, reason }));
            }
        }
        next_key = Some(last_seq + 1);
        Some(Ok(frame))
    }))
}

/// The node's retention task: applies `policy` once at start and then every
/// [`RETENTION_INTERVAL`], off the tokio workers, until `shutdown` turns true.
pub fn spawn(
    store: SledStore,
    policy: Retention,
    archive_dir: PathBuf,
    usable: SnapshotCheck,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if policy == Retention::Keep {
            return;
        }
        let mut interval = tokio::time::interval(RETENTION_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let (store, archive_dir) = (store.clone(), archive_dir.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                let report = apply(&store, policy, &archive_dir, usable);
                (report, archive_dir)
            })
            .await;
            match outcome {
                Ok((Ok(report), archive_dir)) if report.frames_removed > 0 => tracing::info!(
                    policy = ?policy,
                    cutoff_seq = report.cutoff_seq,
                    frames_archived = report.frames_archived,
                    bytes_archived = report.bytes_archived,
                    frames_removed = report.frames_removed,
                    archive_file = %report.archive_file.as_deref().unwrap_or(archive_dir.as_path()).display(),
                    "journal retention moved frames out of the live journal"
                ),
                Ok((Ok(_), _)) => {}
                Ok((Err(error), _)) => crate::internal_events::emit(crate::internal_events::RetentionFailed { error: &error }),
                Err(error) => crate::internal_events::emit(crate::internal_events::RetentionFailed { error: &error }),
            }
        }
    })
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> JournalError {
    JournalError::Storage(format!("{what} {}: {error}", path.display()))
}

fn archive_error(path: &Path, offset: u64, reason: String) -> JournalError {
    JournalError::Storage(format!("journal archive file {} (at byte {offset}) {reason}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Store;

    fn entries(first: u64, count: u64) -> Vec<JournalEntry> {
        crate::journal::event::fulfilled_entries(first, count)
    }

    fn encoded(first: u64, count: u64) -> Vec<u8> {
        let mut value = Vec::new();
        frame::encode(&entries(first, count), &mut value).unwrap();
        value
    }

    /// Writes frames of `frame_events` events starting at `first` into one archive file.
    fn write_archive(dir: &Path, first: u64, frame_count: u64, frame_events: u64) -> PathBuf {
        let mut writer = ArchiveWriter::create(dir, first).unwrap();
        for index in 0..frame_count {
            let key = first + index * frame_events;
            writer.append(key, &encoded(key, frame_events)).unwrap();
        }
        writer.commit().unwrap()
    }

    fn read_all(dir: &Path) -> Result<Vec<ArchivedFrame>, JournalError> {
        ArchiveReader::open(dir)?.collect()
    }

    fn error_text(result: Result<Vec<ArchivedFrame>, JournalError>) -> String {
        result.expect_err("the damage must be reported").to_string()
    }

    #[test]
    fn archive_round_trip_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_archive(dir.path(), 1, 3, 4);
        assert_eq!(first.file_name().unwrap(), "frames-00000000000000000001.m2mj");
        write_archive(dir.path(), 13, 2, 5);
        fs::write(dir.path().join("frames-00000000000000000023.m2mj.tmp"), b"interrupted").unwrap();
        let frames = read_all(dir.path()).unwrap();
        let keys: Vec<u64> = frames.iter().map(|frame| frame.key).collect();
        assert_eq!(keys, [1, 5, 9, 13, 18]);
        let seqs: Vec<u64> = frames.iter().flat_map(|frame| frame.entries.iter().map(|entry| entry.seq)).collect();
        assert_eq!(seqs, (1..=22).collect::<Vec<_>>());
        assert_eq!(frames[3].entries, entries(13, 5));
        assert_eq!(last_archived_seq(dir.path()).unwrap(), Some(22));
        let from_ten: Vec<u64> = ArchiveReader::open_from(dir.path(), 10).unwrap().map(|frame| frame.unwrap().key).collect();
        assert_eq!(from_ten, [9, 13, 18]);
        let from_twenty: Vec<u64> = ArchiveReader::open_from(dir.path(), 20).unwrap().map(|frame| frame.unwrap().key).collect();
        assert_eq!(from_twenty, [18]);
    }

    #[test]
    fn truncated_archive_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_archive(dir.path(), 1, 3, 4);
        let bytes = fs::read(&path).unwrap();
        // Cut inside the last record's value, then inside a record header.
        for cut in [bytes.len() - 1, bytes.len() * 2 / 3 + 1, 5] {
            fs::write(&path, &bytes[..cut]).unwrap();
            let message = error_text(read_all(dir.path()));
            assert!(message.contains("truncated"), "cut at {cut}: {message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        fs::write(&path, b"").unwrap();
        assert!(error_text(read_all(dir.path())).contains("empty"));
    }

    #[test]
    fn corrupted_archive_names_the_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_archive(dir.path(), 1, 3, 4);
        let bytes = fs::read(&path).unwrap();
        let record_size = RECORD_HEADER_SIZE + encoded(1, 4).len();
        let mut damaged = bytes.clone();
        damaged[record_size + RECORD_HEADER_SIZE + 20] ^= 0x10; // inside frame 5's payload
        fs::write(&path, &damaged).unwrap();
        let mut reader = ArchiveReader::open(dir.path()).unwrap();
        assert_eq!(reader.next().unwrap().unwrap().key, 1);
        let message = reader.next().unwrap().unwrap_err().to_string();
        assert!(message.contains("frame 5 is corrupt: checksum mismatch"), "{message}");
        assert!(reader.next().is_none(), "nothing after the damage is read as if it followed");
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        fs::write(&path, &huge).unwrap();
        assert!(error_text(read_all(dir.path())).contains("more than a frame can hold"));
    }

    #[test]
    fn gaps_between_archive_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_archive(dir.path(), 1, 2, 4);
        write_archive(dir.path(), 20, 1, 4);
        let message = error_text(read_all(dir.path()));
        assert!(message.contains("starts at seq 20 but the previous file ends at seq 8"), "{message}");
        // A file whose name does not match its first record.
        let other = tempfile::tempdir().unwrap();
        let path = write_archive(other.path(), 1, 1, 4);
        fs::rename(&path, other.path().join(archive_file_name(2))).unwrap();
        assert!(error_text(read_all(other.path())).contains("holds frame 1 where frame 2 was expected"));
    }

    const SNAPSHOT: &[u8] = b"a snapshot";

    /// The check the node passes is `Balances::check_snapshot`; here any bytes but "torn" do.
    fn readable(bytes: &[u8]) -> Result<(), String> {
        if bytes == b"torn" { Err("torn snapshot".into()) } else { Ok(()) }
    }

    /// A store of `frame_count` frames of 10 events, with snapshots at the given seqs.
    fn store_with(dir: &Path, frame_count: u64, snapshot_seqs: &[u64]) -> SledStore {
        let mut store = SledStore::open(dir).unwrap();
        for index in 0..frame_count {
            store.write_frame(&entries(index * 10 + 1, 10)).unwrap();
        }
        for &seq in snapshot_seqs {
            store.save_snapshot(seq, SNAPSHOT).unwrap();
        }
        Store::flush(&mut store).unwrap();
        store
    }

    #[test]
    fn archive_moves_frames_that_end_before_the_older_snapshot() {
        let journal = tempfile::tempdir().unwrap();
        let archive = tempfile::tempdir().unwrap();
        let store = store_with(journal.path(), 10, &[30, 55, 80]);
        let nothing = apply(&store, Retention::Keep, archive.path(), readable).unwrap();
        assert_eq!(nothing, RetentionReport::default());
        // Snapshots held: 55 and 80. Frames 1-10 … 41-50 end before 55; 51-60 holds 55.
        let report = apply(&store, Retention::Archive, archive.path(), readable).unwrap();
        assert_eq!(report.cutoff_seq, Some(55));
        assert_eq!((report.frames_archived, report.frames_removed), (5, 5));
        assert_eq!(store.frame_keys().unwrap(), [51, 61, 71, 81, 91]);
        let archived: Vec<u64> = read_all(archive.path()).unwrap().iter().map(|frame| frame.key).collect();
        assert_eq!(archived, [1, 11, 21, 31, 41]);
        // Again: nothing new.
        let again = apply(&store, Retention::Archive, archive.path(), readable).unwrap();
        assert_eq!((again.frames_archived, again.frames_removed, again.archive_file), (0, 0, None));
        // Archive and live journal read as one sequence.
        let seqs: Vec<u64> = frames_with_archive(&store, Some(archive.path()), 1)
            .unwrap()
            .flat_map(|frame| frame.unwrap().entries.into_iter().map(|entry| entry.seq))
            .collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        // Without the archive the live journal starts later; from 45 the archive is needed.
        let keys: Vec<u64> = frames_with_archive(&store, Some(archive.path()), 45).unwrap().map(|f| f.unwrap().key).collect();
        assert_eq!(keys, [41, 51, 61, 71, 81, 91]);
    }

    #[test]
    fn a_run_interrupted_before_removal_does_not_archive_twice() {
        let journal = tempfile::tempdir().unwrap();
        let archive = tempfile::tempdir().unwrap();
        let store = store_with(journal.path(), 6, &[35, 55]);
        // As if a run wrote frames 1 and 11 and stopped before removing them.
        write_archive(archive.path(), 1, 2, 10);
        let report = apply(&store, Retention::Archive, archive.path(), readable).unwrap();
        assert_eq!((report.frames_archived, report.frames_removed), (1, 3));
        assert_eq!(report.archive_file.unwrap().file_name().unwrap(), "frames-00000000000000000021.m2mj");
        let archived: Vec<u64> = read_all(archive.path()).unwrap().iter().map(|frame| frame.key).collect();
        assert_eq!(archived, [1, 11, 21]);
        assert_eq!(store.frame_keys().unwrap(), [31, 41, 51]);
    }

    #[test]
    fn checkpoints_and_snapshot_count_hold_frames_back() {
        let journal = tempfile::tempdir().unwrap();
        let archive = tempfile::tempdir().unwrap();
        let store = store_with(journal.path(), 6, &[45]);
        assert_eq!(apply(&store, Retention::Delete, archive.path(), readable).unwrap().cutoff_seq, None, "one snapshot: keep all");
        let mut writable = store.clone();
        writable.save_snapshot(55, SNAPSHOT).unwrap();
        store.save_checkpoint("explorer", 20, &[]).unwrap();
        let report = apply(&store, Retention::Delete, archive.path(), readable).unwrap();
        assert_eq!(report.cutoff_seq, Some(21), "the explorer still needs seq 21 on");
        assert_eq!(report.frames_removed, 2);
        assert_eq!(store.frame_keys().unwrap(), [21, 31, 41, 51]);
        assert!(archive_files(archive.path()).unwrap().is_empty(), "delete writes no archive");
    }

    #[test]
    fn an_unreadable_fallback_snapshot_keeps_every_frame() {
        let journal = tempfile::tempdir().unwrap();
        let archive = tempfile::tempdir().unwrap();
        let mut store = store_with(journal.path(), 6, &[55]);
        store.save_snapshot(35, b"torn").unwrap();
        let report = apply(&store, Retention::Delete, archive.path(), readable).unwrap();
        assert_eq!((report.cutoff_seq, report.frames_removed), (None, 0));
        assert_eq!(store.frame_keys().unwrap().len(), 6, "nothing removed");
        // The same journal with a readable fallback gives up what snapshot 35 covers.
        let report = apply(&store, Retention::Delete, archive.path(), |_| Ok(())).unwrap();
        assert_eq!((report.cutoff_seq, report.frames_removed), (Some(35), 3));
    }

    #[test]
    fn an_archive_that_does_not_continue_the_journal_is_refused() {
        let journal = tempfile::tempdir().unwrap();
        let archive = tempfile::tempdir().unwrap();
        let store = store_with(journal.path(), 6, &[35, 55]);
        write_archive(archive.path(), 1, 1, 5); // ends at seq 5; the journal's next frame is 1..10
        let error = apply(&store, Retention::Archive, archive.path(), readable).unwrap_err().to_string();
        assert!(error.contains("ends at seq 5"), "{error}");
        assert_eq!(store.frame_keys().unwrap().len(), 6, "nothing removed");
    }
}
