//! Projections: state derived from the journal, and rebuildable from it at any time.
//!
//! A projection is a pure function of the events it has applied: it reads no clock and no
//! randomness (time comes from `JournalEntry::timestamp_ms`), so replaying the journal into a
//! fresh projection gives the same state, byte for byte.

pub mod balances;

use crate::journal::JournalEntry;

pub trait Projection {
    /// A stable name for checkpoints, metrics and `journal replay --projection`.
    fn name(&self) -> &'static str;
    /// Applies one event. Entries arrive in sequence order, each exactly once.
    fn apply(&mut self, entry: &JournalEntry);
    /// Sequence number of the last applied entry (0 before any).
    fn position(&self) -> u64;
}
