//! Route exchange (CCP, issue 13) between real nodes over real sockets: three m2m nodes in a
//! line with no configured routes learn each other's addresses and children; a node that goes
//! away takes its routes with it and brings them back when it returns; a child that announces
//! what is not its own is refused and counted; the journal's route events replay to the table
//! the node published.

use std::sync::Arc;
use std::time::{Duration, Instant};

use m2m_connector::btp::endpoint::{Endpoint, PrepareHandler};
use m2m_connector::ilp::ccp::{Route, RouteUpdateRequest, RoutingTableId, UPDATE_DESTINATION};
use m2m_connector::ilp::error_code::ErrorCode;
use m2m_connector::ilp::packet::{FulfillBuilder, Packet, PrepareBuilder};
use m2m_connector::ilp::{self, timestamp};
use m2m_connector::journal::{Event, JournalEntry};
use m2m_connector::node::Node;
use m2m_connector::pipeline::routes::{RouteSource, Routes, RoutesView};

use crate::forwarding::{fulfillment_for, prepare, start, url};
use crate::support::free_port;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Fast route exchange for tests: updates every 300 ms, routes dropped 1.2 s after the last.
const ROUTING: &str = "[routing]\nbroadcast_interval_ms = 300\nroute_expiry_ms = 1200\n";

fn node_config(id: &str, btp_port: u16, peers: &str) -> String {
    format!(
        r#"
[node]
id = "{id}"
ilp_address = "test.{id}"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = {btp_port}
health_port = 0
[explorer]
enabled = false
{ROUTING}
{peers}
"#
    )
}

fn child(id: &str, extra: &str) -> String {
    format!(
        "[[peers]]\nid = \"{id}\"\nrelation = \"child\"\nasset_code = \"USD\"\nasset_scale = 6\nincoming_token = \"{id}-token\"\n\
         credit_limit = 1000000000\n{extra}\n"
    )
}

/// B in the middle: A and C dial it (presenting `a-to-b` and `c-to-b`); its child `kid` may
/// announce routes.
fn b_config(port: u16) -> String {
    let incoming = |id: &str, token: &str| {
        format!("[[peers]]\nid = \"{id}\"\nrelation = \"peer\"\nasset_code = \"USD\"\nasset_scale = 6\ncredit_limit = 1000000000\nincoming_token = \"{token}\"\n")
    };
    node_config("b", port, &(incoming("a", "a-to-b") + &incoming("c", "c-to-b") + &child("kid", "receive_routes = true")))
}

fn outer_config(id: &str, b_address: &str, child_id: &str) -> String {
    let link = format!(
        "[[peers]]\nid = \"b\"\nrelation = \"peer\"\nasset_code = \"USD\"\nasset_scale = 6\ncredit_limit = 1000000000\n\
         [peers.outgoing]\nurl = \"btp+ws://{b_address}\"\ntoken = \"{id}-to-b\"\n"
    );
    node_config(id, 0, &(child(child_id, "") + &link))
}

/// Fulfills every Prepare (the condition is made from the data, as `prepare` makes it).
pub(crate) fn fulfiller() -> PrepareHandler {
    Arc::new(|prepare| FulfillBuilder { fulfillment: fulfillment_for(prepare.data()), data: &[] }.build().unwrap())
}

fn route_of<'v>(view: &'v RoutesView, prefix: &str) -> Option<&'v m2m_connector::pipeline::routes::RouteRow> {
    view.routes.iter().find(|route| route.prefix == prefix)
}

