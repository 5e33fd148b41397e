//! The durable journal under a real node: restart recovery, snapshots, packets left open by a
//! crash, corruption, a second node on the same directory, and a full disk.

use std::time::Duration;

use m2m_connector::btp::endpoint::Endpoint;
use m2m_connector::config::{self, Env};
use m2m_connector::ilp::error_code::ErrorCode;
use m2m_connector::ilp::packet::Packet;
use m2m_connector::projections::recovery;
use m2m_connector::journal::{
    ConfigurationApplied, Event, JournalEntry, JournalError, PacketPrepared, SledStore, Stage, Store,
};
use m2m_connector::node::Node;
use m2m_connector::projections::balances::Balances;
use m2m_connector::projections::Projection;

use crate::forwarding::{base_config, bob_handler, prepare, url};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn start_in(dir: &std::path::Path, extra_journal: &str) -> anyhow::Result<Node> {
    let text = format!("{}\n[journal]\ndir = {:?}\n{extra_journal}\n", base_config("", ""), dir.display().to_string());
    let loaded = config::parse(&text, &Env::default()).expect("test config is valid");
    Node::start(loaded.config).await
}

fn read_all(store: &SledStore) -> Vec<JournalEntry> {
    store.entries_from(1).collect::<Result<Vec<_>, _>>().expect("journal reads back")
}

fn replayed(entries: &[JournalEntry]) -> Balances {
    let mut balances = Balances::new();
    for entry in entries {
        balances.apply(entry);
    }
    balances
}

/// Sends `count` packets alice → bob; every 5th is rejected by bob.
async fn traffic(node: &Node, count: usize) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Endpoint::connect(&url(node), "alice", "alice-token", None).await.unwrap();
    for index in 0..count {
        let data = if index % 5 == 0 { b"reject".to_vec() } else { (index as u32).to_be_bytes().to_vec() };
        let reply = alice.send(&prepare(10, "test.m2m.bob", &data, 10_000), TIMEOUT).await.unwrap();
        Packet::parse(reply).expect("reply parses");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_recovers_balances_and_continues_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in(dir.path(), "snapshot_every = 25").await.unwrap();
    traffic(&node, 40).await;
    node.stop().await;

    let store = SledStore::open(dir.path()).unwrap();
    let before = read_all(&store);
    let live_at_stop = {
        let (seq, bytes) = store.latest_snapshot().unwrap().expect("a final snapshot at stop");
        assert_eq!(seq, before.last().unwrap().seq, "the stop snapshot covers the whole journal");
        Balances::from_snapshot(&bytes).unwrap()
    };
    // Replay equality: the live state (snapshotted at stop) equals a replay from the start.
    let from_scratch = replayed(&before);
    assert_eq!(live_at_stop.digest(), from_scratch.digest());
    assert_eq!(from_scratch.balance_of("alice").unwrap().position, 320);
    // The tailing copy of the projection, checkpointed at stop, is level with both.
    let (checkpoint_seq, state) = store.checkpoint("balances").unwrap().expect("balances checkpoint");
    assert_eq!(checkpoint_seq, before.last().unwrap().seq);
    assert_eq!(Balances::from_snapshot(&state).unwrap().digest(), from_scratch.digest());
    let recovered = recovery::recover(&store).unwrap();
    assert_eq!(recovered.events_replayed, 0, "nothing after the stop snapshot");
    assert_eq!(recovered.balances.digest(), from_scratch.digest());
    drop(store);

    let node = start_in(dir.path(), "snapshot_every = 25").await.unwrap();
    traffic(&node, 10).await;
    node.stop().await;
    let store = SledStore::open(dir.path()).unwrap();
    let after = read_all(&store);
    for (index, entry) in after.iter().enumerate() {
        assert_eq!(entry.seq, index as u64 + 1, "one sequence across restarts");
    }
    let mut packet_ids: Vec<u64> = after
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::PacketPrepared(p) => Some(p.packet_id),
            Event::PacketRejected(r) if !r.prepared => Some(r.packet_id),
            _ => None,
        })
        .collect();
    let count = packet_ids.len();
    packet_ids.dedup();
    assert_eq!(packet_ids.len(), count, "packet ids are never reused across restarts");
    let configurations = after.iter().filter(|entry| matches!(entry.event, Event::ConfigurationApplied(_))).count();
    assert_eq!(configurations, 2, "each start records the rules in force");
    assert_eq!(replayed(&after).balance_of("alice").unwrap().position, 400);
}

