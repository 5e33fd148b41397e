//! One peer must not be able to starve the others. Real processes on 127.0.0.1: the connector,
//! a load generator (alice pays bob, W=16) and a second load generator as carol, an
//! authenticated child that floods replies to requests never made.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{run_with_timeout, two_children_config, Connector};

fn with_carol(btp_port: u16, health_port: u16) -> String {
    let mut config = two_children_config(btp_port, health_port);
    config.push_str(
        r#"
[[peers]]
id = "carol"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "carol-token"
credit_limit = 0
"#,
    );
    config
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// carol sends Fulfills, Rejects and BTP Errors with random request ids as fast as the
/// connector reads them; every one is dropped by her own session (counted as
/// `unmatched_reply`, none reaching the forwarder's shared reply queue), and alice's packets,
/// sent meanwhile, are every one fulfilled.
#[test]
fn a_peer_flooding_made_up_replies_cannot_starve_another_peer() {
    let connector = Connector::start_with(with_carol);
    let url = format!("ws://127.0.0.1:{}", connector.btp_port);
    let loadgen = env!("CARGO_BIN_EXE_m2m-loadgen");
    let flood = Command::new(loadgen)
        .args(["--role", "flood-replies", "--username", "carol", "--url", &url, "--seconds", "6"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flood starts");
    std::thread::sleep(Duration::from_secs(1));
    let sender = run_with_timeout(
        Command::new(loadgen).args([
            "--role",
            "both",
            "--window",
            "16",
            "--seconds",
            "3",
            "--expiry-ms",
            "10000",
            "--expect-all-fulfilled",
            "--url",
            &url,
        ]),
        Duration::from_secs(60),
    );
    assert!(sender.success(), "{}", sender.describe("alice's run beside the flood"));
    let report: serde_json::Value = serde_json::from_str(sender.stdout.trim()).expect("the sender's JSON line");
    assert!(report["fulfilled"].as_u64().unwrap() > 1000, "alice got too little through: {report}");

    let flood = flood.wait_with_output().expect("the flood ends");
    let stdout = String::from_utf8_lossy(&flood.stdout);
    assert!(flood.status.success(), "the flood failed: {stdout} {}", String::from_utf8_lossy(&flood.stderr));
    let flooded: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the flood's JSON line");
    let frames = flooded["frames"].as_u64().unwrap();
    assert!(frames > 100_000, "the flood sent only {frames} frames");

    // Every frame the flood wrote is read and dropped at carol's session.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut unmatched, mut late);
    loop {
        let metrics = connector.metrics();
        unmatched = metric(&metrics, "btp_frames_dropped_total{reason=\"unmatched_reply\"}");
        late = metric(&metrics, "btp_frames_dropped_total{reason=\"unexpected_response\"}");
        if unmatched as u64 >= frames || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(unmatched as u64, frames, "made-up replies dropped at the session");
    assert_eq!(late, 0.0, "no made-up reply reached the forwarder");
}

/// Raises this process's open files limit to the hard one (the test holds ~3,000 sockets).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain calls with a pointer to a local, initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A TCP connection to the connector from `source` (a loopback address), holding still.
fn idle_socket(source: std::net::Ipv4Addr, port: u16) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((source, 0)).into())?;
    socket.connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into(), Duration::from_secs(2))?;
    Ok(socket)
}

/// Authenticates as `username` from `source`; how long it took, or why it was refused.
async fn authenticate_from(source: std::net::Ipv4Addr, port: u16, username: &str) -> Result<Duration, String> {
    use futures_util::{SinkExt, StreamExt};
    use m2m_connector::btp::packet::BtpPacket;
    use tokio_tungstenite::tungstenite::Message;
    let started = Instant::now();
    let socket = tokio::net::TcpSocket::new_v4().map_err(|error| error.to_string())?;
    socket.bind((source, 0).into()).map_err(|error| error.to_string())?;
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await.map_err(|error| error.to_string())?;
    let url = format!("ws://127.0.0.1:{port}");
    let (mut websocket, _) = tokio_tungstenite::client_async(url, stream).await.map_err(|error| error.to_string())?;
    let token = m2m_connector::config::Secret::new(format!("{username}-token"));
    let auth = m2m_connector::btp::client::auth_message(7, username, &token);
    websocket.send(Message::Binary(auth.encode())).await.map_err(|error| error.to_string())?;
    loop {
        match websocket.next().await {
            Some(Ok(Message::Binary(data))) => {
                return match BtpPacket::parse(data).map_err(|error| error.to_string())? {
                    BtpPacket::Response { request_id: 7, .. } => Ok(started.elapsed()),
                    other => Err(format!("refused: {other:?}")),
                };
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("closed during auth: {other:?}")),
        }
    }
}

/// One address (127.0.0.1) and 38 more (127.0.0.3–40) hold about 3,000 idle sockets that
/// never authenticate: more than the listener's per-address bound, and together more than
/// its global bound. A peer (carol) from 127.0.0.2 still authenticates within a second (the
/// oldest idle connections are closed for it), and alice's traffic to bob, authenticated before,
/// is all fulfilled. (carol, not bob: a session of bob's that answers no Prepare would take a
/// share of the packets for bob and reject them T01 when it closes, which is right.)
#[test]
fn idle_sockets_from_some_addresses_cannot_keep_a_peer_from_authenticating() {
    raise_open_files_limit();
    let connector = Connector::start_with(with_carol);
    let port = connector.btp_port;
    let url = format!("ws://127.0.0.1:{port}");
    let loadgen = env!("CARGO_BIN_EXE_m2m-loadgen");
    let traffic = Command::new(loadgen)
        .args(["--role", "both", "--window", "16", "--seconds", "8", "--expiry-ms", "10000", "--expect-all-fulfilled", "--url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the load generator starts");
    std::thread::sleep(Duration::from_secs(1));

    let mut idle = Vec::new();
    // 127.0.0.1 (alice's own address) tries 600; 127.0.0.3–40 each stay within the per-address
    // bound (64), and together pass the global one (1,024) quickly.
    let sources = std::iter::once((std::net::Ipv4Addr::new(127, 0, 0, 1), 600))
        .chain((3..=40).map(|last| (std::net::Ipv4Addr::new(127, 0, 0, last), 64)));
    for (source, count) in sources {
        for _ in 0..count {
            // The connector closes those beyond its bounds; a refused connect is fine too.
            if let Ok(socket) = idle_socket(source, port) {
                idle.push(socket);
            }
        }
    }
    assert!(idle.len() >= 2500, "only {} idle sockets connected", idle.len());
    std::thread::sleep(Duration::from_millis(300));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for _ in 0..3 {
        let took = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), authenticate_from([127, 0, 0, 2].into(), port, "carol")).await })
            .expect("auth answered within 5 s")
            .expect("carol authenticates from 127.0.0.2");
        assert!(took < Duration::from_secs(1), "carol took {took:?} to authenticate");
    }

    let traffic = traffic.wait_with_output().expect("the load generator ends");
    assert!(
        traffic.status.success(),
        "alice's traffic was affected: {} {}",
        String::from_utf8_lossy(&traffic.stdout),
        String::from_utf8_lossy(&traffic.stderr)
    );
    let metrics = connector.metrics();
    let source_limit = metric(&metrics, "btp_connections_refused_total{reason=\"source_limit\"}");
    let evicted = metric(&metrics, "btp_connections_refused_total{reason=\"evicted\"}");
    eprintln!("idle sockets {}, refused per address {source_limit}, evicted {evicted}", idle.len());
    assert!(source_limit >= 400.0, "per-address refusals: {source_limit}");
    // Past half the global bound the auth deadline is 2 s, so the earliest idle sockets are
    // already closed by the time the last connect; the bound is still reached, and the oldest
    // give way to the newest.
    assert!(evicted >= 1.0, "evictions: {evicted}");
    drop(idle);
}

