//! `m2m-connector demo`: the connector on an embedded configuration, plus two simulated peers
//! sending traffic through it over real BTP WebSockets, printing what happens.
//!
//! Alice (USD, scale 6) pays Bob (EUR, scale 6) through the connector at a static rate of 0.9.
//! Bob fulfills most packets and refuses some; Alice also sends a few packets that the
//! connector must refuse itself (no route, amount too large), so every path shows up.
//!
//! With anvil installed (`scripts/contracts.sh install`), the demo also starts a local chain,
//! deploys the payment-channel contracts, and the connector settles what it owes Bob: it opens
//! and funds a channel, and pays Bob with a signed claim each time it owes him 2 EUR. Bob checks
//! each claim's signature and prints it.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::btp::endpoint::{ClaimHandler, Endpoint, PrepareHandler};
use crate::settlement::evm::hex_address;
use crate::settlement::evm::local_chain::{self, LocalChain};
use crate::config::{self, Env};
use crate::ilp::error_code::ErrorCode;
use crate::ilp::packet::{FulfillBuilder, Packet, PrepareBuilder, RejectBuilder};
use crate::ilp::timestamp;
use crate::node::Node;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Stop after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
    /// Packets per second Alice sends.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// BTP port of the demo connector.
    #[arg(long, env = "BTP_PORT", default_value_t = 4000)]
    pub btp_port: u16,
    /// Health and metrics port of the demo connector.
    #[arg(long, env = "HEALTH_PORT", default_value_t = 8080)]
    pub health_port: u16,
    /// Port of the Explorer (the dashboard), on 127.0.0.1.
    #[arg(long, env = "EXPLORER_PORT", default_value_t = 5173)]
    pub explorer_port: u16,
    /// Also mirror the ledger into this TigerBeetle replica (host:port), e.g. one started with
    /// `scripts/tigerbeetle.sh start --port 3033`. Needs a build with `--features tigerbeetle`.
    /// Without it the demo runs on the journal-derived ledger alone.
    #[arg(long, value_name = "HOST:PORT")]
    pub tigerbeetle: Option<String>,
    /// Do not settle, even with anvil installed.
    #[arg(long)]
    pub no_settlement: bool,
}

/// Bob's settlement terms in the demo: paid each time the connector owes him 2 EUR.
const DEMO_SETTLEMENT: &str = r#"
[peers.settlement]
chain = "evm"
address = "PAYEE_ADDRESS"
threshold = 2000000
settle_to = 0
direction = "pay"
deposit_initial = 20000000
deposit_topup = 20000000
deposit_max = 200000000
settle_timeout_s = 60
"#;

/// The demo's configuration; ports are filled in from the arguments.
pub const DEMO_CONFIG: &str = r#"
[node]
id = "m2m-demo"
ilp_address = "test.m2m"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = BTP_PORT
health_port = HEALTH_PORT

[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-demo-token"
max_packet_amount = 1000000
credit_limit = 50000000

[[peers]]
id = "bob"
relation = "child"
asset_code = "EUR"
asset_scale = 6
incoming_token = "bob-demo-token"
credit_limit = 0

[[rates]]
from = "USD"
to = "EUR"
rate = "0.9"
"#;

/// The preimage both simulated peers derive from a packet's data, so Bob can fulfill
/// exactly what Alice prepared.
fn demo_fulfillment(data: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"m2m-demo-fulfillment");
    hasher.update(data);
    hasher.finalize().into()
}

pub fn main(args: DemoArgs) -> ExitCode {
    crate::process::init_logging("warn,m2m_connector=info");
    let runtime = match crate::process::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let chain = if args.no_settlement {
        println!("settlement: off (--no-settlement)");
        None
    } else {
        match runtime.block_on(LocalChain::start(1_000_000_000_000)) {
            Ok(chain) => {
                println!(
                    "settlement: on. anvil at {} (chain {}), TokenNetwork {}, token {}",
                    chain.url,
                    local_chain::CHAIN_ID,
                    hex_address(chain.deployment.token_network),
                    hex_address(chain.deployment.token)
                );
                Some(chain)
            }
            Err(why) => {
                println!("settlement: off ({why}); the demo runs without it");
                None
            }
        }
    };
    // A fresh journal per run, so the demo starts from zero balances every time.
    let run_dir = std::env::temp_dir().join(format!("m2m-demo-{}", std::process::id()));
    let journal_dir = run_dir.join("journal");
    let mut text = DEMO_CONFIG.replace("BTP_PORT", &args.btp_port.to_string()).replace("HEALTH_PORT", &args.health_port.to_string());
    let mut env: Vec<(&str, String)> = Vec::new();
    if let Some(chain) = &chain {
        text = text.replace("[[rates]]", &format!("{}\n[[rates]]", DEMO_SETTLEMENT.replace("PAYEE_ADDRESS", &payee_address())));
        env.extend(chain.node_env());
    }
    text += &format!("\n[journal]\ndir = {:?}\n", journal_dir.display().to_string());
    text += &format!("\n[explorer]\nport = {}\nbind_host = \"127.0.0.1\"\n", args.explorer_port);
    if let Some(replica) = &args.tigerbeetle {
        env.push(("TIGERBEETLE_REPLICAS", replica.clone()));
    }
    let env = Env::from_pairs(env);
    let loaded = match config::parse(&text, &env) {
        Ok(loaded) => loaded,
        Err(problems) => {
            eprintln!("the embedded demo configuration is invalid (a bug):\n{problems}");
            return ExitCode::FAILURE;
        }
    };
    let settling = chain.is_some();
    let status = runtime.block_on(async move {
        match run(loaded.config, &args, settling).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("demo failed: {error:#}");
                ExitCode::FAILURE
            }
        }
    });
    println!("journal of this run: {}", journal_dir.display());
    if settling {
        println!("audit its settlement decisions: m2m-connector audit settlements --dir {}", journal_dir.display());
    }
    drop(chain);
    status
}

