//! `m2m-connector journal inspect|verify|replay|stats` against journals written by a real node,
//! and retention (archive and delete) with replay and verify reading across the archive.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use m2m_connector::btp::endpoint::Endpoint;
use m2m_connector::config::{self, Env, Retention};
use m2m_connector::ilp::packet::Packet;
use m2m_connector::journal::retention;
use m2m_connector::journal::{Event, JournalEntry, JournalError, SledStore};
use m2m_connector::node::Node;
use m2m_connector::projections::balances::Balances;
use m2m_connector::projections::Projection;
use serde_json::Value;

use crate::forwarding::{base_config, bob_handler, prepare, url};

const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a journal may stay locked after the node (or store) that had it open is gone: sled
/// finishes writes on its own thread pool, which keeps the lock file open a moment after the
/// last handle is dropped.
const UNLOCK_TIMEOUT: Duration = Duration::from_secs(10);

async fn start_in(dir: &Path, extra_journal: &str) -> Node {
    let text = format!("{}\n[journal]\ndir = {:?}\n{extra_journal}\n", base_config("", ""), dir.display().to_string());
    let deadline = std::time::Instant::now() + UNLOCK_TIMEOUT;
    loop {
        let loaded = config::parse(&text, &Env::default()).expect("test config is valid");
        match Node::start(loaded.config).await {
            Ok(node) => return node,
            Err(error) if format!("{error:#}").contains("in use by another process") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("node starts: {error:#}"),
        }
    }
}

fn open_store(dir: &Path) -> SledStore {
    let deadline = std::time::Instant::now() + UNLOCK_TIMEOUT;
    loop {
        match SledStore::open(dir) {
            Ok(store) => return store,
            Err(JournalError::Locked(_)) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("opening the journal: {error}"),
        }
    }
}

/// Sends `count` packets alice → bob; every 5th is rejected by bob.
async fn traffic(node: &Node, count: usize) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _bob = Endpoint::connect(&url(node), "bob", "bob-token", Some(bob_handler(received))).await.unwrap();
    let alice = Endpoint::connect(&url(node), "alice", "alice-token", None).await.unwrap();
    for index in 0..count {
        let data = if index % 5 == 0 { b"reject".to_vec() } else { (index as u32).to_be_bytes().to_vec() };
        let reply = alice.send(&prepare(10, "test.m2m.bob", &data, 10_000), TIMEOUT).await.unwrap();
        // Every fifth packet bob rejects (F99); the others must be fulfilled, or the positions
        // the test checks later are off, so say why here.
        match (Packet::parse(reply).expect("reply parses"), index % 5 == 0) {
            (Packet::Fulfill(_), false) => {}
            (Packet::Reject(reject), true) if reject.code().to_string() == "F99" => {}
            (Packet::Reject(reject), _) => panic!("packet {index}: {} {}", reject.code(), reject.message_lossy()),
            (other, _) => panic!("packet {index}: unexpected {:?}", other.packet_type()),
        }
    }
}

/// Runs `m2m-connector journal ARGS` with a clean JOURNAL_DIR.
fn journal_once(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_m2m-connector"))
        .arg("journal")
        .args(args)
        .env_remove("JOURNAL_DIR")
        .output()
        .expect("the binary runs")
}

/// [`journal_once`], again while the journal is still locked by this process's last handle.
pub(crate) fn journal(args: &[&str]) -> Output {
    let deadline = std::time::Instant::now() + UNLOCK_TIMEOUT;
    loop {
        let output = journal_once(args);
        if !stderr(&output).contains("locked by a running node") || std::time::Instant::now() >= deadline {
            return output;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn success(output: Output) -> String {
    assert!(output.status.success(), "status {:?}\nstdout: {}\nstderr: {}", output.status, stdout(&output), stderr(&output));
    stdout(&output)
}

/// Exit status `code` and a single line on stderr; returns that line.
fn failure(output: Output, code: i32) -> String {
    assert_eq!(output.status.code(), Some(code), "stdout: {}\nstderr: {}", stdout(&output), stderr(&output));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "one-line error: {text}");
    assert!(text.starts_with("error: "), "{text}");
    text
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))).collect()
}

fn seqs(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|line| line["seq"].as_u64().unwrap()).collect()
}

/// The `digest` line of `journal replay`.
fn digest_of(text: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix("digest"))
        .map(|rest| rest.trim().to_string())
        .unwrap_or_else(|| panic!("no digest in: {text}"))
}

