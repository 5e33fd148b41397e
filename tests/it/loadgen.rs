//! The load generator against our connector, started in-process on 127.0.0.1: the smoke that
//! CI runs (`--role both`, everything fulfilled, nothing lost), the binary's JSON line and exit
//! codes, and a run that must not count as all fulfilled. Counts and times are small: these
//! check correctness, not speed (speed is measured by `scripts/loadgen-demo.sh`).

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use m2m_connector::config::{self, Env};
use m2m_connector::loadgen::{self, Args, EXIT_EXPECTATION_FAILED};
use m2m_connector::node::Node;
use tokio::sync::watch;

use crate::support::run_with_timeout;

/// The node, and the temporary directory its journal lives in (deleted when dropped).
async fn start_node() -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let journal = dir.path().join("journal").display().to_string();
    // alice and bob are children in one asset (ports 0: any free one); at amount 1 per packet,
    // alice's credit covers every run here many times.
    let config = crate::support::two_children_config(0, 0);
    let text = format!("{config}\n[journal]\ndir = {journal:?}\n");
    let loaded = config::parse(&text, &Env::default()).expect("test config is valid");
    (Node::start(loaded.config).await.expect("node starts"), dir)
}

fn args(node: &Node, extra: &[&str]) -> Args {
    let url = format!("ws://{}", node.btp_address);
    let mut argv = vec!["m2m-loadgen", "--url", &url];
    argv.extend_from_slice(extra);
    Args::try_parse_from(argv).expect("valid arguments")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_roles_fulfill_every_packet_and_lose_none() {
    let (node, _journal_dir) = start_node().await;
    let args = args(
        &node,
        &[
            "--role",
            "both",
            "--window",
            "16",
            "--packets",
            "2000",
            "--seconds",
            "20",
            "--expiry-ms",
            "5000",
        ],
    );
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = tokio::time::timeout(Duration::from_secs(30), loadgen::run(&args, stop_rx))
        .await
        .expect("the run ends within its bounds")
        .expect("both roles connect");
    let line = outcome.json_line();
    outcome
        .check_all_fulfilled()
        .unwrap_or_else(|reason| panic!("{reason}\n{line}"));
    let sender = outcome.sender.as_ref().expect("a sender report");
    assert_eq!(
        (sender.sent, sender.fulfilled, sender.timeouts),
        (2000, 2000, 0),
        "{line}"
    );
    assert!(
        sender.latency_us.len() == 2000 && sender.latency_us.max() > 0,
        "{line}"
    );
    let fulfiller = outcome.fulfiller.as_ref().expect("a fulfiller report");
    // The fulfiller also answered the probe(s) sent before the run.
    assert_eq!(fulfiller.fulfilled, 2000 + sender.probes, "{line}");
    assert_eq!(
        (
            fulfiller.rejected,
            fulfiller.foreign,
            fulfiller.error.as_deref()
        ),
        (0, 0, None),
        "{line}"
    );

    let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
    assert_eq!(json["role"], "both");
    assert_eq!(json["sent"], 2000);
    assert_eq!(json["window"], 16);
    assert!(
        json["latency_us"]["p99"].as_u64().unwrap() >= json["latency_us"]["p50"].as_u64().unwrap()
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_share_is_counted_by_code_and_fails_the_expectation() {
    let (node, _journal_dir) = start_node().await;
    let args = args(
        &node,
        &[
            "--role",
            "both",
            "--window",
            "8",
            "--packets",
            "200",
            "--seconds",
            "20",
            "--reject-share",
            "0.1",
            "--expiry-ms",
            "5000",
        ],
    );
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = tokio::time::timeout(Duration::from_secs(30), loadgen::run(&args, stop_rx))
        .await
        .unwrap()
        .unwrap();
    let line = outcome.json_line();
    let sender = outcome.sender.as_ref().unwrap();
    // Every tenth Prepare the fulfiller sees is rejected (the probe is the first it sees).
    let rejected = sender.rejected.get("F99").copied().unwrap_or(0);
    assert!((19..=21).contains(&rejected), "{line}");
    assert_eq!(sender.fulfilled + rejected, 200, "{line}");
    assert_eq!((sender.timeouts, sender.fulfill_invalid), (0, 0), "{line}");
    let reason = outcome
        .check_all_fulfilled()
        .expect_err("rejects are not all fulfilled");
    assert!(reason.contains("F99"), "{reason}");
    node.stop().await;
}

/// The binary: one JSON line on stdout and exit 0 when all is fulfilled; exit 3 with a reason
/// when the destination has no route (every packet F02).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_one_json_line_and_exits_by_the_expectation() {
    let (node, _journal_dir) = start_node().await;
    let url = format!("ws://{}", node.btp_address);
    let binary = env!("CARGO_BIN_EXE_m2m-loadgen");
    let run = |extra: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new(binary);
            command
                .args([
                    "--url",
                    &url,
                    "--role",
                    "both",
                    "--seconds",
                    "10",
                    "--expiry-ms",
                    "5000",
                    "--expect-all-fulfilled",
                ])
                .args(extra);
            run_with_timeout(&mut command, Duration::from_secs(20))
        })
    };

    let good = run(&["--window", "4", "--packets", "300"]).await.unwrap();
    assert!(
        good.success(),
        "{}",
        good.describe("m2m-loadgen, all fulfilled")
    );
    let lines: Vec<&str> = good.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{}",
        good.describe("exactly one stdout line")
    );
    let json: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(
        (json["sent"].as_u64(), json["fulfilled"].as_u64()),
        (Some(300), Some(300))
    );

    let unroutable = run(&[
        "--window",
        "4",
        "--packets",
        "50",
        "--destination",
        "test.m2m.nobody",
    ])
    .await
    .unwrap();
    assert_eq!(
        unroutable.status.and_then(|status| status.code()),
        Some(i32::from(EXIT_EXPECTATION_FAILED)),
        "{}",
        unroutable.describe("m2m-loadgen, no route")
    );
    assert!(
        unroutable.stderr.contains("F02"),
        "{}",
        unroutable.describe("reason names the code")
    );
    let json: serde_json::Value =
        serde_json::from_str(unroutable.stdout.trim()).expect("JSON even when failing");
    assert_eq!(json["rejected"]["F02"], 50);

    let refused = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let mut command = Command::new(binary);
            command.args(["--url", &url, "--token", "wrong", "--packets", "10"]);
            run_with_timeout(&mut command, Duration::from_secs(20))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        refused.status.and_then(|status| status.code()),
        Some(1),
        "{}",
        refused.describe("bad token")
    );
    assert!(
        refused.stdout.is_empty(),
        "{}",
        refused.describe("no JSON when it never connected")
    );
    node.stop().await;
}

/// `--rate`: the sender never gets ahead of the pace (at most rate × seconds + 1 packets) and,
/// on an idle connector, keeps up with it; every packet is still fulfilled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_paces_the_sender() {
    let (node, _journal_dir) = start_node().await;
    let args = args(&node, &["--role", "both", "--window", "64", "--rate", "500", "--seconds", "2", "--expiry-ms", "5000"]);
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = tokio::time::timeout(Duration::from_secs(30), loadgen::run(&args, stop_rx))
        .await
        .expect("the run ends within its bounds")
        .expect("both roles connect");
    let json: serde_json::Value = serde_json::from_str(&outcome.json_line()).expect("JSON");
    let sent = json["sent"].as_u64().unwrap();
    assert!(sent <= 1001, "sent {sent} in 2 s at 500 a second: ahead of the pace");
    // Far below what the connector carries even on a busy machine: only a broken pacer (or a
    // stalled node) would fall this far behind.
    assert!(sent >= 500, "sent only {sent} in 2 s at 500 a second");
    assert_eq!(json["fulfilled"].as_u64(), Some(sent), "{json}");
    node.stop().await;
}
