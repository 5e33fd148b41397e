//! Projections: state derived from the journal, and rebuildable from it at any time.
//!
//! A projection is a pure function of the events it has applied: it reads no clock and no
//! randomness (time comes from `JournalEntry::timestamp_ms`), so replaying the journal into a
//! fresh projection gives the same state, byte for byte.

pub mod audit;
pub mod balances;
pub mod recovery;
pub mod runner;
#[cfg(feature = "tigerbeetle")]
pub mod tigerbeetle;

use crate::journal::JournalEntry;

/// A batch a projection could not apply (an external system is down, say); the runner retries
/// the same batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProjectionError {
    pub message: String,
}

pub trait Projection {
    /// A stable name for checkpoints, metrics and `journal replay --projection`.
    fn name(&self) -> &'static str;
    /// Applies one event. Entries arrive in sequence order, each exactly once.
    fn apply(&mut self, entry: &JournalEntry);
    /// Sequence number of the last applied entry (0 before any).
    fn position(&self) -> u64;
    /// Applies a batch in order. Projections with side effects override this to do one
    /// request per batch; on error nothing of the batch may count as applied (the position
    /// stays put), and the runner retries it.
    fn apply_batch(&mut self, entries: &[JournalEntry]) -> Result<(), ProjectionError> {
        for entry in entries {
            self.apply(entry);
        }
        Ok(())
    }
    /// State saved with a checkpoint so a restart resumes instead of replaying; empty for
    /// projections whose state lives elsewhere.
    fn checkpoint_state(&self) -> Vec<u8> {
        Vec::new()
    }
    /// Called when the runner has applied everything durable and is about to wait: a
    /// projection that defers its writes finishes them here.
    fn on_idle(&mut self) {}
    /// How long an idle runner waits before looking for new events (None: the runner's 2 ms).
    fn poll_interval(&self) -> Option<std::time::Duration> {
        None
    }
}
