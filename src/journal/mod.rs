//! The event journal: the source of truth that every projection is derived from.
//!
//! Input: commits (a batch of events plus the replies that may only leave once those events are
//! durable) from the pipeline's forwarder, over one bounded queue. Output: events written to a
//! [`Store`] one frame per batch (group commit: one flush per batch), the durable sequence
//! number published, then the held replies released. The writer runs on its own thread, so a
//! slow disk never blocks a tokio worker; when it falls behind, its queue fills and the
//! forwarder stops taking Prepares (backpressure), never the reverse.

pub mod event;
pub mod frame;
pub mod recovery;
pub mod store;

pub use event::*;
pub use store::SledStore;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A failure of the journal's storage. The node stops acknowledging Fulfills when it sees one.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal storage failed: {0}")]
    Storage(String),
    #[error(
        "journal frame {frame} in {} is corrupt: {reason}. Nothing is skipped: the node will not \
         start on it. Inspect with `m2m-connector journal verify --dir {}` and \
         `m2m-connector journal inspect --dir {} --from {frame} --limit 10`",
        dir.display(), dir.display(), dir.display()
    )]
    Corrupt { dir: std::path::PathBuf, frame: u64, reason: frame::FrameError },
    #[error(
        "the journal in {} is in use by another process (another m2m-connector on the same \
         JOURNAL_DIR?); two nodes must never share a journal",
        .0.display()
    )]
    Locked(std::path::PathBuf),
}

/// Where frames of events go.
pub trait Store: Send + 'static {
    /// Writes one frame holding `entries` (consecutive sequence numbers).
    fn write_frame(&mut self, entries: &[JournalEntry]) -> Result<(), JournalError>;
    /// Makes every frame written so far durable.
    fn flush(&mut self) -> Result<(), JournalError>;
    /// Stores a snapshot of the forwarder's state as of `seq` (flushed with the next frame).
    fn save_snapshot(&mut self, _seq: u64, _snapshot: &[u8]) -> Result<(), JournalError> {
        Ok(())
    }
}

/// Something held back until the events before it are durable: a Fulfill on its way upstream.
pub trait Release: Send + 'static {
    fn release(self);
}

/// One batch from the forwarder.
pub struct Commit<R> {
    pub entries: Vec<JournalEntry>,
    pub releases: Vec<R>,
    /// The forwarder's state as of the last entry, every `JOURNAL_SNAPSHOT_EVERY` events.
    pub snapshot: Option<(u64, Vec<u8>)>,
}

/// Progress of the journal writer, shared with health and metrics.
#[derive(Debug, Default)]
pub struct JournalStatus {
    /// Highest sequence number known durable.
    pub durable_seq: AtomicU64,
    pub frames_written: AtomicU64,
    /// Set when the store failed; from then on nothing is released.
    pub failed: AtomicBool,
}

/// Largest number of commits merged into one frame; bounds the frame size and the latency the
/// first commit of a burst waits for the others.
pub const FRAME_COMMITS_MAX: usize = 64;

/// Runs the writer until every sender of `commits` is dropped. Returns the store.
pub fn run_writer<S: Store, R: Release>(
    mut store: S,
    commits: crossbeam_channel::Receiver<Commit<R>>,
    status: Arc<JournalStatus>,
) -> S {
    let mut entries: Vec<JournalEntry> = Vec::new();
    let mut releases: Vec<R> = Vec::new();
    let mut snapshot: Option<(u64, Vec<u8>)> = None;
    while let Ok(first) = commits.recv() {
        absorb(first, &mut entries, &mut releases, &mut snapshot);
        for _ in 1..FRAME_COMMITS_MAX {
            match commits.try_recv() {
                Ok(commit) => absorb(commit, &mut entries, &mut releases, &mut snapshot),
                Err(_) => break,
            }
        }
        if status.failed.load(Ordering::Acquire) {
            // Fail-stop: a store that failed once is not trusted again; held replies are
            // dropped (their upstream sees an expiry, never an unrecorded Fulfill).
            entries.clear();
            releases.clear();
            continue;
        }
        if entries.is_empty() && snapshot.is_none() {
            releases.drain(..).for_each(Release::release);
            continue;
        }
        let result = store.write_frame(&entries).and_then(|()| match snapshot.take() {
            Some((seq, bytes)) => store.save_snapshot(seq, &bytes),
            None => Ok(()),
        });
        let result = result.and_then(|()| store.flush());
        match result {
            Ok(()) => {
                if let Some(last) = entries.last() {
                    status.durable_seq.store(last.seq, Ordering::Release);
                    status.frames_written.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::global().journal_durable(last.seq, entries.len());
                }
                entries.clear();
                releases.drain(..).for_each(Release::release);
            }
            Err(error) => {
                tracing::error!(%error, "journal write failed; no further Fulfill will be acknowledged");
                status.failed.store(true, Ordering::Release);
                entries.clear();
                releases.clear();
            }
        }
    }
    store
}

fn absorb<R>(
    commit: Commit<R>,
    entries: &mut Vec<JournalEntry>,
    releases: &mut Vec<R>,
    snapshot: &mut Option<(u64, Vec<u8>)>,
) {
    entries.extend(commit.entries);
    releases.extend(commit.releases);
    if commit.snapshot.is_some() {
        *snapshot = commit.snapshot;
    }
}

/// An in-memory store keeping the most recent `retained_max` events (the durable sled store is
/// its own piece of work). Readable from other threads for tests and inspection.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
}

struct MemoryInner {
    entries: VecDeque<JournalEntry>,
    retained_max: usize,
    appended_count: u64,
}

impl MemoryStore {
    pub fn new(retained_max: usize) -> Self {
        MemoryStore {
            inner: Arc::new(Mutex::new(MemoryInner {
                entries: VecDeque::new(),
                retained_max,
                appended_count: 0,
            })),
        }
    }

    /// The retained events, oldest first.
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.inner.lock().expect("journal lock").entries.iter().cloned().collect()
    }

    pub fn appended_count(&self) -> u64 {
        self.inner.lock().expect("journal lock").appended_count
    }
}

impl Store for MemoryStore {
    fn write_frame(&mut self, entries: &[JournalEntry]) -> Result<(), JournalError> {
        let mut inner = self.inner.lock().expect("journal lock");
        for entry in entries {
            if let Some(last) = inner.entries.back() {
                assert_eq!(entry.seq, last.seq + 1, "journal sequence must have no gaps");
            }
            inner.entries.push_back(entry.clone());
            inner.appended_count += 1;
        }
        while inner.entries.len() > inner.retained_max {
            inner.entries.pop_front();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
}
