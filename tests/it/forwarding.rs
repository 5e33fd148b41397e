//! The forwarding core over real sockets: a node started in-process on 127.0.0.1, peers as BTP
//! endpoints. Each test checks the code the reference implementations use, and that the
//! journal ends every packet exactly once with balances equal to a replay.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use m2m_connector::btp::endpoint::{Endpoint, PrepareHandler};
use m2m_connector::btp::packet::{self as btp, BtpPacket, ProtocolData};
use m2m_connector::config::{self, Env};
use m2m_connector::ilp::packet::{FulfillBuilder, Packet, PrepareBuilder, RejectBuilder};
use m2m_connector::ilp::{self, error_code::ErrorCode, timestamp};
use m2m_connector::journal::{Event, JournalEntry};
use m2m_connector::node::Node;
use m2m_connector::projections::{balances::Balances, Projection};
use tokio_tungstenite::tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(10);

/// alice (USD 6) and bob (EUR 6) are children; carol is configured but never connects.
pub(crate) fn base_config(extra_node: &str, alice_extra: &str) -> String {
    format!(
        r#"
[node]
id = "test-node"
ilp_address = "test.m2m"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = 0
health_port = 0
{extra_node}

[explorer]
enabled = false

[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
credit_limit = 1000000
max_packet_amount = 500000
{alice_extra}

[[peers]]
id = "bob"
relation = "child"
asset_code = "EUR"
asset_scale = 6
incoming_token = "bob-token"
credit_limit = 0

[[peers]]
id = "carol"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "carol-token"
credit_limit = 0

[[rates]]
from = "USD"
to = "EUR"
rate = "0.5"
"#
    )
}

/// A node with its own journal directory, removed when the test ends.
pub(crate) struct TestNode {
    node: Option<Node>,
    pub journal_dir: tempfile::TempDir,
}

impl std::ops::Deref for TestNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        self.node.as_ref().expect("node running")
    }
}

impl TestNode {
    /// Stops the node; the journal directory lives on in the returned handle.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.node.take().expect("node running").stop().await;
        self.journal_dir
    }
}

pub(crate) async fn start(config_text: &str) -> TestNode {
    let journal_dir = tempfile::tempdir().unwrap();
    let text = format!("{config_text}\n[journal]\ndir = {:?}\n", journal_dir.path().display().to_string());
    let loaded = config::parse(&text, &Env::default()).expect("test config is valid");
    let node = Node::start(loaded.config).await.expect("node starts");
    TestNode { node: Some(node), journal_dir }
}

pub(crate) fn url(node: &Node) -> String {
    format!("ws://{}", node.btp_address)
}

pub(crate) fn fulfillment_for(data: &[u8]) -> [u8; 32] {
    ilp::condition_of(&{
        let mut seed = [7u8; 32];
        for (index, byte) in data.iter().enumerate() {
            seed[index % 32] ^= byte;
        }
        seed
    })
}

pub(crate) fn prepare(amount: u64, destination: &str, data: &[u8], expires_in_ms: i64) -> Bytes {
    PrepareBuilder {
        amount,
        expires_at_ms: timestamp::now_ms() + expires_in_ms,
        execution_condition: ilp::condition_of(&fulfillment_for(data)),
        destination,
        data,
    }
    .build()
    .unwrap()
}

/// Bob fulfills correctly unless the data says otherwise; counts what he received.
pub(crate) fn bob_handler(received: Arc<std::sync::Mutex<Vec<u64>>>) -> PrepareHandler {
    Arc::new(move |prepare| {
        received.lock().unwrap().push(prepare.amount());
        match prepare.data() {
            b"reject" => RejectBuilder {
                code: ErrorCode::F99_APPLICATION_ERROR,
                triggered_by: "test.m2m.bob",
                message: "bob says no",
                data: b"app-data",
            }
            .build()
            .unwrap(),
            b"long-reject" => RejectBuilder {
                code: ErrorCode::F99_APPLICATION_ERROR,
                triggered_by: "test.m2m.bob",
                message: &"é".repeat(4095),
                data: &[],
            }
            .build()
            .unwrap(),
            b"wrong" => FulfillBuilder { fulfillment: [9; 32], data: &[] }.build().unwrap(),
            b"silent" => {
                std::thread::sleep(Duration::from_millis(3000));
                FulfillBuilder { fulfillment: fulfillment_for(prepare.data()), data: &[] }.build().unwrap()
            }
            data => FulfillBuilder { fulfillment: fulfillment_for(data), data: b"receipt" }.build().unwrap(),
        }
    })
}

