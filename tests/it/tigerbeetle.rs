//! The TigerBeetle projection against a real TigerBeetle 0.16.78 server, started by
//! `scripts/tigerbeetle.sh` on 127.0.0.1 with `--limit-request 1MiB` (8189 transfers per
//! request, the production size): the mapping of fulfilled, rejected, expired and cross-asset
//! packets; replaying the journal twice; a packet held past 5 s; and a node that keeps
//! forwarding through a TigerBeetle outage, catches up, and reconciles.
//!
//! These tests fail (never skip) when the server is not built: run
//! `bash scripts/tigerbeetle.sh install` first.

#![cfg(feature = "tigerbeetle")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use m2m_connector::btp::endpoint::Endpoint;
use m2m_connector::config::{self, Env};
use m2m_connector::http::health::{Health, NodeStatus};
use m2m_connector::journal::{
    ConfigurationApplied, Event, JournalEntry, PacketFulfilled, PacketPrepared, PacketRejected, PeerTerms, Stage,
};
use m2m_connector::node::Node;
use m2m_connector::projections::tigerbeetle::{
    self as tb, LedgerClient, Reporting, Stats, TigerBeetleClient, TigerBeetleProjection,
};
use m2m_connector::projections::Projection;

use crate::forwarding::{base_config, bob_handler, prepare, url};
use crate::support::{free_port, run_with_timeout};

const INSTALL_HINT: &str = "run `bash scripts/tigerbeetle.sh install` (builds TigerBeetle 0.16.78 \
     and installs Zig), then `export ZIG_PATH=$(bash scripts/tigerbeetle.sh zig-path)`";

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

fn script() -> Command {
    let mut command = Command::new("bash");
    command.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tigerbeetle.sh"));
    command
}

/// Fails the test, with the install command, when Zig or the server binary is missing.
fn require_installed() {
    for what in ["zig-path", "path"] {
        let output = run_with_timeout(script().arg(what), Duration::from_secs(30));
        assert!(output.success(), "TigerBeetle is not installed ({}): {INSTALL_HINT}", output.describe(what));
    }
}

/// A single-replica server on a free port with its own data directory; stopped when dropped.
pub(crate) struct Server {
    pub(crate) port: u16,
    data: tempfile::TempDir,
    /// `--limit-request` (None: the `--development` default, 32 KiB: 253 transfers).
    limit_request: Option<&'static str>,
}

impl Server {
    /// With `--limit-request 1MiB`, the production request size (8189 transfers).
    fn start() -> Server {
        Server::start_with(Some("1MiB"))
    }

    fn start_with(limit_request: Option<&'static str>) -> Server {
        require_installed();
        let data = tempfile::Builder::new().prefix("m2m-it-tigerbeetle-").tempdir().unwrap();
        let server = Server { port: free_port(), data, limit_request };
        server.start_again();
        server
    }

    fn data_arg(&self) -> String {
        self.data.path().display().to_string()
    }

    /// Starts the replica (again) on the same port and data file.
    fn start_again(&self) {
        let port = self.port.to_string();
        let mut command = script();
        command.args(["start", "--port", &port, "--data", &self.data_arg()]);
        if let Some(limit) = self.limit_request {
            command.args(["--limit-request", limit]);
        }
        let output = run_with_timeout(&mut command, Duration::from_secs(120));
        assert!(output.success(), "{}\n{INSTALL_HINT}", output.describe("tigerbeetle.sh start"));
    }

