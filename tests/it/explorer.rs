//! The Explorer against a real node (the binary, its own process and metrics) carrying traffic
//! from the real `m2m-loadgen`: every filter of `/api/events` against the whole journal read
//! page by page, cursor paging while events keep arriving, the packet story, bad parameters,
//! the token on every route and the WebSocket, and the UI in a real browser (Debian's
//! chromium driven by playwright-core; `scripts/explorer.sh install` sets both up).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{free_port, http_get_with_headers, run_with_timeout, two_children_config, Connector};

const TOKEN: &str = "explorer-test-token-0123456789";

struct Node {
    connector: Connector,
    explorer_port: u16,
    token: Option<&'static str>,
}

fn start(token: Option<&'static str>) -> Node {
    let explorer_port = free_port();
    let mut env = vec![
        ("EXPLORER_ENABLED".to_string(), "true".to_string()),
        ("EXPLORER_PORT".to_string(), explorer_port.to_string()),
    ];
    if let Some(token) = token {
        env.push(("EXPLORER_TOKEN".to_string(), token.to_string()));
    }
    let connector = Connector::start_with_env(two_children_config, &env);
    Node { connector, explorer_port, token }
}

impl Node {
    fn get(&self, path: &str) -> (u16, Value) {
        let bearer = self.token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer.iter().map(|value| ("Authorization", value.as_str())).collect();
        self.get_with(path, &headers)
    }

    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let response = http_get_with_headers(self.explorer_port, path, headers, Duration::from_secs(10))
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let body = serde_json::from_str(&response.body).unwrap_or(Value::String(response.body));
        (response.status, body)
    }

    fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Waits until the index has applied every durable event and nothing new arrives.
    fn wait_indexed(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Value::Null;
        loop {
            let health = self.ok("/api/health");
            if health["index_lag_events"] == 0 && health["index_position"] == last["index_position"] {
                // Caught up, the searchable and the applied positions are the same.
                assert_eq!(health["index_applied_position"], health["index_position"], "{health}");
                assert_eq!(health["index_applied_lag_events"], 0, "{health}");
                return;
            }
            let (applied, searchable) = (health["index_applied_position"].as_u64(), health["index_position"].as_u64());
            assert!(applied >= searchable, "the index cannot have published more than it applied: {health}");
            assert!(Instant::now() < deadline, "the index did not catch up: {health}");
            last = health;
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Every event the query selects, page by page (newest first).
    fn all(&self, query: &str, limit: usize) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let separator = if query.is_empty() { "" } else { "&" };
            let mut path = format!("/api/events?{query}{separator}limit={limit}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.ok(&path);
            events.extend(page["events"].as_array().expect("events").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return events,
            }
        }
        panic!("paging {query} did not end");
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.connector.btp_port)
    }
}

fn loadgen(node: &Node, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_m2m-loadgen"));
    command.args(["--url", &node.url()]).args(args);
    command
}

/// Fulfilled and rejected (F99 by the fulfiller) packets from alice to bob, with each Fulfill
/// logged, and packets to an address with no route (F02).
fn traffic(node: &Node, fulfilled_log: &Path) {
    let log = fulfilled_log.display().to_string();
    let both = ["--role", "both", "--window", "8", "--packets", "1500", "--seconds", "30", "--reject-share", "0.2", "--fulfilled-log", &log];
    let output = run_with_timeout(&mut loadgen(node, &both), Duration::from_secs(60));
    assert!(output.success(), "{}", output.describe("m2m-loadgen --role both"));
    let nowhere = ["--role", "sender", "--destination", "test.m2m.nobody", "--window", "4", "--packets", "120", "--seconds", "30"];
    let output = run_with_timeout(&mut loadgen(node, &nowhere), Duration::from_secs(60));
    assert!(output.status.is_some(), "{}", output.describe("m2m-loadgen to test.m2m.nobody"));
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|event| event["seq"].as_u64().expect("seq")).collect()
}

fn names(event: &Value, peer: &str) -> bool {
    ["from_peer", "to_peer", "peer"].iter().any(|field| event[*field] == peer)
}