fn replayed_digest(entries: &[JournalEntry]) -> String {
    let mut balances = Balances::new();
    entries.iter().for_each(|entry| balances.apply(entry));
    hex::encode(balances.digest())
}

fn packet_id(entry: &JournalEntry) -> Option<u64> {
    match &entry.event {
        Event::PacketPrepared(prepared) => Some(prepared.packet_id),
        Event::PacketFulfilled(fulfilled) => Some(fulfilled.packet_id),
        Event::PacketRejected(rejected) => Some(rejected.packet_id),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_verify_replay_and_stats_read_a_stopped_nodes_journal() {
    let journal_dir = tempfile::tempdir().unwrap();
    let node = start_in(journal_dir.path(), "snapshot_every = 25").await;
    traffic(&node, 40).await;
    node.stop().await;
    let dir = journal_dir.path().to_str().unwrap();

    let store = open_store(journal_dir.path());
    let entries: Vec<JournalEntry> = store.entries_from(1).collect::<Result<_, _>>().unwrap();
    let snapshot_seqs = store.snapshot_seqs().unwrap();
    let frame_keys = store.frame_keys().unwrap();
    // A running node holds the lock: the CLI says so and suggests what to do.
    let locked = failure(journal_once(&["verify", "--dir", dir]), 1);
    assert!(locked.contains("locked by a running node") && locked.contains("stop the node"), "{locked}");
    drop(store);
    let last_seq = entries.last().unwrap().seq;
    assert!(last_seq > 80 && snapshot_seqs.len() == 2, "{last_seq} events, snapshots {snapshot_seqs:?}");

    // inspect: every event, in order, as JSON lines.
    let all = json_lines(&success(journal(&["inspect", "--dir", dir, "--limit", "0"])));
    assert_eq!(seqs(&all), (1..=last_seq).collect::<Vec<_>>());
    let first = &all[0];
    assert_eq!(first["type"], "ConfigurationApplied");
    let timestamp = first["timestamp"].as_str().unwrap();
    assert!(timestamp.len() == 24 && timestamp.starts_with("20") && timestamp.ends_with('Z'), "{timestamp}");
    assert_eq!(first["timestamp_ms"].as_i64().unwrap(), entries[0].timestamp_ms);
    let prepared = all.iter().find(|line| line["type"] == "PacketPrepared").unwrap();
    assert_eq!(prepared["condition"].as_str().unwrap().len(), 64, "{prepared}");
    assert_eq!((prepared["from_peer"].as_str(), prepared["to_peer"].as_str()), (Some("alice"), Some("bob")));
    assert_eq!((prepared["amount_in"].as_u64(), prepared["amount_out"].as_u64()), (Some(10), Some(5)));
    let rejected = all.iter().find(|line| line["type"] == "PacketRejected").unwrap();
    assert_eq!(rejected["code"], "F99");
    assert_eq!(rejected["stage"], "downstream");
    // The default limit, --limit and --from.
    assert_eq!(json_lines(&success(journal(&["inspect", "--dir", dir]))).len(), (last_seq as usize).min(100));
    let window = json_lines(&success(journal(&["inspect", "--dir", dir, "--from", "10", "--limit", "3"])));
    assert_eq!(seqs(&window), [10, 11, 12]);
    // --type, case-insensitive.
    let fulfilled = json_lines(&success(journal(&["inspect", "--dir", dir, "--type", "packetfulfilled", "--limit", "0"])));
    assert_eq!(fulfilled.len(), 32);
    assert!(fulfilled.iter().all(|line| line["type"] == "PacketFulfilled" && line["fulfillment"].as_str().unwrap().len() == 64));
    // --packet: a packet's Prepared and its end.
    let some_packet = packet_id(entries.iter().find(|entry| matches!(entry.event, Event::PacketFulfilled(_))).unwrap()).unwrap();
    let packet = json_lines(&success(journal(&["inspect", "--dir", dir, "--packet", &some_packet.to_string()])));
    let types: Vec<&str> = packet.iter().map(|line| line["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["PacketPrepared", "PacketFulfilled"]);
    // --peer bob: his sessions, the packets to him and how each ended.
    let bob = json_lines(&success(journal(&["inspect", "--dir", dir, "--peer", "bob", "--limit", "0"])));
    let count = |kind: &str| bob.iter().filter(|line| line["type"] == kind).count();
    assert_eq!((count("PeerConnected"), count("PacketPrepared"), count("PacketFulfilled"), count("PacketRejected")), (1, 40, 32, 8));
    assert!(bob.iter().all(|line| line["type"] != "ConfigurationApplied"));
    let carol = success(journal(&["inspect", "--dir", dir, "--peer", "carol"]));
    assert!(carol.is_empty(), "{carol}");
    // Bad arguments: one line, exit 2.
    let unknown_type = failure(journal(&["inspect", "--dir", dir, "--type", "PacketLost"]), 2);
    assert!(unknown_type.contains("PacketLost") && unknown_type.contains("PacketPrepared"), "{unknown_type}");
    assert_eq!(journal(&["inspect", "--dir", dir, "--from", "ten"]).status.code(), Some(2));
    let missing = failure(journal(&["inspect", "--dir", "/nonexistent/journal"]), 2);
    assert!(missing.contains("no journal in /nonexistent/journal"), "{missing}");
    assert!(!Path::new("/nonexistent/journal").exists(), "a read command never creates a journal");

    // verify.
    let verified = success(journal(&["verify", "--dir", dir]));
    assert!(verified.contains(": ok"), "{verified}");
    assert!(verified.contains(&format!("{last_seq} (seq 1..={last_seq})")), "{verified}");
    assert!(verified.contains(&format!("frames      {}", frame_keys.len())), "{verified}");

    // replay: from scratch, from a snapshot, as of a seq; all equal the library's replay.
    let from_scratch = success(journal(&["replay", "--dir", dir, "--projection", "balances"]));
    assert_eq!(digest_of(&from_scratch), replayed_digest(&entries), "{from_scratch}");
    let kinds = entries.iter().fold(std::collections::BTreeMap::<String, usize>::new(), |mut kinds, entry| {
        *kinds.entry(format!("{:?}", entry.event).split(['(', ' ', '{']).next().unwrap_or_default().to_string()).or_default() += 1;
        kinds
    });
    let undelivered: Vec<&JournalEntry> = entries.iter().filter(|entry| matches!(entry.event, Event::FulfillUndelivered(_))).collect();
    assert!(
        from_scratch.contains("empty state") && from_scratch.contains("position 320"),
        "{from_scratch}\nevents by kind: {kinds:?}\nundelivered: {undelivered:?}"
    );
    let older_snapshot = snapshot_seqs[0];
    let from_snapshot =
        success(journal(&["replay", "--dir", dir, "--projection", "balances", "--from", &(older_snapshot + 3).to_string()]));
    assert_eq!(digest_of(&from_snapshot), digest_of(&from_scratch));
    assert!(from_snapshot.contains(&format!("snapshot at seq {older_snapshot}")), "{from_snapshot}");
    let at = last_seq / 2;
    let as_of = success(journal(&["replay", "--dir", dir, "--projection", "balances", "--at", &at.to_string()]));
    assert_eq!(digest_of(&as_of), replayed_digest(&entries[..at as usize]));
    assert!(as_of.contains(&format!("state at     seq {at}")), "{as_of}");
    let unknown = failure(journal(&["replay", "--dir", dir, "--projection", "ledger"]), 2);
    assert!(unknown.contains("unknown projection \"ledger\"") && unknown.contains("balances"), "{unknown}");
    failure(journal(&["replay", "--dir", dir, "--projection", "balances", "--from", "9", "--at", "5"]), 2);
    failure(journal(&["replay", "--dir", dir, "--projection", "balances", "--at", &(last_seq + 1).to_string()]), 2);
    let no_snapshot = failure(journal(&["replay", "--dir", dir, "--projection", "balances", "--from", "5"]), 2);
    assert!(no_snapshot.contains("no snapshot at or before seq 5"), "{no_snapshot}");

    // stats.
    let stats = success(journal(&["stats", "--dir", dir]));
    assert!(stats.contains(&format!("events       {last_seq} (seq 1..={last_seq})")), "{stats}");
    assert!(stats.contains(&format!("snapshots    {}, {}", snapshot_seqs[0], snapshot_seqs[1])), "{stats}");
    assert!(stats.lines().any(|line| line.starts_with("checkpoints  ")), "{stats}");
    for (kind, count) in [("PacketPrepared", 40), ("PacketFulfilled", 32), ("PacketRejected", 8), ("ConfigurationApplied", 1)] {
        assert!(stats.lines().any(|line| line.split_whitespace().collect::<Vec<_>>() == [kind, &count.to_string()]), "{kind}: {stats}");
    }

    // A corrupted frame: verify names it, inspect stops at it.
    let victim = frame_keys[frame_keys.len() / 2];
    let store = open_store(journal_dir.path());
    let mut value = store.raw_frame(victim).unwrap().unwrap();
    let middle = value.len() / 2;
    value[middle] ^= 0x01;
    store.put_raw_frame(victim, &value).unwrap();
    drop(store);
    let corrupt = failure(journal(&["verify", "--dir", dir]), 1);
    assert!(corrupt.contains(&format!("frame {victim} ")) && corrupt.contains("checksum mismatch"), "{corrupt}");
    let partial = journal(&["inspect", "--dir", dir, "--limit", "0"]);
    let printed = json_lines(&stdout(&partial));
    assert_eq!(seqs(&printed), (1..victim).collect::<Vec<_>>(), "everything before the bad frame, nothing after");
    let stopped = failure(partial, 1);
    assert!(stopped.contains(&format!("frame {victim} ")), "{stopped}");
    failure(journal(&["replay", "--dir", dir, "--projection", "balances"]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_retention_keeps_replay_and_verify_whole() {
    let journal_dir = tempfile::tempdir().unwrap();
    let archive_dir = tempfile::tempdir().unwrap();
    let extra = format!("snapshot_every = 10\nretention = \"archive\"\narchive_dir = {:?}", archive_dir.path().display().to_string());
    let node = start_in(journal_dir.path(), &extra).await;
    traffic(&node, 60).await;
    node.stop().await;
    let (dir, archive) = (journal_dir.path().to_str().unwrap(), archive_dir.path().to_str().unwrap());
    let before = digest_of(&success(journal(&["replay", "--dir", dir, "--projection", "balances"])));

    let store = open_store(journal_dir.path());
    let last_seq = store.last_seq().unwrap();
    let frame_count = store.frame_keys().unwrap().len() as u64;
    let snapshot_seqs = store.snapshot_seqs().unwrap();
    let report = retention::apply(&store, Retention::Archive, archive_dir.path(), Balances::check_snapshot).unwrap();
    assert!(report.frames_removed > 0, "{report:?}");
    assert_eq!(report.frames_archived, report.frames_removed);
    assert_eq!(report.cutoff_seq, Some(snapshot_seqs[0]));
    let first_live = store.frame_keys().unwrap()[0];
    assert!(first_live > 1 && first_live <= snapshot_seqs[0] + 1, "live journal starts at {first_live}, snapshots {snapshot_seqs:?}");
    assert_eq!(store.frame_keys().unwrap().len() as u64, frame_count - report.frames_removed);
    let files = retention::archive_files(archive_dir.path()).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1, report.archive_file.clone().unwrap());
    assert!(files[0].1.file_name().unwrap().to_str().unwrap() == "frames-00000000000000000001.m2mj");
    let again = retention::apply(&store, Retention::Archive, archive_dir.path(), Balances::check_snapshot).unwrap();
    assert_eq!((again.frames_archived, again.frames_removed), (0, 0), "nothing archived twice");
    drop(store);

    // Archive + live journal replay to the same state as before retention.
    let with_archive = success(journal(&["replay", "--dir", dir, "--archive", archive, "--projection", "balances"]));
    assert_eq!(digest_of(&with_archive), before, "{with_archive}");
    assert!(with_archive.contains(&format!("(seq 1..={last_seq})")), "{with_archive}");
    let from_snapshot = success(journal(&["replay", "--dir", dir, "--projection", "balances", "--from", &last_seq.to_string()]));
    assert_eq!(digest_of(&from_snapshot), before);
    let without_archive = failure(journal(&["replay", "--dir", dir, "--projection", "balances"]), 1);
    assert!(without_archive.contains("--archive"), "{without_archive}");
    let verified = success(journal(&["verify", "--dir", dir, "--archive", archive]));
    assert!(verified.contains(&format!("{last_seq} (seq 1..={last_seq})")), "{verified}");
    assert!(verified.contains(&format!("({} archived, ", report.frames_archived)), "{verified}");
    let live_only = success(journal(&["verify", "--dir", dir]));
    assert!(live_only.contains(&format!("seq {first_live}..={last_seq}")) && live_only.contains("note"), "{live_only}");
    let all = json_lines(&success(journal(&["inspect", "--dir", dir, "--archive", archive, "--limit", "0"])));
    assert_eq!(seqs(&all), (1..=last_seq).collect::<Vec<_>>());
    let stats = success(journal(&["stats", "--dir", dir, "--archive", archive]));
    assert!(stats.contains(&format!("events       {last_seq} (seq 1..={last_seq})")) && stats.contains("(1 file)"), "{stats}");

    // The node starts on the retained journal and continues it.
    let node = start_in(journal_dir.path(), &extra).await;
    traffic(&node, 5).await;
    node.stop().await;
    let store = open_store(journal_dir.path());
    let (stop_seq, stop_state) = store.latest_snapshot().unwrap().unwrap();
    drop(store);
    let after = success(journal(&["replay", "--dir", dir, "--archive", archive, "--projection", "balances"]));
    assert_eq!(digest_of(&after), hex::encode(Balances::from_snapshot(&stop_state).unwrap().digest()), "{after}");
    assert!(after.contains(&format!("state at     seq {stop_seq}")), "{after}");
    success(journal(&["verify", "--dir", dir, "--archive", archive]));

    // A damaged archive is reported, not skipped.
    let path = &retention::archive_files(archive_dir.path()).unwrap()[0].1;
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() - 7]).unwrap();
    let truncated = failure(journal(&["verify", "--dir", dir, "--archive", archive]), 1);
    assert!(truncated.contains("truncated") && truncated.contains(path.to_str().unwrap()), "{truncated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_applies_delete_retention_after_start() {
    let journal_dir = tempfile::tempdir().unwrap();
    let node = start_in(journal_dir.path(), "snapshot_every = 10").await;
    traffic(&node, 40).await;
    node.stop().await;
    assert_eq!(open_store(journal_dir.path()).frame_keys().unwrap()[0], 1);

    let node = start_in(journal_dir.path(), "snapshot_every = 10\nretention = \"delete\"").await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while node.journal.frame_keys().unwrap()[0] == 1 {
        assert!(tokio::time::Instant::now() < deadline, "retention did not run after start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    traffic(&node, 5).await;
    node.stop().await;
    let dir = journal_dir.path().to_str().unwrap();
    let store = open_store(journal_dir.path());
    let (stop_seq, stop_state) = store.latest_snapshot().unwrap().unwrap();
    drop(store);
    let verified = success(journal(&["verify", "--dir", dir]));
    assert!(verified.contains(": ok"), "{verified}");
    let replayed = success(journal(&["replay", "--dir", dir, "--projection", "balances", "--from", &stop_seq.to_string()]));
    assert_eq!(digest_of(&replayed), hex::encode(Balances::from_snapshot(&stop_state).unwrap().digest()));
    failure(journal(&["replay", "--dir", dir, "--projection", "balances"]), 1);
}

/// What a crash leaves on disk: a copy of the journal directory taken while the node runs
/// (written pages are in the copy; what sled still holds in memory is not).
fn crash_image(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from.join(".")).arg(to).status().expect("cp runs");
    assert!(status.success(), "copying {} failed", from.display());
}

/// The journal of a node that died: the tools recover what only the commit log held, say so,
/// and then read the whole journal, every Fulfill the sender saw included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_recover_frames_only_the_commit_log_holds_and_say_so() {
    let journal_dir = tempfile::tempdir().unwrap();
    let node = start_in(journal_dir.path(), "").await;
    traffic(&node, 40).await;
    let durable_seq = node.durable_seq();
    let image = tempfile::tempdir().unwrap();
    crash_image(journal_dir.path(), image.path());
    let dir = image.path().to_str().unwrap();

    let verified = success(journal(&["verify", "--dir", dir]));
    assert!(verified.contains("copied from the commit log into sled"), "{verified}");
    // The events every reply was released after are all there.
    let store = open_store(image.path());
    assert!(store.last_seq().unwrap() >= durable_seq, "journal ends before {durable_seq}");
    let fulfilled = store
        .entries_from(1)
        .filter_map(Result::ok)
        .filter(|entry| matches!(entry.event, Event::PacketFulfilled(_)))
        .count();
    assert_eq!(fulfilled, 32, "40 packets, every 5th rejected");
    drop(store);
    // Copied once: a second look finds nothing left to copy.
    let stats = success(journal(&["stats", "--dir", dir]));
    assert!(!stats.contains("commit log"), "{stats}");
    node.stop().await;
}