/// Waits until `check` holds for the node's published routes; panics with them if it does not.
async fn wait_routes(node: &Node, what: &str, check: impl Fn(&RoutesView) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let view = node.routes();
        if check(&view) {
            return;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {TIMEOUT:?}; routes: {:#?}", view.routes);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pay(from: &Endpoint, destination: &str, data: &[u8]) -> Result<(), (ErrorCode, String)> {
    let reply = from.send(&prepare(1_000, destination, data, 10_000), TIMEOUT).await.expect("a reply");
    match Packet::parse(reply).expect("the reply parses") {
        Packet::Fulfill(_) => Ok(()),
        Packet::Reject(reject) => Err((reject.code(), reject.message_lossy().into_owned())),
        Packet::Prepare(_) => panic!("a Prepare as a reply"),
    }
}

async fn journal(node: &Node) -> Vec<JournalEntry> {
    assert!(node.wait_durable(TIMEOUT).await, "the journal caught up");
    node.journal.entries_from(1).collect::<Result<Vec<_>, _>>().expect("the journal reads back")
}

/// Rebuilds the table from the journal's last `RoutingConfigured` and the route events after it.
fn replay_routes(entries: &[JournalEntry]) -> Routes {
    let start = entries.iter().rposition(|entry| matches!(entry.event, Event::RoutingConfigured(_))).expect("a RoutingConfigured event");
    let Event::RoutingConfigured(configured) = &entries[start].event else { unreachable!() };
    let mut routes = Routes::new(configured, RoutingTableId::default(), entries[start].timestamp_ms);
    for entry in &entries[start + 1..] {
        routes.apply(&entry.event, entry.timestamp_ms);
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_in_a_line_learn_each_other_lose_the_middle_and_get_it_back() {
    let b_port = free_port();
    let b = start(&b_config(b_port)).await;
    let b_address = b.btp_address.to_string();
    let a = start(&outer_config("a", &b_address, "alice")).await;
    let c = start(&outer_config("c", &b_address, "carol")).await;
    let alice = Endpoint::connect(&url(&a), "alice", "alice-token", Some(fulfiller())).await.unwrap();
    let carol = Endpoint::connect(&url(&c), "carol", "carol-token", Some(fulfiller())).await.unwrap();

    // A learns B, C and C's child through B; C learns the same of A. No route was configured.
    for (node, far, far_child) in [(&a, "test.c", "test.c.carol"), (&c, "test.a", "test.a.alice")] {
        wait_routes(node, "the far node and its child learned through b", |view| {
            route_of(view, "test.b").is_some() && route_of(view, far).is_some() && route_of(view, far_child).is_some()
        })
        .await;
        let view = node.routes();
        let far_route = route_of(&view, far).unwrap();
        assert_eq!((far_route.peer.as_str(), far_route.source, far_route.path.clone()), ("b", RouteSource::Learned.label(), vec!["test.b".to_string(), far.to_string()]));
    }
    pay(&alice, "test.c.carol.invoice-1", b"across-the-line").await.expect("alice pays carol over learned routes");
    pay(&carol, "test.a.alice.invoice-2", b"and-back").await.expect("carol pays alice over learned routes");

    // B goes away: at once the next hop is gone (T01); once the routes expire, there is no
    // route at all (F02), and the withdrawal is journaled.
    let b_journal = b.stop().await;
    let (code, _) = pay(&alice, "test.c.carol.invoice-3", b"b-is-down").await.expect_err("no way to carol");
    assert!(code == ErrorCode::T01_PEER_UNREACHABLE || code == ErrorCode::F02_UNREACHABLE, "{code}");
    wait_routes(&a, "b's routes withdrawn after the route expiry", |view| route_of(view, "test.c").is_none() && route_of(view, "test.b").is_none()).await;
    let (code, _) = pay(&alice, "test.c.carol.invoice-4", b"still-down").await.expect_err("no route to carol");
    assert_eq!(code, ErrorCode::F02_UNREACHABLE);
    let entries = journal(&a).await;
    assert!(
        entries.iter().any(|entry| matches!(&entry.event, Event::RouteWithdrawn(w) if w.prefix == "test.c.carol" && w.reason.label() == "expired")),
        "the expiry is journaled"
    );

    // B comes back on the same port: A and C dial it again, and the routes return.
    let b = start(&b_config(b_port)).await;
    for (node, far_child) in [(&a, "test.c.carol"), (&c, "test.a.alice")] {
        wait_routes(node, "routes back after b restarted", |view| route_of(view, far_child).is_some()).await;
    }
    pay(&alice, "test.c.carol.invoice-5", b"b-is-back").await.expect("alice pays carol again");

    // The table a replay of A's journal rebuilds is the one A publishes.
    let entries = journal(&a).await;
    let replayed = replay_routes(&entries);
    let published = a.routes();
    let replayed_rows: Vec<(String, String, &str, Vec<String>)> =
        replayed.rows().into_iter().map(|row| (row.prefix, row.peer, row.source, row.path)).collect();
    let published_rows: Vec<(String, String, &str, Vec<String>)> =
        published.routes.iter().map(|row| (row.prefix.clone(), row.peer.clone(), row.source, row.path.clone())).collect();
    assert_eq!(replayed_rows, published_rows);

    // So does `journal routes` on the stopped node's journal, now and before the expiry.
    let expired_at = entries
        .iter()
        .find(|entry| matches!(&entry.event, Event::RouteWithdrawn(w) if w.prefix == "test.c.carol"))
        .map(|entry| entry.seq)
        .unwrap();
    drop((alice, carol, b_journal));
    let a_journal = a.stop().await;
    let dir = a_journal.path().display().to_string();
    let cli_rows = |at: Option<u64>| -> Vec<(String, String, String)> {
        let at_text = at.map(|seq| seq.to_string());
        let mut args = vec!["routes", "--dir", dir.as_str(), "--json"];
        if let Some(at) = at_text.as_deref() {
            args.extend(["--at", at]);
        }
        let text = crate::journal_cli::success(crate::journal_cli::journal(&args));
        let value: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
        value["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| (row["prefix"].as_str().unwrap().to_string(), row["peer"].as_str().unwrap().to_string(), row["source"].as_str().unwrap().to_string()))
            .collect()
    };
    let published: Vec<(String, String, String)> = published_rows.iter().map(|(prefix, peer, source, _)| (prefix.clone(), peer.clone(), source.to_string())).collect();
    assert_eq!(cli_rows(None), published);
    let before_expiry = cli_rows(Some(expired_at - 1));
    assert!(before_expiry.iter().any(|(prefix, peer, _)| prefix == "test.c.carol" && peer == "b"), "{before_expiry:?}");
    assert!(!cli_rows(Some(expired_at)).iter().any(|(prefix, _, _)| prefix == "test.c.carol"));
    c.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_may_announce_only_its_own_address_and_refusals_are_counted() {
    let b = start(&b_config(0)).await;
    let kid = Endpoint::connect(&url(&b), "kid", "kid-token", Some(ccp_answerer())).await.unwrap();
    let update = RouteUpdateRequest {
        routing_table_id: RoutingTableId([5; 16]),
        current_epoch_index: 3,
        from_epoch_index: 0,
        to_epoch_index: 3,
        hold_down_time_ms: 60_000,
        speaker: "test.b.kid".into(),
        new_routes: ["test.b.kid.sub", "test.a", "test.b.other"]
            .iter()
            .map(|prefix| Route { prefix: prefix.to_string(), path: vec!["test.b.kid".into()], auth: [0; 32], props: Vec::new() })
            .collect(),
        withdrawn_routes: Vec::new(),
    };
    let request = PrepareBuilder {
        amount: 0,
        expires_at_ms: timestamp::now_ms() + 10_000,
        execution_condition: ilp::PEER_PROTOCOL_CONDITION,
        destination: UPDATE_DESTINATION,
        data: &update.encode(),
    }
    .build()
    .unwrap();
    let reply = kid.send(&request, TIMEOUT).await.unwrap();
    assert!(matches!(Packet::parse(reply).unwrap(), Packet::Fulfill(_)), "the update is acknowledged");
    wait_routes(&b, "the child's own sub-prefix learned", |view| route_of(view, "test.b.kid.sub").is_some()).await;
    let view = b.routes();
    assert!(route_of(&view, "test.a").is_none() && route_of(&view, "test.b.other").is_none(), "{:#?}", view.routes);
    let metrics = m2m_connector::metrics::global().render();
    assert_eq!(crate::support::metric_sum(&metrics, "ccp_routes_refused_total", &[("peer", "kid"), ("reason", "not_the_childs")]), 2.0, "{metrics}");
    let learned: Vec<String> = journal(&b)
        .await
        .into_iter()
        .filter_map(|entry| match entry.event {
            Event::RouteLearned(learned) => Some(learned.prefix),
            _ => None,
        })
        .collect();
    assert_eq!(learned, ["test.b.kid.sub"]);

    // A malformed update is refused with F01 and changes nothing.
    let garbage = PrepareBuilder {
        amount: 0,
        expires_at_ms: timestamp::now_ms() + 10_000,
        execution_condition: ilp::PEER_PROTOCOL_CONDITION,
        destination: UPDATE_DESTINATION,
        data: &[0xff; 7],
    }
    .build()
    .unwrap();
    let reply = kid.send(&garbage, TIMEOUT).await.unwrap();
    match Packet::parse(reply).unwrap() {
        Packet::Reject(reject) => assert_eq!(reject.code(), ErrorCode::F01_INVALID_PACKET),
        other => panic!("expected F01, got {other:?}"),
    }
    assert_eq!(b.routes().routes.len(), view.routes.len());

    // A flood of updates (heartbeats here) is cut off with T05 past 20 a second.
    let mut heartbeat = update.clone();
    heartbeat.from_epoch_index = 3;
    heartbeat.new_routes.clear();
    let request = PrepareBuilder {
        amount: 0,
        expires_at_ms: timestamp::now_ms() + 10_000,
        execution_condition: ilp::PEER_PROTOCOL_CONDITION,
        destination: UPDATE_DESTINATION,
        data: &heartbeat.encode(),
    }
    .build()
    .unwrap();
    let started = Instant::now();
    let replies = futures_util::future::join_all((0..40).map(|_| kid.send(&request, TIMEOUT))).await;
    let elapsed = started.elapsed();
    let mut limited = 0;
    for reply in replies {
        if let Packet::Reject(reject) = Packet::parse(reply.unwrap()).unwrap() {
            assert_eq!(reject.code(), ErrorCode::T05_RATE_LIMITED, "{}", reject.message_lossy());
            limited += 1;
        }
    }
    // 20 at once, then 20 a second (the two messages above took up to 2): at least what the
    // time taken did not refill is refused, and never more than the burst leaves.
    let refilled = (elapsed.as_secs_f64() * 20.0).ceil() as i64;
    assert!(limited as i64 >= 20 - refilled && limited <= 22, "{limited} of 40 refused in {elapsed:?}");
    assert_eq!(b.routes().routes.len(), view.routes.len(), "heartbeats change nothing");
    drop(kid);
    b.stop().await;
}

/// A child that takes part in route exchange: it fulfills our route control request.
fn ccp_answerer() -> PrepareHandler {
    Arc::new(|prepare| {
        assert!(prepare.destination().starts_with("peer.route."), "only CCP reaches the child here: {}", prepare.destination());
        FulfillBuilder { fulfillment: ilp::PEER_PROTOCOL_FULFILLMENT, data: &[] }.build().unwrap()
    })
}

/// Our node with child `alice` and the peer `ilpc` (ilp-connector dials in), the Explorer on
/// `explorer_port` for `/api/routes`, and fast route exchange: a child gone 1.5 s is withdrawn.
fn ilp_connector_peer_config(btp_port: u16, health_port: u16, explorer_port: u16) -> String {
    format!(
        r#"
[node]
id = "m2m"
ilp_address = "test.m2m"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = {btp_port}
health_port = {health_port}
[explorer]
enabled = true
bind_host = "127.0.0.1"
port = {explorer_port}
[routing]
broadcast_interval_ms = 500
route_expiry_ms = 1500

[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
credit_limit = 1000000000

[[peers]]
id = "ilpc"
relation = "peer"
asset_code = "USD"
asset_scale = 6
incoming_token = "ilpc-token"
credit_limit = 1000000000
"#
    )
}

/// Against a live ilp-connector 23 (tests/interop/ccp_ilp_connector.js): each side's table
/// learns the other's routes with none configured, STREAM payments cross them both ways, and
/// a child gone (ours) or a connector gone (theirs) is withdrawn on the other side.
#[test]
fn interop_ilp_connector_learns_our_routes_and_we_learn_its() {
    crate::interop::require_js_stack();
    let explorer_port = free_port();
    let connector = crate::support::Connector::start_with(|btp, health| ilp_connector_peer_config(btp, health, explorer_port));
    let output = crate::interop::node_script(
        "ccp_ilp_connector.js",
        &["--btp-port", &connector.btp_port.to_string(), "--explorer-port", &explorer_port.to_string()],
    );
    crate::interop::expect_script_success(&output, "ccp_ilp_connector.js");
    // Every route event is journaled: the learning, and the withdrawal after ilp-connector left.
    let metrics = connector.metrics();
    assert!(crate::support::metric_sum(&metrics, "ccp_messages_total", &[("kind", "update"), ("direction", "received"), ("outcome", "ok")]) >= 1.0, "{metrics}");
    assert!(crate::support::metric_sum(&metrics, "ccp_messages_total", &[("kind", "update"), ("direction", "sent"), ("outcome", "ok")]) >= 1.0, "{metrics}");
}
