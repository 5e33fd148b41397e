//! Throughput of the TigerBeetle projection: journal events → two-phase transfers in a real
//! TigerBeetle 0.16.78 server (single replica on 127.0.0.1, started here by
//! `scripts/tigerbeetle.sh` with `--limit-request 1MiB`, stopped at the end).
//!
//! Not criterion: one measurement is one catch-up over a synthetic journal, the way the runner
//! applies it (batches of 8192 events). Each packet is a PacketPrepared and a PacketFulfilled,
//! so four transfers (two linked pending legs, two linked posts). It reports transfers/s and
//! events/s for the first pass (everything created) and for a replay of the same journal by a
//! fresh projection (everything `exists`).
//!
//! `cargo bench --features tigerbeetle --bench tigerbeetle` (PACKETS=200000 by default); under
//! `cargo test --all-targets` (no `--bench` argument) it runs once with 2,000 packets as a smoke
//! test.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use m2m_connector::journal::{
    ConfigurationApplied, Event, JournalEntry, PacketFulfilled, PacketPrepared, PeerTerms,
};
use m2m_connector::projections::runner::BATCH_EVENTS_MAX;
use m2m_connector::projections::tigerbeetle::{Reporting, TigerBeetleClient, TigerBeetleProjection};
use m2m_connector::projections::Projection;

fn script() -> Command {
    let mut command = Command::new("bash");
    command.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tigerbeetle.sh"));
    command
}

/// Stops the server when dropped (also on a panic).
struct Server {
    data: tempfile::TempDir,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let built = script().arg("path").output().expect("running scripts/tigerbeetle.sh");
        assert!(
            built.status.success(),
            "TigerBeetle is not built: run `bash scripts/tigerbeetle.sh install`"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = tempfile::Builder::new().prefix("m2m-bench-tigerbeetle-").tempdir().unwrap();
        let status = script()
            .args(["start", "--port", &port.to_string(), "--data"])
            .arg(data.path())
            .args(["--limit-request", "1MiB"])
            .status()
            .unwrap();
        assert!(status.success(), "tigerbeetle.sh start failed");
        Server { data, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = script().arg("stop").arg("--data").arg(self.data.path()).status();
    }
}

fn journal(packets: u64) -> Vec<JournalEntry> {
    let peers = ["bench-a", "bench-b", "bench-c", "bench-d"];
    let terms = |peer: &str| PeerTerms {
        peer: peer.into(),
        relation: "child".into(),
        asset_code: "BNC".into(),
        asset_scale: 6,
        max_packet_amount: None,
        credit_limit: u64::MAX,
        packets_per_second_max: None,
        throughput_per_second_max: None,
        settlement_threshold: None,
        settle_to: None,
    };
    let mut events = vec![Event::ConfigurationApplied(ConfigurationApplied {
        node_address: "test.bench".into(),
        asset_code: "BNC".into(),
        asset_scale: 6,
        min_message_window_ms: 1000,
        max_hold_time_ms: 30_000,
        peers: peers.iter().map(|peer| terms(peer)).collect(),
    })];
    // Packets overlap a little, as on a busy node: each ends 64 packets after it starts.
    const IN_FLIGHT: u64 = 64;
    for packet_id in 1..=packets + IN_FLIGHT {
        if packet_id <= packets {
            events.push(Event::PacketPrepared(PacketPrepared {
                packet_id,
                from_peer: peers[packet_id as usize % 4].into(),
                to_peer: peers[(packet_id as usize + 1) % 4].into(),
                amount_in: 1000,
                amount_out: 999,
                expires_at_in_ms: 1_700_000_030_000 + packet_id as i64,
                expires_at_out_ms: 1_700_000_029_000 + packet_id as i64,
                condition: [0; 32],
                destination: "test.bench.x".into(),
                rate: None,
            }));
        }
        if packet_id > IN_FLIGHT {
            events.push(Event::PacketFulfilled(PacketFulfilled { packet_id: packet_id - IN_FLIGHT, fulfillment: [0; 32] }));
        }
    }
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| JournalEntry { seq: index as u64 + 1, timestamp_ms: 1_700_000_000_000 + index as i64, event })
        .collect()
}

fn pass(port: u16, entries: &[JournalEntry], label: &str, transfers: u64) {
    let client = TigerBeetleClient::new(0, &[port.to_string()]).unwrap();
    let mut projection = TigerBeetleProjection::new(client, 8189, Reporting::default());
    let started = Instant::now();
    for batch in entries.chunks(BATCH_EVENTS_MAX) {
        projection.apply_batch(batch).expect("batch applies");
    }
    let elapsed = started.elapsed();
    let stats = projection.stats();
    assert_eq!(stats.alerts, 0, "{stats:?}");
    let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    println!(
        "tigerbeetle/{label}: {} events, {transfers} transfers in {:.3} s: {:.0} transfers/s, {:.0} events/s ({} requests; {stats:?})",
        entries.len(),
        seconds,
        transfers as f64 / seconds,
        entries.len() as f64 / seconds,
        stats.requests,
    );
}

fn main() {
    let benching = std::env::args().any(|arg| arg == "--bench");
    let packets: u64 = match std::env::var("PACKETS") {
        Ok(text) => text.parse().expect("PACKETS must be a number"),
        Err(_) if benching => 200_000,
        Err(_) => 2_000,
    };
    let entries = journal(packets);
    let server = Server::start();
    // Let the replica settle (it accepts connections before it has a view).
    std::thread::sleep(Duration::from_millis(200));
    pass(server.port, &entries, "create", packets * 4);
    pass(server.port, &entries, "replay", packets * 4);
}