#[test]
fn every_filter_selects_exactly_what_it_names() {
    let node = start(None);
    let work = tempfile::tempdir().unwrap();
    let fulfilled_log = work.path().join("fulfilled.log");
    traffic(&node, &fulfilled_log);
    node.wait_indexed();

    let all = node.all("", 1000);
    let top = all[0]["seq"].as_u64().unwrap();
    assert_eq!(seqs(&all), (1..=top).rev().collect::<Vec<_>>(), "the unfiltered pages hold every event once, newest first");
    let page = node.ok("/api/events?limit=1");
    assert_eq!(page["total"], top, "{page}");
    assert_eq!(page["total_is_estimate"], false);

    let rejected_f02 = all.iter().filter(|event| event["code"] == "F02").count();
    let rejected_f99 = all.iter().filter(|event| event["code"] == "F99").count();
    assert!(rejected_f02 >= 100 && rejected_f99 > 100, "traffic makes both codes: F02 {rejected_f02}, F99 {rejected_f99}");
    let fulfilled = all.iter().find(|event| event["type"] == "PacketFulfilled").expect("a Fulfill");
    let packet_id = fulfilled["packet_id"].as_u64().unwrap();
    let middle = all[all.len() / 2]["timestamp_ms"].as_i64().unwrap();
    let later = all[all.len() / 4]["timestamp_ms"].as_i64().unwrap();

    type Predicate = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(String, Predicate)> = vec![
        ("types=PacketRejected".into(), Box::new(|e: &Value| e["type"] == "PacketRejected")),
        ("types=PacketPrepared,PacketFulfilled".into(), Box::new(|e: &Value| e["type"] == "PacketPrepared" || e["type"] == "PacketFulfilled")),
        ("types=PeerConnected,ConfigurationApplied".into(), Box::new(|e: &Value| e["type"] == "PeerConnected" || e["type"] == "ConfigurationApplied")),
        ("code=F02".into(), Box::new(|e: &Value| e["code"] == "F02")),
        ("code=F99".into(), Box::new(|e: &Value| e["code"] == "F99")),
        ("code=F02,F99".into(), Box::new(|e: &Value| e["code"] == "F02" || e["code"] == "F99")),
        ("peer=bob".into(), Box::new(|e: &Value| names(e, "bob"))),
        ("peer=alice&direction=in".into(), Box::new(|e: &Value| e["from_peer"] == "alice")),
        ("peer=bob&direction=out".into(), Box::new(|e: &Value| e["to_peer"] == "bob")),
        ("peer=alice&code=F99".into(), Box::new(|e: &Value| names(e, "alice") && e["code"] == "F99")),
        (format!("packet={packet_id}"), Box::new(move |e: &Value| e["packet_id"] == packet_id)),
        ("destination=test.m2m.nobody".into(), Box::new(|e: &Value| e["destination"].as_str().is_some_and(|d| d.starts_with("test.m2m.nobody")))),
        (format!("since={middle}&until={later}"), Box::new(move |e: &Value| (middle..=later).contains(&e["timestamp_ms"].as_i64().unwrap()))),
        (format!("types=PacketFulfilled&since={middle}"), Box::new(move |e: &Value| e["type"] == "PacketFulfilled" && e["timestamp_ms"].as_i64().unwrap() >= middle)),
    ];
    for (query, predicate) in &cases {
        let expected: Vec<u64> = seqs(&all.iter().filter(|event| predicate(event)).cloned().collect::<Vec<_>>());
        assert!(!expected.is_empty(), "{query}: the traffic should give this filter something to find");
        for limit in [1000, 37] {
            let got = seqs(&node.all(query, limit));
            if got != expected {
                let missing: Vec<&u64> = expected.iter().filter(|seq| !got.contains(seq)).take(10).collect();
                let extra: Vec<&u64> = got.iter().filter(|seq| !expected.contains(seq)).take(10).collect();
                let shown: Vec<&Value> = all.iter().filter(|e| extra.iter().chain(&missing).any(|s| e["seq"] == **s)).take(4).collect();
                panic!("{query} (pages of {limit}): {} events, expected {}; missing {missing:?}, extra {extra:?}: {shown:?}", got.len(), expected.len());
            }
        }
        let first = node.ok(&format!("/api/events?{query}&limit=1"));
        if first["total_is_estimate"] == false {
            assert_eq!(first["total"], expected.len(), "{query}: an exact total");
        } else {
            assert!(first["total"].as_u64().unwrap() >= expected.len() as u64, "{query}: an estimate bounds the count from above");
        }
    }

    // The story of one packet, by id, by condition and by fulfillment.
    let log = std::fs::read_to_string(&fulfilled_log).unwrap();
    let (condition, fulfillment) = log.lines().nth(700).and_then(|line| line.split_once(' ')).expect("a logged Fulfill");
    for key in [condition, fulfillment] {
        let story = node.ok(&format!("/api/packets/{key}"));
        assert_eq!(story["outcome"]["type"], "fulfilled", "{story}");
        assert_eq!(story["outcome"]["fulfillment"], fulfillment);
        assert_eq!(story["prepared"]["condition"], condition);
        assert_eq!(story["prepared"]["from_peer"], "alice");
        assert_eq!(story["prepared"]["to_peer"], "bob");
        assert_eq!(story["decision"]["next_hop"], "bob");
        assert!(story["durations"]["total_ms"].as_i64().is_some_and(|ms| ms >= 0), "{story}");
        let by_id = node.ok(&format!("/api/packets/{}", story["packet_id"]));
        assert_eq!(by_id, story);
    }
    let f02 = all.iter().find(|event| event["code"] == "F02").unwrap();
    let story = node.ok(&format!("/api/packets/{}", f02["packet_id"]));
    assert_eq!(story["outcome"]["code"], "F02", "{story}");
    assert_eq!(story["decision"]["action"], "rejected");
    assert_eq!(story["decision"]["stage"], "routing");
    let (status, body) = node.get(&format!("/api/packets/{}", "ab".repeat(32)));
    assert_eq!(status, 404, "{body}");

    // Accounts, stats and /metrics tell the same story.
    let fulfilled_count = all.iter().filter(|event| event["type"] == "PacketFulfilled").count() as u64;
    let accounts = node.ok("/api/accounts");
    let alice = accounts["accounts"].as_array().unwrap().iter().find(|account| account["peer"] == "alice").unwrap();
    assert_eq!(alice["position"], fulfilled_count.to_string(), "alice pays 1 per fulfilled packet: {alice}");
    assert_eq!(alice["credit_limit"], 1_000_000_000u64);
    assert_eq!(alice["totals"]["incoming_fulfilled"], fulfilled_count);
    let stats = node.ok("/api/stats");
    assert_eq!(stats["since_start"]["fulfilled"], fulfilled_count, "{stats}");
    let metrics = node.connector.metrics();
    let metric = |status: &str| -> u64 {
        let samples = crate::support::metric_samples(&metrics, "ilp_packets_processed_total", &[("type", "prepare"), ("status", status)]);
        assert_eq!(samples.len(), 1, "one ilp_packets_processed_total series for {status}");
        samples[0].1 as u64
    };
    assert_eq!(metric("fulfilled"), fulfilled_count);
    assert_eq!(stats["since_start"]["rejected"], metric("rejected"));
    let peers = node.ok("/api/peers");
    let bob = peers["peers"].as_array().unwrap().iter().find(|peer| peer["peer"] == "bob").unwrap();
    assert_eq!(bob["address"], "test.m2m.bob");
    assert_eq!(bob["routes"][0]["prefix"], "test.m2m.bob");
    let routes = node.ok("/api/routes");
    assert_eq!(routes["routes"].as_array().unwrap().len(), 2, "{routes}");

    // The index is a projection: rebuilt offline from the journal, it answers the same.
    let mut node = node;
    node.connector.stop(Duration::from_secs(30));
    let journal = node.connector.dir().join("data/journal");
    let output = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_m2m-connector")).args(["journal", "replay", "--projection", "explorer", "--dir"]).arg(&journal),
        Duration::from_secs(60),
    );
    assert!(output.success(), "{}", output.describe("journal replay --projection explorer"));
    assert!(output.stdout.contains("projection   explorer"), "{}", output.stdout);
    node.connector.restart();
    node.wait_indexed();
    for query in ["code=F02,F99", "peer=bob&direction=out", "types=PacketRejected"] {
        let (_, predicate) = cases.iter().find(|(case, _)| case == query).expect("a case above");
        let expected = seqs(&all.iter().filter(|event| predicate(event)).cloned().collect::<Vec<_>>());
        let got: Vec<u64> = seqs(&node.all(query, 1000)).into_iter().filter(|seq| *seq <= top).collect();
        assert_eq!(got, expected, "{query} after the rebuild");
    }
}

