//! What the Explorer's index costs per event, in one thread, without the packet path around it
//! (BENCHMARKS.md, "Explorer"): live-like batches (W=256 packets in flight, 1 in 30 rejected
//! downstream, 2 in 30 refused before forwarding, three children paying bob), applied to the
//! index as the projection runner applies the journal's feed, then to the `balances` projection
//! alone for comparison.
//!
//!     cargo run --release --example explorer_apply -- [EVENTS] [BATCH]

use std::sync::Arc;

use m2m_connector::explorer::index::ExplorerIndex;
use m2m_connector::explorer::live::Live;
use m2m_connector::journal::{
    ConfigurationApplied, Event, JournalEntry, PacketFulfilled, PacketPrepared, PacketRejected, PeerTerms, SledStore, Stage, Store,
};
use m2m_connector::projections::balances::Balances;
use m2m_connector::projections::Projection;

const CHILDREN: [&str; 3] = ["alice", "carol", "dave"];
const WINDOW: u64 = 256;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: u64 = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(2_000_000);
    let batch: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(512);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = SledStore::open(&dir.path().join("journal")).expect("a journal");
    let peer = |id: &str, relation: &str| PeerTerms {
        peer: id.into(),
        relation: relation.into(),
        asset_code: "USD".into(),
        asset_scale: 6,
        max_packet_amount: None,
        credit_limit: u64::MAX,
        packets_per_second_max: None,
        throughput_per_second_max: None,
        settlement_threshold: None,
        settle_to: None,
    };
    let mut peers: Vec<PeerTerms> = CHILDREN.iter().map(|id| peer(id, "child")).collect();
    peers.push(peer("bob", "peer"));
    let configuration = JournalEntry {
        seq: 1,
        timestamp_ms: 1_800_000_000_000,
        event: Event::ConfigurationApplied(ConfigurationApplied {
            node_address: "test.a".into(),
            asset_code: "USD".into(),
            asset_scale: 6,
            min_message_window_ms: 1000,
            max_hold_time_ms: 30_000,
            peers,
        }),
    };
    store.write_frame(std::slice::from_ref(&configuration)).expect("the first frame");
    store.flush().expect("flushing");

    // The events, as the forwarder journals them: a Prepare, and the end of the packet WINDOW
    // Prepares earlier.
    let mut entries = Vec::with_capacity(events as usize);
    let mut seq = 1u64;
    let mut packet_id = 0u64;
    let mut time_ms = 1_800_000_000_000i64;
    let mut push = |event: Event, time_ms: i64, entries: &mut Vec<JournalEntry>| {
        seq += 1;
        entries.push(JournalEntry { seq, timestamp_ms: time_ms, event });
    };
    while (entries.len() as u64) < events {
        packet_id += 1;
        if packet_id.is_multiple_of(50) {
            time_ms += 1;
        }
        let from = CHILDREN[(packet_id % 3) as usize];
        let rejected = |id: u64, code: &[u8; 3], prepared: bool, stage: Stage| PacketRejected {
            packet_id: id,
            prepared,
            from_peer: CHILDREN[(id % 3) as usize].into(),
            amount_in: 100,
            destination: if prepared { String::new() } else { format!("test.a.bob.{}", id % 1000) },
            code: *code,
            triggered_by: "test.a".into(),
            message: String::new(),
            stage,
        };
        if packet_id % 30 == 7 || packet_id % 30 == 17 {
            let code = if packet_id % 30 == 7 { b"F02" } else { b"T04" };
            push(Event::PacketRejected(rejected(packet_id, code, false, Stage::Routing)), time_ms, &mut entries);
            continue;
        }
        let mut condition = [0u8; 32];
        condition[..8].copy_from_slice(&packet_id.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        push(
            Event::PacketPrepared(PacketPrepared {
                packet_id,
                from_peer: from.into(),
                to_peer: "bob".into(),
                amount_in: 100,
                amount_out: 100,
                expires_at_in_ms: time_ms + 30_000,
                expires_at_out_ms: time_ms + 29_000,
                condition,
                destination: format!("test.a.bob.{}", packet_id % 1000),
                rate: None,
            }),
            time_ms,
            &mut entries,
        );
        if packet_id > WINDOW {
            let ending = packet_id - WINDOW;
            if ending % 30 == 7 || ending % 30 == 17 {
                continue;
            }
            let end = if ending % 30 == 27 {
                Event::PacketRejected(rejected(ending, b"F99", true, Stage::Downstream))
            } else {
                Event::PacketFulfilled(PacketFulfilled { packet_id: ending, fulfillment: [7; 32] })
            };
            push(end, time_ms, &mut entries);
        }
    }
    let batches: Vec<Arc<Vec<JournalEntry>>> = entries.chunks(batch).map(|chunk| Arc::new(chunk.to_vec())).collect();
    drop(entries);

    let live = Arc::new(Live::detached());
    let mut index = ExplorerIndex::open(&dir.path().join("index"), &store, live).expect("the index");
    index.apply(&configuration);
    let started = std::time::Instant::now();
    for batch in &batches {
        index.apply_batch(batch).expect("applied");
    }
    let index_ns = started.elapsed().as_nanos() as f64 / events as f64;
    index.close();

    let mut balances = Balances::new();
    balances.apply(&configuration);
    let started = std::time::Instant::now();
    for batch in &batches {
        balances.apply_batch(batch).expect("applied");
    }
    let balances_ns = started.elapsed().as_nanos() as f64 / events as f64;
    println!(
        "{{\"events\":{events},\"batch\":{batch},\"explorer_index_ns_per_event\":{index_ns:.1},\"balances_ns_per_event\":{balances_ns:.1}}}"
    );
}