/// `max_sessions_per_peer = 2`: a third session for alice is refused at auth with a BTP error
/// naming the setting, and counted; once one closes, alice can connect again.
#[test]
fn a_peer_gets_at_most_max_sessions_per_peer_sessions() {
    let connector = Connector::start_with(|btp, health| {
        two_children_config(btp, health).replacen("[explorer]", "max_sessions_per_peer = 2\n\n[explorer]", 1)
    });
    let url = url::Url::parse(&format!("ws://127.0.0.1:{}", connector.btp_port)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let websocket = m2m_connector::btp::server::websocket_config(1 << 16);
        let token = m2m_connector::config::Secret::new("alice-token");
        let connect = || m2m_connector::btp::client::connect(&url, "alice", &token, websocket);
        let first = connect().await.expect("first session");
        let _second = connect().await.expect("second session");
        let third = connect().await.expect_err("a third session is refused");
        assert!(third.to_string().contains("max_sessions_per_peer"), "{third}");
        drop(first);
        // The first session's end is noticed by the server shortly after the socket closes.
        let mut again = Err(third);
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            again = connect().await;
            if again.is_ok() {
                break;
            }
        }
        again.expect("a session again once one closed");
    });
    let refused = metric(&connector.metrics(), "btp_connections_refused_total{reason=\"session_limit\"}");
    assert!(refused >= 1.0, "session_limit refusals: {refused}");
}
