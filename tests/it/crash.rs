//! The crash test (DESIGN.md §5, invariants 3 and 4): the real `m2m-connector` binary is killed
//! with SIGKILL under load from the real `m2m-loadgen`, restarted on the same journal, killed
//! again, and finally stopped gracefully once every packet left open has expired. Besides the
//! load (alice → bob, which keeps the connector's journal busy), each run holds a few Prepares
//! to a peer that never answers (carol, a "black hole"): they are certainly open at the crash
//! (the load's own packets are usually prepared and fulfilled within one journal frame, so a
//! crash rarely leaves one open). Then the journal is read back and checked against what the
//! sender saw:
//!
//! - every Fulfill that reached the sender (the loadgen's `--fulfilled-log`) has its
//!   `PacketPrepared` (joined on the condition) followed by a `PacketFulfilled` with the same
//!   fulfillment: nothing acknowledged was lost;
//! - every packet ends exactly once, after its `PacketPrepared`, and every `PacketPrepared` has
//!   an end; packets open at a crash end with R00 in stage `Recovery`, after their expiry;
//! - sequence numbers run from 1 without a gap across every crash and restart;
//! - `Balances` replayed from scratch equals the final snapshot, the tailing projection's
//!   checkpoint and start-up recovery, and the positions are the sums of the fulfilled amounts.
//!
//! Bounded: each loadgen run by `--seconds`/`--packets` and a process deadline, each wait by a
//! deadline. Every socket is on 127.0.0.1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use m2m_connector::btp::endpoint::Endpoint;
use m2m_connector::btp::packet as btp;
use m2m_connector::ilp::error_code::ErrorCode;
use m2m_connector::ilp::packet::{Packet, PrepareBuilder};
use m2m_connector::projections::recovery;
use m2m_connector::journal::{Event, JournalEntry, PacketPrepared, SledStore, Stage};
use m2m_connector::projections::balances::Balances;
use m2m_connector::projections::Projection;

use crate::support::{run_with_timeout, two_children_config, CommandOutput, Connector};

/// The loadgen's Prepares expire this long after they are built; packets left open by a crash
/// are ended this long after it at the latest, so it bounds the final wait.
const EXPIRY_MS: u64 = 3000;
/// How long each crash waits, once traffic is flowing, before the SIGKILL: different points in
/// the connector's work (and the second crash lands while the first one's orphans are open).
const KILL_DELAYS: [Duration; 3] = [
    Duration::from_millis(900),
    Duration::from_millis(300),
    Duration::from_millis(1500),
];
/// Prepares held open at carol's black hole in each run, and how long they live: long enough
/// to be open at the kill (their outgoing expiry is a second less), short enough to keep the
/// final wait a few seconds.
const BLACK_HOLE_PACKETS: u32 = 8;
const BLACK_HOLE_EXPIRY_MS: i64 = 5000;
/// Fulfilled packets in the log that count as "traffic is flowing".
const FLOWING_LINES_MIN: usize = 200;
/// Upper bound for traffic to start flowing after the loadgen is spawned.
const FLOWING_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of one loadgen process (it runs at most `--seconds 15` and exits on the link loss).
const LOADGEN_DEADLINE: Duration = Duration::from_secs(25);

/// A connector config with alice, bob and carol as children in one asset (credit far beyond
/// any run), the journal at an absolute path shared by every start, and a small snapshot
/// interval so recovery goes through a snapshot plus a replayed tail.
fn config_with_journal(journal: &Path) -> impl Fn(u16, u16) -> String + '_ {
    move |btp_port, health_port| {
        format!(
            "{}\n[[peers]]\nid = \"carol\"\nrelation = \"child\"\nasset_code = \"USD\"\n\
             asset_scale = 6\nincoming_token = \"carol-token\"\ncredit_limit = 0\n\
             \n[journal]\ndir = {:?}\nsnapshot_every = 2000\n",
            two_children_config(btp_port, health_port),
            journal.display().to_string()
        )
    }
}

