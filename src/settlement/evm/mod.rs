//! EVM settlement: payment channels over an ERC-20 on any EIP-155 chain (Base, for example),
//! through the TokenNetwork contracts in `contracts/`.
//!
//! - [`claim`]: EIP-712 balance proofs, their wire form, signing and recovery.
//! - [`contracts`]: bindings generated from the committed ABI.
//! - [`executor`]: the chain side of settlement: resolves the token network, opens and funds
//!   channels, follows the contracts' events at the confirmation depth, answers disputes and
//!   settles closed channels.

pub mod claim;
pub mod contracts;
pub mod cooperative;
pub mod deploy;
pub mod local_chain;
pub mod executor;

use alloy::primitives::{Address, B256};

/// The CAIP-2 namespace of EVM chains.
pub const CAIP2_NAMESPACE: &str = "eip155:";

/// `eip155:<chain id>`.
pub fn caip2(chain_id: u64) -> String {
    format!("{CAIP2_NAMESPACE}{chain_id}")
}

/// The chain id of an `eip155:<id>` chain.
pub fn chain_id_of(chain: &str) -> Option<u64> {
    chain.strip_prefix(CAIP2_NAMESPACE)?.parse().ok()
}

/// The canonical form of an address in journal events: `0x` and 40 lower-case hex digits.
pub fn hex_address(address: Address) -> String {
    format!("{address:#x}")
}

/// The canonical form of a 32-byte id: `0x` and 64 lower-case hex digits.
pub fn hex_b256(value: B256) -> String {
    format!("{value:#x}")
}

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::journal::{PeerSettlementTerms, SettlementConfigured};
use crate::settlement::{SettlementJob, SettlementLink};

/// Jobs the forwarder may have queued for the executor; beyond it, a job waits for the next
/// tick. Jobs are few (one per peer or channel at a time).
const JOBS_QUEUE_MAX: usize = 64;

/// Everything EVM settlement needs at start: the forwarder's link, the executor's job queue and
/// its configuration (less what the journal says: resume block and known channels).
pub struct EvmSetup {
    pub link: SettlementLink,
    pub jobs: mpsc::Receiver<SettlementJob>,
    pub executor: executor::ExecutorConfig,
}

/// EVM settlement from the configuration, when `SETTLEMENT_ENABLED=true` and a peer settles on
/// evm. The configuration was validated at load, so a missing piece here is a bug.
pub fn setup(config: &Config) -> anyhow::Result<Option<EvmSetup>> {
    let settlement = &config.settlement;
    let peers: Vec<&crate::config::PeerConfig> = config
        .peers
        .iter()
        .filter(|peer| peer.settlement.as_ref().is_some_and(|terms| terms.chain == "evm"))
        .collect();
    if !settlement.enabled || peers.is_empty() {
        return Ok(None);
    }
    let evm = &settlement.evm;
    let missing = |name: &str| anyhow::anyhow!("{name} is required to settle on evm");
    let key = evm.private_key.as_ref().ok_or_else(|| missing("EVM_PRIVATE_KEY"))?;
    let signer: PrivateKeySigner =
        key.expose().parse().map_err(|_| anyhow::anyhow!("EVM_PRIVATE_KEY is not a valid key"))?;
    let chain_id = evm.chain_id.ok_or_else(|| missing("SETTLEMENT_EVM_CHAIN_ID"))?;
    let registry: alloy::primitives::Address =
        evm.registry.as_deref().ok_or_else(|| missing("TOKEN_NETWORK_REGISTRY"))?.parse()?;
    let token: alloy::primitives::Address = evm.token.as_deref().ok_or_else(|| missing("M2M_TOKEN_ADDRESS"))?.parse()?;
    let rpc_url: url::Url = settlement.evm_rpc_url.as_deref().ok_or_else(|| missing("SETTLEMENT_EVM_RPC_URL"))?.parse()?;
    let mut terms = Vec::new();
    let mut peer_addresses = Vec::new();
    for peer in &peers {
        let peer_settlement = peer.settlement.as_ref().expect("filtered above");
        let address = peer_settlement.address.as_deref().ok_or_else(|| missing("the peer's settlement address"))?;
        let parsed: alloy::primitives::Address = address.parse()?;
        peer_addresses.push(parsed);
        terms.push(PeerSettlementTerms {
            peer: peer.id.clone(),
            address: hex_address(parsed),
            pays_peer: peer_settlement.direction.pays_peer(),
            peer_pays: peer_settlement.direction.peer_pays(),
            threshold: peer_settlement.threshold,
            settle_to: peer_settlement.settle_to,
            prepayment_allowance: peer_settlement.prepayment_allowance,
            deposit_initial: peer_settlement.deposit_initial,
            deposit_topup: peer_settlement.deposit_topup,
            deposit_max: peer_settlement.deposit_max,
            settle_timeout_s: peer_settlement.settle_timeout_s,
        });
    }
    let configured = SettlementConfigured {
        chain: caip2(chain_id),
        registry: hex_address(registry),
        token: hex_address(token),
        account: hex_address(signer.address()),
        confirmations: evm.confirmations,
        peers: terms,
    };
    let (jobs_tx, jobs_rx) = mpsc::channel(JOBS_QUEUE_MAX);
    let link = SettlementLink {
        configured,
        signer: Box::new(claim::LocalClaimSigner::new(signer.clone())),
        jobs: jobs_tx,
    };
    let executor = executor::ExecutorConfig {
        rpc_url,
        chain_id,
        registry,
        token,
        confirmations: evm.confirmations,
        poll_interval: Duration::from_millis(evm.poll_interval_ms),
        signer,
        peer_scales: peers.iter().map(|peer| (peer.id.clone(), peer.asset_scale)).collect(),
        resume_block: None,
        start_block: evm.start_block,
        known_channels: Vec::new(),
        peer_addresses,
    };
    Ok(Some(EvmSetup { link, jobs: jobs_rx, executor }))
}