#[test]
fn paging_while_events_keep_arriving_has_no_duplicates_or_gaps() {
    let node = start(None);
    let mut load = loadgen(&node, &["--role", "both", "--window", "4", "--seconds", "8", "--reject-share", "0.3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting m2m-loadgen");
    // The index runs at the lowest CPU priority: on a machine busy with other work it may start
    // late, so wait for it to have something to page through (enough that the walks below take
    // longer than its publishing interval) rather than for a fixed second.
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.ok("/api/health")["index_position"].as_u64().unwrap() < 3000 {
        assert!(Instant::now() < deadline, "the index applied under 3,000 events in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let walk = |query: &str| -> (Vec<u64>, u64) {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut top = 0;
        loop {
            let mut path = format!("/api/events?limit=50{query}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = node.ok(&path);
            let events = page["events"].as_array().unwrap();
            if cursor.is_none() {
                top = events.first().map_or(0, |event| event["seq"].as_u64().unwrap());
                // Let more events in before the next page (the index may be starved of CPU by
                // other processes, and publishes only every few hundred milliseconds).
                let deadline = Instant::now() + Duration::from_secs(30);
                while node.ok("/api/health")["index_position"].as_u64().unwrap() <= top + 100 {
                    assert!(Instant::now() < deadline, "no events arrived after the first page in 30 s");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            seen.extend(seqs(events));
            std::thread::sleep(Duration::from_millis(5));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return (seen, top),
            }
        }
    };
    let (unfiltered, top) = walk("");
    let (rejected, rejected_top) = walk("&types=PacketRejected");
    let arrived_meanwhile = node.ok("/api/health")["index_position"].as_u64().unwrap();
    let _ = load.wait();
    assert!(arrived_meanwhile > top + 100, "events kept arriving while paging ({top} → {arrived_meanwhile})");
    assert_eq!(unfiltered, (1..=top).rev().collect::<Vec<_>>(), "every event from the first page's top down, once");
    assert!(rejected.windows(2).all(|pair| pair[0] > pair[1]), "strictly newest first, no duplicates");
    node.wait_indexed();
    // The same filter asked again, once everything is in: the walk missed nothing below its top.
    let again: Vec<u64> = seqs(&node.all("types=PacketRejected", 1000)).into_iter().filter(|seq| *seq <= rejected_top).collect();
    assert_eq!(rejected, again);
    assert!(rejected.len() > 50, "the walk crossed several pages");
}

#[test]
fn bad_parameters_get_400_with_a_message_and_are_counted() {
    let node = start(None);
    let counted = |node: &Node| -> u64 {
        let labels = [("type", "explorer_request"), ("severity", "warning")];
        let samples = crate::support::metric_samples(&node.connector.metrics(), "connector_errors_total", &labels);
        assert_eq!(samples.len(), 1, "the counter");
        samples[0].1 as u64
    };
    let before = counted(&node);
    let cases = [
        ("/api/events?limit=0", "limit"),
        ("/api/events?limit=1001", "limit"),
        ("/api/events?limit=ten", "limit"),
        ("/api/events?types=PacketSent", "types"),
        ("/api/events?code=f02", "code"),
        ("/api/events?code=F0", "code"),
        ("/api/events?since=yesterday", "since"),
        ("/api/events?since=2026-12-05T10:00:00Z&until=2026-12-05T09:00:00Z", "since"),
        ("/api/events?direction=in", "direction"),
        ("/api/events?peer=alice&direction=sideways", "direction"),
        ("/api/events?cursor=abc", "cursor"),
        ("/api/events?packet=-1", "packet"),
        ("/api/events?colour=red", "colour"),
        ("/api/events?limit=5&limit=6", "limit"),
        ("/api/packets/not-a-packet", "packet id"),
        ("/ws?every=2s", "every"),
    ];
    for (path, named) in cases {
        let (status, body) = node.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"].as_str().unwrap_or_else(|| panic!("{path}: no error message in {body}"));
        assert!(message.contains(named), "{path}: the message names {named:?}: {message}");
    }
    assert_eq!(counted(&node), before + cases.len() as u64, "each refusal is counted");
    let (status, body) = node.get("/api/nothing-here");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn the_token_guards_every_route_and_no_secret_is_served() {
    let node = start(Some(TOKEN));
    let work = tempfile::tempdir().unwrap();
    traffic(&node, &work.path().join("fulfilled.log"));
    node.wait_indexed();
    let routes = ["/api/events", "/api/packets/1", "/api/accounts", "/api/peers", "/api/routes", "/api/stats", "/api/health", "/ws"];
    for route in routes {
        let (status, body) = node.get_with(route, &[]);
        assert_eq!(status, 401, "{route} without a token: {body}");
        let (status, _) = node.get_with(route, &[("Authorization", "Bearer explorer-test-token-wrong-guess")]);
        assert_eq!(status, 401, "{route} with a wrong token");
        let (status, _) = node.get_with(&format!("{route}?token=nope"), &[]);
        assert_eq!(status, 401, "{route} with a wrong ?token=");
        if route != "/ws" {
            let (status, body) = node.get(route);
            assert_eq!(status, 200, "{route} with the token: {body}");
            let text = body.to_string();
            for secret in [TOKEN, "alice-token", "bob-token"] {
                assert!(!text.contains(secret), "{route} shows a secret: {text}");
            }
        }
    }
    // The UI's files hold no data and are served without the token.
    let page = http_get_with_headers(node.explorer_port, "/", &[], Duration::from_secs(5)).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<div id=\"root\">"), "{}", page.body);

    // The WebSocket: ?token= lets a browser in; frames come at most 10 a second. (A second
    // after the index caught up, no frame of the earlier traffic is still being folded into the
    // 1 s stream, so both streams below start from the same event.)
    std::thread::sleep(Duration::from_millis(1200));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use futures_util::StreamExt;
        let url = format!("ws://127.0.0.1:{}/ws?token={TOKEN}", node.explorer_port);
        let refused = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", node.explorer_port)).await;
        assert!(refused.is_err(), "a WebSocket without the token is refused");
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.expect("the WebSocket with ?token=");
        let hello = socket.next().await.expect("a message").expect("readable");
        let hello: Value = serde_json::from_str(hello.to_text().unwrap()).unwrap();
        assert_eq!(hello["type"], "hello", "{hello}");
        // Beside it, the stream of a frame a second (what the UI takes).
        let (mut slow, _) = tokio_tungstenite::connect_async(format!("{url}&every=1s")).await.expect("the WebSocket with every=1s");
        let hello = slow.next().await.expect("a message").expect("readable");
        assert_eq!(serde_json::from_str::<Value>(hello.to_text().unwrap()).unwrap()["type"], "hello");
        let mut load = loadgen(&node, &["--role", "both", "--window", "16", "--seconds", "4"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let started = tokio::time::Instant::now();
        #[derive(Default)]
        struct Seen {
            frames: u32,
            sampled: usize,
            events: u64,
        }
        fn check(seen: &mut Seen, text: &str) {
            let frame: Value = serde_json::from_str(text).unwrap();
            assert_ne!(frame["type"], "skipped", "a client that reads keeps up");
            if frame["type"] != "frame" {
                return;
            }
            seen.frames += 1;
            let sample = frame["sample"].as_array().unwrap();
            assert!(sample.len() <= 64, "a bounded sample: {}", sample.len());
            let seqs: Vec<u64> = sample.iter().map(|event| event["seq"].as_u64().unwrap()).collect();
            assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "the sample in journal order: {seqs:?}");
            seen.sampled += sample.len();
            let events = frame["events"].as_u64().unwrap();
            assert!(events >= sample.len() as u64);
            seen.events += events;
        }
        let (mut fast_seen, mut slow_seen) = (Seen::default(), Seen::default());
        while started.elapsed() < Duration::from_secs(3) {
            tokio::select! {
                Some(Ok(message)) = socket.next() => if let Ok(text) = message.to_text() { check(&mut fast_seen, text) },
                Some(Ok(message)) = slow.next() => if let Ok(text) = message.to_text() { check(&mut slow_seen, text) },
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let (fast_frames, slow_frames) = (fast_seen.frames, slow_seen.frames);
        assert!(fast_frames >= 5, "frames arrive under load ({fast_frames})");
        assert!(f64::from(fast_frames) <= elapsed * 10.0 + 2.0, "at most 10 frames a second: {fast_frames} in {elapsed:.1} s");
        assert!(slow_frames >= 1, "every=1s: frames arrive under load ({slow_frames})");
        assert!(f64::from(slow_frames) <= elapsed + 1.0, "every=1s: at most one frame a second: {slow_frames} in {elapsed:.1} s");
        assert!(fast_seen.sampled > 0 && slow_seen.sampled > 0);
        // Once the traffic ends and the index has applied it, both streams have counted every
        // event once: the slow one folds the fast one's frames, it drops none.
        let _ = load.wait();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut quiet_since = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline && !(fast_seen.events == slow_seen.events && quiet_since.elapsed() > Duration::from_millis(2500)) {
            tokio::select! {
                Some(Ok(message)) = socket.next() => if let Ok(text) = message.to_text() { check(&mut fast_seen, text); quiet_since = tokio::time::Instant::now() },
                Some(Ok(message)) = slow.next() => if let Ok(text) = message.to_text() { check(&mut slow_seen, text) },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        assert!(fast_seen.events > 0);
        assert_eq!(slow_seen.events, fast_seen.events, "the 1 s stream counts what the 100 ms stream counts");
    });
}

/// A browser that stops reading (a frozen tab) while traffic flows: once its bounded buffers
/// fill and a frame waits 5 s, the node disconnects it and counts it in
/// `connector_errors_total{type="explorer_client_dropped"}`, and a healthy client beside it
/// keeps getting its frames, before and after.
#[test]
fn a_stuck_websocket_client_is_dropped_while_a_healthy_one_keeps_its_frames() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let node = start(None);
    let dropped = |node: &Node| -> u64 {
        let labels = [("type", "explorer_client_dropped"), ("severity", "warning")];
        let samples = crate::support::metric_samples(&node.connector.metrics(), "connector_errors_total", &labels);
        assert_eq!(samples.len(), 1, "the counter");
        samples[0].1 as u64
    };
    assert_eq!(dropped(&node), 0);
    let mut load = loadgen(&node, &["--role", "both", "--window", "16", "--seconds", "60"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();

    // The stuck client: a 4 KiB receive buffer, the upgrade, then it never reads again.
    let address: std::net::SocketAddr = format!("127.0.0.1:{}", node.explorer_port).parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&address.into(), Duration::from_secs(5)).unwrap();
    let mut stuck: std::net::TcpStream = socket.into();
    stuck.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stuck,
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(std::io::Read::read(&mut stuck, &mut byte).unwrap(), 1, "the upgrade's answer");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));

    // The healthy client, counting frames on its own thread.
    let frames = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let healthy = {
        let (frames, done) = (frames.clone(), done.clone());
        let url = format!("ws://127.0.0.1:{}/ws", node.explorer_port);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                use futures_util::StreamExt;
                let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.expect("the healthy WebSocket");
                while !done.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
                        Ok(Some(Ok(message))) => {
                            if message.to_text().is_ok_and(|text| text.contains("\"type\":\"frame\"")) {
                                frames.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(_) => panic!("the healthy client was disconnected"),
                        Err(_) => {}
                    }
                }
            });
        })
    };

    let deadline = Instant::now() + Duration::from_secs(45);
    while dropped(&node) == 0 {
        assert!(Instant::now() < deadline, "the stuck client was never dropped; health: {}", node.ok("/api/health"));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(node.ok("/api/health")["websocket_clients"], 1, "only the healthy client is left");
    let at_drop = frames.load(Ordering::Relaxed);
    assert!(at_drop >= 10, "the healthy client got frames while the other was stuck ({at_drop})");
    std::thread::sleep(Duration::from_secs(2));
    assert!(frames.load(Ordering::Relaxed) > at_drop, "and keeps getting them after the drop");
    done.store(true, Ordering::Relaxed);
    healthy.join().expect("the healthy client");
    let _ = load.kill();
    let _ = load.wait();

    // The stuck client finds its connection closed once it reads what was buffered: a bounded
    // amount (the two socket buffers and one frame), then the end.
    let mut buffered = 0usize;
    let mut chunk = [0u8; 65536];
    loop {
        match std::io::Read::read(&mut stuck, &mut chunk) {
            Ok(0) => break,
            Ok(read) => buffered += read,
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("the stuck client's connection is still open 10 s after it was dropped ({buffered} bytes read)")
            }
            Err(_) => break, // reset: closed
        }
        assert!(buffered < 8 << 20, "more than 8 MiB was buffered for a stuck client");
    }
    assert!(dropped(&node) == 1, "counted once");
}