fn payee_address() -> String {
    let signer: alloy::signers::local::PrivateKeySigner = local_chain::PAYEE_KEY.parse().expect("a key");
    hex_address(signer.address())
}

/// Bob as a payee: checks that each claim is signed by the connector's account and grows, and
/// prints it.
fn bob_claims() -> ClaimHandler {
    let connector: alloy::signers::local::PrivateKeySigner = local_chain::NODE_KEY.parse().expect("a key");
    let connector = hex_address(connector.address());
    let last = Arc::new(std::sync::Mutex::new((0u64, 0u128)));
    Arc::new(move |data: &[u8]| {
        let claim = crate::settlement::claim::decode(data).map_err(|error| error.to_string())?;
        let signer = crate::settlement::claim::recover_signer(&claim)?;
        if signer != connector {
            return Err(format!("signed by {signer}, not by the connector"));
        }
        let mut last = last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if claim.nonce < last.0 || claim.cumulative < last.1 {
            return Err("older than a claim already received".into());
        }
        let increase = claim.cumulative - last.1;
        if claim.nonce > last.0 {
            println!(
                "  ⛓ settlement → bob: claim #{} on channel {}…, {} EUR-µ in all (+{}), signature checked",
                claim.nonce,
                &claim.channel_id[..10],
                claim.cumulative,
                increase
            );
        }
        *last = (claim.nonce, claim.cumulative);
        Ok(())
    })
}

async fn run(config: crate::config::Config, args: &DemoArgs, settling: bool) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    let url = format!("ws://{}", node.btp_address);
    println!("connector test.m2m listening: BTP {url}, health and metrics http://{}/health, /metrics", node.health_address);
    if let Some(explorer) = node.explorer_address {
        println!("Explorer (dashboard): http://{explorer}/");
    }
    match &args.tigerbeetle {
        Some(replica) => println!("ledger: journal-derived balances, mirrored to TigerBeetle at {replica}"),
        None => println!("ledger: journal-derived balances (add --tigerbeetle HOST:PORT to mirror them into TigerBeetle)"),
    }
    println!("alice (USD) pays bob (EUR) at 0.9 EUR/USD; bob refuses about 1 packet in 10; Ctrl-C stops\n");

    let bob_handler: PrepareHandler = Arc::new(|prepare| {
        let refuse = prepare.data().first().is_some_and(|byte| byte % 10 == 0);
        if refuse {
            return RejectBuilder {
                code: ErrorCode::F99_APPLICATION_ERROR,
                triggered_by: "test.m2m.bob",
                message: "bob declines this one",
                data: &[],
            }
            .build()
            .expect("valid reject");
        }
        FulfillBuilder { fulfillment: demo_fulfillment(prepare.data()), data: b"thanks" }
            .build()
            .expect("valid fulfill")
    });
    let claims = settling.then(bob_claims);
    if settling {
        println!("the connector opens and funds a channel to bob, then pays him with a claim each time it owes him 2 EUR\n");
    }
    let _bob = Endpoint::connect_with_claims(&url, "bob", "bob-demo-token", Some(bob_handler), claims).await?;
    let alice = Arc::new(Endpoint::connect(&url, "alice", "alice-demo-token", None).await?);

    let started = Instant::now();
    let mut tally = Tally::default();
    let (results_tx, mut results) = tokio::sync::mpsc::channel::<Outcome>(1024);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut send_tick = tokio::time::interval(interval);
    let mut report_tick = tokio::time::interval(Duration::from_secs(1));
    report_tick.tick().await;
    let deadline = (args.seconds > 0).then(|| started + Duration::from_secs(args.seconds));
    let mut sequence = 0u64;
    loop {
        tokio::select! {
            _ = send_tick.tick() => {
                sequence += 1;
                spawn_payment(alice.clone(), sequence, results_tx.clone());
            }
            Some(outcome) = results.recv() => tally.record(outcome),
            _ = report_tick.tick() => {
                tally.print(started.elapsed());
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break;
                }
            }
            _ = crate::process::wait_for_signal() => break,
        }
    }
    println!("\n{}", balances_summary());
    node.stop().await;
    Ok(())
}