/// carol, connected and never answering, and alice's Prepares held there. The endpoints are
/// declared (so dropped) before the runtime that runs their tasks.
struct BlackHole {
    _carol: Endpoint,
    _alice: Endpoint,
    conditions: Vec<[u8; 32]>,
    _runtime: tokio::runtime::Runtime,
}

/// Connects carol (no handler: Prepares to her are never answered) and sends her
/// [`BLACK_HOLE_PACKETS`] Prepares from alice. Returns once the connector has forwarded them
/// all: a marker Prepare sent after them on the same connection has come back (F02, no route),
/// and none of them was answered (T01 means carol's session was not routable yet: retry).
fn open_black_hole(connector: &Connector, run: usize) -> BlackHole {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime for the black hole");
    let url = format!("ws://127.0.0.1:{}", connector.btp_port);
    let (carol, alice, conditions) = runtime.block_on(async {
        let carol = Endpoint::connect(&url, "carol", "carol-token", None)
            .await
            .expect("carol connects");
        let alice = Endpoint::connect(&url, "alice", "alice-token", None)
            .await
            .expect("alice connects");
        let deadline = Instant::now() + Duration::from_secs(5);
        for attempt in 0u32.. {
            assert!(Instant::now() < deadline, "carol never became routable");
            let expires_at_ms = now_ms() + BLACK_HOLE_EXPIRY_MS;
            let mut conditions = Vec::new();
            let mut replies = Vec::new();
            for index in 0..BLACK_HOLE_PACKETS {
                let data = format!(
                    "crash test black hole: pid {} run {run} attempt {attempt} packet {index}",
                    std::process::id()
                );
                let condition: [u8; 32] =
                    <sha2::Sha256 as sha2::Digest>::digest(data.as_bytes()).into();
                let packet = PrepareBuilder {
                    amount: 1,
                    expires_at_ms,
                    execution_condition: condition,
                    destination: "test.m2m.carol",
                    data: data.as_bytes(),
                }
                .build()
                .expect("a valid Prepare");
                let request_id = 1_000_000 + attempt * BLACK_HOLE_PACKETS + index;
                let mut frame = BytesMut::new();
                btp::write_ilp_frame(&mut frame, btp::TYPE_MESSAGE, request_id, packet.len());
                frame.extend_from_slice(&packet);
                replies.push(alice.expect_reply(request_id));
                alice
                    .send_raw(frame.freeze())
                    .await
                    .expect("alice's link is up");
                conditions.push(condition);
            }
            let marker = PrepareBuilder {
                amount: 1,
                expires_at_ms,
                execution_condition: [0; 32],
                destination: "test.m2m.nobody",
                data: b"marker",
            }
            .build()
            .expect("a valid Prepare");
            let reply = alice
                .send(&marker, Duration::from_secs(5))
                .await
                .expect("the marker is answered");
            match Packet::parse(reply) {
                Ok(Packet::Reject(reject)) if reject.code() == ErrorCode::F02_UNREACHABLE => {}
                other => panic!("the marker must be rejected F02, got {other:?}"),
            }
            if replies.iter_mut().all(|reply| reply.try_recv().is_err()) {
                return (carol, alice, conditions);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        unreachable!("the loop returns or panics at its deadline")
    });
    BlackHole {
        _carol: carol,
        _alice: alice,
        conditions,
        _runtime: runtime,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// One line of `--fulfilled-log`: a packet whose Fulfill reached the sender.
#[derive(Debug, Clone, Copy)]
struct SeenFulfill {
    condition: [u8; 32],
    fulfillment: [u8; 32],
}

fn read_fulfilled_log(path: &Path) -> Vec<SeenFulfill> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let parse = |hex_text: &str| -> [u8; 32] {
        hex::decode(hex_text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .unwrap_or_else(|| panic!("bad hex {hex_text:?} in {}", path.display()))
    };
    // A line being written at the moment of reading has no newline yet: only whole lines count.
    let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    whole
        .lines()
        .map(|line| {
            let (condition, fulfillment) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad line {line:?} in {}", path.display()));
            SeenFulfill {
                condition: parse(condition),
                fulfillment: parse(fulfillment),
            }
        })
        .collect()
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| {
        bytes.iter().filter(|&&byte| byte == b'\n').count()
    })
}

/// The test's directory (the journal, the fulfilled logs). If the test fails it is kept and its
/// path printed, so the journal that broke an invariant can be examined with
/// `m2m-connector journal inspect --dir <path>/journal`.
struct WorkDir(Option<tempfile::TempDir>);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!(
                    "crash test: journal and fulfilled logs kept in {}",
                    dir.keep().display()
                );
            }
        }
    }
}

