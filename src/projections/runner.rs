//! Runs a projection beside the packet path: catch up from its checkpoint, then tail the
//! journal as the writer makes events durable.
//!
//! Input: durable events read back from the store (never events that could still be lost).
//! Output: the projection's own state or side effects, a checkpoint every
//! `checkpoint_every_events` (the last applied seq plus the projection's saved state), and the
//! `projection_lag_events` gauge. A failing batch is retried with capped backoff, never skipped:
//! the projection's position only moves past events it has applied.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Projection, ProjectionError};
use crate::journal::{JournalEntry, JournalError, JournalStatus, SledStore};

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
        let mut since_checkpoint = 0u64;
        let mut batch: Vec<JournalEntry> = Vec::with_capacity(1024);
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
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
            batch.clear();
            if let Err(error) = read_batch(&store, position + 1, durable, &mut batch) {
                // Corruption or storage failure: the journal writer fails the same way; stop here
                // rather than apply around a hole.
                tracing::error!(projection = projection.name(), %error, "projection stopped: journal unreadable");
                return projection;
            }
            if !apply_with_retry(&mut projection, &batch, &stopping) {
                // Stopping while the batch still fails: leave it for the next start.
                break;
            }
            since_checkpoint += batch.len() as u64;
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
fn apply_with_retry<P: Projection>(projection: &mut P, batch: &[JournalEntry], stopping: &AtomicBool) -> bool {
    let mut backoff = Duration::from_millis(10);
    loop {
        match projection.apply_batch(batch) {
            Ok(()) => return true,
            Err(ProjectionError { message }) => {
                tracing::warn!(projection = projection.name(), %message, retry_in_ms = backoff.as_millis() as u64, "projection batch failed; retrying");
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
        tracing::warn!(projection = projection.name(), %error, "saving a projection checkpoint failed");
    }
}