pub(crate) fn expect_reject(reply: &Bytes, code: ErrorCode, triggered_by: &str) -> m2m_connector::ilp::packet::Reject {
    match Packet::parse(reply.clone()).expect("reply parses") {
        Packet::Reject(reject) => {
            assert_eq!(reject.code(), code, "message: {}", reject.message_lossy());
            assert_eq!(reject.triggered_by(), Some(triggered_by));
            reject
        }
        other => panic!("expected {code} reject, got {other:?}"),
    }
}

/// Every prepared packet ended exactly once; balances rebuilt from the journal equal `live`.
fn check_journal(entries: &[JournalEntry]) -> Balances {
    let mut ended: BTreeMap<u64, usize> = BTreeMap::new();
    let mut prepared = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, index as u64 + 1, "sequence has no gaps");
        match &entry.event {
            Event::PacketPrepared(p) => prepared.push(p.packet_id),
            Event::PacketFulfilled(f) => *ended.entry(f.packet_id).or_default() += 1,
            Event::PacketRejected(r) => *ended.entry(r.packet_id).or_default() += 1,
            _ => {}
        }
    }
    for (packet_id, count) in &ended {
        assert_eq!(*count, 1, "packet {packet_id} ended {count} times");
    }
    for packet_id in prepared {
        assert!(ended.contains_key(&packet_id), "prepared packet {packet_id} never ended");
    }
    let mut balances = Balances::new();
    for entry in entries {
        balances.apply(entry);
    }
    balances
}

