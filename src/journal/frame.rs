//! The on-disk form of a frame: one sled value holding a batch of consecutive events.
//!
//! ```text
//! key   = sequence number of the frame's first event, u64 big-endian (so keys sort in order)
//! value = format version (u8) · CRC-32 of the payload (u32 big-endian) · payload
//! payload = bincode 2 (standard configuration) of the frame's `Vec<JournalEntry>`
//! ```
//! Decoding checks the version, the checksum, the size and that the entries are consecutive
//! from the key; any failure is corruption, reported with the frame's key, never skipped.

use super::event::JournalEntry;

/// The only format this build writes and reads. A journal written by a newer format fails with
/// a clear error instead of being misread.
pub const FORMAT_VERSION: u8 = 1;

/// Version byte plus checksum.
pub const HEADER_SIZE: usize = 5;

/// Largest payload a frame may decode to; bounds the allocation a corrupted length could ask
/// for. Frames are ~55 KB at 256 events; 64 MiB leaves room for any batch the writer makes.
pub const PAYLOAD_SIZE_MAX: usize = 64 << 20;

/// Why a stored frame can't be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is {0} bytes, shorter than its header")]
    Truncated(usize),
    #[error("format version {0} is not supported by this build (it reads version {FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("payload does not decode: {0}")]
    Decode(String),
    #[error("frame holds no events")]
    Empty,
    #[error("events are not consecutive from the frame key: expected seq {expected}, found {found}")]
    Sequence { expected: u64, found: u64 },
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<PAYLOAD_SIZE_MAX>()
}

/// Encodes `entries` into `out` (cleared first), reusing its allocation.
pub fn encode(entries: &[JournalEntry], out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    out.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0, 0]);
    bincode::serde::encode_into_std_write(entries, out, bincode_config()).map_err(|error| error.to_string())?;
    let checksum = crc32fast::hash(&out[HEADER_SIZE..]);
    out[1..HEADER_SIZE].copy_from_slice(&checksum.to_be_bytes());
    Ok(())
}

/// Checks version and checksum without decoding the events (fast: used to scan a whole journal).
pub fn check(value: &[u8]) -> Result<(), FrameError> {
    if value.len() < HEADER_SIZE {
        return Err(FrameError::Truncated(value.len()));
    }
    if value[0] != FORMAT_VERSION {
        return Err(FrameError::UnknownVersion(value[0]));
    }
    let stored = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
    let computed = crc32fast::hash(&value[HEADER_SIZE..]);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    Ok(())
}

/// Decodes a frame stored under `key` (its first sequence number).
pub fn decode(key: u64, value: &[u8]) -> Result<Vec<JournalEntry>, FrameError> {
    check(value)?;
    let (entries, _): (Vec<JournalEntry>, usize) =
        bincode::serde::decode_from_slice(&value[HEADER_SIZE..], bincode_config())
            .map_err(|error| FrameError::Decode(error.to_string()))?;
    if entries.is_empty() {
        return Err(FrameError::Empty);
    }
    for (offset, entry) in entries.iter().enumerate() {
        let expected = key + offset as u64;
        if entry.seq != expected {
            return Err(FrameError::Sequence { expected, found: entry.seq });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(first: u64, count: u64) -> Vec<JournalEntry> {
        crate::journal::event::fulfilled_entries(first, count)
    }

    #[test]
    fn round_trip_and_every_corruption_is_caught() {
        let original = entries(10, 5);
        let mut value = Vec::new();
        encode(&original, &mut value).unwrap();
        assert_eq!(decode(10, &value).unwrap(), original);
        assert_eq!(decode(11, &value), Err(FrameError::Sequence { expected: 11, found: 10 }));
        for index in 0..value.len() {
            let mut corrupted = value.clone();
            corrupted[index] ^= 0x40;
            assert!(decode(10, &corrupted).is_err(), "flip at byte {index} must be detected");
        }
        let mut newer = value.clone();
        newer[0] = 2;
        assert_eq!(decode(10, &newer), Err(FrameError::UnknownVersion(2)));
        assert_eq!(decode(10, &value[..3]), Err(FrameError::Truncated(3)));
    }
}
