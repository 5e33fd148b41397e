//! Runs a projection beside the packet path: catch up from its checkpoint, then tail the
//! journal as the writer makes events durable.
//!
//! Input: durable events (never events that could still be lost): taken from the journal
//! writer's feed of durable batches when they continue where the projection is (no reading
//! back, no decoding), read back from the store otherwise (catching up, or after the feed
//! dropped batches because this projection fell behind).
//! Output: the projection's own state or side effects, a checkpoint every
//! `checkpoint_every_events` (the last applied seq plus the projection's saved state), and the
//! `projection_lag_events` gauge. A failing batch is retried with capped backoff, never skipped:
//! the projection's position only moves past events it has applied.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Projection, ProjectionError};
use crate::journal::{DurableBatch, JournalEntry, JournalError, JournalStatus, SledStore};

/// Events handed to a projection at once; bounds the memory a catch-up holds.
pub const BATCH_EVENTS_MAX: usize = 8192;

/// How often an idle runner looks for new durable events. A tail, not a hot path: 2 ms keeps
/// the lag small without spinning.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct RunnerConfig {
    pub checkpoint_every_events: u64,
}

/// Starts `projection` (already restored from its checkpoint) on its own thread. Once
/// `stopping` is set it catches up with the journal's durable head and returns.
pub fn spawn<P: Projection + Send + 'static>(
    mut projection: P,
    store: SledStore,
    journal: Arc<JournalStatus>,
    config: RunnerConfig,
    stopping: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<P>> {
    std::thread::Builder::new().name(format!("projection-{}", projection.name())).spawn(move || {
        let lag = crate::metrics::global().projection_lag(projection.name());
        let read_back = crate::metrics::global().projection_read_back(projection.name());
        let feed = journal.subscribe();
        let mut since_checkpoint = 0u64;
        let mut batch: Vec<JournalEntry> = Vec::with_capacity(1024);
        // A fed batch that starts after the projection's position (it had fallen behind): kept
        // until the store has been read up to it.
        let mut fed: Option<DurableBatch> = None;
        loop {
            // Read the flag before the head: once stopping, the journal's head is final, so
            // catching up to it and then leaving loses nothing.
            let stop = stopping.load(Ordering::Acquire);
            let durable = journal.durable_seq.load(Ordering::Acquire);
            let position = projection.position();
            lag.set(i64::try_from(durable.saturating_sub(position)).unwrap_or(i64::MAX));
            if position >= durable {
                if stop {
                    break;
                }
                if fed.as_ref().is_some_and(|fed| fed.last().is_none_or(|last| last.seq <= position)) {
                    fed = None; // already applied from the store
                }
                // A batch already held is newer than the head read above: read the head again.
                // Otherwise sleep a poll interval rather than wake for every batch: at W=1 a
                // wake per packet on a third busy thread cost the packet path's p99.9.
                if fed.is_none() {
                    projection.on_idle();
                    std::thread::sleep(projection.poll_interval().unwrap_or(POLL_INTERVAL));
                    fed = next_after(&feed, position);
                }
                continue;
            }
            if fed.is_none() {
                fed = next_after(&feed, position);
            }
            // The fed batch's events after `position`, if it continues exactly there.
            let from_feed = fed.as_ref().and_then(|fed| continuing(fed, position));
            let applied = match from_feed {
                Some(events) => {
                    let applied = apply_with_retry(&mut projection, events, &stopping);
                    let count = events.len();
                    fed = None;
                    applied.then_some(count)
                }
                None => {
                    if fed.as_ref().is_some_and(|fed| fed.last().is_none_or(|last| last.seq <= position)) {
                        fed = None; // already applied from the store
                    }
                    batch.clear();
                    // Read back up to the fed batch's start (or the durable head): the feed
                    // resumes from there.
                    let until = fed.as_ref().and_then(|fed| fed.first()).map_or(durable, |first| first.seq - 1);
                    if let Err(error) = read_batch(&store, position + 1, until.min(durable), &mut batch) {
                        // Corruption or storage failure: the journal writer fails the same way;
                        // stop here rather than apply around a hole.
                        crate::internal_events::emit(crate::internal_events::ProjectionStopped { projection: projection.name(), error: &error });
                        return projection;
                    }
                    read_back.inc_by(batch.len() as u64);
                    apply_with_retry(&mut projection, &batch, &stopping).then_some(batch.len())
                }
            };
            let Some(applied) = applied else {
                // Stopping while the batch still fails: leave it for the next start.
                break;
            };
            since_checkpoint += applied as u64;
            if since_checkpoint >= config.checkpoint_every_events {
                since_checkpoint = 0;
                save_checkpoint(&store, &projection);
            }
        }
        save_checkpoint(&store, &projection);
        projection
    })
}

