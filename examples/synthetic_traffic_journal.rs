//! Writes a synthetic journal of packet traffic for measuring the Explorer (BENCHMARKS.md,
//! "Explorer"): three children (alice, carol, dave) paying bob, a packet a millisecond of journal
//! time, 1 in 10 rejected (F02 at routing, F99 downstream or T04 at the credit check, in turn),
//! each packet with its own condition, SHA-256 of its fulfillment, which is SHA-256 of
//! "m2m-bench" and the packet id (big-endian): a client can compute both.
//!
//!     cargo run --release --example synthetic_traffic_journal -- DIR EVENTS

use m2m_connector::journal::{
    ConfigurationApplied, Event, JournalEntry, PacketFulfilled, PacketPrepared, PacketRejected, PeerTerms, SledStore, Stage, Store,
};
use sha2::{Digest, Sha256};

const FRAME_EVENTS: usize = 4096;
const CHILDREN: [&str; 3] = ["alice", "carol", "dave"];

pub fn fulfillment(packet_id: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"m2m-bench");
    hasher.update(packet_id.to_be_bytes());
    hasher.finalize().into()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(events)) = (args.get(1), args.get(2).and_then(|text| text.parse::<u64>().ok())) else {
        eprintln!("usage: synthetic_traffic_journal DIR EVENTS");
        std::process::exit(2);
    };
    let mut store = SledStore::open(std::path::Path::new(dir)).expect("opening the journal directory");
    let mut frame: Vec<JournalEntry> = Vec::with_capacity(FRAME_EVENTS);
    let mut seq = 0u64;
    let mut time_ms = 1_800_000_000_000i64;
    let mut append = |event: Event, time_ms: i64, store: &mut SledStore| {
        seq += 1;
        frame.push(JournalEntry { seq, timestamp_ms: time_ms, event });
        if frame.len() == FRAME_EVENTS {
            store.write_frame(&frame).expect("writing a frame");
            frame.clear();
        }
        seq
    };
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
    append(
        Event::ConfigurationApplied(ConfigurationApplied {
            node_address: "test.a".into(),
            asset_code: "USD".into(),
            asset_scale: 6,
            min_message_window_ms: 1000,
            max_hold_time_ms: 30_000,
            peers,
        }),
        time_ms,
        &mut store,
    );
    let started = std::time::Instant::now();
    let mut packet_id = 0u64;
    let mut last = 1;
    while last < events {
        packet_id += 1;
        time_ms += 1;
        let from = CHILDREN[(packet_id % 3) as usize];
        let destination = format!("test.a.bob.{}", packet_id % 1000);
        let fulfillment = fulfillment(packet_id);
        let condition: [u8; 32] = Sha256::digest(fulfillment).into();
        let rejected = |code: &[u8; 3], prepared: bool, stage: Stage, triggered_by: &str| PacketRejected {
            packet_id,
            prepared,
            from_peer: from.into(),
            amount_in: 100,
            destination: destination.clone(),
            code: *code,
            triggered_by: triggered_by.into(),
            message: String::new(),
            stage,
        };
        match packet_id % 30 {
            7 => {
                last = append(Event::PacketRejected(rejected(b"F02", false, Stage::Routing, "test.a")), time_ms, &mut store);
                continue;
            }
            17 => {
                last = append(Event::PacketRejected(rejected(b"T04", false, Stage::Risk, "test.a")), time_ms, &mut store);
                continue;
            }
            _ => {}
        }
        append(
            Event::PacketPrepared(PacketPrepared {
                packet_id,
                from_peer: from.into(),
                to_peer: "bob".into(),
                amount_in: 100,
                amount_out: 100,
                expires_at_in_ms: time_ms + 30_000,
                expires_at_out_ms: time_ms + 29_000,
                condition,
                destination: destination.clone(),
                rate: None,
            }),
            time_ms,
            &mut store,
        );
        let end = if packet_id % 30 == 27 {
            Event::PacketRejected(rejected(b"F99", true, Stage::Downstream, "test.a.bob"))
        } else {
            Event::PacketFulfilled(PacketFulfilled { packet_id, fulfillment })
        };
        last = append(end, time_ms + 1, &mut store);
    }
    if !frame.is_empty() {
        store.write_frame(&frame).expect("writing a frame");
    }
    store.flush().expect("flushing");
    eprintln!("wrote {last} events ({packet_id} packets) to {dir} in {:.1} s", started.elapsed().as_secs_f64());
}
