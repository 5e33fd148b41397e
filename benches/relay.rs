//! A loopback relay through the real pipeline: a node started in-process on 127.0.0.1 (BTP
//! sessions, forwarder, durable journal on a temp dir, balances projection), a sender and a
//! fulfiller as BTP endpoints. One iteration is one Prepare forwarded, fulfilled, its
//! fulfillment checked, journaled and relayed back: the whole packet path, on real sockets.
//!
//! `relay/window_1` is the round-trip time of one packet alone (latency); `relay/window_64`
//! sends 64 at a time and reports the time per packet (throughput). The end-to-end load
//! generator (`m2m-loadgen`, BENCHMARKS.md) measures the same path from another process with
//! larger windows; this bench is the one to compare commits with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use m2m_connector::btp::endpoint::{Endpoint, PrepareHandler};
use m2m_connector::config::{self, Env};
use m2m_connector::ilp::packet::{FulfillBuilder, PrepareBuilder};
use m2m_connector::ilp::{self, timestamp};
use m2m_connector::node::Node;

const CONFIG: &str = r#"
[node]
id = "bench"
ilp_address = "test.bench"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = 0
health_port = 0
log_level = "warn"
[explorer]
enabled = false

[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
credit_limit = 1000000000000000
[[peers]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "bob-token"
credit_limit = 0
"#;

fn fulfillment_of(data: &[u8]) -> [u8; 32] {
    ilp::condition_of(&data.try_into().expect("32-byte data"))
}

struct Relay {
    runtime: tokio::runtime::Runtime,
    alice: Arc<Endpoint>,
    counter: std::sync::atomic::AtomicU64,
    _bob: Endpoint,
    _node: Node,
    _journal: tempfile::TempDir,
}

impl Relay {
    fn start() -> Relay {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let journal = tempfile::tempdir().unwrap();
        let text = format!("{CONFIG}\n[journal]\ndir = {:?}\n", journal.path().display().to_string());
        let loaded = config::parse(&text, &Env::default()).expect("bench config is valid");
        let (node, bob, alice) = runtime.block_on(async {
            let node = Node::start(loaded.config).await.expect("node starts");
            let url = format!("ws://{}", node.btp_address);
            // Bob fulfills with the preimage carried in the data (data = fulfillment's seed).
            let handler: PrepareHandler = Arc::new(|prepare| {
                FulfillBuilder { fulfillment: fulfillment_of(prepare.data()), data: &[] }.build().unwrap()
            });
            let bob = Endpoint::connect(&url, "bob", "bob-token", Some(handler)).await.unwrap();
            let alice = Endpoint::connect(&url, "alice", "alice-token", None).await.unwrap();
            (node, bob, alice)
        });
        Relay {
            runtime,
            alice: Arc::new(alice),
            counter: std::sync::atomic::AtomicU64::new(0),
            _bob: bob,
            _node: node,
            _journal: journal,
        }
    }

    /// A unique Prepare (ilp-connector-style caches and our own checks see distinct packets).
    fn prepare(&self) -> bytes::Bytes {
        let index = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&index.to_be_bytes());
        PrepareBuilder {
            amount: 10,
            expires_at_ms: timestamp::now_ms() + 30_000,
            execution_condition: ilp::condition_of(&fulfillment_of(&seed)),
            destination: "test.bench.bob.x",
            data: &seed,
        }
        .build()
        .unwrap()
    }

    /// Sends `count` packets, `window` at a time; every reply must be a Fulfill.
    fn run(&self, count: u64, window: usize) -> Duration {
        let packets: Vec<bytes::Bytes> = (0..count).map(|_| self.prepare()).collect();
        let alice = self.alice.clone();
        self.runtime.block_on(async move {
            let started = Instant::now();
            for chunk in packets.chunks(window) {
                let sends = chunk.iter().map(|packet| {
                    let alice = alice.clone();
                    let packet = packet.clone();
                    tokio::spawn(async move { alice.send(&packet, Duration::from_secs(10)).await })
                });
                for send in futures_util::future::join_all(sends).await {
                    let reply = send.unwrap().expect("reply");
                    assert_eq!(reply[0], 13, "every packet is fulfilled");
                }
            }
            started.elapsed()
        })
    }
}

fn relay(c: &mut Criterion) {
    let relay = Relay::start();
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(1));
    group.bench_function("window_1", |b| b.iter_custom(|iterations| relay.run(iterations, 1)));
    group.bench_function("window_64", |b| b.iter_custom(|iterations| relay.run(iterations, 64)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = relay
}
criterion_main!(benches);
