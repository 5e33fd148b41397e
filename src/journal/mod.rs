//! The event journal: the source of truth that every projection is derived from.
//!
//! Input: commits (a batch of events plus the replies that may only leave once those events are
//! durable) from the pipeline's forwarder, over one bounded queue. Output: events written to a
//! [`Store`] one frame per batch (group commit: one flush per batch), the durable sequence
//! number published, then the held replies released. The writer runs on its own thread, so a
//! slow disk never blocks a tokio worker; when it falls behind, its queue fills and the
//! forwarder stops taking Prepares (backpressure), never the reverse.

pub mod commit_log;
pub mod event;
pub mod frame;
pub mod json;
#[cfg(test)]
mod power_loss;
pub mod wide;
pub mod retention;
pub mod store;

pub use event::*;
pub use store::SledStore;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A failure of the journal's storage. The node stops acknowledging Fulfills when it sees one.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal storage failed: {0}")]
    Storage(String),
    #[error(
        "journal frame {frame} in {} is corrupt: {reason}. Nothing is skipped: the node will not \
         start on it. Inspect with `m2m-connector journal verify --dir {}` and \
         `m2m-connector journal inspect --dir {} --from {} --limit 20` (events up to the bad frame)",
        dir.display(), dir.display(), dir.display(), frame.saturating_sub(10).max(1)
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
    /// Called after each flush once its Fulfills are on their way: work the store may do off
    /// the release path (sled writes its buffer here, see `SledStore`).
    fn after_release(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
    /// Called once when the writer stops, after its last flush: leave the store so the next
    /// start has the least to do.
    fn close(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
}

/// Something held back until the events before it are durable: a Fulfill on its way upstream.
pub trait Release: Send + 'static {
    /// Where a release that could not be delivered is reported (the forwarder's queue of
    /// undelivered Fulfills); given to [`run_writer`].
    type Report: Send + 'static;
    /// Delivers the held frame, the journal having made everything before it durable at
    /// `now_ms` (wall clock, read once per flush).
    fn release(self, now_ms: i64, report: &Self::Report);
}

/// One batch from the forwarder.
pub struct Commit<R> {
    pub entries: Vec<JournalEntry>,
    pub releases: Vec<R>,
    /// The forwarder's state as of the last entry, every `JOURNAL_SNAPSHOT_EVERY` events.
    pub snapshot: Option<(u64, Vec<u8>)>,
}

/// Progress of the journal writer, shared with health, metrics and projections.
#[derive(Debug, Default)]
pub struct JournalStatus {
    /// Highest sequence number known durable.
    pub durable_seq: AtomicU64,
    pub frames_written: AtomicU64,
    /// Set when the store failed; from then on nothing is released.
    pub failed: AtomicBool,
    /// Subscribers to the durable batches (see [`JournalStatus::subscribe`]).
    feed: Mutex<Vec<crossbeam_channel::Sender<DurableBatch>>>,
    feed_subscribers: AtomicUsize,
}

/// Events the writer just made durable, in order, as it wrote them.
pub type DurableBatch = Arc<Vec<JournalEntry>>;

/// Batches a subscriber may have waiting; past that, the writer drops batches for it (never
/// waits), and the subscriber reads those events back from the store.
pub const FEED_BATCHES_MAX: usize = 64;

impl JournalStatus {
    /// Every batch made durable from now on, for a projection tailing the journal: it saves
    /// reading back and decoding what was just written. Lossy by design (the writer never
    /// waits for a subscriber): a subscriber must check that a batch continues where it is, and
    /// read from the store otherwise.
    pub fn subscribe(&self) -> crossbeam_channel::Receiver<DurableBatch> {
        let (sender, receiver) = crossbeam_channel::bounded(FEED_BATCHES_MAX);
        let mut feed = self.feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        feed.push(sender);
        self.feed_subscribers.store(feed.len(), Ordering::Release);
        receiver
    }

    fn has_subscribers(&self) -> bool {
        self.feed_subscribers.load(Ordering::Acquire) > 0
    }

