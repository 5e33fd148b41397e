//! Settlement over a real chain: two m2m-connector processes (A and B), each with its own key,
//! peered over BTP, and anvil with the contracts deployed. A's child alice pays B's child bob
//! through A and B, so A comes to owe B; A pays B with claims on a payment channel it opens and
//! funds itself. The tests read both nodes' metrics while they run and both journals after they
//! stop, and compare with the chain's ERC-20 balances.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use m2m_connector::journal::{ClaimVerdict, Event, JournalEntry, SledStore};
use m2m_connector::projections::balances::Balances;
use m2m_connector::projections::Projection;
use m2m_connector::settlement::evm::deploy::Deployment;

use crate::chain::{self, Anvil};
use crate::support::{run_with_timeout, Connector};

/// A's threshold: it pays B when it owes this much (USD at scale 6: one dollar). Packets are
/// this size, so what A owes is always a multiple of it and every settlement pays down to 0.
const THRESHOLD: u64 = 1_000_000;

/// Tokens minted to A's account for deposits (B's account starts with none).
const A_TOKENS: u128 = 1_000_000_000_000;

/// Both nodes' admin API token.
const ADMIN_TOKEN: &str = "admin-token-for-tests";

struct Pair {
    anvil: Anvil,
    deployment: Deployment,
    b: Connector,
    a: Connector,
    dir: tempfile::TempDir,
    extra: Vec<(String, String)>,
}

impl Pair {
    fn start() -> Pair {
        Pair::start_with(Vec::new())
    }

    /// With `extra` environment variables for both nodes (TIGERBEETLE_REPLICAS, say).
    fn start_with(extra: Vec<(String, String)>) -> Pair {
        let anvil = Anvil::start();
        let deployment = anvil.deploy(&[(chain::address_of(chain::NODE_A_KEY), A_TOKENS)]);
        let dir = tempfile::Builder::new().prefix("m2m-it-settlement-").tempdir().unwrap();
        let b = start_b(&anvil, &deployment, &dir.path().join("journal-b"), &extra);
        let a = start_a(&anvil, &deployment, &dir.path().join("journal-a"), b.btp_port, &extra);
        Pair { anvil, deployment, b, a, dir, extra }
    }

    fn journal_a(&self) -> PathBuf {
        self.dir.path().join("journal-a")
    }

    fn journal_b(&self) -> PathBuf {
        self.dir.path().join("journal-b")
    }

    fn restart_a(&mut self) {
        self.a = start_a(&self.anvil, &self.deployment, &self.journal_a(), self.b.btp_port, &self.extra);
    }