/// Reads events `from..=to` (at most a batch), refusing a gap: a projection never applies
/// around missing events (frames archived before this projection had a checkpoint, say).
fn read_batch(store: &SledStore, from: u64, to: u64, batch: &mut Vec<JournalEntry>) -> Result<(), JournalError> {
    for (expected, entry) in (from..).zip(store.entries_from(from)) {
        let entry = entry?;
        if entry.seq > to || batch.len() >= BATCH_EVENTS_MAX {
            break;
        }
        if entry.seq != expected {
            return Err(JournalError::Storage(format!(
                "projection expected seq {expected} but the journal continues at {}: frames are \
                 missing (archived before this projection's checkpoint?)",
                entry.seq
            )));
        }
        batch.push(entry);
    }
    if batch.is_empty() {
        return Err(JournalError::Storage(format!("seq {from} is durable but cannot be read back")));
    }
    Ok(())
}

/// Applies `batch`, retrying with backoff; false if the node began stopping before it succeeded.
/// The first waiting batch with events after `position`; older ones (applied from the store
/// while the feed queued them) are dropped.
fn next_after(feed: &crossbeam_channel::Receiver<DurableBatch>, position: u64) -> Option<DurableBatch> {
    while let Ok(batch) = feed.try_recv() {
        if batch.last().is_some_and(|last| last.seq > position) {
            return Some(batch);
        }
    }
    None
}

/// The events of `batch` after `position`, if the batch holds `position + 1`.
fn continuing(batch: &[JournalEntry], position: u64) -> Option<&[JournalEntry]> {
    let first = batch.first()?.seq;
    let last = batch.last()?.seq;
    if first > position + 1 || last <= position {
        return None;
    }
    let events = &batch[(position + 1 - first) as usize..];
    // Consecutive seqs are the writer's guarantee; checked, not assumed.
    (events.first()?.seq == position + 1 && last - position == events.len() as u64).then_some(events)
}