/// The UI in Debian's chromium, driven by `explorer/e2e/explorer.e2e.mjs` (playwright-core).
/// Screenshots of each view go to `target/explorer-e2e/` (kept as CI artifacts).
#[test]
fn in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ui = root.join("explorer");
    assert!(
        ui.join("node_modules/playwright-core").is_dir() && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs playwright-core and Debian's chromium: run bash scripts/explorer.sh install"
    );
    let mut node = start(None);
    let work = tempfile::tempdir().unwrap();
    let fulfilled_log = work.path().join("fulfilled.log");
    traffic(&node, &fulfilled_log);
    node.wait_indexed();
    let out_dir: PathBuf = root.join("target/explorer-e2e");
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut script = Command::new("node")
        .arg(ui.join("e2e/explorer.e2e.mjs"))
        .current_dir(&ui)
        .env("EXPLORER_URL", format!("http://127.0.0.1:{}", node.explorer_port))
        .env("METRICS_URL", format!("http://127.0.0.1:{}/metrics", node.connector.health_port))
        .env("FULFILLED_LOG", &fulfilled_log)
        .env("OUT_DIR", &out_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting node explorer/e2e/explorer.e2e.mjs");
    let mut stdin = script.stdin.take().unwrap();
    let stdout = BufReader::new(script.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut background: Option<Child> = None;
    let mut finished = false;
    for line in stdout.lines() {
        let line = line.expect("reading the script's output");
        assert!(Instant::now() < deadline, "the browser test ran too long");
        let answer = match line.trim() {
            "COUNTERS_OK" => {
                let load = loadgen(&node, &["--role", "both", "--window", "2", "--seconds", "40", "--reject-share", "0.1"]);
                background = Some(quiet(load).spawn().expect("background m2m-loadgen"));
                "load"
            }
            "STOP_NODE" => {
                if let Some(mut load) = background.take() {
                    let _ = load.kill();
                    let _ = load.wait();
                }
                node.connector.stop(Duration::from_secs(40));
                "stopped"
            }
            "START_NODE" => {
                node.connector.restart();
                "started"
            }
            "OK" => {
                finished = true;
                break;
            }
            other => {
                eprintln!("e2e: {other}");
                continue;
            }
        };
        writeln!(stdin, "{answer}").expect("answering the script");
    }
    drop(stdin);
    let status = script.wait().expect("waiting for the script");
    if let Some(mut load) = background {
        let _ = load.kill();
        let _ = load.wait();
    }
    assert!(finished && status.success(), "the browser test failed ({status}); screenshots in {}", out_dir.display());
    for view in ["1-dashboard", "2-packets-detail", "3-accounts", "4-peers", "5-routes", "6-reconnected"] {
        assert!(out_dir.join(format!("{view}.png")).exists(), "screenshot {view}.png");
    }
}

fn quiet(mut command: Command) -> Command {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}