/// What one crash cycle observed.
struct Cycle {
    log: PathBuf,
    loadgen: CommandOutput,
    /// From spawning the loadgen to the SIGKILL.
    load_time: Duration,
    killed_at_ms: i64,
}

/// Runs load against `connector`, kills it with SIGKILL `kill_delay` after traffic flows, and
/// returns once the loadgen has exited.
fn crash_under_load(connector: &mut Connector, log: PathBuf, kill_delay: Duration) -> Cycle {
    let url = format!("ws://127.0.0.1:{}", connector.btp_port);
    let mut command = Command::new(env!("CARGO_BIN_EXE_m2m-loadgen"));
    command.args([
        "--url",
        &url,
        "--role",
        "both",
        "--window",
        "64",
        "--packets",
        "2000000",
    ]);
    command.args(["--seconds", "15", "--expiry-ms", &EXPIRY_MS.to_string()]);
    command.arg("--fulfilled-log").arg(&log);
    let started = Instant::now();
    let loadgen = std::thread::spawn(move || run_with_timeout(&mut command, LOADGEN_DEADLINE));

    while count_lines(&log) < FLOWING_LINES_MIN {
        if started.elapsed() > FLOWING_TIMEOUT || loadgen.is_finished() {
            let output = loadgen.join().expect("loadgen thread");
            panic!(
                "traffic did not flow within {FLOWING_TIMEOUT:?} ({} lines in {})\n{}",
                count_lines(&log),
                log.display(),
                output.describe("m2m-loadgen")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(kill_delay);
    assert!(
        connector.is_running(),
        "the connector died before the kill:\n{}",
        connector.log_section()
    );
    let killed_at_ms = now_ms();
    let status = connector.kill9();
    let load_time = started.elapsed();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );
    let loadgen = loadgen.join().expect("loadgen thread");
    Cycle {
        log,
        loadgen,
        load_time,
        killed_at_ms,
    }
}

/// What the sender reported for one crash.
struct SenderCounts {
    sent: u64,
    fulfilled: u64,
    probes: u64,
    /// Packets still in flight when the link dropped (or overdue before it).
    unanswered: u64,
}

/// The loadgen must have seen the link drop (exit 1, `error` in its JSON line) with packets in
/// flight (the kill interrupted traffic), and its log must hold every Fulfill it counted.
fn check_loadgen_saw_the_crash(cycle: &Cycle) -> SenderCounts {
    let output = &cycle.loadgen;
    let describe = || output.describe("m2m-loadgen killed mid-run");
    assert_eq!(
        output.status.and_then(|status| status.code()),
        Some(1),
        "exit 1 on a lost link\n{}",
        describe()
    );
    let json: serde_json::Value = serde_json::from_str(output.stdout.trim())
        .unwrap_or_else(|error| panic!("one JSON line ({error})\n{}", describe()));
    assert!(
        json["error"].is_string(),
        "the JSON line names the lost link\n{}",
        describe()
    );
    let count = |field: &str| {
        json[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} in\n{}", describe()))
    };
    let (sent, fulfilled, probes, unanswered) = (
        count("sent"),
        count("fulfilled"),
        count("probes"),
        count("timeouts"),
    );
    assert!(fulfilled > 0, "{}", describe());
    assert_eq!(count("fulfill_invalid"), 0, "{}", describe());
    assert!(
        unanswered > 0,
        "the kill left packets in flight at the sender\n{}",
        describe()
    );
    // The log holds every Fulfill the sender counted, plus the probes' (each at most one).
    let lines = count_lines(&cycle.log) as u64;
    assert!(
        (fulfilled..=fulfilled + probes).contains(&lines),
        "{lines} lines in {} for {fulfilled} fulfilled and {probes} probes\n{}",
        cycle.log.display(),
        describe()
    );
    SenderCounts {
        sent,
        fulfilled,
        probes,
        unanswered,
    }
}

#[test]
fn kill_9_under_load_loses_no_fulfill_and_ends_every_packet_once() {
    let test_started = Instant::now();
    let work = WorkDir(Some(
        tempfile::Builder::new()
            .prefix("m2m-it-crash-")
            .tempdir()
            .expect("a temporary directory"),
    ));
    let work_path = work.0.as_ref().expect("the directory").path().to_path_buf();
    let journal_dir = work_path.join("journal");
    let config = config_with_journal(&journal_dir);

    // Killed connectors are kept until the end: a failing test prints every run's log.
    let mut connectors: Vec<Connector> = Vec::new();
    let mut cycles: Vec<Cycle> = Vec::new();
    // Per crash: the conditions of the Prepares held at the black hole, and the time of the kill.
    let mut black_holes: Vec<(Vec<[u8; 32]>, i64)> = Vec::new();
    for (index, kill_delay) in KILL_DELAYS.into_iter().enumerate() {
        let start = Instant::now();
        let mut connector = Connector::start_with(&config);
        let ready = start.elapsed();
        let black_hole = open_black_hole(&connector, index);
        let log = work_path.join(format!("fulfilled-{index}.log"));
        let cycle = crash_under_load(&mut connector, log, kill_delay);
        black_holes.push((black_hole.conditions.clone(), cycle.killed_at_ms));
        drop(black_hole);
        let counts = check_loadgen_saw_the_crash(&cycle);
        eprintln!(
            "crash {index}: ready in {ready:?}, killed {:?} after the loadgen started; sender sent \
             {}, saw {} fulfilled (+{} probes), {} in flight at the kill",
            cycle.load_time, counts.sent, counts.fulfilled, counts.probes, counts.unanswered
        );
        connectors.push(connector);
        cycles.push(cycle);
    }

    // The last start ends what the crashes left open, once their expiry has passed.
    let mut connector = Connector::start_with(&config);
    let last_kill_ms = cycles.last().expect("cycles").killed_at_ms;
    let all_expired_ms = last_kill_ms + BLACK_HOLE_EXPIRY_MS.max(EXPIRY_MS as i64) + 1000;
    while now_ms() < all_expired_ms {
        assert!(
            connector.is_running(),
            "the connector died after restart:\n{}",
            connector.log_section()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = connector.stop(Duration::from_secs(10));
    assert!(
        status.success(),
        "graceful stop: {status}\n{}",
        connector.log_section()
    );
    connectors.push(connector);

    let seen: Vec<SeenFulfill> = cycles
        .iter()
        .flat_map(|cycle| read_fulfilled_log(&cycle.log))
        .collect();
    let store = SledStore::open(&journal_dir).expect("the journal opens after the last stop");
    let summary = store.verify().expect("every frame checks out");
    let entries: Vec<JournalEntry> = store
        .entries_from(1)
        .collect::<Result<_, _>>()
        .expect("the journal reads back");
    let report = check_journal(&entries, &seen, &black_holes);
    check_balances(&store, &entries);
    eprintln!(
        "journal: {} events in {} frames; {} packets fulfilled ({} seen by the sender), {} \
         rejected, {} ended by recovery (by the run that prepared them: {:?}); whole test {:?}",
        summary.event_count,
        summary.frame_count,
        report.fulfilled,
        seen.len(),
        report.rejected,
        report.recovered_per_run.iter().sum::<usize>(),
        report.recovered_per_run,
        test_started.elapsed()
    );
    // The restarts found frames that only the commit log held (sled had not flushed them when
    // the process was killed): the checks above passing means they were copied back whole.
    let copied = connectors[1..]
        .iter()
        .filter(|connector| connector.log().contains("from the commit log into sled"))
        .count();
    assert!(
        copied > 0,
        "no restart copied frames from the commit log: the crashes did not exercise it"
    );
    eprintln!("{copied} of {} restarts copied frames from the commit log", connectors.len() - 1);
    // Keep the connectors (and their logs) alive until every check has passed.
    drop(connectors);
}

/// How a packet ended.
#[derive(Debug, Clone)]
enum End {
    Fulfilled { fulfillment: [u8; 32] },
    Rejected { code: [u8; 3], stage: Stage },
}

/// The packets of the whole journal, indexed.
struct Packets<'a> {
    /// `ConfigurationApplied` events: one per start.
    starts: usize,
    /// Packet id → seq, the run (1-based, counted by starts) and the event.
    prepared: HashMap<u64, (u64, usize, &'a PacketPrepared)>,
    by_condition: HashMap<[u8; 32], u64>,
    /// Packet id → every end of a prepared packet: seq, how, timestamp.
    ends: HashMap<u64, Vec<(u64, End, i64)>>,
    /// Packet id → seq of a `PacketRejected { prepared: false }`.
    refused_before_forwarding: HashMap<u64, u64>,
}

struct JournalReport {
    fulfilled: usize,
    rejected: usize,
    /// Packets ended by recovery, by the run (between two starts) that prepared them.
    recovered_per_run: Vec<usize>,
}

fn check_journal(
    entries: &[JournalEntry],
    seen: &[SeenFulfill],
    black_holes: &[(Vec<[u8; 32]>, i64)],
) -> JournalReport {
    // (c) One sequence from 1, without a gap, across every crash and restart.
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.seq,
            index as u64 + 1,
            "the sequence jumps at position {index}"
        );
    }
    let packets = index_packets(entries);
    assert_eq!(
        packets.starts,
        black_holes.len() + 1,
        "each start records a ConfigurationApplied"
    );
    check_every_packet_ends_once(&packets);
    let report = check_recovery(&packets, black_holes);
    check_seen_fulfills_are_journaled(&packets, seen);
    assert!(report.fulfilled >= seen.len());
    report
}

/// Indexes the packet events, checking that no packet id is prepared or refused twice and that
/// conditions are unique (the loadgen's and the black hole's are).
fn index_packets(entries: &[JournalEntry]) -> Packets<'_> {
    let mut packets = Packets {
        starts: 0,
        prepared: HashMap::new(),
        by_condition: HashMap::new(),
        ends: HashMap::new(),
        refused_before_forwarding: HashMap::new(),
    };
    for entry in entries {
        let (packet_id, end) = match &entry.event {
            Event::ConfigurationApplied(_) => {
                packets.starts += 1;
                continue;
            }
            Event::PacketPrepared(packet) => {
                let id = packet.packet_id;
                let previous = packets
                    .prepared
                    .insert(id, (entry.seq, packets.starts, packet));
                assert!(
                    previous.is_none(),
                    "packet {id} prepared twice (seq {})",
                    entry.seq
                );
                let previous = packets.by_condition.insert(packet.condition, id);
                assert!(
                    previous.is_none(),
                    "two packets share the condition of packet {id}"
                );
                continue;
            }
            Event::PacketFulfilled(fulfilled) => (
                fulfilled.packet_id,
                End::Fulfilled {
                    fulfillment: fulfilled.fulfillment,
                },
            ),
            Event::PacketRejected(rejected) if rejected.prepared => (
                rejected.packet_id,
                End::Rejected {
                    code: rejected.code,
                    stage: rejected.stage,
                },
            ),
            Event::PacketRejected(rejected) => {
                let id = rejected.packet_id;
                let previous = packets.refused_before_forwarding.insert(id, entry.seq);
                assert!(previous.is_none(), "packet {id} refused twice");
                continue;
            }
            _ => continue,
        };
        let ends = packets.ends.entry(packet_id).or_default();
        ends.push((entry.seq, end, entry.timestamp_ms));
    }
    packets
}

/// (b) Every packet ends exactly once, after its `PacketPrepared`; every `PacketPrepared` ends;
/// a packet refused before forwarding has no other event.
fn check_every_packet_ends_once(packets: &Packets) {
    for (packet_id, seq) in &packets.refused_before_forwarding {
        assert!(
            !packets.prepared.contains_key(packet_id) && !packets.ends.contains_key(packet_id),
            "packet {packet_id} refused before forwarding (seq {seq}) was also prepared or ended"
        );
    }
    for (packet_id, ends) in &packets.ends {
        let Some((prepared_seq, _, _)) = packets.prepared.get(packet_id) else {
            panic!("packet {packet_id} ended ({ends:?}) but was never prepared");
        };
        assert_eq!(
            ends.len(),
            1,
            "packet {packet_id} ended more than once: {ends:?}"
        );
        assert!(
            ends[0].0 > *prepared_seq,
            "packet {packet_id} ended before it was prepared"
        );
    }
    let mut open: Vec<(u64, i64)> = packets
        .prepared
        .iter()
        .filter(|(packet_id, _)| !packets.ends.contains_key(packet_id))
        .map(|(&packet_id, (_, _, packet))| (packet_id, packet.expires_at_in_ms))
        .collect();
    open.sort_unstable();
    assert!(
        open.is_empty(),
        "{} prepared packets never ended (id, incoming expiry): {:?}",
        open.len(),
        &open[..open.len().min(20)]
    );
}

/// Packets open at a crash end with R00 in stage `Recovery`, never before their expiry; the
/// black hole's Prepares were open at their crash, so recovery ended them (unless the crash
/// came after their outgoing expiry: then the connector itself ended them, stage `Expiry`).
fn check_recovery(packets: &Packets, black_holes: &[(Vec<[u8; 32]>, i64)]) -> JournalReport {
    let mut report = JournalReport {
        fulfilled: 0,
        rejected: 0,
        recovered_per_run: vec![0; packets.starts],
    };
    for (packet_id, ends) in &packets.ends {
        let (_, end, timestamp_ms) = &ends[0];
        let End::Rejected { code, stage } = end else {
            report.fulfilled += 1;
            continue;
        };
        report.rejected += 1;
        if *stage == Stage::Recovery {
            let (_, run, packet) = packets.prepared[packet_id];
            assert_eq!(code, b"R00", "packet {packet_id} ended by recovery");
            assert!(
                *timestamp_ms >= packet.expires_at_in_ms,
                "packet {packet_id} ended by recovery at {timestamp_ms}, before its expiry {}",
                packet.expires_at_in_ms
            );
            report.recovered_per_run[run - 1] += 1;
        }
    }
    let graceful_run = black_holes.len();
    assert_eq!(
        report.recovered_per_run[graceful_run], 0,
        "the last run was stopped gracefully, not crashed"
    );
    for (crash, (conditions, killed_at_ms)) in black_holes.iter().enumerate() {
        for condition in conditions {
            let Some(packet_id) = packets.by_condition.get(condition) else {
                panic!("crash {crash}: a Prepare held at the black hole has no PacketPrepared");
            };
            let (_, end, _) = &packets.ends[packet_id][0];
            let expires_at_out_ms = packets.prepared[packet_id].2.expires_at_out_ms;
            match end {
                End::Rejected {
                    code: [b'R', b'0', b'0'],
                    stage: Stage::Recovery,
                } => {}
                End::Rejected {
                    code,
                    stage: Stage::Expiry,
                } if code == b"R00" && *killed_at_ms >= expires_at_out_ms => {}
                other => panic!(
                    "crash {crash}: black-hole packet {packet_id} (outgoing expiry \
                     {expires_at_out_ms}, killed at {killed_at_ms}) ended as {other:?}, not R00 \
                     by recovery"
                ),
            }
        }
    }
    report
}

/// (a) Every Fulfill that reached the sender is in the journal: prepared, then fulfilled with
/// the same fulfillment. A miss here breaks invariant 3 (durable before acknowledged).
fn check_seen_fulfills_are_journaled(packets: &Packets, seen: &[SeenFulfill]) {
    for (index, fulfill) in seen.iter().enumerate() {
        let condition = hex::encode(fulfill.condition);
        let Some(packet_id) = packets.by_condition.get(&fulfill.condition) else {
            panic!(
                "LOST FULFILL: the sender saw a Fulfill (log line {index}, condition {condition}) \
                 with no PacketPrepared in the journal"
            );
        };
        match packets.ends.get(packet_id).map(|ends| &ends[0].1) {
            Some(End::Fulfilled { fulfillment }) => assert_eq!(
                fulfillment, &fulfill.fulfillment,
                "packet {packet_id} (condition {condition}) journaled with another fulfillment"
            ),
            other => panic!(
                "LOST FULFILL: the sender saw a Fulfill for packet {packet_id} (condition \
                 {condition}) but the journal ended it as {other:?}"
            ),
        }
    }
}

/// (d) Replay equality after the crashes: from scratch, the final snapshot, the tailing
/// projection's checkpoint and start-up recovery all agree; nothing is reserved any more; the
/// positions are the sums of the fulfilled amounts.
fn check_balances(store: &SledStore, entries: &[JournalEntry]) {
    let last_seq = entries.last().expect("events").seq;
    let mut replayed = Balances::new();
    for entry in entries {
        replayed.apply(entry);
    }
    assert_eq!(
        replayed.in_flight_count(),
        0,
        "nothing is in flight after the last stop"
    );

    let (snapshot_seq, bytes) = store
        .latest_snapshot()
        .unwrap()
        .expect("a snapshot at the graceful stop");
    assert_eq!(
        snapshot_seq, last_seq,
        "the stop snapshot covers the whole journal"
    );
    let snapshot = Balances::from_snapshot(&bytes).expect("the snapshot decodes");
    assert_eq!(
        snapshot.digest(),
        replayed.digest(),
        "live state at stop == replay from scratch"
    );

    let (checkpoint_seq, state) = store
        .checkpoint("balances")
        .unwrap()
        .expect("a balances checkpoint");
    assert_eq!(
        checkpoint_seq, last_seq,
        "the tailing projection finished level with the journal"
    );
    let mut tailing = Balances::from_snapshot(&state).expect("the checkpoint decodes");
    tailing.set_position(checkpoint_seq);
    assert_eq!(
        tailing.digest(),
        replayed.digest(),
        "tailing projection == replay from scratch"
    );

    let recovered = recovery::recover(store).expect("recovery");
    assert_eq!(recovered.last_seq, last_seq);
    assert_eq!(
        recovered.balances.digest(),
        replayed.digest(),
        "start-up recovery == replay"
    );

    // The positions, recomputed without Balances: what each fulfilled packet moved.
    let mut packets: HashMap<u64, &PacketPrepared> = HashMap::new();
    let mut expected: HashMap<&str, i128> = HashMap::new();
    for entry in entries {
        match &entry.event {
            Event::PacketPrepared(packet) => {
                packets.insert(packet.packet_id, packet);
            }
            Event::PacketFulfilled(fulfilled) => {
                let packet = packets[&fulfilled.packet_id];
                *expected.entry(packet.from_peer.as_str()).or_default() +=
                    i128::from(packet.amount_in);
                *expected.entry(packet.to_peer.as_str()).or_default() -=
                    i128::from(packet.amount_out);
            }
            _ => {}
        }
    }
    for (peer, balance) in replayed.iter() {
        assert_eq!(balance.reserved, 0, "{peer} still has a reservation");
        assert_eq!(
            balance.position,
            expected.get(peer).copied().unwrap_or(0),
            "{peer}'s position"
        );
    }
    assert!(
        expected.get("alice").copied().unwrap_or(0) > 0,
        "alice paid for the fulfilled packets"
    );
}