    /// Hands a durable batch to every subscriber that has room; forgets those that are gone.
    /// Called before `durable_seq` moves past the batch, so a subscriber that sees the new head
    /// finds the batch already waiting instead of reading it back from the store.
    pub(crate) fn publish(&self, batch: Vec<JournalEntry>) {
        if batch.is_empty() {
            return;
        }
        let batch = Arc::new(batch);
        let mut feed = self.feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        feed.retain(|sender| {
            !matches!(sender.try_send(batch.clone()), Err(crossbeam_channel::TrySendError::Disconnected(_)))
        });
        self.feed_subscribers.store(feed.len(), Ordering::Release);
    }
}

/// Largest number of commits merged into one write; bounds the latency the first commit of a
/// burst waits for the others.
pub const FRAME_COMMITS_MAX: usize = 64;

/// Largest number of events in one frame. A commit can be large (a session going down ends
/// every packet it carried), so writes are cut into frames of at most this many events: at
/// ~200 bytes an event, ~800 KiB, far below the decoder's limit and sled's segment size.
pub const FRAME_EVENTS_MAX: usize = 4096;

/// Longest a written batch may wait for its flush when nothing in it waits for durability
/// (no Fulfill to release): its events become durable with the next flush that does, or after
/// this long. DESIGN.md allows a crash to lose an in-flight Prepare (it expires), never a
/// fulfilled one; skipping the flush for Prepare-only batches halves the flushes at window 1.
pub const UNFLUSHED_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(5);

