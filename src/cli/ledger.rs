//! `m2m-connector ledger reconcile`: does TigerBeetle agree with the journal?
//!
//! Replays the journal into [`Balances`] (the journal-derived positions the packet path uses)
//! and, through the same mapping the projection uses, learns each peer's TigerBeetle accounts.
//! Then it looks every account up and compares, per peer:
//!
//! - position: Σ (debits_posted − credits_posted) over the peer's accounts, with the journal's;
//! - reserved: Σ debits_pending (incoming legs in flight) with the journal's reservations;
//! - owed pending: Σ credits_pending (outgoing legs in flight) with the journal's packets in
//!   flight to the peer.
//!
//! Each difference is printed on its own line. Exit status: 0 no difference; 1 at least one;
//! 2 the comparison could not be made (bad arguments or environment, unreadable journal,
//! TigerBeetle not answering, or a build without the `tigerbeetle` feature).
//!
//! The node holds the journal's lock while it runs: stop it, or copy the journal directory. Run
//! it once the projection has caught up (its lag is 0 when the node stopped cleanly).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct LedgerArgs {
    #[command(subcommand)]
    command: LedgerCommand,
}

#[derive(clap::Subcommand, Debug)]
enum LedgerCommand {
    /// Compare every peer's TigerBeetle accounts with the journal-derived positions and
    /// reservations (TIGERBEETLE_REPLICAS, TIGERBEETLE_CLUSTER_ID); exit 1 on any difference.
    Reconcile {
        /// The journal directory (stop the node first: it holds the journal's lock).
        #[arg(long = "journal", value_name = "DIR", env = "JOURNAL_DIR", default_value = "./data/journal")]
        journal: PathBuf,
        /// Give up when TigerBeetle has not answered for this long.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        timeout_seconds: u64,
    },
}

const EXIT_STATUS_DIFFERENT: u8 = 1;
const EXIT_STATUS_CANNOT_COMPARE: u8 = 2;

pub fn run(args: LedgerArgs) -> ExitCode {
    let LedgerCommand::Reconcile { journal, timeout_seconds } = args.command;
    match reconcile::run(&journal, std::time::Duration::from_secs(timeout_seconds)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_STATUS_DIFFERENT),
        Err(message) => {
            eprintln!("ledger reconcile: {message}");
            ExitCode::from(EXIT_STATUS_CANNOT_COMPARE)
        }
    }
}

#[cfg(not(feature = "tigerbeetle"))]
mod reconcile {
    pub fn run(_journal: &std::path::Path, _timeout: std::time::Duration) -> Result<usize, String> {
        Err("this binary was built without TigerBeetle support; build it with: bash \
             scripts/tigerbeetle.sh install && ZIG_PATH=$(bash scripts/tigerbeetle.sh zig-path) \
             cargo build --release --features tigerbeetle"
            .into())
    }
}

#[cfg(feature = "tigerbeetle")]
mod reconcile {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    use crate::journal::{JournalEntry, SledStore};
    use crate::projections::balances::Balances;
    use crate::projections::tigerbeetle::{self as tb, LedgerClient, MappingState, TigerBeetleClient};
    use crate::projections::Projection;

    /// Events planned at once while replaying (bounds memory, like the runner's batches).
    const REPLAY_BATCH_EVENTS: usize = 8192;