fn apply_with_retry<P: Projection>(projection: &mut P, batch: &[JournalEntry], stopping: &AtomicBool) -> bool {
    let mut backoff = Duration::from_millis(10);
    #[cfg(feature = "fault-injection")]
    crate::fault::hit(&format!("projection-{}", projection.name()));
    loop {
        match projection.apply_batch(batch) {
            Ok(()) => return true,
            Err(ProjectionError { message }) => {
                crate::internal_events::emit(crate::internal_events::ProjectionBatchFailed {
                    projection: projection.name(),
                    message: &message,
                    retry_in_ms: backoff.as_millis() as u64,
                });
                if stopping.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
    }
}

fn save_checkpoint<P: Projection>(store: &SledStore, projection: &P) {
    if let Err(error) = store.save_checkpoint(projection.name(), projection.position(), &projection.checkpoint_state()) {
        crate::internal_events::emit(crate::internal_events::CheckpointFailed { projection: projection.name(), error: &error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use crate::journal::{run_writer, Commit, Release};

    fn entry(seq: u64) -> JournalEntry {
        crate::journal::event::fulfilled_entries(seq, 1).remove(0)
    }

    #[test]
    fn a_fed_batch_is_used_only_where_it_continues_the_position() {
        let batch: Vec<JournalEntry> = (11..=20).map(entry).collect();
        let seqs = |events: Option<&[JournalEntry]>| events.map(|events| events.iter().map(|e| e.seq).collect::<Vec<_>>());
        assert_eq!(seqs(continuing(&batch, 10)), Some((11..=20).collect()));
        assert_eq!(seqs(continuing(&batch, 14)), Some((15..=20).collect()));
        assert_eq!(seqs(continuing(&batch, 9)), None, "a gap before the batch");
        assert_eq!(seqs(continuing(&batch, 20)), None, "already applied");
        let holed: Vec<JournalEntry> = [11, 12, 14].into_iter().map(entry).collect();
        assert_eq!(seqs(continuing(&holed, 10)), None, "a batch with a hole is not trusted");
    }

    /// CPU time (clock ticks) of this process's threads named `name`.
    fn thread_ticks(name: &str) -> u64 {
        let mut ticks = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat.rsplit_once(") ").map_or("", |(_, rest)| rest).split(' ').collect();
            ticks += fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        ticks
    }

    /// A fed batch the runner already applied from the store (it arrived late) is dropped, not
    /// held: holding it made an idle runner spin at full speed until the head moved.
    #[test]
    fn a_stale_fed_batch_leaves_an_idle_runner_idle() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path()).unwrap();
        let events: Vec<JournalEntry> = (1..=10).map(entry).collect();
        crate::journal::Store::write_frame(&mut store, &events).unwrap();
        crate::journal::Store::flush(&mut store).unwrap();
        let status = Arc::new(JournalStatus::default());
        status.durable_seq.store(10, Ordering::Release);
        let stopping = Arc::new(AtomicBool::new(false));
        let runner = spawn(Idle(Seen(Vec::new())), store.clone(), status.clone(), RunnerConfig { checkpoint_every_events: 1000 }, stopping.clone()).unwrap();
        // The runner reads 1..=10 from the store; then the same batch arrives on the feed.
        std::thread::sleep(Duration::from_millis(100));
        status.publish(events);
        std::thread::sleep(Duration::from_millis(50));
        let before = thread_ticks("projection-idle");
        std::thread::sleep(Duration::from_millis(500));
        let spent = thread_ticks("projection-idle") - before;
        stopping.store(true, Ordering::Release);
        let seen = runner.join().unwrap();
        assert_eq!(seen.0 .0, (1..=10).collect::<Vec<_>>());
        // 500 ms of spinning is ~50 ticks; an idle runner wakes every 2 ms and spends ~0.
        assert!(spent <= 5, "the idle runner used {spent} ticks of CPU in 500 ms");
    }

    /// `Seen` under another name, so its thread can be found.
    struct Idle(Seen);
    impl Projection for Idle {
        fn name(&self) -> &'static str {
            "idle"
        }
        fn apply(&mut self, entry: &JournalEntry) {
            self.0.apply(entry);
        }
        fn position(&self) -> u64 {
            self.0.position()
        }
    }

    /// Records every seq it is given.
    struct Seen(Vec<u64>);
    impl Projection for Seen {
        fn name(&self) -> &'static str {
            "seen"
        }
        fn apply(&mut self, entry: &JournalEntry) {
            self.0.push(entry.seq);
        }
        fn position(&self) -> u64 {
            self.0.last().copied().unwrap_or(0)
        }
    }

    struct Nothing;
    impl Release for Nothing {
        type Report = ();
        fn release(self, _now_ms: i64, _report: &()) {}
    }

    /// A real writer and store: the runner starts behind (events written before it subscribed
    /// come from the store), then follows the feed; a slow start makes the feed drop batches.
    #[test]
    fn the_runner_applies_every_event_once_from_the_feed_and_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut writer_store = store.clone();
        writer_store.attach_commit_log(crate::journal::commit_log::CAPACITY_MIN).unwrap();
        let status = Arc::new(JournalStatus::default());
        let (sender, receiver) = crossbeam_channel::bounded::<Commit<Nothing>>(16);
        let writer_status = status.clone();
        let writer = std::thread::spawn(move || run_writer(writer_store, receiver, writer_status, ()));
        let commit = |first: u64, count: u64| Commit {
            entries: (first..first + count).map(entry).collect(),
            releases: vec![Nothing],
            snapshot: None,
        };
        let wait_durable = |seq: u64| {
            while status.durable_seq.load(Ordering::Acquire) < seq {
                std::thread::yield_now();
            }
        };
        sender.send(commit(1, 50)).unwrap();
        wait_durable(50);
        let read_back = crate::metrics::global().projection_read_back("seen");
        let read_back_before = read_back.get();
        let stopping = Arc::new(AtomicBool::new(false));
        let runner = spawn(Seen(Vec::new()), store.clone(), status.clone(), RunnerConfig { checkpoint_every_events: 1000 }, stopping.clone()).unwrap();
        // More batches than the feed holds, faster than the runner may take them.
        let mut next = 51;
        for size in (1..=200).map(|index| 1 + index % 7) {
            sender.send(commit(next, size)).unwrap();
            next += size;
        }
        wait_durable(next - 1);
        stopping.store(true, Ordering::Release);
        let seen = runner.join().unwrap();
        assert_eq!(seen.0, (1..next).collect::<Vec<_>>(), "every event once, in order");
        // The 50 written before it subscribed were read back, and counted (other tests may
        // run a "seen" too, so at least).
        assert!(read_back.get() - read_back_before >= 50, "read back {}", read_back.get() - read_back_before);
        drop(sender);
        writer.join().unwrap();
    }
}