/// Runs the writer until every sender of `commits` is dropped. Returns the store.
///
/// Each batch is written as soon as it is taken; it is flushed at once when it holds Fulfills
/// to release or a snapshot, otherwise with the next flush or after [`UNFLUSHED_WAIT_MAX`].
/// Only flushed events count as durable (`durable_seq`, what projections read).
pub fn run_writer<S: Store, R: Release>(
    mut store: S,
    commits: crossbeam_channel::Receiver<Commit<R>>,
    status: Arc<JournalStatus>,
    report: R::Report,
) -> S {
    let mut entries: Vec<JournalEntry> = Vec::new();
    let mut releases: Vec<R> = Vec::new();
    let mut snapshot: Option<(u64, Vec<u8>)> = None;
    // Written to the store but not yet flushed: the last seq, and how many events.
    let mut unflushed: Option<(u64, usize)> = None;
    // Those events themselves, kept only while a projection subscribes to the feed.
    let mut unflushed_entries: Vec<JournalEntry> = Vec::new();
    loop {
        let first = if unflushed.is_some() {
            match commits.recv_timeout(UNFLUSHED_WAIT_MAX) {
                Ok(commit) => Some(commit),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match commits.recv() {
                Ok(commit) => Some(commit),
                Err(_) => break,
            }
        };
        if first.is_some() {
            crate::fault::hit("journal-writer");
        }
        let timed_out = first.is_none();
        if let Some(first) = first {
            absorb(first, &mut entries, &mut releases, &mut snapshot);
            for _ in 1..FRAME_COMMITS_MAX {
                match commits.try_recv() {
                    Ok(commit) => absorb(commit, &mut entries, &mut releases, &mut snapshot),
                    Err(_) => break,
                }
            }
        }
        if status.failed.load(Ordering::Acquire) {
            // Fail-stop: a store that failed once is not trusted again; held replies are
            // dropped (their upstream sees an expiry, never an unrecorded Fulfill).
            entries.clear();
            releases.clear();
            snapshot = None;
            unflushed = None;
            unflushed_entries.clear();
            continue;
        }
        let must_flush = timed_out || !releases.is_empty() || snapshot.is_some();
        let written = write_batch(&mut store, &entries, snapshot.take()).and_then(|()| {
            if let Some(last) = entries.last() {
                let count = unflushed.map_or(0, |(_, count)| count) + entries.len();
                unflushed = Some((last.seq, count));
            }
            if status.has_subscribers() {
                unflushed_entries.append(&mut entries);
            } else {
                entries.clear();
            }
            match unflushed {
                Some((seq, count)) if must_flush => {
                    store.flush()?;
                    status.publish(std::mem::take(&mut unflushed_entries));
                    status.durable_seq.store(seq, Ordering::Release);
                    status.frames_written.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::global().journal_durable(seq, count);
                    unflushed = None;
                    Ok(())
                }
                _ => Ok(()),
            }
        });
        match written {
            Ok(()) if unflushed.is_none() => {
                if !releases.is_empty() {
                    crate::fault::delay("journal-release");
                    let now_ms = crate::ilp::timestamp::now_ms();
                    releases.drain(..).for_each(|held| held.release(now_ms, &report));
                }
                if let Err(error) = store.after_release() {
                    crate::internal_events::emit(crate::internal_events::JournalWriteFailed { error: &error });
                    status.failed.store(true, Ordering::Release);
                }
            }
            Ok(()) => {}
            Err(error) => {
                crate::internal_events::emit(crate::internal_events::JournalWriteFailed { error: &error });
                status.failed.store(true, Ordering::Release);
                entries.clear();
                unflushed_entries.clear();
                releases.clear();
                unflushed = None;
            }
        }
    }
    // The forwarder has stopped: make what was written durable before returning.
    if let Some((seq, count)) = unflushed {
        if !status.failed.load(Ordering::Acquire) && store.flush().is_ok() {
            status.publish(std::mem::take(&mut unflushed_entries));
            status.durable_seq.store(seq, Ordering::Release);
            crate::metrics::global().journal_durable(seq, count);
        }
    }
    if !status.failed.load(Ordering::Acquire) {
        if let Err(error) = store.close() {
            crate::internal_events::emit(crate::internal_events::JournalCloseFailed { error: &error });
        }
    }
    store
}

/// Writes a batch's events (in frames of at most [`FRAME_EVENTS_MAX`]) and its snapshot.
fn write_batch<S: Store>(store: &mut S, entries: &[JournalEntry], snapshot: Option<(u64, Vec<u8>)>) -> Result<(), JournalError> {
    entries.chunks(FRAME_EVENTS_MAX).try_for_each(|frame| store.write_frame(frame))?;
    match snapshot {
        Some((seq, bytes)) => store.save_snapshot(seq, &bytes),
        None => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::event::{Event, PacketFulfilled};

    /// A store whose writes fail after `ok_frames` frames: stands in for a disk that fills up
    /// (the integration tests fill a real tmpfs).
    struct FailingStore {
        ok_frames: usize,
        written: Vec<u64>,
    }

    impl Store for FailingStore {
        fn write_frame(&mut self, entries: &[JournalEntry]) -> Result<(), JournalError> {
            if self.written.len() >= self.ok_frames {
                return Err(JournalError::Storage("no space left on device".into()));
            }
            self.written.extend(entries.iter().map(|entry| entry.seq));
            Ok(())
        }
        fn flush(&mut self) -> Result<(), JournalError> {
            Ok(())
        }
    }

    struct Flag(Arc<std::sync::atomic::AtomicUsize>);
    impl Release for Flag {
        type Report = ();
        fn release(self, _now_ms: i64, _report: &()) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn commit(seq: u64, released: &Arc<std::sync::atomic::AtomicUsize>) -> Commit<Flag> {
        let event = Event::PacketFulfilled(PacketFulfilled { packet_id: seq, fulfillment: [0; 32] });
        Commit {
            entries: vec![JournalEntry { seq, timestamp_ms: 0, event }],
            releases: vec![Flag(released.clone())],
            snapshot: None,
        }
    }

    #[test]
    fn nothing_is_released_once_a_write_fails() {
        let released = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let status = Arc::new(JournalStatus::default());
        let (sender, receiver) = crossbeam_channel::bounded(16);
        let writer_status = status.clone();
        let writer = std::thread::spawn(move || {
            run_writer(FailingStore { ok_frames: 1, written: Vec::new() }, receiver, writer_status, ())
        });
        sender.send(commit(1, &released)).unwrap();
        // Wait until the first frame is durable before the next, so they are separate frames.
        while status.durable_seq.load(Ordering::Acquire) < 1 {
            std::thread::yield_now();
        }
        sender.send(commit(2, &released)).unwrap();
        sender.send(commit(3, &released)).unwrap();
        drop(sender);
        let store = writer.join().unwrap();
        assert_eq!(store.written, vec![1]);
        assert_eq!(released.load(Ordering::SeqCst), 1, "only the durable Fulfill is released");
        assert_eq!(status.durable_seq.load(Ordering::Acquire), 1);
        assert!(status.failed.load(Ordering::Acquire));
    }
}
