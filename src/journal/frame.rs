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

/// The format this build writes. It also reads format 1 (before `PacketPrepared` carried its
/// rate, see [`v1`]); a journal written by a newer format fails with a clear error instead of
/// being misread.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest format this build still reads.
pub const FORMAT_VERSION_OLDEST: u8 = 1;

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
    if !(FORMAT_VERSION_OLDEST..=FORMAT_VERSION).contains(&value[0]) {
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
    let entries: Vec<JournalEntry> = if value[0] == 1 {
        let (entries, _): (Vec<v1::JournalEntry>, usize) =
            bincode::serde::decode_from_slice(&value[HEADER_SIZE..], bincode_config())
                .map_err(|error| FrameError::Decode(error.to_string()))?;
        entries.into_iter().map(JournalEntry::from).collect()
    } else {
        let (entries, _): (Vec<JournalEntry>, usize) =
            bincode::serde::decode_from_slice(&value[HEADER_SIZE..], bincode_config())
                .map_err(|error| FrameError::Decode(error.to_string()))?;
        entries
    };
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

/// Format 1: `PacketPrepared` without its `rate`; every other event as today. Read, never
/// written: a journal from before format 2 decodes into today's events with `rate: None`.
mod v1 {
    use serde::Deserialize;

    use super::super::event as current;

    #[derive(Deserialize, serde::Serialize)]
    pub struct JournalEntry {
        pub seq: u64,
        pub timestamp_ms: i64,
        pub event: Event,
    }

    #[derive(Deserialize, serde::Serialize)]
    pub struct PacketPreparedV1 {
        pub packet_id: u64,
        pub from_peer: String,
        pub to_peer: String,
        pub amount_in: u64,
        pub amount_out: u64,
        pub expires_at_in_ms: i64,
        pub expires_at_out_ms: i64,
        pub condition: [u8; 32],
        pub destination: String,
    }

    /// Variant for variant in today's order (bincode numbers variants by position).
    #[derive(Deserialize, serde::Serialize)]
    pub enum Event {
        ConfigurationApplied(current::ConfigurationApplied),
        PeerConnected { peer: String, session: u64 },
        PeerDisconnected { peer: String, session: u64 },
        PacketPrepared(PacketPreparedV1),
        PacketFulfilled(current::PacketFulfilled),
        PacketRejected(current::PacketRejected),
        SettlementConfigured(current::SettlementConfigured),
        SettlementChainReady(current::SettlementChainReady),
        SettlementTriggered(current::SettlementTriggered),
        ClaimSent(current::ClaimSent),
        ClaimReceived(current::ClaimReceived),
        ChannelObserved(current::ChannelObserved),
        SettlementCompleted(current::SettlementCompleted),
        SettlementFailed(current::SettlementFailed),
        ChannelActionFailed(current::ChannelActionFailed),
        ChainScanned(current::ChainScanned),
        ChannelCloseRequested(current::ChannelCloseRequested),
        CooperativeSettleAgreed(current::CooperativeSettleAgreed),
        SettlementCorrected(current::SettlementCorrected),
        FulfillUndelivered(current::FulfillUndelivered),
        RoutingConfigured(current::RoutingConfigured),
        RouteLearned(current::RouteLearned),
        RouteWithdrawn(current::RouteWithdrawn),
    }

    impl From<JournalEntry> for current::JournalEntry {
        fn from(entry: JournalEntry) -> current::JournalEntry {
            let event = match entry.event {
            Event::ConfigurationApplied(event) => current::Event::ConfigurationApplied(event),
            Event::PeerConnected { peer, session } => current::Event::PeerConnected { peer, session },
            Event::PeerDisconnected { peer, session } => current::Event::PeerDisconnected { peer, session },
            Event::PacketPrepared(p) => current::Event::PacketPrepared(current::PacketPrepared { packet_id: p.packet_id, from_peer: p.from_peer, to_peer: p.to_peer, amount_in: p.amount_in, amount_out: p.amount_out, expires_at_in_ms: p.expires_at_in_ms, expires_at_out_ms: p.expires_at_out_ms, condition: p.condition, destination: p.destination, rate: None }),
            Event::PacketFulfilled(event) => current::Event::PacketFulfilled(event),
            Event::PacketRejected(event) => current::Event::PacketRejected(event),
            Event::SettlementConfigured(event) => current::Event::SettlementConfigured(event),
            Event::SettlementChainReady(event) => current::Event::SettlementChainReady(event),
            Event::SettlementTriggered(event) => current::Event::SettlementTriggered(event),
            Event::ClaimSent(event) => current::Event::ClaimSent(event),
            Event::ClaimReceived(event) => current::Event::ClaimReceived(event),
            Event::ChannelObserved(event) => current::Event::ChannelObserved(event),
            Event::SettlementCompleted(event) => current::Event::SettlementCompleted(event),
            Event::SettlementFailed(event) => current::Event::SettlementFailed(event),
            Event::ChannelActionFailed(event) => current::Event::ChannelActionFailed(event),
            Event::ChainScanned(event) => current::Event::ChainScanned(event),
            Event::ChannelCloseRequested(event) => current::Event::ChannelCloseRequested(event),
            Event::CooperativeSettleAgreed(event) => current::Event::CooperativeSettleAgreed(event),
            Event::SettlementCorrected(event) => current::Event::SettlementCorrected(event),
            Event::FulfillUndelivered(event) => current::Event::FulfillUndelivered(event),
            Event::RoutingConfigured(event) => current::Event::RoutingConfigured(event),
            Event::RouteLearned(event) => current::Event::RouteLearned(event),
            Event::RouteWithdrawn(event) => current::Event::RouteWithdrawn(event),
            };
            current::JournalEntry { seq: entry.seq, timestamp_ms: entry.timestamp_ms, event }
        }
    }
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
        newer[0] = FORMAT_VERSION + 1;
        let checksum = crc32fast::hash(&newer[HEADER_SIZE..]).to_be_bytes();
        newer[1..HEADER_SIZE].copy_from_slice(&checksum);
        assert_eq!(decode(10, &newer), Err(FrameError::UnknownVersion(FORMAT_VERSION + 1)));
        assert_eq!(decode(10, &value[..3]), Err(FrameError::Truncated(3)));
    }

    /// A frame written before `PacketPrepared` carried its rate still reads, with no rate.
    #[test]
    fn format_1_frames_still_decode() {
        let prepared = v1::PacketPreparedV1 {
            packet_id: 7,
            from_peer: "alice".into(),
            to_peer: "bob".into(),
            amount_in: 100,
            amount_out: 90,
            expires_at_in_ms: 5,
            expires_at_out_ms: 4,
            condition: [1; 32],
            destination: "test.x".into(),
        };
        let old = vec![
            v1::JournalEntry { seq: 3, timestamp_ms: 9, event: v1::Event::PacketPrepared(prepared) },
            v1::JournalEntry { seq: 4, timestamp_ms: 9, event: v1::Event::PeerConnected { peer: "bob".into(), session: 2 } },
        ];
        let mut value = vec![1, 0, 0, 0, 0];
        bincode::serde::encode_into_std_write(&old, &mut value, bincode_config()).unwrap();
        let checksum = crc32fast::hash(&value[HEADER_SIZE..]);
        value[1..HEADER_SIZE].copy_from_slice(&checksum.to_be_bytes());
        let entries = decode(3, &value).unwrap();
        match &entries[0].event {
            crate::journal::Event::PacketPrepared(prepared) => assert_eq!((prepared.amount_out, prepared.rate), (90, None)),
            other => panic!("{other:?}"),
        }
        assert_eq!(entries[1].event, crate::journal::Event::PeerConnected { peer: "bob".into(), session: 2 });
    }
}