struct Outcome {
    sequence: u64,
    destination: String,
    amount: u64,
    result: Result<String, String>,
    latency: Duration,
}

fn spawn_payment(alice: Arc<Endpoint>, sequence: u64, results: tokio::sync::mpsc::Sender<Outcome>) {
    tokio::spawn(async move {
        let (destination, amount, data) = {
            let mut rng = rand::thread_rng();
            let data: [u8; 16] = rng.gen();
            let destination = match sequence % 20 {
                7 => "test.m2m.nobody.x".to_owned(),
                _ => format!("test.m2m.bob.invoice{sequence}"),
            };
            let amount = if sequence % 25 == 13 { 5_000_000 } else { rng.gen_range(1_000..=200_000) };
            (destination, amount, data)
        };
        let condition: [u8; 32] = Sha256::digest(demo_fulfillment(&data)).into();
        let prepare = PrepareBuilder {
            amount,
            expires_at_ms: timestamp::now_ms() + 10_000,
            execution_condition: condition,
            destination: &destination,
            data: &data,
        }
        .build()
        .expect("valid prepare");
        let sent_at = Instant::now();
        let reply = alice.send(&prepare, Duration::from_secs(15)).await;
        let result = match reply {
            Ok(bytes) => describe_reply(bytes),
            Err(error) => Err(format!("link error: {error}")),
        };
        let _ = results.send(Outcome { sequence, destination, amount, result, latency: sent_at.elapsed() }).await;
    });
}

fn describe_reply(bytes: Bytes) -> Result<String, String> {
    match Packet::parse(bytes) {
        Ok(Packet::Fulfill(_)) => Ok("fulfilled".into()),
        Ok(Packet::Reject(reject)) => Err(format!(
            "{} by {}: {}",
            reject.code(),
            reject.triggered_by().unwrap_or("?"),
            reject.message_lossy()
        )),
        Ok(Packet::Prepare(_)) | Err(_) => Err("unreadable reply".into()),
    }
}

#[derive(Default)]
struct Tally {
    sent: u64,
    fulfilled: u64,
    fulfilled_amount: u64,
    rejected: BTreeMap<String, u64>,
    latencies_us: Vec<u64>,
}

/// Packets printed one by one before the demo switches to per-second summaries.
const PACKETS_SHOWN_MAX: u64 = 12;

impl Tally {
    fn record(&mut self, outcome: Outcome) {
        self.sent += 1;
        self.latencies_us.push(outcome.latency.as_micros() as u64);
        match &outcome.result {
            Ok(_) => {
                self.fulfilled += 1;
                self.fulfilled_amount += outcome.amount;
            }
            Err(reason) => *self.rejected.entry(reason.chars().take(3).collect()).or_default() += 1,
        }
        if outcome.sequence <= PACKETS_SHOWN_MAX {
            let verdict = match &outcome.result {
                Ok(text) => text.clone(),
                Err(text) => format!("rejected {text}"),
            };
            println!(
                "  #{:<3} {:>9} USD-µ → {:<28} {} ({} µs)",
                outcome.sequence,
                outcome.amount,
                outcome.destination,
                verdict,
                outcome.latency.as_micros()
            );
        }
    }

    fn print(&mut self, elapsed: Duration) {
        self.latencies_us.sort_unstable();
        let p50 = percentile(&self.latencies_us, 0.50);
        let p99 = percentile(&self.latencies_us, 0.99);
        let rejected: Vec<String> = self.rejected.iter().map(|(code, count)| format!("{code}×{count}")).collect();
        println!(
            "[{:>4}s] answered {:>5}  fulfilled {:>5} ({} USD-µ)  rejected [{}]  latency p50 {} µs p99 {} µs",
            elapsed.as_secs(),
            self.sent,
            self.fulfilled,
            self.fulfilled_amount,
            rejected.join(" "),
            p50,
            p99
        );
    }
}

fn percentile(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[rank]
}

fn balances_summary() -> String {
    let rendered = crate::metrics::global().render();
    let lines: Vec<&str> = rendered.lines().filter(|line| line.starts_with("account_balance_units{")).collect();
    let settlement: Vec<&str> = rendered
        .lines()
        .filter(|line| {
            ["settlements_executed_total{method=\"evm\"", "claims_sent_total ", "payment_channels_funded_total "]
                .iter()
                .any(|prefix| line.starts_with(prefix))
        })
        .collect();
    format!(
        "connector's positions (what each peer owes us, in its units):\n  {}\nsettlement:\n  {}",
        lines.join("\n  "),
        settlement.join("\n  ")
    )
}
