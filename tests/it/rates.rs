//! Live exchange rates (issue 13) on a real node process: alice pays in USD, bob is paid in
//! EUR, and the rate between them comes from a feed, a file another process writes or an HTTP
//! endpoint. A STREAM payment (the JavaScript reference) converts at the feed's rate; a feed
//! that falls silent past its max age gets packets refused with T00 and counted; a fresh
//! quote lets them through again.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use m2m_connector::btp::endpoint::Endpoint;
use m2m_connector::ilp::error_code::ErrorCode;
use m2m_connector::ilp::packet::Packet;

use crate::forwarding::prepare;
use crate::support::{metric_sum, Connector};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(btp_port: u16, health_port: u16, feed: &str) -> String {
    format!(
        r#"
[node]
id = "fx"
ilp_address = "test.fx"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = {btp_port}
health_port = {health_port}
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
id = "bob"
relation = "child"
asset_code = "EUR"
asset_scale = 6
incoming_token = "bob-token"
credit_limit = 0

[[rate_feeds]]
{feed}
"#
    )
}

fn write_rates(path: &Path, rate: &str) {
    let body = format!(r#"{{"rates": [{{"from": "USD", "to": "EUR", "rate": "{rate}"}}]}}"#);
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, body).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Keeps the feed file fresh (rewritten every 200 ms) until the returned flag is cleared.
fn keep_writing(path: PathBuf, rate: &'static str) -> Arc<AtomicBool> {
    let running = Arc::new(AtomicBool::new(true));
    let flag = running.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            write_rates(&path, rate);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    running
}

/// alice pays `amount` to bob; the reply's code, or None for a Fulfill.
async fn pay(alice: &Endpoint, amount: u64) -> Result<(), (ErrorCode, String)> {
    let reply = alice.send(&prepare(amount, "test.fx.bob.invoice", b"fx", 10_000), TIMEOUT).await.expect("a reply");
    match Packet::parse(reply).unwrap() {
        Packet::Fulfill(_) => Ok(()),
        Packet::Reject(reject) => Err((reject.code(), reject.message_lossy().into_owned())),
        Packet::Prepare(_) => panic!("a Prepare as a reply"),
    }
}

/// Waits until alice's payments get `wanted` (None: fulfilled).
async fn wait_for(alice: &Endpoint, wanted: Option<ErrorCode>, what: &str) -> Option<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let outcome = pay(alice, 1_000).await;
        match (&outcome, wanted) {
            (Ok(()), None) => return None,
            (Err((code, message)), Some(expected)) if *code == expected => return Some(message.clone()),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{what}: still {outcome:?} after {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_feed_converts_a_stream_payment_and_a_silent_feed_is_refused_until_it_speaks() {
    crate::interop::require_js_stack();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rates.json");
    write_rates(&path, "0.5");
    let feed = format!("kind = \"file\"\npath = {:?}\npoll_interval_ms = 100\nmax_age_ms = 1500\n", path.display().to_string());
    let node = Connector::start_with(|btp, health| config(btp, health, &feed));
    let writing = keep_writing(path.clone(), "0.5");

    // A STREAM payment of 100000 USD units reaches bob as 50000 EUR units.
    let port = node.btp_port.to_string();
    let output = crate::interop::node_script(
        "stream_payment.js",
        &["--btp-port", &port, "--address", "test.fx", "--amount", "100000", "--receiver-asset", "EUR", "--expect-received", "50000"],
    );
    crate::interop::expect_script_success(&output, "stream_payment.js (USD to EUR at the feed's rate)");

    // The writer stops: once the last quote is 1.5 s old, packets are refused, and counted.
    let url = format!("ws://127.0.0.1:{}", node.btp_port);
    let alice = Endpoint::connect(&url, "alice", "alice-token", None).await.unwrap();
    let bob = Endpoint::connect(&url, "bob", "bob-token", Some(crate::routing::fulfiller())).await.unwrap();
    wait_for(&alice, None, "payments at the feed's rate").await;
    writing.store(false, Ordering::Relaxed);
    let message = wait_for(&alice, Some(ErrorCode::T00_INTERNAL_ERROR), "a stale rate refused").await.unwrap();
    assert!(message.contains("stale"), "{message}");
    let metrics = node.metrics();
    assert!(metric_sum(&metrics, "rate_rejects_total", &[("from", "USD"), ("to", "EUR"), ("reason", "stale")]) >= 1.0, "{metrics}");

    // The feed speaks again: packets flow.
    let writing = keep_writing(path.clone(), "0.5");
    wait_for(&alice, None, "payments after the feed recovered").await;
    writing.store(false, Ordering::Relaxed);
    drop((alice, bob));
}

/// A tiny HTTP server answering every GET with the current body, or 503 when there is none.
fn serve_feed(body: Arc<Mutex<Option<String>>>, stop: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let response = match body.lock().unwrap().clone() {
                Some(body) => format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()),
                None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_feed_sets_the_rate_and_a_failing_one_goes_stale() {
    let body = Arc::new(Mutex::new(Some(r#"{"rates": [{"from": "EUR", "to": "USD", "rate": 2}]}"#.to_string())));
    let stop = Arc::new(AtomicBool::new(false));
    let feed_port = serve_feed(body.clone(), stop.clone());
    let feed = format!("kind = \"http\"\nurl = \"http://127.0.0.1:{feed_port}/rates\"\npoll_interval_ms = 100\nmax_age_ms = 1000\n");
    let node = Connector::start_with(|btp, health| config(btp, health, &feed));
    let url = format!("ws://127.0.0.1:{}", node.btp_port);
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    let handler: m2m_connector::btp::endpoint::PrepareHandler = Arc::new(move |prepare| {
        seen.lock().unwrap().push(prepare.amount());
        (crate::routing::fulfiller())(prepare)
    });
    let alice = Endpoint::connect(&url, "alice", "alice-token", None).await.unwrap();
    let _bob = Endpoint::connect(&url, "bob", "bob-token", Some(handler)).await.unwrap();
    // EUR→USD 2 quoted: USD→EUR is its inverse, 0.5.
    wait_for(&alice, None, "payments at the HTTP feed's rate").await;
    assert_eq!(received.lock().unwrap().last(), Some(&500));
    // The feed answers 503 from now on: its last quote goes stale.
    *body.lock().unwrap() = None;
    wait_for(&alice, Some(ErrorCode::T00_INTERNAL_ERROR), "a stale HTTP rate refused").await;
    let metrics = node.metrics();
    assert!(metric_sum(&metrics, "rate_feed_reads_total", &[("outcome", "error")]) >= 1.0, "{metrics}");
    *body.lock().unwrap() = Some(r#"{"rates": [{"from": "USD", "to": "EUR", "rate": "0.25"}]}"#.to_string());
    wait_for(&alice, None, "payments after the HTTP feed recovered").await;
    assert_eq!(received.lock().unwrap().last(), Some(&250));
    stop.store(true, Ordering::Relaxed);
}