/// A journal as a crash would leave it: a packet prepared and never ended.
fn write_crashed_journal(dir: &std::path::Path, expires_at_in_ms: i64) {
    let mut store = SledStore::open(dir).unwrap();
    let configuration = Event::ConfigurationApplied(ConfigurationApplied {
        node_address: "test.m2m".into(),
        asset_code: "USD".into(),
        asset_scale: 6,
        min_message_window_ms: 1000,
        max_hold_time_ms: 30_000,
        peers: Vec::new(),
    });
    let prepared = Event::PacketPrepared(PacketPrepared {
        packet_id: 41,
        from_peer: "alice".into(),
        to_peer: "bob".into(),
        amount_in: 500,
        amount_out: 250,
        expires_at_in_ms,
        expires_at_out_ms: expires_at_in_ms - 1000,
        condition: [3; 32],
        destination: "test.m2m.bob".into(),
        rate: None,
    });
    let entries = vec![
        JournalEntry { seq: 1, timestamp_ms: 1, event: configuration },
        JournalEntry { seq: 2, timestamp_ms: 2, event: prepared },
    ];
    store.write_frame(&entries).unwrap();
    Store::flush(&mut store).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_open_at_a_crash_end_after_their_expiry() {
    let dir = tempfile::tempdir().unwrap();
    // Far enough ahead that a slow start on a loaded machine still begins before the expiry.
    let expires_at_in_ms = m2m_connector::ilp::timestamp::now_ms() + 3000;
    write_crashed_journal(dir.path(), expires_at_in_ms);
    let node = start_in(dir.path(), "").await.unwrap();
    // Not before its expiry...
    if m2m_connector::ilp::timestamp::now_ms() + 200 < expires_at_in_ms {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let early = node.journal.entries_from(1).filter_map(Result::ok).count();
        assert_eq!(early, 4, "configuration, prepared, and this start's configuration and routing only");
    }
    // ...but soon after it, with R00 and the recovery stage.
    let wait_ms = (expires_at_in_ms - m2m_connector::ilp::timestamp::now_ms()).max(0) as u64 + 1000;
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    let entries: Vec<JournalEntry> = node.journal.entries_from(1).filter_map(Result::ok).collect();
    let ended = entries
        .iter()
        .find_map(|entry| match &entry.event {
            Event::PacketRejected(rejected) if rejected.packet_id == 41 => Some(rejected.clone()),
            _ => None,
        })
        .expect("the open packet was ended");
    assert_eq!(ended.code, *b"R00");
    assert_eq!(ended.stage, Stage::Recovery);
    assert!(ended.prepared);
    assert!(entries.iter().find(|e| matches!(&e.event, Event::PacketRejected(r) if r.packet_id == 41)).unwrap().timestamp_ms >= expires_at_in_ms);
    let balances = replayed(&entries);
    assert_eq!(balances.balance_of("alice").unwrap().reserved, 0);
    assert_eq!(balances.balance_of("alice").unwrap().position, 0);
    // New packets continue after the recovered id.
    traffic(&node, 1).await;
    node.stop().await;
    let store = SledStore::open(dir.path()).unwrap();
    let last_packet = read_all(&store)
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::PacketPrepared(p) => Some(p.packet_id),
            Event::PacketRejected(r) => Some(r.packet_id),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(last_packet > 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_frame_stops_the_node_at_start_and_names_the_frame() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_in(dir.path(), "").await.unwrap();
    traffic(&node, 20).await;
    node.stop().await;

    let store = SledStore::open(dir.path()).unwrap();
    let keys = store.frame_keys().unwrap();
    assert!(keys.len() >= 3, "several frames: {keys:?}");
    let victim = keys[keys.len() / 2];
    let mut value = store.raw_frame(victim).unwrap().unwrap();
    let middle = value.len() / 2;
    value[middle] ^= 0x01;
    store.put_raw_frame(victim, &value).unwrap();
    match store.verify() {
        Err(JournalError::Corrupt { frame, .. }) => assert_eq!(frame, victim),
        other => panic!("verify must name frame {victim}, got {other:?}"),
    }
    drop(store);

    let error = start_in(dir.path(), "").await.err().expect("the node refuses a corrupt journal");
    let message = format!("{error:#}");
    assert!(message.contains(&format!("journal frame {victim}")), "{message}");
    assert!(message.contains("journal verify"), "names the command to inspect it: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_cannot_share_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_in(dir.path(), "").await.unwrap();
    let error = start_in(dir.path(), "").await.err().expect("the second node must not start");
    let message = format!("{error:#}");
    assert!(message.contains("in use by another process"), "{message}");
    first.stop().await;
}

/// A real full disk: the journal on a small tmpfs (needs root, as CI and this machine run),
/// filled up by another file once the node has started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_prepares_with_t00_and_acknowledges_nothing_undurable() {
    let mount = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(mount.path())
        .status()
        .expect("mount runs");
    assert!(status.success(), "mounting a tmpfs needs root; this test must not be skipped");
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount.path());

    let journal_errors = || -> u64 {
        let text = m2m_connector::metrics::global().render();
        crate::support::metric_sum(&text, "connector_errors_total", &[("type", "journal")]) as u64
    };
    let journal_errors_before = journal_errors();
    let journal_dir = mount.path().join("journal");
    // The smallest commit log (1 MiB, allocated 256 KiB at a time), so the disk is noticed full
    // when the log needs its next 256 KiB: a thousand packets or so.
    let node = start_in(&journal_dir, "commit_log_mib = 1").await.unwrap();
    // Leave about 64 KiB free: less than the commit log's next step.
    let free = fs_free_bytes(mount.path());
    let filler = vec![0u8; 1 << 20];
    let mut file = std::fs::File::create(mount.path().join("filler")).unwrap();
    let mut written = 0u64;
    while written + (1 << 20) + (64 << 10) < free {
        std::io::Write::write_all(&mut file, &filler).unwrap();
        written += 1 << 20;
    }
    let tail = (free - written).saturating_sub(64 << 10) as usize;
    std::io::Write::write_all(&mut file, &filler[..tail.min(filler.len())]).unwrap();
    drop(file);
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let data = vec![7u8; 64];
    let mut fulfilled = 0u64;
    let mut refused = None;
    for index in 0..5000u32 {
        let mut unique = data.clone();
        unique[..4].copy_from_slice(&index.to_be_bytes());
        match alice.send(&prepare(10, "test.m2m.bob", &unique, 5_000), TIMEOUT).await {
            Ok(reply) => match Packet::parse(reply).unwrap() {
                Packet::Fulfill(_) => fulfilled += 1,
                Packet::Reject(reject) => {
                    refused = Some(reject.code());
                    break;
                }
                Packet::Prepare(_) => unreachable!(),
            },
            // A Fulfill held because its event could not be made durable never arrives.
            Err(_) => continue,
        }
    }
    assert!(fulfilled > 0, "refused at once with {refused:?}");
    let code = refused.expect("the full disk must be noticed within 5000 packets (~1300 fill the commit log)");
    let commit_log = std::fs::metadata(journal_dir.join("commit.log")).unwrap().len();
    assert!(commit_log <= 1 << 20, "the commit log stays within its 1 MiB: {commit_log}");
    assert!(
        code == ErrorCode::T00_INTERNAL_ERROR || code == ErrorCode::R00_TRANSFER_TIMED_OUT,
        "new Prepares are refused with T00 (got {code})"
    );
    let reply = alice.send(&prepare(10, "test.m2m.bob", b"after", 5_000), TIMEOUT).await.unwrap();
    match Packet::parse(reply).unwrap() {
        Packet::Reject(reject) => assert_eq!(reject.code(), ErrorCode::T00_INTERNAL_ERROR),
        other => panic!("expected T00 after the journal failed, got {other:?}"),
    }
    let health = node.health.report();
    let journal = &health.components["journal"];
    assert_eq!(journal.status, "failed", "/health reports the failed journal: {health:?}");
    assert!(journal_errors() > journal_errors_before, "the write failure is counted in connector_errors_total{{type=\"journal\"}}");
    // Every Fulfill alice received is durable: its event is at or below the flushed sequence.
    let durable_seq = node.durable_seq();
    let durable = node
        .journal
        .entries_from(1)
        .filter_map(Result::ok)
        .filter(|entry| entry.seq <= durable_seq && matches!(entry.event, Event::PacketFulfilled(_)))
        .count() as u64;
    assert!(durable >= fulfilled, "alice saw {fulfilled} fulfills, the journal holds {durable}");
    node.stop().await;
}

fn fs_free_bytes(path: &std::path::Path) -> u64 {
    let output = std::process::Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&output.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}