async fn settle_journal(node: &Node) -> Vec<JournalEntry> {
    // Every event the forwarder appended so far (the last reply's included) is durable.
    assert!(node.wait_durable(TIMEOUT).await, "the journal did not catch up with the forwarder");
    node.journal.entries_from(1).collect::<Result<Vec<_>, _>>().expect("journal reads back")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulfill_reject_and_local_refusals() {
    let node = start(&base_config("", "")).await;
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received.clone()))).await.unwrap();
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();

    // Fulfilled, converted USD→EUR at 0.5; the Fulfill is relayed byte for byte.
    let reply = alice.send(&prepare(1000, "test.m2m.bob.shop", b"pay", 10_000), TIMEOUT).await.unwrap();
    let expected = FulfillBuilder { fulfillment: fulfillment_for(b"pay"), data: b"receipt" }.build().unwrap();
    assert_eq!(reply, expected);
    assert_eq!(received.lock().unwrap().as_slice(), &[500]);

    // Bob's Reject relayed unchanged.
    let reply = alice.send(&prepare(1000, "test.m2m.bob", b"reject", 10_000), TIMEOUT).await.unwrap();
    let reject = expect_reject(&reply, ErrorCode::F99_APPLICATION_ERROR, "test.m2m.bob");
    assert_eq!(reject.message(), b"bob says no");
    assert_eq!(reject.data(), b"app-data");

    // No route; a route back to the sender; an address under ours with no child.
    for destination in ["test.elsewhere.x", "test.m2m.alice.self", "test.m2m.nobody", "test.m2m"] {
        let reply = alice.send(&prepare(10, destination, b"x", 10_000), TIMEOUT).await.unwrap();
        expect_reject(&reply, ErrorCode::F02_UNREACHABLE, "test.m2m");
    }

    // Over the max packet amount: F08 with received and maximum.
    let reply = alice.send(&prepare(500_001, "test.m2m.bob", b"big", 10_000), TIMEOUT).await.unwrap();
    let reject = expect_reject(&reply, ErrorCode::F08_AMOUNT_TOO_LARGE, "test.m2m");
    assert_eq!(reject.data(), &ilp::error_code::amount_too_large_data(500_001, 500_000)[..]);

    // Rounds to zero after conversion: R01.
    let reply = alice.send(&prepare(1, "test.m2m.bob", b"tiny", 10_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT, "test.m2m");

    // Already expired: R00. Too little time left after the 1 s window: R02.
    let reply = alice.send(&prepare(10, "test.m2m.bob", b"late", -5), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::R00_TRANSFER_TIMED_OUT, "test.m2m");
    let reply = alice.send(&prepare(10, "test.m2m.bob", b"short", 1500), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::R02_INSUFFICIENT_TIMEOUT, "test.m2m");

    // Carol is configured but not connected: T01.
    let reply = alice.send(&prepare(10, "test.m2m.carol", b"c", 10_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::T01_PEER_UNREACHABLE, "test.m2m");

    // Wrong fulfillment from bob: F05 upstream, and nobody's balance moves.
    let reply = alice.send(&prepare(1000, "test.m2m.bob", b"wrong", 10_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::F05_WRONG_CONDITION, "test.m2m");

    // Credit limit 1,000,000: 1000 is owed so far; 500,000 fits, the next 500,000 doesn't.
    let reply = alice.send(&prepare(500_000, "test.m2m.bob", b"a", 10_000), TIMEOUT).await.unwrap();
    assert!(matches!(Packet::parse(reply).unwrap(), Packet::Fulfill(_)));
    let reply = alice.send(&prepare(500_000, "test.m2m.bob", b"b", 10_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::T04_INSUFFICIENT_LIQUIDITY, "test.m2m");

    let entries = settle_journal(&node).await;
    let balances = check_journal(&entries);
    assert_eq!(balances.balance_of("alice").unwrap().position, 501_000);
    assert_eq!(balances.balance_of("bob").unwrap().position, -250_500);
    assert_eq!(balances.balance_of("alice").unwrap().reserved, 0);
    assert_eq!(balances.balance_of("carol").unwrap().position, 0);
    let journal_dir = node.stop().await;
    assert_live_state_equals_replay(journal_dir.path());
}

/// A next hop's 8 KiB Reject message reaches the sender whole; the journal keeps its first
/// bytes, at most 512 with the mark and the count of bytes cut (issue 12, bounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_reject_message_is_relayed_whole_and_journaled_capped() {
    use m2m_connector::journal::{MESSAGE_JOURNALED_MAX, MESSAGE_TRUNCATED_MARK};
    let node = start(&base_config("", "")).await;
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let reply = alice.send(&prepare(1000, "test.m2m.bob", b"long-reject", 10_000), TIMEOUT).await.unwrap();
    let reject = expect_reject(&reply, ErrorCode::F99_APPLICATION_ERROR, "test.m2m.bob");
    assert_eq!(reject.message(), "é".repeat(4095).as_bytes(), "relayed byte for byte");

    let entries = settle_journal(&node).await;
    let journaled: Vec<&str> = entries
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::PacketRejected(rejected) => Some(rejected.message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(journaled.len(), 1);
    let message = journaled[0];
    assert!(message.len() <= MESSAGE_JOURNALED_MAX, "{} bytes journaled", message.len());
    let (head, tail) = message.split_once(MESSAGE_TRUNCATED_MARK).expect("the truncation mark");
    assert!(head.len() > 400 && head.chars().all(|c| c == 'é'), "the head is kept on a character boundary");
    assert_eq!(tail, format!("{} bytes]", 8190 - head.len()));
    check_journal(&entries);
    node.stop().await;
}

/// Replay equality: the live state, snapshotted by the forwarder at stop, and the tailing
/// projection's checkpoint both equal a replay of the journal from scratch, byte for byte.
pub(crate) fn assert_live_state_equals_replay(journal_dir: &std::path::Path) {
    let store = m2m_connector::journal::SledStore::open(journal_dir).unwrap();
    let entries: Vec<JournalEntry> = store.entries_from(1).collect::<Result<_, _>>().unwrap();
    let replayed = check_journal(&entries);
    let (seq, live) = store.latest_snapshot().unwrap().expect("a snapshot at stop");
    assert_eq!(seq, entries.last().unwrap().seq);
    let live = Balances::from_snapshot(&live).unwrap();
    assert_eq!(live, replayed_with_position(replayed.clone(), seq), "live state equals the replay");
    assert_eq!(live.digest(), replayed.digest());
    let (_, checkpoint) = store.checkpoint("balances").unwrap().expect("tailing projection checkpoint");
    assert_eq!(Balances::from_snapshot(&checkpoint).unwrap().digest(), replayed.digest());
}

fn replayed_with_position(mut balances: Balances, seq: u64) -> Balances {
    balances.set_position(seq);
    balances
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_hop_that_never_answers_times_out_with_r00() {
    let node = start(&base_config("", "")).await;
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    // Expires in 3.5 s: the next hop gets 2.5 s (less any scheduling delay on a loaded
    // machine), bob answers after 3 s: too late.
    let started = std::time::Instant::now();
    let reply = alice.send(&prepare(100, "test.m2m.bob", b"silent", 3500), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::R00_TRANSFER_TIMED_OUT, "test.m2m");
    assert!(started.elapsed() < Duration::from_millis(3500), "answered before the incoming expiry");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let entries = settle_journal(&node).await;
    let balances = check_journal(&entries);
    assert_eq!(balances.balance_of("alice").unwrap(), Default::default());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_rate_limit_answers_t05() {
    let node = start(&base_config("", "packets_per_second_max = 3")).await;
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let mut codes = Vec::new();
    for index in 0..6u8 {
        let reply = alice.send(&prepare(10, "test.m2m.bob", &[index], 10_000), TIMEOUT).await.unwrap();
        codes.push(match Packet::parse(reply).unwrap() {
            Packet::Fulfill(_) => "fulfilled".to_owned(),
            Packet::Reject(reject) => reject.code().to_string(),
            Packet::Prepare(_) => unreachable!(),
        });
    }
    assert_eq!(codes.iter().filter(|code| *code == "fulfilled").count(), 3, "{codes:?}");
    assert_eq!(codes.iter().filter(|code| *code == "T05").count(), 3, "{codes:?}");
    let journal_dir = node.stop().await;
    assert_live_state_equals_replay(journal_dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ildcp_answers_children_with_their_address() {
    let node = start(&base_config("", "")).await;
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let request = ilp::ildcp::request(timestamp::now_ms() + 30_000).build().unwrap();
    let reply = alice.send(&request, TIMEOUT).await.unwrap();
    let Packet::Fulfill(fulfill) = Packet::parse(reply).unwrap() else { panic!("IL-DCP must fulfill") };
    let response = ilp::ildcp::Response::parse(fulfill.data()).unwrap();
    assert_eq!(response.client_address.as_str(), "test.m2m.alice");
    assert_eq!(response.asset_code, "USD");
    assert_eq!(response.asset_scale, 6);

    // An unknown peer protocol, and a peer protocol with the wrong condition: F01.
    for (destination, condition) in [("peer.unknown", ilp::PEER_PROTOCOL_CONDITION), ("peer.config", [1; 32])] {
        let packet = PrepareBuilder {
            amount: 0,
            expires_at_ms: timestamp::now_ms() + 30_000,
            execution_condition: condition,
            destination,
            data: &[],
        }
        .build()
        .unwrap();
        let reply = alice.send(&packet, TIMEOUT).await.unwrap();
        expect_reject(&reply, ErrorCode::F01_INVALID_PACKET, "test.m2m");
    }
    node.stop().await;
}

type RawSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_connect(node: &Node, username: &str, token: &str) -> RawSocket {
    let (mut socket, _) = tokio_tungstenite::connect_async(url(node)).await.unwrap();
    // Like ilp-plugin-btp: a WebSocket ping before the auth message.
    socket.send(Message::Ping(Bytes::from_static(b"hi"))).await.unwrap();
    let auth = m2m_connector::btp::client::auth_message(1, username, &config::Secret::new(token));
    socket.send(Message::Binary(auth.encode())).await.unwrap();
    socket
}

/// A raw socket past the auth handshake (the server's Response checked).
async fn raw_session(node: &Node, username: &str, token: &str) -> RawSocket {
    let mut socket = raw_connect(node, username, token).await;
    assert!(matches!(next_frame(&mut socket).await, Some(BtpPacket::Response { .. })), "auth accepted");
    socket
}

async fn next_frame(socket: &mut RawSocket) -> Option<BtpPacket> {
    loop {
        match tokio::time::timeout(TIMEOUT, socket.next()).await.ok()?? {
            Ok(Message::Binary(data)) => return Some(BtpPacket::parse(data).expect("server frames parse")),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn ilp_frame(frame_type: u8, request_id: u32, packet: &[u8]) -> Bytes {
    btp::ilp_frame(frame_type, request_id, packet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn btp_auth_and_bad_frames() {
    let node = start(&base_config("", "")).await;

    // Wrong token: an Error, then the socket closes.
    let mut socket = raw_connect(&node, "alice", "not-the-token").await;
    match next_frame(&mut socket).await {
        Some(BtpPacket::Error { request_id: 1, code, .. }) => assert_eq!(&code, b"F00"),
        other => panic!("expected an auth Error, got {other:?}"),
    }
    assert!(next_frame(&mut socket).await.is_none(), "socket closed after failed auth");

    // A username that isn't a peer, with a valid token of another peer: refused too.
    let mut socket = raw_connect(&node, "mallory", "alice-token").await;
    assert!(matches!(next_frame(&mut socket).await, Some(BtpPacket::Error { .. })));

    // Empty username: the token alone identifies the peer.
    let mut socket = raw_connect(&node, "", "alice-token").await;
    assert!(matches!(next_frame(&mut socket).await, Some(BtpPacket::Response { request_id: 1, .. })));

    // Garbage: dropped without an answer (RFC 23), the session survives.
    socket.send(Message::Binary(Bytes::from_static(b"\x06\x00\x00\x00\x02\x84\x00\x5b\xff\x32"))).await.unwrap();
    socket.send(Message::Binary(Bytes::from_static(b"\x03\x00\x00\x00\x03\x00"))).await.unwrap();
    // A Message whose primary sub-protocol we don't speak: BTP Error.
    let other = BtpPacket::Message {
        request_id: 4,
        protocol_data: vec![ProtocolData::new("custom", btp::CONTENT_TEXT, Bytes::from_static(b"hello"))],
    };
    socket.send(Message::Binary(other.encode())).await.unwrap();
    match next_frame(&mut socket).await {
        Some(BtpPacket::Error { request_id: 4, code, .. }) => assert_eq!(&code, b"F00"),
        other => panic!("expected an Error for the unknown sub-protocol, got {other:?}"),
    }
    // A malformed ILP Prepare: F01 Reject.
    let mut bad = prepare(10, "test.m2m.bob", b"x", 10_000).to_vec();
    let destination_start = bad.len() - 2 - "test.m2m.bob".len();
    bad[destination_start + 4] = b' ';
    socket.send(Message::Binary(ilp_frame(btp::TYPE_MESSAGE, 5, &bad))).await.unwrap();
    match next_frame(&mut socket).await {
        Some(BtpPacket::Response { request_id: 5, protocol_data }) => {
            expect_reject(&protocol_data[0].data, ErrorCode::F01_INVALID_PACKET, "test.m2m");
        }
        other => panic!("expected an F01 Reject, got {other:?}"),
    }
    // A Prepare in a Response frame (as interledger-rs sends it) is still a Prepare.
    let packet = prepare(10, "test.elsewhere", b"x", 10_000);
    socket.send(Message::Binary(ilp_frame(btp::TYPE_RESPONSE, 6, &packet))).await.unwrap();
    match next_frame(&mut socket).await {
        Some(BtpPacket::Response { request_id: 6, protocol_data }) => {
            expect_reject(&protocol_data[0].data, ErrorCode::F02_UNREACHABLE, "test.m2m");
        }
        other => panic!("expected an F02 Reject, got {other:?}"),
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_in_message_frames_are_matched_by_request_id() {
    let node = start(&base_config("", "")).await;
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    // Bob answers Prepares the interledger-rs 1.0 way: the Fulfill in a Message frame.
    let mut bob = raw_session(&node, "bob", "bob-token").await;
    let bob_task = tokio::spawn(async move {
        let Some(BtpPacket::Message { request_id, protocol_data }) = next_frame(&mut bob).await else {
            panic!("bob expected a Prepare");
        };
        let Packet::Prepare(prepare) = Packet::parse(protocol_data[0].data.clone()).unwrap() else { panic!() };
        let fulfill = FulfillBuilder { fulfillment: fulfillment_for(prepare.data()), data: &[] }.build().unwrap();
        bob.send(Message::Binary(ilp_frame(btp::TYPE_MESSAGE, request_id, &fulfill))).await.unwrap();
        bob
    });
    let reply = alice.send(&prepare(100, "test.m2m.bob", b"inverted", 10_000), TIMEOUT).await.unwrap();
    assert!(matches!(Packet::parse(reply).unwrap(), Packet::Fulfill(_)));
    let _bob = bob_task.await.unwrap();
    let metrics = m2m_connector::metrics::global().render();
    let inverted = metrics
        .lines()
        .find(|line| line.starts_with("btp_frames_inverted_total"))
        .expect("inverted counter rendered");
    assert_ne!(inverted.rsplit(' ').next(), Some("0"), "{inverted}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connectors_peered_over_an_outgoing_link() {
    // Upstream node U has child alice and dials node D as its peer; D has child bob.
    let downstream = start(
        r#"
[node]
id = "downstream"
ilp_address = "test.down"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = 0
health_port = 0
[explorer]
enabled = false

[[peers]]
id = "up"
relation = "peer"
asset_code = "USD"
asset_scale = 6
incoming_token = "up-token"
credit_limit = 1000000000
[[peers]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "bob-token"
credit_limit = 0
"#,
    )
    .await;
    let upstream_config = format!(
        r#"
[node]
id = "upstream"
ilp_address = "test.up"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = 0
health_port = 0
[explorer]
enabled = false

[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
credit_limit = 1000000000
[[peers]]
id = "down"
relation = "peer"
asset_code = "USD"
asset_scale = 6
credit_limit = 0
[peers.outgoing]
url = "btp+ws://{}"
token = "up-token"
[[routes]]
prefix = "test.down"
peer = "down"
"#,
        downstream.btp_address
    );
    let upstream = start(&upstream_config).await;
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&downstream), "bob", "bob-token", Some(bob_handler(received.clone()))).await.unwrap();
    let alice = Endpoint::connect(&url(&upstream), "alice", "alice-token", None).await.unwrap();
    // The outgoing link comes up in the background; retry until it does.
    let mut fulfilled = false;
    for _ in 0..50 {
        let reply = alice.send(&prepare(700, "test.down.bob.x", b"two-hops", 20_000), TIMEOUT).await.unwrap();
        match Packet::parse(reply).unwrap() {
            Packet::Fulfill(_) => {
                fulfilled = true;
                break;
            }
            Packet::Reject(reject) => {
                assert_eq!(reject.code(), ErrorCode::T01_PEER_UNREACHABLE, "{}", reject.message_lossy());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Packet::Prepare(_) => unreachable!(),
        }
    }
    assert!(fulfilled, "the packet crossed both connectors");
    assert_eq!(received.lock().unwrap().as_slice(), &[700]);
    let up = check_journal(&settle_journal(&upstream).await);
    assert_eq!(up.balance_of("alice").unwrap().position, 700);
    assert_eq!(up.balance_of("down").unwrap().position, -700);
    let down = check_journal(&settle_journal(&downstream).await);
    assert_eq!(down.balance_of("up").unwrap().position, 700);
    assert_eq!(down.balance_of("bob").unwrap().position, -700);
    upstream.stop().await;
    downstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_packets_all_end_exactly_once() {
    let node = start(&base_config("", "")).await;
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Arc::new(Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap());
    let fulfilled = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for index in 0..400u32 {
        let (alice, fulfilled) = (alice.clone(), fulfilled.clone());
        tasks.push(tokio::spawn(async move {
            let data = index.to_be_bytes();
            let data: &[u8] = if index % 7 == 0 { b"reject" } else { &data };
            let reply = alice.send(&prepare(2, "test.m2m.bob", data, 10_000), TIMEOUT).await.unwrap();
            if matches!(Packet::parse(reply).unwrap(), Packet::Fulfill(_)) {
                fulfilled.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let fulfilled = fulfilled.load(Ordering::Relaxed) as i128;
    assert_eq!(fulfilled, 400 - 58);
    let balances = check_journal(&settle_journal(&node).await);
    assert_eq!(balances.balance_of("alice").unwrap().position, 2 * fulfilled);
    assert_eq!(balances.balance_of("bob").unwrap().position, -fulfilled);
    let journal_dir = node.stop().await;
    assert_live_state_equals_replay(journal_dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_limit_answers_t04() {
    let node = start(&base_config("", "throughput_per_second_max = 1000")).await;
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let reply = alice.send(&prepare(800, "test.m2m.bob", b"first", 10_000), TIMEOUT).await.unwrap();
    assert!(matches!(Packet::parse(reply).unwrap(), Packet::Fulfill(_)));
    // 800 of the second's 1000 are used: another 800 is over the throughput limit.
    let reply = alice.send(&prepare(800, "test.m2m.bob", b"second", 10_000), TIMEOUT).await.unwrap();
    let reject = expect_reject(&reply, ErrorCode::T04_INSUFFICIENT_LIQUIDITY, "test.m2m");
    assert!(reject.message_lossy().contains("throughput"), "{}", reject.message_lossy());
    let journal_dir = node.stop().await;
    assert_live_state_equals_replay(journal_dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_session_answers_t03_at_once() {
    let node = start(&base_config("btp_session_in_flight_max = 1", "")).await;
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Bob's "silent" handler blocks its thread 3 s: on a runtime of his own.
    let _bob = endpoint_on_own_runtime(&url(&node), "bob", "bob-token", bob_handler(received.clone()));
    let alice = Arc::new(Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap());
    // The first packet holds the session's only slot while bob sits on it for 3 s.
    let slow = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.send(&prepare(10, "test.m2m.bob", b"silent", 20_000), TIMEOUT).await })
    };
    let deadline = std::time::Instant::now() + TIMEOUT;
    while received.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the slow packet never reached bob");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let reply = alice.send(&prepare(10, "test.m2m.bob", b"quick", 20_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::T03_CONNECTOR_BUSY, "test.m2m");
    assert!(started.elapsed() < Duration::from_millis(1000), "T03 comes at once, not after the slow packet");
    let reply = slow.await.unwrap().unwrap();
    assert!(matches!(Packet::parse(reply).unwrap(), Packet::Fulfill(_)));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_closes_the_socket_and_is_counted() {
    let node = start(&base_config("btp_message_size_max = 40000", "")).await;
    let before = counter_value("btp_frames_dropped_total{reason=\"oversized\"}");
    let mut socket = raw_session(&node, "alice", "alice-token").await;
    let huge = vec![0u8; 50_000];
    let _ = socket.send(Message::Binary(huge.into())).await;
    assert!(next_frame(&mut socket).await.is_none(), "the connector closes a socket that exceeds the limit");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while counter_value("btp_frames_dropped_total{reason=\"oversized\"}") <= before {
        assert!(std::time::Instant::now() < deadline, "the oversized frame was not counted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A maximal ILP Prepare (32 KiB of data) still fits under the limit and is answered.
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let big = vec![1u8; 32_767];
    let reply = alice.send(&prepare(10, "test.nowhere", &big, 10_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::F02_UNREACHABLE, "test.m2m");
    node.stop().await;
}

/// The value of one sample line of the process-wide metrics registry (0 if absent).
fn counter_value(series: &str) -> f64 {
    m2m_connector::metrics::global()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(series).map(|rest| rest.trim().parse().unwrap_or(0.0)))
        .unwrap_or(0.0)
}

async fn http_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_reflect_traffic() {
    let node = start(&base_config("ready_peers_min = 2", "")).await;
    let (status, body) = http_get(node.health_address, "/health/ready").await;
    assert_eq!(status, 503, "not ready before two peers connect: {body}");
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(&node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let reply = alice.send(&prepare(100, "test.m2m.bob", b"m", 10_000), TIMEOUT).await.unwrap();
    assert!(matches!(Packet::parse(reply).unwrap(), Packet::Fulfill(_)));

    let (status, body) = http_get(node.health_address, "/health/ready").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(node.health_address, "/health").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["nodeId"], "test-node");
    assert_eq!(health["peers"]["connected"], 2);
    assert_eq!(health["peers"]["total"], 3);
    assert_eq!(health["status"], "degraded", "carol is configured but not connected");
    let (status, _) = http_get(node.health_address, "/health/live").await;
    assert_eq!(status, 200);

    let (status, metrics) = http_get(node.health_address, "/metrics").await;
    assert_eq!(status, 200);
    let series: [(&str, &[(&str, &str)]); 7] = [
        ("ilp_packets_processed_total", &[("type", "prepare"), ("status", "fulfilled")]),
        ("ilp_packet_latency_seconds_bucket", &[("type", "fulfill"), ("le", "+Inf")]),
        ("ilp_packets_in_flight", &[]),
        ("account_balance_units", &[("peer_id", "alice"), ("token_id", "USD")]),
        ("btp_connections", &[("peer_id", "bob")]),
        ("connector_errors_total", &[]),
        ("ilp_rejects_total", &[]),
    ];
    for (name, labels) in series {
        let found = crate::support::metric_samples(&metrics, name, labels);
        assert!(!found.is_empty(), "missing {name}{labels:?} in\n{metrics}");
    }
    assert!(!metrics.contains("alice-token"), "tokens never appear in metrics");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_under_ours_never_take_a_shorter_route() {
    // A catch-all `test` route to carol must not swallow `test.m2m.nobody`: F02, not T01.
    let config = base_config("", "") + "\n[[routes]]\nprefix = \"test\"\npeer = \"carol\"\n";
    let node = start(&config).await;
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let reply = alice.send(&prepare(10, "test.m2m.nobody.x", b"n", 10_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::F02_UNREACHABLE, "test.m2m");
    // Elsewhere the catch-all applies (carol is not connected: T01).
    let reply = alice.send(&prepare(10, "test.elsewhere.x", b"e", 10_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::T01_PEER_UNREACHABLE, "test.m2m");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_btp_error_with_a_huge_name_becomes_a_bounded_t01() {
    let node = start(&base_config("", "")).await;
    let alice = Endpoint::connect(&url(&node), "alice", "alice-token", None).await.unwrap();
    let mut bob = raw_session(&node, "bob", "bob-token").await;
    let bob_task = tokio::spawn(async move {
        let Some(BtpPacket::Message { request_id, .. }) = next_frame(&mut bob).await else { panic!("a Prepare") };
        let huge_name = "x".repeat(20_000);
        let error = BtpPacket::error(request_id, *b"F00", &huge_name, b"no");
        bob.send(Message::Binary(error.encode())).await.unwrap();
        bob
    });
    let reply = alice.send(&prepare(10, "test.m2m.bob", b"e", 10_000), TIMEOUT).await.unwrap();
    let reject = expect_reject(&reply, ErrorCode::T01_PEER_UNREACHABLE, "test.m2m");
    assert!(reject.message().len() < 400, "the peer's text is bounded");
    let _bob = bob_task.await.unwrap();
    // The forwarder survived: the next packet is still answered.
    let reply = alice.send(&prepare(10, "test.nowhere", b"f", 10_000), TIMEOUT).await.unwrap();
    expect_reject(&reply, ErrorCode::F02_UNREACHABLE, "test.m2m");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_for_packets_in_flight_and_refuses_new_ones() {
    let node = start(&base_config("", "")).await;
    let url = url(&node);
    // Bob answers after 3 s, from a thread of his own, and says when a Prepare reached him: the
    // steps below wait for events, not for times, so a loaded machine cannot reorder them.
    let reached_bob = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow_bob: PrepareHandler = {
        let reached_bob = reached_bob.clone();
        Arc::new(move |prepare| {
            reached_bob.store(true, std::sync::atomic::Ordering::Release);
            std::thread::sleep(Duration::from_millis(3000));
            FulfillBuilder { fulfillment: fulfillment_for(prepare.data()), data: &[] }.build().unwrap()
        })
    };
    // Bob's handler blocks its thread for 3 s: on a runtime of his own, so it cannot hold up
    // the node's or the test's tasks (a task in a blocked worker's LIFO slot is not stolen).
    let bob = endpoint_on_own_runtime(&url, "bob", "bob-token", slow_bob);
    let alice = Arc::new(Endpoint::connect(&url, "alice", "alice-token", None).await.unwrap());
    let held = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.send(&prepare(10, "test.m2m.bob", b"held", 20_000), TIMEOUT).await })
    };
    let until = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let flag = reached_bob.clone();
    until("the held Prepare reached bob", Box::new(move || flag.load(std::sync::atomic::Ordering::Acquire))).await;
    let health = node.health.clone();
    let stopping = tokio::spawn(async move { node.stop().await });
    // Draining starts in the same step as the health turns unhealthy.
    let watched = health.clone();
    until("the node is stopping", Box::new(move || !watched.status().is_serving())).await;
    let refused = alice.send(&prepare(10, "test.m2m.bob", b"late", 20_000), TIMEOUT).await.unwrap_or_else(|error| {
        panic!(
            "the late Prepare got no answer ({error:?}); node {:?}, held packet answered: {}",
            health.report(),
            held.is_finished()
        )
    });
    expect_reject(&refused, ErrorCode::T00_INTERNAL_ERROR, "test.m2m");
    let reply = held.await.unwrap().unwrap();
    assert!(matches!(Packet::parse(reply).unwrap(), Packet::Fulfill(_)), "the held packet's Fulfill still arrives");
    let journal_dir = stopping.await.unwrap();
    assert_live_state_equals_replay(journal_dir.path());
    drop(bob);
}

/// An endpoint whose tasks run on a runtime of its own, on its own thread, until the returned
/// sender is dropped.
pub(crate) fn endpoint_on_own_runtime(url: &str, username: &str, token: &str, handler: PrepareHandler) -> std::sync::mpsc::Sender<()> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (ready, connected) = std::sync::mpsc::channel();
    let (url, name, token) = (url.to_owned(), username.to_owned(), token.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let endpoint = runtime.block_on(Endpoint::connect(&url, &name, &token, Some(handler)));
        let _ = ready.send(endpoint.is_ok());
        let _ = stopped.recv();
        drop(endpoint);
    });
    assert!(connected.recv().unwrap(), "{username} connects");
    stop
}

/// A peer that has its auth answer is reachable at once: the listener answers the auth Message
/// only after the forwarder knows the session. Bob's session task here waits 300 ms for a
/// core before it registers (the test-only delay point `btp-session-up-bob`); before the fix the
/// answer went out first, so alice, connecting and sending in that window, met T01 for a bob
/// whose connect had already returned (an intermittent failure of the tests above on a loaded
/// machine).
#[test]
fn a_peer_is_reachable_as_soon_as_its_auth_is_answered() {
    use crate::support::{two_children_config, Connector};
    assert!(
        cfg!(feature = "fault-injection"),
        "this test needs the delay point: cargo test --features fault-injection (scripts/test.sh enables it)"
    );
    let delay = vec![("M2M_FAULT_DELAY".to_string(), "btp-session-up-bob:300".to_string())];
    let mut connector = Connector::start_with_env(two_children_config, &delay);
    let url = format!("ws://127.0.0.1:{}", connector.btp_port);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let replies = runtime.block_on(async {
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let _bob = Endpoint::connect(&url, "bob", "bob-token", Some(bob_handler(received.clone()))).await.unwrap();
        let alice = Endpoint::connect(&url, "alice", "alice-token", None).await.unwrap();
        let mut replies = Vec::new();
        // Sent as soon as alice is in, while (before the fix) bob's task still slept.
        replies.push(alice.send(&prepare(1000, "test.m2m.bob", b"pay", 10_000), TIMEOUT).await.unwrap());
        replies.push(alice.send(&prepare(1000, "test.m2m.bob", b"again", 10_000), TIMEOUT).await.unwrap());
        replies
    });
    for reply in replies {
        match Packet::parse(reply) {
            Ok(Packet::Fulfill(_)) => {}
            other => panic!("bob was not reachable right after his auth answer: {other:?}\n{}", connector.log_section()),
        }
    }
    let stopped = connector.stop(Duration::from_secs(30));
    assert!(stopped.success(), "{stopped}\n{}", connector.log_section());
}