    /// A crash: SIGKILL to the replica (its pid from the script's pid file).
    fn kill9(&self) {
        let pid = std::fs::read_to_string(self.data.path().join("tigerbeetle.pid")).expect("pid file");
        let status = Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
        assert!(status.success(), "kill -KILL {pid}");
        // The script's `start` refuses while the old pid is alive.
        let deadline = Instant::now() + Duration::from_secs(10);
        let alive = || {
            let mut probe = Command::new("kill");
            probe.args(["-0", pid.trim()]).stderr(std::process::Stdio::null());
            probe.status().unwrap().success()
        };
        while alive() {
            assert!(Instant::now() < deadline, "tigerbeetle pid {pid} survived SIGKILL");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn client(&self) -> TigerBeetleClient {
        TigerBeetleClient::new(0, &[self.port.to_string()]).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = run_with_timeout(script().args(["stop", "--data", &self.data_arg()]), Duration::from_secs(30));
    }
}

/// One server shared by the tests that only add data (each uses its own node address and peer
/// names, so their ids never meet); it stops when the last of them ends.
pub(crate) fn shared_server() -> Arc<Server> {
    static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(Server::start());
    *shared = Arc::downgrade(&server);
    server
}

// ---------------------------------------------------------------------------------------------
// A synthetic journal
// ---------------------------------------------------------------------------------------------

/// Builds journal entries with increasing seqs; time is whatever the test says.
struct Journal {
    entries: Vec<JournalEntry>,
    now_ms: i64,
}

impl Journal {
    /// A journal whose first event configures `peers` (id, asset code; scale 2). Each test uses
    /// its own asset codes: the connector's account on a ledger is shared by every node.
    fn new(node_address: &str, peers: &[(&str, &str)]) -> Journal {
        let mut journal = Journal { entries: Vec::new(), now_ms: 1_700_000_000_000 };
        let own_asset = peers[0].1.to_owned();
        let peers = peers
            .iter()
            .map(|(peer, asset_code)| PeerTerms {
                peer: (*peer).into(),
                relation: "child".into(),
                asset_code: (*asset_code).into(),
                asset_scale: 2,
                max_packet_amount: None,
                credit_limit: 1_000_000,
                packets_per_second_max: None,
                throughput_per_second_max: None,
                settlement_threshold: None,
                settle_to: None,
            })
            .collect();
        journal.push(Event::ConfigurationApplied(ConfigurationApplied {
            node_address: node_address.into(),
            asset_code: own_asset,
            asset_scale: 2,
            min_message_window_ms: 1000,
            max_hold_time_ms: 30_000,
            peers,
        }));
        journal
    }

    fn push(&mut self, event: Event) -> &JournalEntry {
        self.now_ms += 1;
        let seq = self.entries.len() as u64 + 1;
        self.entries.push(JournalEntry { seq, timestamp_ms: self.now_ms, event });
        self.entries.last().unwrap()
    }

    fn prepared(&mut self, packet_id: u64, from: &str, to: &str, amount_in: u64, amount_out: u64) {
        let expires_at_in_ms = self.now_ms + 30_000;
        self.push(Event::PacketPrepared(PacketPrepared {
            packet_id,
            from_peer: from.into(),
            to_peer: to.into(),
            amount_in,
            amount_out,
            expires_at_in_ms,
            expires_at_out_ms: expires_at_in_ms - 1000,
            condition: [packet_id as u8; 32],
            destination: format!("test.{to}.x"),
            rate: None,
        }));
    }

    fn fulfilled(&mut self, packet_id: u64) {
        self.push(Event::PacketFulfilled(PacketFulfilled { packet_id, fulfillment: [1; 32] }));
    }

    fn rejected(&mut self, packet_id: u64, from: &str, code: &[u8; 3], stage: Stage) {
        self.push(Event::PacketRejected(PacketRejected {
            packet_id,
            prepared: true,
            from_peer: from.into(),
            amount_in: 0,
            destination: String::new(),
            code: *code,
            triggered_by: "test".into(),
            message: String::new(),
            stage,
        }));
    }

    /// Entries after `seq`.
    fn since(&self, seq: u64) -> &[JournalEntry] {
        &self.entries[seq as usize..]
    }
}

fn projection(server: &Server, batch_max: usize) -> TigerBeetleProjection<TigerBeetleClient> {
    TigerBeetleProjection::new(server.client(), batch_max, Reporting::default())
}

fn apply(projection: &mut TigerBeetleProjection<TigerBeetleClient>, entries: &[JournalEntry]) {
    projection.apply_batch(entries).expect("TigerBeetle applies the batch");
    assert_eq!(projection.position(), entries.last().unwrap().seq);
}

/// (debits_pending, debits_posted, credits_pending, credits_posted) of each account, in order.
fn balances(projection: &mut TigerBeetleProjection<TigerBeetleClient>, ids: &[u128]) -> Vec<(u128, u128, u128, u128)> {
    let accounts = projection.client_mut().lookup_accounts(ids, &mut |_| true).expect("lookup_accounts");
    ids.iter()
        .map(|id| {
            let account = accounts.iter().find(|a| a.id() == *id).unwrap_or_else(|| panic!("account {id:#x} missing"));
            (account.debits_pending(), account.debits_posted(), account.credits_pending(), account.credits_posted())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The mapping
// ---------------------------------------------------------------------------------------------

#[test]
fn fulfill_reject_and_expiry_become_posted_and_voided_transfers() {
    let server = shared_server();
    let (alice, bob) = ("map-alice", "map-bob");
    let mut journal = Journal::new("test.tb-map", &[(alice, "MAP"), (bob, "MAP")]);
    for packet_id in 1..=4 {
        journal.prepared(packet_id, alice, bob, 100, 99);
    }
    let mut projection = projection(&server, 8189);
    apply(&mut projection, &journal.entries);
    let ledger = tb::ledger_id("MAP", 2);
    let ids = [tb::peer_account_id(alice, ledger), tb::peer_account_id(bob, ledger), tb::connector_account_id(ledger)];
    assert_eq!(
        balances(&mut projection, &ids),
        [(400, 0, 0, 0), (0, 0, 396, 0), (396, 0, 400, 0)],
        "four packets pending: alice owes 400, we owe bob 396"
    );

    let seq = journal.entries.len() as u64;
    journal.fulfilled(1);
    journal.rejected(2, alice, b"F99", Stage::Downstream);
    journal.rejected(3, alice, b"R00", Stage::Expiry);
    apply(&mut projection, journal.since(seq));
    assert_eq!(
        balances(&mut projection, &ids),
        [(100, 100, 0, 0), (0, 0, 99, 99), (99, 99, 100, 100)],
        "packet 1 posted, 2 (rejected downstream) and 3 (R00) voided, 4 still pending"
    );
    let stats = projection.stats();
    assert_eq!((stats.chains_created, stats.chains_existing, stats.alerts), (7, 0, 0), "{stats:?}");
    assert_eq!(stats.requests, 3, "accounts once, then one create_transfers per batch: {stats:?}");
}

#[test]
fn cross_asset_packets_move_money_on_two_ledgers() {
    let server = shared_server();
    let (alice, bob) = ("cross-alice", "cross-bob");
    let mut journal = Journal::new("test.tb-cross", &[(alice, "XUS"), (bob, "XEU")]);
    journal.prepared(1, alice, bob, 1000, 500);
    journal.fulfilled(1);
    journal.prepared(2, alice, bob, 300, 150);
    journal.rejected(2, alice, b"T04", Stage::Downstream);
    let mut projection = projection(&server, 8189);
    apply(&mut projection, &journal.entries);
    let (usd, eur) = (tb::ledger_id("XUS", 2), tb::ledger_id("XEU", 2));
    assert_ne!(usd, eur);
    let ids = [
        tb::peer_account_id(alice, usd),
        tb::connector_account_id(usd),
        tb::connector_account_id(eur),
        tb::peer_account_id(bob, eur),
    ];
    assert_eq!(
        balances(&mut projection, &ids),
        [(0, 1000, 0, 0), (0, 0, 0, 1000), (0, 500, 0, 0), (0, 0, 0, 500)],
        "USD: alice → connector 1000; EUR: connector → bob 500; packet 2 voided on both"
    );
    let accounts = projection.client_mut().lookup_accounts(&ids, &mut |_| true).unwrap();
    let ledger_of = |id: u128| accounts.iter().find(|a| a.id() == id).unwrap().ledger();
    assert_eq!((ledger_of(ids[0]), ledger_of(ids[3])), (usd, eur));
    assert_eq!(projection.stats().alerts, 0);
}

#[test]
fn replaying_the_journal_twice_changes_nothing() {
    let server = shared_server();
    let peers = ["replay-a", "replay-b", "replay-c"];
    let mut journal = Journal::new("test.tb-replay", &[(peers[0], "RP1"), (peers[1], "RP1"), (peers[2], "RP2")]);
    // 3000 packets, ending in a different order than they start; every tenth stays in flight.
    for packet_id in 1..=3000u64 {
        let (from, to) = (peers[packet_id as usize % 3], peers[(packet_id as usize + 1) % 3]);
        journal.prepared(packet_id, from, to, packet_id, packet_id / 2 + 1);
        if packet_id > 5 {
            let ended = packet_id - 5;
            match ended % 10 {
                0 => {}
                3 | 7 => journal.rejected(ended, peers[ended as usize % 3], b"F02", Stage::Downstream),
                _ => journal.fulfilled(ended),
            }
        }
    }
    let (one, two) = (tb::ledger_id("RP1", 2), tb::ledger_id("RP2", 2));
    let ids = [
        tb::peer_account_id(peers[0], one),
        tb::peer_account_id(peers[1], one),
        tb::peer_account_id(peers[2], two),
        tb::connector_account_id(one),
        tb::connector_account_id(two),
    ];

    // First pass in runner-sized batches.
    let mut first = projection(&server, 8189);
    for batch in journal.entries.chunks(1024) {
        apply(&mut first, batch);
    }
    let created = first.stats();
    assert_eq!(created.alerts, 0, "{created:?}");
    assert_eq!(created.chains_existing, 0, "{created:?}");
    let after_first = balances(&mut first, &ids);

    // Second pass from scratch (no mapping state), in one batch, in small requests.
    let mut second = projection(&server, 64);
    apply(&mut second, &journal.entries);
    let replayed = second.stats();
    assert_eq!(
        replayed,
        Stats {
            accounts_created: 0,
            accounts_existing: created.accounts_created + created.accounts_existing,
            chains_created: 0,
            chains_existing: created.chains_created,
            chains_posted_late: 0,
            alerts: 0,
            requests: replayed.requests,
        },
        "a replay only finds `exists`"
    );
    assert!(replayed.requests > created.requests, "64-transfer requests: {replayed:?}");
    assert_eq!(balances(&mut second, &ids), after_first, "balances identical after the replay");
}

#[test]
fn a_packet_held_longer_than_5_s_still_posts() {
    let server = shared_server();
    let (alice, bob) = ("held-alice", "held-bob");
    let mut journal = Journal::new("test.tb-held", &[(alice, "HLD"), (bob, "HLD")]);
    journal.prepared(1, alice, bob, 700, 690);
    let mut projection = projection(&server, 8189);
    apply(&mut projection, &journal.entries);
    // TigerBeetle times a pending transfer from its arrival, on its own clock: really wait.
    std::thread::sleep(Duration::from_millis(6_500));
    let seq = journal.entries.len() as u64;
    journal.now_ms += 6_500;
    journal.fulfilled(1);
    apply(&mut projection, journal.since(seq));
    let ledger = tb::ledger_id("HLD", 2);
    let ids = [tb::peer_account_id(alice, ledger), tb::peer_account_id(bob, ledger)];
    assert_eq!(balances(&mut projection, &ids), [(0, 700, 0, 0), (0, 0, 0, 690)]);
    let stats = projection.stats();
    assert_eq!((stats.chains_created, stats.chains_posted_late, stats.alerts), (2, 0, 0), "{stats:?}");
}

#[test]
fn requests_too_large_for_the_server_are_halved() {
    let server = Server::start_with(None);
    let (alice, bob) = ("small-alice", "small-bob");
    let mut journal = Journal::new("test.tb-small", &[(alice, "SML"), (bob, "SML")]);
    for packet_id in 1..=300 {
        journal.prepared(packet_id, alice, bob, 10, 9);
    }
    let mut projection = projection(&server, 8189);
    apply(&mut projection, &journal.entries);
    let ledger = tb::ledger_id("SML", 2);
    let ids = [tb::peer_account_id(alice, ledger), tb::peer_account_id(bob, ledger)];
    assert_eq!(balances(&mut projection, &ids), [(3000, 0, 0, 0), (0, 0, 2700, 0)]);
    let stats = projection.stats();
    assert_eq!((stats.chains_created, stats.alerts), (300, 0), "{stats:?}");
    // 600 transfers against a 253-transfer limit: refused at 600 (8189 → 4094 → ... → 126 per
    // request) until the pairs fit, then every pair created once.
    assert!(stats.requests > 3, "{stats:?}");
}

// ---------------------------------------------------------------------------------------------
// The node through an outage, then `ledger reconcile`
// ---------------------------------------------------------------------------------------------

fn component(health: &Health) -> (String, Option<String>) {
    let report = serde_json::to_value(health.report()).unwrap();
    let component = &report["components"][tb::NAME];
    (component["status"].as_str().unwrap_or("missing").to_owned(), component["message"].as_str().map(str::to_owned))
}

async fn wait_for(what: &str, health: &Health, timeout: Duration, done: impl Fn(&Health) -> bool) {
    let deadline = Instant::now() + timeout;
    while !done(health) {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}; tigerbeetle component: {:?}", component(health));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn reconcile(server: &Server, journal_dir: &std::path::Path) -> crate::support::CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_m2m-connector"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TIGERBEETLE_REPLICAS", format!("127.0.0.1:{}", server.port))
        .args(["ledger", "reconcile", "--journal"])
        .arg(journal_dir);
    run_with_timeout(&mut command, Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_forwards_through_an_outage_catches_up_and_reconciles() {
    let server = Server::start();
    let journal_dir = tempfile::tempdir().unwrap();
    let text = format!("{}\n[journal]\ndir = {:?}\n", base_config("", ""), journal_dir.path().display().to_string());
    let env = Env::from_pairs([
        ("TIGERBEETLE_REPLICAS", format!("localhost:{}", server.port)),
        ("READY_REQUIRES_TIGERBEETLE", "true".to_owned()),
    ]);
    let node = Node::start(config::parse(&text, &env).expect("valid config").config).await.expect("node starts");
    let health = node.health.clone();
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received.clone()))).await.unwrap();
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let send = |count: usize| {
        let alice = &alice;
        async move {
            for index in 0..count {
                let data: &[u8] = if index % 5 == 0 { b"reject" } else { b"pay" };
                let reply = alice.send(&prepare(1000, "test.m2m.bob", data, 10_000), Duration::from_secs(10)).await.unwrap();
                assert_eq!(reply[0] == 13, data == b"pay", "packet {index}: fulfilled iff bob pays");
            }
        }
    };

    send(40).await;
    wait_for("the projection catches up", &health, Duration::from_secs(30), |h| component(h).0 == "ok").await;

    // TigerBeetle dies mid-traffic: packets still flow, the journal stays the source of truth.
    server.kill9();
    send(40).await;
    wait_for("/health reports the outage", &health, Duration::from_secs(30), |h| component(h).0 == "degraded").await;
    let (_, message) = component(&health);
    assert!(message.as_deref().unwrap_or("").contains("events behind"), "{message:?}");
    assert_eq!(health.status(), NodeStatus::Degraded);
    assert!(
        health.not_ready_reasons().iter().any(|reason| reason.contains(tb::NAME)),
        "READY_REQUIRES_TIGERBEETLE holds /health/ready: {:?}",
        health.not_ready_reasons()
    );
    send(20).await;

    // Back: the projection catches up by itself and readiness returns.
    server.start_again();
    wait_for("the projection catches up after the outage", &health, Duration::from_secs(60), |h| {
        component(h).0 == "ok" && h.not_ready_reasons().is_empty()
    })
    .await;
    assert_eq!(received.lock().unwrap().len(), 100, "bob saw every packet");
    node.stop().await;

    let output = reconcile(&server, journal_dir.path());
    assert!(output.success(), "{}", output.describe("ledger reconcile"));
    assert!(output.stdout.contains("TigerBeetle matches the journal"), "{}", output.describe("ledger reconcile"));

    // A transfer the journal doesn't know about is a difference: exit 1, naming the peer.
    let usd = tb::ledger_id("USD", 6);
    let stray = tigerbeetle_unofficial::Transfer::new(u128::from(u64::MAX) << 32)
        .with_debit_account_id(tb::peer_account_id("alice", usd))
        .with_credit_account_id(tb::connector_account_id(usd))
        .with_amount(5)
        .with_ledger(usd)
        .with_code(9);
    let results = tokio::task::spawn_blocking({
        let mut client = server.client();
        move || client.create_transfers(&[stray], &mut |_| true)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(results.is_empty(), "{results:?}");
    let output = reconcile(&server, journal_dir.path());
    assert_eq!(output.status.and_then(|s| s.code()), Some(1), "{}", output.describe("ledger reconcile"));
    assert!(output.stdout.contains("alice: position"), "{}", output.describe("ledger reconcile"));
}

/// An upstream that disconnects while its packet is in flight (issue 12, late Fulfills): bob
/// fulfills 3 s later, after alice's session is gone. The journal says `FulfillUndelivered`
/// (`upstream_gone`): bob is owed, alice is not charged; TigerBeetle mirrors it with a transfer
/// of code 6 (connector → alice) and `ledger reconcile` agrees, naming the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fulfill_for_a_sender_that_disconnected_is_not_charged_and_reconciles() {
    use m2m_connector::journal::UndeliveredReason;
    let server = Server::start();
    let journal_dir = tempfile::tempdir().unwrap();
    let text = format!("{}\n[journal]\ndir = {:?}\n", base_config("", ""), journal_dir.path().display().to_string());
    let env = Env::from_pairs([("TIGERBEETLE_REPLICAS", format!("localhost:{}", server.port))]);
    let node = Node::start(config::parse(&text, &env).expect("valid config").config).await.expect("node starts");
    let health = node.health.clone();
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Bob's "silent" handler blocks its thread 3 s: on a runtime of his own.
    let bob = crate::forwarding::endpoint_on_own_runtime(&url(&node), "bob", "bob-token", bob_handler(received.clone()));

    // One packet paid normally, so alice's position is not zero by accident.
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let reply = alice.send(&prepare(2_000, "test.m2m.bob", b"pay", 10_000), Duration::from_secs(10)).await.unwrap();
    assert_eq!(reply[0], 13, "fulfilled");
    // Bob holds "silent" packets 3 s; alice leaves after 300 ms.
    let in_flight = tokio::spawn(async move {
        let _ = alice.send(&prepare(5_000, "test.m2m.bob", b"silent", 10_000), Duration::from_secs(10)).await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    in_flight.abort();
    let _ = in_flight.await; // drops alice's endpoint: her socket closes
    let deadline = Instant::now() + Duration::from_secs(15);
    let undelivered = loop {
        let found = node.journal.entries_from(1).filter_map(Result::ok).find_map(|entry| match entry.event {
            Event::FulfillUndelivered(undelivered) => Some(undelivered),
            _ => None,
        });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no FulfillUndelivered in the journal after bob fulfilled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((undelivered.from_peer.as_str(), undelivered.amount_in), ("alice", 5_000));
    assert_eq!(undelivered.reason, UndeliveredReason::UpstreamGone);
    assert_eq!(received.lock().unwrap().len(), 2, "bob got both packets");
    wait_for("the projection catches up", &health, Duration::from_secs(30), |h| component(h).0 == "ok").await;
    node.stop().await;
    drop(bob);

    let store = m2m_connector::journal::SledStore::open(journal_dir.path()).unwrap();
    let mut balances = m2m_connector::projections::balances::Balances::new();
    store.entries_from(1).for_each(|entry| balances.apply(&entry.unwrap()));
    let alice = balances.balance_of("alice").unwrap();
    assert_eq!((alice.position, alice.undelivered), (2_000, 5_000), "alice pays only what reached her");
    assert_eq!(balances.balance_of("bob").unwrap().position, -3_500, "bob is owed both (EUR at 0.5)");
    drop(store);

    let output = reconcile(&server, journal_dir.path());
    assert!(output.success(), "{}", output.describe("ledger reconcile"));
    assert!(output.stdout.contains("TigerBeetle matches the journal"), "{}", output.describe("ledger reconcile"));
    assert!(
        output.stdout.contains("alice: 5000 in Fulfills that did not reach it"),
        "{}",
        output.describe("ledger reconcile")
    );
    let usd = tb::ledger_id("USD", 6);
    let accounts = tokio::task::spawn_blocking({
        let mut client = server.client();
        move || client.lookup_accounts(&[tb::peer_account_id("alice", usd)], &mut |_| true)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!((accounts[0].debits_posted(), accounts[0].credits_posted()), (7_000, 5_000), "charged 7000, 5000 given back");
}
