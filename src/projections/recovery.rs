//! Start-up: rebuild the forwarder's state from the newest snapshot plus the journal after it.
//!
//! Every frame's checksum is checked first (cheap: no decoding), so a corrupted frame stops the
//! node at start even when it lies before the snapshot. Only the tail after the snapshot is
//! decoded and applied, which is what bounds start-up time on a large journal.

use std::time::{Duration, Instant};

use crate::journal::store::SledStore;
use crate::journal::JournalError;
use super::balances::Balances;
use super::Projection;

pub struct Recovery {
    pub balances: Balances,
    pub last_seq: u64,
    pub snapshot_seq: u64,
    pub frames_checked: u64,
    pub events_replayed: u64,
    pub elapsed: Duration,
}

pub fn recover(store: &SledStore) -> Result<Recovery, JournalError> {
    let started = Instant::now();
    let frames_checked = store.check_checksums()?;
    let (snapshot_seq, mut balances) = latest_usable_snapshot(store)?;
    let mut events_replayed = 0;
    let mut last_seq = snapshot_seq;
    for entry in store.entries_from(snapshot_seq + 1) {
        let entry = entry?;
        if entry.seq != last_seq + 1 {
            return Err(JournalError::Storage(format!(
                "the journal in {} jumps from seq {last_seq} to {}: frames are missing (archived \
                 or deleted without a snapshot covering them)",
                store.dir().display(),
                entry.seq
            )));
        }
        balances.apply(&entry);
        last_seq = entry.seq;
        events_replayed += 1;
    }
    Ok(Recovery { balances, last_seq, snapshot_seq, frames_checked, events_replayed, elapsed: started.elapsed() })
}

/// The newest snapshot that decodes; an unreadable one is passed over (with a warning) for the
/// one before it, which replays to the same state. None at all: replay from the beginning.
fn latest_usable_snapshot(store: &SledStore) -> Result<(u64, Balances), JournalError> {
    let mut seqs = store.snapshot_seqs()?;
    seqs.sort_unstable();
    let first_seq = store.first_frame_key()?.unwrap_or(1);
    while let Some(seq) = seqs.pop() {
        let (_, bytes) = store.latest_snapshot_at_most(seq)?.expect("listed snapshot exists");
        match Balances::from_snapshot(&bytes) {
            Ok(mut balances) => {
                balances.set_position(seq);
                return Ok((seq, balances));
            }
            Err(reason) => tracing::warn!(seq, %reason, "journal snapshot unreadable; trying an older one"),
        }
    }
    if first_seq > 1 {
        return Err(JournalError::Storage(format!(
            "the journal in {} starts at seq {first_seq} and no snapshot covers what came before",
            store.dir().display()
        )));
    }
    Ok((0, Balances::new()))
}
