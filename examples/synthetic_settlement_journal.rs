//! Writes a synthetic journal for measuring `audit settlements` (BENCHMARKS.md, "Auditing
//! settlement"): packets from alice (a child) to bob (a peer we pay), and every settlement
//! decision the ledger derives, appended as the forwarder would (claims signed for real), each
//! acknowledged at once.
//!
//!     cargo run --release --example synthetic_settlement_journal -- DIR EVENTS [THRESHOLD_PACKETS]
//!
//! then `m2m-connector audit settlements --dir DIR`.

use m2m_connector::journal::{
    ChannelChange, ChannelObserved, ClaimSent, ConfigurationApplied, Event, JournalEntry, PacketFulfilled, PacketPrepared,
    PeerSettlementTerms, PeerTerms, SettlementChainReady, SettlementCompleted, SettlementConfigured, SledStore, Store,
};
use m2m_connector::projections::balances::Balances;
use m2m_connector::projections::Projection;
use m2m_connector::settlement::claim::ClaimSigner;
use m2m_connector::settlement::evm::claim::LocalClaimSigner;
use m2m_connector::settlement::ledger::Decision;

const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const BOB: &str = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc";
const CHAIN: &str = "eip155:31337";
const CONTRACT: &str = "0x75537828f2ce51be7289709686a69cbfdbb714f1";
const CHANNEL: &str = "0x0cca5bd1f9dbf5d67619ef1368b22528bee99d629725b87c2386c0f4ff5e47fb";
const FRAME_EVENTS: usize = 4096;

struct Writer {
    store: SledStore,
    balances: Balances,
    frame: Vec<JournalEntry>,
    seq: u64,
    time_ms: i64,
}

impl Writer {
    fn append(&mut self, event: Event) {
        self.seq += 1;
        let entry = JournalEntry { seq: self.seq, timestamp_ms: self.time_ms, event };
        self.balances.apply(&entry);
        self.frame.push(entry);
        if self.frame.len() == FRAME_EVENTS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.frame.is_empty() {
            self.store.write_frame(&self.frame).expect("writing a frame");
            self.frame.clear();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(events)) = (args.get(1), args.get(2).and_then(|text| text.parse::<u64>().ok())) else {
        eprintln!("usage: synthetic_settlement_journal DIR EVENTS [THRESHOLD_PACKETS]");
        std::process::exit(2);
    };
    let threshold_packets: u64 = args.get(3).and_then(|text| text.parse().ok()).unwrap_or(1000);
    let signer = LocalClaimSigner::new(KEY.parse().unwrap());
    let account = signer.account().to_owned();
    let store = SledStore::open(std::path::Path::new(dir)).expect("opening the journal directory");
    let mut writer = Writer { store, balances: Balances::new(), frame: Vec::new(), seq: 0, time_ms: 1_800_000_000_000 };
    let peer = |id: &str, relation: &str| PeerTerms {
        peer: id.into(),
        relation: relation.into(),
        asset_code: "USD".into(),
        asset_scale: 6,
        max_packet_amount: None,
        credit_limit: u64::MAX,
        packets_per_second_max: None,
        throughput_per_second_max: None,
        settlement_threshold: None,
        settle_to: None,
    };
    writer.append(Event::ConfigurationApplied(ConfigurationApplied {
        node_address: "test.a".into(),
        asset_code: "USD".into(),
        asset_scale: 6,
        min_message_window_ms: 1000,
        max_hold_time_ms: 30_000,
        peers: vec![peer("alice", "child"), peer("bob", "peer")],
    }));
    let threshold = 100 * threshold_packets;
    writer.append(Event::SettlementConfigured(SettlementConfigured {
        chain: CHAIN.into(),
        registry: "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0".into(),
        token: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
        account: account.clone(),
        confirmations: 2,
        peers: vec![PeerSettlementTerms {
            peer: "bob".into(),
            address: BOB.into(),
            pays_peer: true,
            peer_pays: false,
            threshold,
            settle_to: 0,
            prepayment_allowance: 0,
            deposit_initial: u64::MAX,
            deposit_topup: 0,
            deposit_max: u64::MAX,
            settle_timeout_s: 86_400,
        }],
    }));
    writer.append(Event::SettlementChainReady(SettlementChainReady {
        chain: CHAIN.into(),
        contract: CONTRACT.into(),
        token: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
        token_decimals: 6,
    }));
    for (index, change) in [
        ChannelChange::Opened { participant1: BOB.into(), participant2: account.clone(), settle_timeout_s: 86_400 },
        ChannelChange::Deposit { participant: account.clone(), total: u128::from(u64::MAX) },
    ]
    .into_iter()
    .enumerate()
    {
        writer.append(Event::ChannelObserved(ChannelObserved {
            chain: CHAIN.into(),
            contract: CONTRACT.into(),
            channel_id: CHANNEL.into(),
            tx_hash: format!("0x{:064x}", index + 1),
            block_number: 10 + index as u64,
            log_index: 0,
            block_timestamp_s: 1_800_000_000,
            change,
        }));
    }
    let mut packet_id = 0u64;
    let started = std::time::Instant::now();
    while writer.seq < events {
        packet_id += 1;
        writer.time_ms += 1;
        writer.append(Event::PacketPrepared(PacketPrepared {
            packet_id,
            from_peer: "alice".into(),
            to_peer: "bob".into(),
            amount_in: 100,
            amount_out: 100,
            expires_at_in_ms: writer.time_ms + 30_000,
            expires_at_out_ms: writer.time_ms + 29_000,
            condition: [7; 32],
            destination: "test.b.bob".into(),
            rate: None,
        }));
        writer.append(Event::PacketFulfilled(PacketFulfilled { packet_id, fulfillment: [8; 32] }));
        // What the forwarder appends after a Fulfill: every decision due, then the payee's ack.
        while let Some(decision) = writer.balances.settlement().due("bob", writer.balances.position_of("bob")) {
            match decision {
                Decision::Trigger(triggered) => writer.append(Event::SettlementTriggered(triggered)),
                Decision::Claim { settlement_id, peer, amount, claim } => {
                    let claim = signer.sign(&claim).expect("signing");
                    writer.append(Event::ClaimSent(ClaimSent { settlement_id, peer: peer.clone(), amount, claim }));
                    writer.append(Event::SettlementCompleted(SettlementCompleted { settlement_id, peer }));
                }
                Decision::Correct(corrected) => writer.append(Event::SettlementCorrected(corrected)),
            }
        }
    }
    writer.flush();
    writer.store.flush().expect("flushing");
    eprintln!("wrote {} events ({} packets) to {dir} in {:.1} s", writer.seq, packet_id, started.elapsed().as_secs_f64());
}