    fn logs(&self) -> String {
        format!("A:\n{}\nB:\n{}\nanvil (tail):\n{}", self.a.log_section(), self.b.log_section(), tail(&self.anvil.log(), 40))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn settlement_env(anvil: &Anvil, deployment: &Deployment, key: &str) -> Vec<(String, String)> {
    [
        ("SETTLEMENT_ENABLED", "true".to_string()),
        ("SETTLEMENT_EVM_RPC_URL", anvil.url().to_string()),
        ("SETTLEMENT_EVM_CHAIN_ID", chain::CHAIN_ID.to_string()),
        ("TOKEN_NETWORK_REGISTRY", chain::hex(deployment.registry)),
        ("M2M_TOKEN_ADDRESS", chain::hex(deployment.token)),
        ("SETTLEMENT_EVM_CONFIRMATIONS", "1".to_string()),
        ("SETTLEMENT_EVM_POLL_INTERVAL_MS", "250".to_string()),
        ("SETTLEMENT_EVM_START_BLOCK", "0".to_string()),
        ("EVM_PRIVATE_KEY", key.to_string()),
        ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

fn node_header(id: &str, address: &str, btp_port: u16, health_port: u16, journal: &Path) -> String {
    format!(
        r#"[node]
id = "{id}"
ilp_address = "{address}"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = {btp_port}
health_port = {health_port}

[explorer]
enabled = false

[journal]
dir = {journal:?}
"#
    )
}

/// B: bob is its child; A is a peer that pays B with claims (B never pays A).
fn start_b(anvil: &Anvil, deployment: &Deployment, journal: &Path, extra: &[(String, String)]) -> Connector {
    let a_address = chain::hex(chain::address_of(chain::NODE_A_KEY));
    let journal = journal.to_path_buf();
    let config = move |btp_port, health_port| {
        node_header("b", "test.b", btp_port, health_port, &journal)
            + &format!(
                r#"
[[peers]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "bob-token"
credit_limit = 0

[[peers]]
id = "a"
relation = "peer"
asset_code = "USD"
asset_scale = 6
incoming_token = "a-token"
credit_limit = 100000000

[peers.settlement]
chain = "evm"
threshold = {THRESHOLD}
address = "{a_address}"
direction = "receive"
"#
            )
    };
    let mut env = settlement_env(anvil, deployment, chain::NODE_B_KEY);
    env.extend_from_slice(extra);
    Connector::start_with_env(config, &env)
}

/// A: alice is its child; B is a peer A pays with claims; everything under test.b goes to B.
fn start_a(anvil: &Anvil, deployment: &Deployment, journal: &Path, b_btp_port: u16, extra: &[(String, String)]) -> Connector {
    let b_address = chain::hex(chain::address_of(chain::NODE_B_KEY));
    let journal = journal.to_path_buf();
    let config = move |btp_port, health_port| {
        node_header("a", "test.a", btp_port, health_port, &journal)
            + &format!(
                r#"
[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
credit_limit = 1000000000000

[[peers]]
id = "b"
relation = "peer"
asset_code = "USD"
asset_scale = 6
credit_limit = 0

[peers.outgoing]
url = "btp+ws://127.0.0.1:{b_btp_port}"
token = "a-token"

[peers.settlement]
chain = "evm"
threshold = {THRESHOLD}
settle_to = 0
address = "{b_address}"
direction = "pay"
deposit_initial = 3000000
deposit_topup = 4000000
deposit_max = 20000000
settle_timeout_s = 30

[[routes]]
prefix = "test.b"
peer = "b"
"#
            )
    };
    let mut env = settlement_env(anvil, deployment, chain::NODE_A_KEY);
    env.extend_from_slice(extra);
    Connector::start_with_env(config, &env)
}

/// The sum of a metric's samples whose labels contain every `label="value"` in `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_until(pair: &Pair, timeout: Duration, what: &str, mut done: impl FnMut(&Pair) -> bool) {
    let deadline = Instant::now() + timeout;
    while !done(pair) {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}\n{}", pair.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// alice (on A) sends `packets` Prepares of `THRESHOLD` to bob (on B), who fulfills them.
fn pay_bob(pair: &Pair, packets: u32) {
    let loadgen = env!("CARGO_BIN_EXE_m2m-loadgen");
    let mut fulfiller = Command::new(loadgen)
        .args(["--role", "fulfiller", "--url", &format!("ws://127.0.0.1:{}", pair.b.btp_port), "--destination", "test.b.bob"])
        .args(["--seconds", "120"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the fulfiller");
    wait_until(pair, Duration::from_secs(10), "bob connected to B", |pair| {
        metric(&pair.b.metrics(), "btp_connections", &["peer_id=\"bob\""]) >= 1.0
    });
    let output = run_with_timeout(
        Command::new(loadgen)
            .args(["--role", "sender", "--url", &format!("ws://127.0.0.1:{}", pair.a.btp_port)])
            .args(["--destination", "test.b.bob", "--amount", &THRESHOLD.to_string()])
            .args(["--packets", &packets.to_string(), "--window", "1", "--expiry-ms", "10000", "--expect-all-fulfilled"]),
        Duration::from_secs(90),
    );
    let _ = fulfiller.kill();
    let _ = fulfiller.wait();
    assert!(output.success(), "{}\n{}", output.describe("the sender"), pair.logs());
}

/// Replays a stopped node's journal: its entries and the state they give.
fn read_journal(dir: &Path) -> (Vec<JournalEntry>, Balances) {
    let store = SledStore::open(dir).expect("opening the stopped node's journal");
    let entries: Vec<JournalEntry> = store.entries_from(1).map(|entry| entry.expect("a readable journal")).collect();
    let mut balances = Balances::new();
    for entry in &entries {
        balances.apply(entry);
    }
    (entries, balances)
}

/// What the journal's fulfilled packets to `peer` add up to (their outgoing amounts).
fn fulfilled_to(entries: &[JournalEntry], peer: &str) -> u128 {
    let mut prepared = std::collections::HashMap::new();
    let mut total = 0u128;
    for entry in entries {
        match &entry.event {
            Event::PacketPrepared(packet) if packet.to_peer == peer => {
                prepared.insert(packet.packet_id, packet.amount_out);
            }
            Event::PacketFulfilled(fulfilled) => {
                total += u128::from(prepared.remove(&fulfilled.packet_id).unwrap_or(0));
            }
            _ => {}
        }
    }
    total
}

fn audit(journal: &Path) -> crate::support::CommandOutput {
    run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_m2m-connector")).args(["audit", "settlements", "--dir"]).arg(journal),
        Duration::from_secs(60),
    )
}

#[test]
fn a_pays_b_with_claims_until_both_positions_are_back_at_settle_to_and_both_audits_pass() {
    let mut pair = Pair::start();
    wait_until(&pair, Duration::from_secs(60), "A opened and funded its channel to B", |pair| {
        metric(&pair.a.metrics(), "payment_channels_funded_total", &[]) >= 1.0
    });
    pay_bob(&pair, 12);
    wait_until(&pair, Duration::from_secs(90), "A's position with B back at settle_to (0)", |pair| {
        let a = pair.a.metrics();
        metric(&a, "account_balance_units", &["peer_id=\"b\""]) == 0.0 && metric(&a, "settlements_executed_total", &["status=\"success\""]) >= 1.0
    });
    wait_until(&pair, Duration::from_secs(30), "B's position with A back at 0", |pair| {
        metric(&pair.b.metrics(), "account_balance_units", &["peer_id=\"a\""]) == 0.0
    });
    let (a_metrics, b_metrics) = (pair.a.metrics(), pair.b.metrics());
    let sent = metric(&a_metrics, "claims_sent_total", &[]);
    assert!(sent >= 1.0, "A sent claims");
    assert!(metric(&b_metrics, "claims_received_total", &[]) >= sent, "B received every claim A sent");
    pair.a.stop(Duration::from_secs(30));
    pair.b.stop(Duration::from_secs(30));

    let (entries_a, balances_a) = read_journal(&pair.journal_a());
    let (entries_b, balances_b) = read_journal(&pair.journal_b());
    assert_eq!(balances_a.position_of("b"), 0, "A's journal: B's position is settle_to");
    assert_eq!(balances_b.position_of("a"), 0, "B's journal: A's position is 0");
    let paid: u128 = entries_a
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::ClaimSent(sent) => Some(sent.amount),
            _ => None,
        })
        .sum();
    let accepted: u128 = entries_b
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::ClaimReceived(received) => match received.verdict {
                ClaimVerdict::Accepted { increase } => Some(increase),
                ClaimVerdict::Rejected { .. } => None,
            },
            _ => None,
        })
        .sum();
    let owed = fulfilled_to(&entries_a, "b");
    assert!(owed >= 12 * u128::from(THRESHOLD), "12 packets (and the sender's probe) were fulfilled: {owed}");
    assert_eq!(paid, owed, "A paid for every packet B fulfilled, to the unit");
    assert_eq!(accepted, paid, "B accepted exactly what A paid");
    let (_, channel) = balances_a.settlement().peer_channel("b").expect("A's channel to B");
    assert!(channel.ours.deposit > 3_000_000, "A topped its deposit up (initial 3, paid 12): {}", channel.ours.deposit);
    for (name, journal) in [("A", pair.journal_a()), ("B", pair.journal_b())] {
        let output = audit(&journal);
        assert!(output.success(), "audit settlements on {name}: {}", output.describe("audit"));
        assert!(output.stdout.contains("audit settlements: OK"), "{}", output.stdout);
        assert!(output.stdout.contains("SettlementTriggered") || name == "B", "decisions are listed: {}", output.stdout);
    }

    // Tampered copies: each edit must be named by seq, with exit status 1.
    let tampered = [
        ("A: a claim's amount edited", tamper(&pair.journal_a(), |event| match event {
            Event::ClaimSent(sent) if sent.settlement_id == 2 => {
                sent.amount += 1;
                sent.claim.cumulative += 1;
                true
            }
            _ => false,
        })),
        ("A: a decision removed", tamper(&pair.journal_a(), |event| match event {
            Event::SettlementTriggered(triggered) if triggered.settlement_id == 3 => {
                *event = Event::PeerConnected { peer: "b".into(), session: 99 };
                true
            }
            _ => false,
        })),
        ("B: a received claim's amount edited", tamper(&pair.journal_b(), |event| match event {
            Event::ClaimReceived(received) if received.claim.nonce == 2 => {
                received.claim.cumulative += 500_000;
                received.verdict = ClaimVerdict::Accepted { increase: 1_500_000 };
                true
            }
            _ => false,
        })),
    ];
    for (what, (copy, seq)) in &tampered {
        let output = audit(copy.path());
        assert_eq!(output.status.and_then(|status| status.code()), Some(1), "{what}: {}", output.describe("audit"));
        let named = format!("DIVERGENCE at seq {seq} ");
        assert!(output.stdout.contains(&named) && output.stderr.contains(&named), "{what}: names seq {seq}: {}", output.describe("audit"));
    }
}

/// A copy of a stopped node's journal with the first event `edit` changes (it returns true)
/// rewritten, its frame re-encoded with a valid checksum as a forger would. Returns the copy
/// and the edited event's seq.
fn tamper(journal: &Path, mut edit: impl FnMut(&mut Event) -> bool) -> (tempfile::TempDir, u64) {
    let copy = tempfile::Builder::new().prefix("m2m-it-tampered-").tempdir().unwrap();
    let status = Command::new("cp").arg("-a").arg(format!("{}/.", journal.display())).arg(copy.path()).status().unwrap();
    assert!(status.success(), "copying the journal");
    let _ = std::fs::remove_file(copy.path().join("commit.log"));
    let store = SledStore::open(copy.path()).expect("opening the copy");
    let frames: Vec<_> = store.frames_from(1).map(|frame| frame.expect("readable")).collect();
    for frame in frames {
        let mut entries = frame.entries;
        if let Some(index) = (0..entries.len()).find(|&index| edit(&mut entries[index].event)) {
            let seq = entries[index].seq;
            let mut value = Vec::new();
            m2m_connector::journal::frame::encode(&entries, &mut value).unwrap();
            store.put_raw_frame(frame.key, &value).unwrap();
            drop(store);
            return (copy, seq);
        }
    }
    panic!("no event to tamper with in {}", journal.display());
}

mod refusals {
    use super::*;
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use m2m_connector::btp::packet::{self as btp, BtpPacket, ProtocolData};
    use m2m_connector::journal::ClaimRejection;
    use m2m_connector::settlement::claim::{self, Claim, ClaimSigner, UnsignedClaim};
    use m2m_connector::settlement::evm::claim::LocalClaimSigner;
    use tokio_tungstenite::tungstenite::Message;

    type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    /// A BTP session to B as peer `a` (what A's node would be).
    async fn session_as_a(btp_port: u16) -> Socket {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{btp_port}")).await.expect("connecting to B");
        let auth = m2m_connector::btp::client::auth_message(1, "a", &m2m_connector::config::Secret::new("a-token"));
        socket.send(Message::Binary(auth.encode())).await.unwrap();
        assert!(matches!(next_frame(&mut socket).await, Some(BtpPacket::Response { .. })), "B accepted the auth");
        socket
    }

    async fn next_frame(socket: &mut Socket) -> Option<BtpPacket> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.ok()?? {
                Ok(Message::Binary(data)) => return Some(BtpPacket::parse(data).expect("B's frames parse")),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Sends claim bytes in a BTP Message; B's answer: Ok for a Response, Err(text) for an Error.
    async fn offer(socket: &mut Socket, request_id: u32, data: Vec<u8>) -> Result<(), String> {
        let frame = BtpPacket::Message {
            request_id,
            protocol_data: vec![ProtocolData::new(claim::PROTOCOL_NAME, btp::CONTENT_OCTET_STREAM, Bytes::from(data))],
        };
        socket.send(Message::Binary(frame.encode())).await.unwrap();
        loop {
            match next_frame(socket).await {
                Some(BtpPacket::Response { request_id: answered, .. }) if answered == request_id => return Ok(()),
                Some(BtpPacket::Error { request_id: answered, code, data, .. }) if answered == request_id => {
                    return Err(format!("{}: {}", String::from_utf8_lossy(&code), String::from_utf8_lossy(&data)));
                }
                Some(_) => continue,
                None => panic!("B closed the session"),
            }
        }
    }

    fn sign(key: &str, channel_id: &str, contract: &str, nonce: u64, cumulative: u128) -> Vec<u8> {
        let signer = LocalClaimSigner::new(key.parse().unwrap());
        let claim: Claim = signer
            .sign(&UnsignedClaim {
                chain: format!("eip155:{}", chain::CHAIN_ID),
                contract: contract.into(),
                channel_id: channel_id.into(),
                nonce,
                cumulative,
            })
            .unwrap();
        claim::encode(&claim).unwrap()
    }

    #[test]
    fn forged_replayed_over_deposit_and_wrong_channel_claims_are_refused_and_move_nothing() {
        let mut pair = Pair::start();
        wait_until(&pair, Duration::from_secs(60), "A funded its channel", |pair| {
            metric(&pair.a.metrics(), "payment_channels_funded_total", &[]) >= 1.0
        });
        // The sender's probe and one packet: 2 of A's 3 deposited, leaving room for a claim
        // that is within the deposit but more than A owes.
        pay_bob(&pair, 1);
        wait_until(&pair, Duration::from_secs(60), "A paid B", |pair| {
            metric(&pair.b.metrics(), "account_balance_units", &["peer_id=\"a\""]) == 0.0
                && metric(&pair.a.metrics(), "account_balance_units", &["peer_id=\"b\""]) == 0.0
        });
        pair.a.stop(Duration::from_secs(30));
        let (entries_a, balances_a) = read_journal(&pair.journal_a());
        let newest = entries_a
            .iter()
            .rev()
            .find_map(|entry| match &entry.event {
                Event::ClaimSent(sent) => Some(sent.claim.clone()),
                _ => None,
            })
            .expect("A sent claims");
        let deposit = balances_a.settlement().channel(&newest.channel_id).unwrap().ours.deposit;
        let (channel, contract) = (newest.channel_id.clone(), newest.contract.clone());
        let next = newest.nonce + 1;

        let b_port = pair.b.btp_port;
        let answers = chain::runtime().block_on(async {
            let mut socket = session_as_a(b_port).await;
            let a_key = chain::NODE_A_KEY;
            let other_channel = format!("0x{}", "42".repeat(32));
            let mut answers = Vec::new();
            let cases: Vec<(&str, Vec<u8>)> = vec![
                ("forged", sign(chain::MALLORY_KEY, &channel, &contract, next, newest.cumulative + 1)),
                ("replayed", sign(a_key, &channel, &contract, 1, u128::from(THRESHOLD))),
                ("over deposit", sign(a_key, &channel, &contract, next, deposit + 1)),
                ("wrong channel", sign(a_key, &other_channel, &contract, next, newest.cumulative + 1)),
                ("over owed", sign(a_key, &channel, &contract, next, newest.cumulative + 1)),
                ("malformed", vec![1, 1, 0, 0]),
                ("repeat of the newest", claim::encode(&newest).unwrap()),
            ];
            for (request_id, (name, data)) in cases.into_iter().enumerate() {
                answers.push((name, offer(&mut socket, 100 + request_id as u32, data).await));
            }
            answers
        });
        let expect = [
            ("forged", "F00: bad_signature"),
            ("replayed", "F00: stale_nonce"),
            ("over deposit", "F00: over_deposit"),
            ("wrong channel", "F00: unknown_channel"),
            ("over owed", "F00: over_owed"),
            ("malformed", "F01: malformed"),
        ];
        for ((name, answer), (expected_name, prefix)) in answers.iter().zip(expect.iter()) {
            assert_eq!(name, expected_name);
            let error = answer.as_ref().expect_err(&format!("the {name} claim must be refused"));
            assert!(error.starts_with(prefix), "{name}: {error}");
        }
        assert_eq!(answers.last().unwrap().1, Ok(()), "the newest claim again is a harmless repeat");

        let b_metrics = pair.b.metrics();
        assert_eq!(metric(&b_metrics, "account_balance_units", &["peer_id=\"a\""]), 0.0, "A's position on B did not move");
        for reason in ["bad_signature", "stale_nonce", "over_deposit", "unknown_channel", "over_owed", "malformed"] {
            let label = format!("reason=\"{reason}\"");
            assert!(metric(&b_metrics, "claim_verification_failures_total", &[&label]) >= 1.0, "{reason} counted\n{b_metrics}");
        }
        pair.b.stop(Duration::from_secs(30));
        let (entries_b, balances_b) = read_journal(&pair.journal_b());
        assert_eq!(balances_b.position_of("a"), 0, "B's journal: position unchanged");
        let refused: Vec<ClaimRejection> = entries_b
            .iter()
            .filter_map(|entry| match &entry.event {
                Event::ClaimReceived(received) => match &received.verdict {
                    ClaimVerdict::Rejected { reason, .. } => Some(*reason),
                    ClaimVerdict::Accepted { .. } => None,
                },
                _ => None,
            })
            .collect();
        for reason in [ClaimRejection::BadSignature, ClaimRejection::StaleNonce, ClaimRejection::OverDeposit, ClaimRejection::UnknownChannel, ClaimRejection::OverOwed] {
            assert!(refused.contains(&reason), "{reason:?} journaled: {refused:?}");
        }
        let output = audit(&pair.journal_b());
        assert!(output.success(), "the refusals re-derive in the audit: {}", output.describe("audit"));
    }
}

/// Count of `needle` in the connector's log.
fn log_count(connector: &Connector, needle: &str) -> usize {
    connector.log().matches(needle).count()
}

/// Every settlement A triggered has exactly one claim, nonces follow each other from 1 on the
/// channel, and what B accepted is what A paid: no double payment.
fn check_single_payment(entries_a: &[JournalEntry], entries_b: &[JournalEntry]) -> u128 {
    let mut claims = std::collections::BTreeMap::new();
    let mut nonces = Vec::new();
    for entry in entries_a {
        if let Event::ClaimSent(sent) = &entry.event {
            assert!(claims.insert(sent.settlement_id, sent.amount).is_none(), "settlement {} paid twice", sent.settlement_id);
            nonces.push(sent.claim.nonce);
        }
    }
    assert_eq!(nonces, (1..=nonces.len() as u64).collect::<Vec<_>>(), "claim nonces follow each other");
    let paid: u128 = claims.values().sum();
    let accepted: u128 = entries_b
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::ClaimReceived(received) => match received.verdict {
                ClaimVerdict::Accepted { increase } => Some(increase),
                ClaimVerdict::Rejected { .. } => None,
            },
            _ => None,
        })
        .sum();
    assert_eq!(accepted, paid, "B accepted exactly what A's journal says it paid");
    assert_eq!(paid, fulfilled_to(entries_a, "b"), "A paid exactly what it owed");
    paid
}

#[test]
fn kill_9_of_the_payer_while_it_settles_never_pays_twice_and_the_settlement_completes() {
    let mut pair = Pair::start();
    wait_until(&pair, Duration::from_secs(60), "A funded its channel", |pair| {
        metric(&pair.a.metrics(), "payment_channels_funded_total", &[]) >= 1.0
    });
    // Each packet must trigger a settlement of its own: were B still to see no deposit, it
    // would refuse the probe's claim (over_deposit), A would retry it a second later, and the
    // packets paid meanwhile would be settled together (one trigger instead of three; seen in
    // CI).
    wait_until(&pair, Duration::from_secs(60), "B saw A's deposit confirmed", |pair| log_count(&pair.b, "change=\"deposit\"") >= 1);
    // 1. Mid-transaction: the probe and two packets use the 3 deposited; the third needs a
    //    top-up on chain, and A is killed while that settlement waits for it.
    pay_bob(&pair, 3);
    wait_until(&pair, Duration::from_secs(30), "A's fourth settlement waits for funds", |pair| {
        log_count(&pair.a, "settlement triggered") >= 4
    });
    assert_eq!(log_count(&pair.a, "claim signed"), 3, "killed before the fourth claim:\n{}", pair.logs());
    pair.a.kill9();
    // 2. After signing: B is frozen, so the restarted A funds the channel and signs the claim
    //    but cannot get it acknowledged; A is killed again there.
    pair.b.signal("-STOP");
    pair.restart_a();
    wait_until(&pair, Duration::from_secs(60), "the restarted A signed the fourth claim", |pair| {
        log_count(&pair.a, "claim signed") >= 1
    });
    pair.a.kill9();
    // 3. B thaws; A restarts once more, sends the journaled claim again, and B acknowledges it.
    pair.b.signal("-CONT");
    pair.restart_a();
    wait_until(&pair, Duration::from_secs(60), "the interrupted settlement completed", |pair| {
        metric(&pair.a.metrics(), "account_balance_units", &["peer_id=\"b\""]) == 0.0
            && metric(&pair.b.metrics(), "account_balance_units", &["peer_id=\"a\""]) == 0.0
            && log_count(&pair.a, "settlement completed") >= 1
    });
    assert_eq!(log_count(&pair.a, "claim signed"), 0, "the last restart sent the journaled claim, it signed none:\n{}", pair.logs());
    pair.a.stop(Duration::from_secs(30));
    pair.b.stop(Duration::from_secs(30));
    let (entries_a, balances_a) = read_journal(&pair.journal_a());
    let (entries_b, _) = read_journal(&pair.journal_b());
    let paid = check_single_payment(&entries_a, &entries_b);
    assert_eq!(paid, 4 * u128::from(THRESHOLD), "the probe and three packets, each paid once");
    let (channel_id, channel) = balances_a.settlement().peer_channel("b").expect("A's channel");
    let on_chain = chain::runtime()
        .block_on(pair.anvil.network(&pair.deployment, chain::DEPLOYER_KEY).getParticipant(channel_id.parse().unwrap(), chain::address_of(chain::NODE_A_KEY)).call().into_future())
        .unwrap();
    assert_eq!(u128::try_from(on_chain.deposit).unwrap(), channel.ours.deposit, "the chain holds the deposit the journal says, once");
    for (name, journal) in [("A", pair.journal_a()), ("B", pair.journal_b())] {
        let output = audit(&journal);
        assert!(output.success(), "audit settlements on {name}: {}", output.describe("audit"));
    }
}

#[test]
fn with_the_chain_frozen_forwarding_goes_on_settlement_fails_and_retries_and_completes_when_it_is_back() {
    let mut pair = Pair::start();
    wait_until(&pair, Duration::from_secs(60), "A funded its channel", |pair| {
        metric(&pair.a.metrics(), "payment_channels_funded_total", &[]) >= 1.0
    });
    // B judges A's claims against the deposit it has seen confirmed: freezing the chain before
    // then would make B refuse every claim (over_deposit) instead of A failing to top up.
    wait_until(&pair, Duration::from_secs(60), "B saw A's deposit confirmed", |pair| log_count(&pair.b, "change=\"deposit\"") >= 1);
    pair.anvil.pause();
    // Every packet is fulfilled with the chain down (the sender insists); the first three are
    // paid from the deposit, the rest need a top-up the frozen chain cannot take.
    pay_bob(&pair, 5);
    wait_until(&pair, Duration::from_secs(45), "a funding failure journaled and counted", |pair| {
        metric(&pair.a.metrics(), "settlement_failures_total", &["stage=\"funding\""]) >= 1.0
    });
    let a_metrics = pair.a.metrics();
    assert!(metric(&a_metrics, "settlements_executed_total", &["status=\"failure\""]) >= 1.0);
    assert!(metric(&a_metrics, "account_balance_units", &["peer_id=\"b\""]) < 0.0, "A still owes B");
    let health = crate::support::http_get(pair.a.health_port, "/health", Duration::from_secs(5)).unwrap();
    assert!(health.body.contains("settlement"), "/health names the settlement component: {}", health.body);
    pair.anvil.resume();
    wait_until(&pair, Duration::from_secs(90), "the settlement completed once the chain was back", |pair| {
        metric(&pair.a.metrics(), "account_balance_units", &["peer_id=\"b\""]) == 0.0
            && metric(&pair.b.metrics(), "account_balance_units", &["peer_id=\"a\""]) == 0.0
    });
    pair.a.stop(Duration::from_secs(30));
    pair.b.stop(Duration::from_secs(30));
    let (entries_a, _) = read_journal(&pair.journal_a());
    let (entries_b, _) = read_journal(&pair.journal_b());
    let failures = entries_a.iter().filter(|entry| matches!(&entry.event, Event::SettlementFailed(_))).count();
    assert!(failures >= 1, "each failure is a journal event");
    check_single_payment(&entries_a, &entries_b);
    for (name, journal) in [("A", pair.journal_a()), ("B", pair.journal_b())] {
        let output = audit(&journal);
        assert!(output.success(), "audit settlements on {name}: {}", output.describe("audit"));
    }
}

/// `m2m-connector channel close` against a node's admin API.
fn close_channel(node: &Connector, peer: &str, cooperative: bool) -> crate::support::CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_m2m-connector"));
    command.args(["channel", "close", "--peer", peer, "--url", &format!("http://127.0.0.1:{}", node.health_port)]);
    if cooperative {
        command.arg("--cooperative");
    }
    run_with_timeout(command.env("ADMIN_TOKEN", ADMIN_TOKEN), Duration::from_secs(30))
}

/// Pays B for `packets` packets and waits until both positions are back at 0.
fn pay_and_settle(pair: &Pair, packets: u32) {
    wait_until(pair, Duration::from_secs(60), "A funded its channel", |pair| {
        metric(&pair.a.metrics(), "payment_channels_funded_total", &[]) >= 1.0
    });
    pay_bob(pair, packets);
    wait_until(pair, Duration::from_secs(90), "both positions back at 0", |pair| {
        metric(&pair.a.metrics(), "account_balance_units", &["peer_id=\"b\""]) == 0.0
            && metric(&pair.b.metrics(), "account_balance_units", &["peer_id=\"a\""]) == 0.0
    });
}

/// Both journals after the channel settled on chain: the ERC-20 balances equal what each
/// journal says it paid and was paid, to the unit, and both audits pass.
fn check_chain_matches_journals(mut pair: Pair, cooperative: bool) {
    wait_until(&pair, Duration::from_secs(90), "both nodes saw the channel settle", |pair| {
        log_count(&pair.a, "change=\"settled\"") >= 1 && log_count(&pair.b, "change=\"settled\"") >= 1
    });
    let a_tokens = pair.anvil.token_balance(&pair.deployment, chain::address_of(chain::NODE_A_KEY));
    let b_tokens = pair.anvil.token_balance(&pair.deployment, chain::address_of(chain::NODE_B_KEY));
    pair.a.stop(Duration::from_secs(30));
    pair.b.stop(Duration::from_secs(30));
    let (entries_a, balances_a) = read_journal(&pair.journal_a());
    let (entries_b, balances_b) = read_journal(&pair.journal_b());
    let paid = check_single_payment(&entries_a, &entries_b);
    assert_eq!(b_tokens, paid, "B's tokens on chain are exactly what its journal accepted");
    assert_eq!(a_tokens, A_TOKENS - paid, "A's tokens on chain are its mint less exactly what its journal paid");
    let settled = |entries: &[JournalEntry]| {
        entries.iter().find_map(|entry| match &entry.event {
            Event::ChannelObserved(observed) => match observed.change {
                m2m_connector::journal::ChannelChange::Settled { cooperative, .. } => Some(cooperative),
                _ => None,
            },
            _ => None,
        })
    };
    assert_eq!(settled(&entries_a), Some(cooperative), "A journaled the settle");
    assert_eq!(settled(&entries_b), Some(cooperative), "B journaled the settle");
    for (name, balances, peer) in [("A", &balances_a, "b"), ("B", &balances_b, "a")] {
        assert_eq!(balances.position_of(peer), 0, "{name}: the settle left the position at 0");
        let ledger = balances.settlement().peer(peer).unwrap();
        assert_eq!(ledger.correction_total, 0, "{name}: the chain paid what the claims say");
        assert_eq!(ledger.channel, None, "{name}: no channel left open, and none opened without a debt");
    }
    for (name, journal) in [("A", pair.journal_a()), ("B", pair.journal_b())] {
        let output = audit(&journal);
        assert!(output.success(), "audit settlements on {name}: {}", output.describe("audit"));
    }
}

#[test]
fn the_payee_closes_waits_out_the_challenge_and_the_chain_pays_what_both_journals_say() {
    let pair = Pair::start();
    pay_and_settle(&pair, 3);
    let output = close_channel(&pair.b, "a", false);
    assert!(output.success(), "{}\n{}", output.describe("channel close"), pair.logs());
    assert!(output.stdout.contains("closing channel"), "{}", output.stdout);
    wait_until(&pair, Duration::from_secs(30), "both nodes saw the close", |pair| {
        log_count(&pair.a, "change=\"closed\"") >= 1 && log_count(&pair.b, "change=\"closed\"") >= 1
    });
    let again = close_channel(&pair.b, "a", false);
    assert_eq!(again.status.and_then(|status| status.code()), Some(1), "a second close is refused: {}", again.describe("channel close"));
    pair.anvil.travel(31);
    check_chain_matches_journals(pair, false);
}

#[test]
fn a_cooperative_settle_pays_both_sides_at_once_what_both_journals_say() {
    let pair = Pair::start();
    pay_and_settle(&pair, 3);
    let output = close_channel(&pair.a, "b", true);
    assert!(output.success(), "{}\n{}", output.describe("channel close --cooperative"), pair.logs());
    check_chain_matches_journals(pair, true);
}

#[test]
fn a_payer_closing_with_a_stale_proof_loses_to_the_payees_newest() {
    let mut pair = Pair::start();
    pay_and_settle(&pair, 3);
    // A misbehaves: with its node stopped, its key closes the channel leaving its own payments
    // out (the close carries B's proof, which is empty). B must answer with A's newest claim.
    pair.a.stop(Duration::from_secs(30));
    let (_, balances_a) = read_journal(&pair.journal_a());
    let (channel_id, _) = balances_a.settlement().peer_channel("b").expect("A's channel");
    let channel: alloy::primitives::B256 = channel_id.parse().unwrap();
    let network = pair.anvil.network(&pair.deployment, chain::NODE_A_KEY);
    let empty = m2m_connector::settlement::evm::contracts::TokenNetwork::BalanceProofData {
        nonce: alloy::primitives::U256::ZERO,
        transferredAmount: alloy::primitives::U256::ZERO,
        lockedAmount: alloy::primitives::U256::ZERO,
        locksRoot: alloy::primitives::B256::ZERO,
    };
    chain::runtime().block_on(async {
        network.closeChannel(channel, empty, Default::default()).send().await.unwrap().get_receipt().await.unwrap();
    });
    wait_until(&pair, Duration::from_secs(60), "B answered the stale close with A's newest proof", |pair| {
        log_count(&pair.b, "change=\"proof_updated\"") >= 1
    });
    assert!(metric(&pair.b.metrics(), "payment_channels_disputes_total", &[]) >= 1.0, "the dispute is counted");
    pair.restart_a();
    pair.anvil.travel(31);
    check_chain_matches_journals(pair, false);
}

/// Both nodes mirror their journals into one TigerBeetle cluster (distinct node addresses keep
/// their ids apart): after settling, `ledger reconcile` finds every peer's accounts equal to the
/// journal-derived positions, which include the claims, and the settlement accounts hold them.
#[cfg(feature = "tigerbeetle")]
#[test]
fn tigerbeetle_mirrors_the_claims_and_reconciles_on_both_nodes() {
    let server = crate::tigerbeetle::shared_server();
    let replicas = vec![("TIGERBEETLE_REPLICAS".to_string(), format!("127.0.0.1:{}", server.port))];
    let mut pair = Pair::start_with(replicas);
    pay_and_settle(&pair, 3);
    wait_until(&pair, Duration::from_secs(30), "both TigerBeetle projections caught up", |pair| {
        metric(&pair.a.metrics(), "projection_lag_events", &["projection=\"tigerbeetle\""]) == 0.0
            && metric(&pair.b.metrics(), "projection_lag_events", &["projection=\"tigerbeetle\""]) == 0.0
    });
    pair.a.stop(Duration::from_secs(30));
    pair.b.stop(Duration::from_secs(30));
    for (name, journal) in [("A", pair.journal_a()), ("B", pair.journal_b())] {
        let output = crate::tigerbeetle::reconcile(&server, &journal);
        assert!(output.success(), "ledger reconcile on {name}: {}", output.describe("reconcile"));
    }
    let (entries_a, _) = read_journal(&pair.journal_a());
    let claims = entries_a.iter().filter(|entry| matches!(entry.event, Event::ClaimSent(_))).count();
    assert!(claims >= 1, "A sent claims, which TigerBeetle mirrored");
}

/// A deposit that a reorganisation removes before it is `SETTLEMENT_EVM_CONFIRMATIONS` deep
/// never reaches the journal; the one that stays does, once.
#[test]
fn a_reorganisation_shallower_than_the_confirmation_depth_never_reaches_the_journal() {
    let anvil = Anvil::start();
    let b_account = chain::address_of(chain::NODE_B_KEY);
    let deployment = anvil.deploy(&[(chain::address_of(chain::NODE_A_KEY), A_TOKENS), (b_account, 1_000_000)]);
    let dir = tempfile::Builder::new().prefix("m2m-it-reorg-").tempdir().unwrap();
    let journal = dir.path().join("journal-a");
    let deep = [("SETTLEMENT_EVM_CONFIRMATIONS".to_string(), "5".to_string())];
    // B's node is not needed: A opens and funds its channel to B's account on its own.
    let mut a = start_a(&anvil, &deployment, &journal, crate::support::free_port(), &deep);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&a.metrics(), "payment_channels_funded_total", &[]) < 1.0 {
        assert!(Instant::now() < deadline, "A funded its channel\n{}", a.log_section());
        std::thread::sleep(Duration::from_millis(200));
    }
    // One runtime for every call, and the providers made inside it; each call bounded, so a
    // chain that stops answering fails the test instead of hanging it.
    let runtime = chain::runtime();
    let bounded = |what: &str, future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>| {
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), future).await.unwrap_or_else(|_| panic!("{what}: no answer from anvil within 60 s"))
        })
    };
    let a_account = chain::address_of(chain::NODE_A_KEY);
    let deposit_then_reorg = |total: u64, reorg: bool| {
        bounded("deposit", Box::pin(async {
            // Fresh providers each time: a reorganisation takes B's transactions (and nonces) back.
            let network = anvil.network(&deployment, chain::NODE_B_KEY);
            let token = m2m_connector::settlement::evm::contracts::M2MToken::new(deployment.token, anvil.provider(chain::NODE_B_KEY));
            let channel = network.channelOf(b_account, a_account).call().await.unwrap();
            token.approve(deployment.token_network, alloy::primitives::U256::from(total)).send().await.unwrap().get_receipt().await.unwrap();
            network.setTotalDeposit(channel, alloy::primitives::U256::from(total)).send().await.unwrap().get_receipt().await.unwrap();
            if reorg {
                use alloy::providers::Provider;
                let provider = anvil.provider(chain::DEPLOYER_KEY);
                let _: serde_json::Value = provider
                    .raw_request("anvil_reorg".into(), (3u64, Vec::<serde_json::Value>::new()))
                    .await
                    .expect("anvil_reorg");
            }
        }))
    };
    // B deposits 7, and a reorganisation of 3 blocks (under A's 5) takes it away.
    deposit_then_reorg(7, true);
    std::thread::sleep(Duration::from_secs(8));
    // B deposits 5, and it stays.
    deposit_then_reorg(5, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_count(&a, "change=\"deposit\"") < 2 {
        assert!(Instant::now() < deadline, "A journaled B's deposit that stayed\n{}", a.log_section());
        std::thread::sleep(Duration::from_millis(200));
    }
    a.stop(Duration::from_secs(30));
    let (entries, balances) = read_journal(&journal);
    let b_hex = chain::hex(b_account);
    let b_deposits: Vec<u128> = entries
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::ChannelObserved(observed) => match &observed.change {
                m2m_connector::journal::ChannelChange::Deposit { participant, total } if *participant == b_hex => Some(*total),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(b_deposits, vec![5], "only the deposit that survived is journaled");
    let (_, channel) = balances.settlement().peer_channel("b").unwrap();
    assert_eq!(channel.theirs.deposit, 5);
}