    /// Returns the number of differences printed.
    pub fn run(journal: &Path, timeout: Duration) -> Result<usize, String> {
        let (replicas, cluster_id) = environment()?;
        let (balances, state) = replay(journal)?;
        let mut client = TigerBeetleClient::new(cluster_id, &replicas).map_err(|e| e.to_string())?;
        let ids: Vec<u128> = state.peer_accounts().iter().map(|(peer, ledger)| tb::peer_account_id(peer, *ledger)).collect();
        let mut found = BTreeMap::new();
        for chunk in ids.chunks(tb::LOOKUP_IDS_MAX) {
            let mut waiting = |waited: Duration| waited < timeout;
            let accounts = client
                .lookup_accounts(chunk, &mut waiting)
                .map_err(|error| format!("{error} (TIGERBEETLE_REPLICAS={})", replicas.join(",")))?;
            for account in accounts {
                found.insert(account.id(), account);
            }
        }
        // What the journal says is in flight to each peer's accounts.
        let mut owed_pending: BTreeMap<u128, u128> = BTreeMap::new();
        for (_, in_flight) in state.in_flight() {
            *owed_pending.entry(in_flight.outgoing.credit_account_id).or_default() += u128::from(in_flight.outgoing.amount);
        }
        let mut differences = 0;
        let mut peers = 0;
        for (peer, balance) in balances.iter() {
            peers += 1;
            let accounts: Vec<(u32, u128)> = state
                .peer_accounts()
                .iter()
                .filter(|(name, _)| name == peer)
                .map(|(_, ledger)| (*ledger, tb::peer_account_id(peer, *ledger)))
                .collect();
            if accounts.is_empty() {
                println!("{peer}: no ledger: no ConfigurationApplied in the journal configures this peer");
                differences += 1;
                continue;
            }
            let (mut position, mut reserved, mut owed) = (0i128, 0u128, 0u128);
            let mut expected_owed = 0u128;
            for (ledger, id) in &accounts {
                expected_owed += owed_pending.get(id).copied().unwrap_or(0);
                let Some(account) = found.get(id) else {
                    println!("{peer}: account {id:#034x} on ledger {ledger} is missing from TigerBeetle");
                    differences += 1;
                    continue;
                };
                position += signed(account.debits_posted()) - signed(account.credits_posted());
                reserved += account.debits_pending();
                owed += account.credits_pending();
            }
            let ledgers = accounts.iter().map(|(ledger, _)| describe_ledger(&state, *ledger)).collect::<Vec<_>>().join(", ");
            let mut check = |what: &str, journal: String, ledger: String| {
                if journal != ledger {
                    println!("{peer}: {what}: journal {journal}, tigerbeetle {ledger} (ledger {ledgers})");
                    differences += 1;
                }
            };
            check("position", balance.position.to_string(), position.to_string());
            check("reserved", balance.reserved.to_string(), reserved.to_string());
            check("owed pending", expected_owed.to_string(), owed.to_string());
            if balance.undelivered > 0 {
                // Already in the position on both sides (transfer code 6 against the connector
                // account); shown because it is a loss the operator should know of.
                println!(
                    "{peer}: {} in Fulfills that did not reach it (FulfillUndelivered): not charged, the connector's loss",
                    balance.undelivered
                );
            }
        }
        if differences == 0 {
            println!("{peers} peers, {} accounts: TigerBeetle matches the journal", ids.len());
        } else {
            println!("{differences} differences");
        }
        Ok(differences)
    }

    fn signed(amount: u128) -> i128 {
        i128::try_from(amount).unwrap_or(i128::MAX)
    }

    fn describe_ledger(state: &MappingState, ledger: u32) -> String {
        match state.ledgers().get(&ledger) {
            Some((code, scale)) => format!("{ledger} = {code}/{scale}"),
            None => ledger.to_string(),
        }
    }

    fn environment() -> Result<(Vec<String>, u128), String> {
        let replicas: Vec<String> = std::env::var("TIGERBEETLE_REPLICAS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect();
        if replicas.is_empty() {
            return Err("TIGERBEETLE_REPLICAS is not set (comma-separated host:port of the cluster)".into());
        }
        let cluster_id = match std::env::var("TIGERBEETLE_CLUSTER_ID") {
            Err(_) => 0,
            Ok(text) => text.parse::<u128>().map_err(|_| "TIGERBEETLE_CLUSTER_ID must be a decimal integer below 2^128")?,
        };
        Ok((replicas, cluster_id))
    }

    /// The journal, from its first event, into balances and the TigerBeetle mapping.
    fn replay(dir: &Path) -> Result<(Balances, MappingState), String> {
        if !dir.exists() {
            return Err(format!("no journal at {}", dir.display()));
        }
        let store = SledStore::open(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        let mut balances = Balances::new();
        let mut state = MappingState::default();
        let mut batch: Vec<JournalEntry> = Vec::with_capacity(REPLAY_BATCH_EVENTS);
        for (expected, entry) in (1u64..).zip(store.entries_from(1)) {
            let entry = entry.map_err(|error| error.to_string())?;
            if entry.seq != expected {
                return Err(format!(
                    "the journal continues at seq {} where {expected} was expected (frames archived \
                     or deleted by retention?): reconcile needs the whole journal",
                    entry.seq
                ));
            }
            balances.apply(&entry);
            batch.push(entry);
            if batch.len() == REPLAY_BATCH_EVENTS {
                state.commit(tb::plan(&state, &batch).delta);
                batch.clear();
            }
        }
        state.commit(tb::plan(&state, &batch).delta);
        Ok((balances, state))
    }
}
