//! `m2m-connector contracts deploy`: puts the payment-channel contracts on a chain and prints the
//! settings a node needs to settle there.
//!
//! The deployer's key comes from `EVM_PRIVATE_KEY` (or the file `EVM_PRIVATE_KEY_FILE` names)
//! and is never printed. Output: `NAME=value` lines (`SETTLEMENT_EVM_CHAIN_ID`,
//! `TOKEN_NETWORK_REGISTRY`, `M2M_TOKEN_ADDRESS`), ready to add to a node's environment.
//! Exit status: 0 deployed; 1 the chain refused or did not answer; 2 bad arguments.

use std::process::ExitCode;

use alloy::primitives::{Address, U256};

use crate::settlement::evm::deploy::{self, DeployOptions};
use crate::settlement::evm::hex_address;

#[derive(clap::Args, Debug)]
pub struct ContractsArgs {
    #[command(subcommand)]
    command: ContractsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ContractsCommand {
    /// Deploy a TokenNetworkRegistry and the TokenNetwork of a token (by default a new test
    /// token, minted with --mint). The key comes from EVM_PRIVATE_KEY or EVM_PRIVATE_KEY_FILE.
    Deploy {
        /// The chain's JSON-RPC endpoint (http or https).
        #[arg(long, value_name = "URL", env = "SETTLEMENT_EVM_RPC_URL")]
        rpc_url: url::Url,
        /// Use this existing ERC-20 instead of deploying the test token.
        #[arg(long, value_name = "ADDRESS")]
        token: Option<Address>,
        /// Decimals of the test token (match the peers' asset_scale).
        #[arg(long, value_name = "N", default_value_t = 6)]
        test_token_decimals: u8,
        /// Mint test tokens: ADDRESS=AMOUNT (token units), repeatable.
        #[arg(long, value_name = "ADDRESS=AMOUNT")]
        mint: Vec<String>,
        /// Shortest challenge period channels may be opened with, seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        settle_timeout_min_s: u64,
        /// Longest challenge period, seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 30 * 86_400)]
        settle_timeout_max_s: u64,
        /// Most one participant may deposit in one channel, token units.
        #[arg(long, value_name = "UNITS", default_value_t = 1_000_000_000_000_000)]
        participant_deposit_limit: u128,
        /// Most the whole network may hold, token units.
        #[arg(long, value_name = "UNITS", default_value_t = 100_000_000_000_000_000)]
        network_deposit_limit: u128,
    },
}

pub fn run(args: ContractsArgs) -> ExitCode {
    let ContractsCommand::Deploy {
        rpc_url,
        token,
        test_token_decimals,
        mint,
        settle_timeout_min_s,
        settle_timeout_max_s,
        participant_deposit_limit,
        network_deposit_limit,
    } = args.command;
    let usage = |message: String| {
        eprintln!("contracts deploy: {message}");
        ExitCode::from(2)
    };
    let key = match deployer_key() {
        Ok(key) => key,
        Err(message) => return usage(message),
    };
    let mut mints = Vec::new();
    for item in &mint {
        let parsed = item.split_once('=').and_then(|(address, amount)| {
            Some((address.parse::<Address>().ok()?, amount.parse::<u128>().ok()?))
        });
        match parsed {
            Some((address, amount)) => mints.push((address, U256::from(amount))),
            None => return usage(format!("--mint {item}: expected ADDRESS=AMOUNT (0x and 40 hex digits, a whole number)")),
        }
    }
    let options = DeployOptions {
        token,
        test_token_decimals,
        mint: mints,
        settle_timeout_min_s,
        settle_timeout_max_s,
        participant_deposit_limit: U256::from(participant_deposit_limit),
        network_deposit_limit: U256::from(network_deposit_limit),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("contracts deploy: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(deploy::deploy(&rpc_url, key, &options)) {
        Ok(deployment) => {
            println!("SETTLEMENT_EVM_CHAIN_ID={}", deployment.chain_id);
            println!("TOKEN_NETWORK_REGISTRY={}", hex_address(deployment.registry));
            println!("M2M_TOKEN_ADDRESS={}", hex_address(deployment.token));
            println!("# token network: {}", hex_address(deployment.token_network));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("contracts deploy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn deployer_key() -> Result<alloy::signers::local::PrivateKeySigner, String> {
    let text = match (std::env::var("EVM_PRIVATE_KEY"), std::env::var("EVM_PRIVATE_KEY_FILE")) {
        (Ok(key), Err(_)) => key,
        (Err(_), Ok(path)) => std::fs::read_to_string(&path).map_err(|error| format!("cannot read EVM_PRIVATE_KEY_FILE {path}: {error}"))?,
        (Ok(_), Ok(_)) => return Err("set EVM_PRIVATE_KEY or EVM_PRIVATE_KEY_FILE, not both".into()),
        (Err(_), Err(_)) => return Err("the deployer's key is needed: set EVM_PRIVATE_KEY or EVM_PRIVATE_KEY_FILE".into()),
    };
    text.trim().parse().map_err(|_| "EVM_PRIVATE_KEY is not a private key (64 hex digits); the value is not shown".to_string())
}
