//! Deploying the contracts: a registry, its token network for a token, and (for tests and
//! demos) a test token minted to given accounts. Used by `m2m-connector contracts deploy`, the
//! demo and the tests; the bytecode is the committed artifact (`contracts/out/`).

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;

use super::contracts::{M2MToken, TokenNetworkRegistry};

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// An existing ERC-20; None deploys the test token `M2MToken` with `test_token_decimals`.
    pub token: Option<Address>,
    pub test_token_decimals: u8,
    /// Test-token amounts to mint (ignored with an existing token).
    pub mint: Vec<(Address, U256)>,
    pub settle_timeout_min_s: u64,
    pub settle_timeout_max_s: u64,
    pub participant_deposit_limit: U256,
    pub network_deposit_limit: U256,
}

impl Default for DeployOptions {
    fn default() -> DeployOptions {
        DeployOptions {
            token: None,
            test_token_decimals: 6,
            mint: Vec::new(),
            settle_timeout_min_s: 10,
            settle_timeout_max_s: 30 * 86_400,
            participant_deposit_limit: U256::from(1_000_000_000_000_000u128),
            network_deposit_limit: U256::from(100_000_000_000_000_000u128),
        }
    }
}

/// Where the contracts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    pub registry: Address,
    pub token: Address,
    pub token_network: Address,
    pub chain_id: u64,
}

/// Deploys with `deployer` (who pays the gas and owns the registry and the test token).
pub async fn deploy(rpc_url: &url::Url, deployer: PrivateKeySigner, options: &DeployOptions) -> anyhow::Result<Deployment> {
    let provider = ProviderBuilder::new().wallet(EthereumWallet::from(deployer)).connect_http(rpc_url.clone());
    let chain_id = provider.get_chain_id().await.context("eth_chainId")?;
    let token = match options.token {
        Some(token) => token,
        None => {
            let token = M2MToken::deploy(&provider, "M2M Token".into(), "M2M".into(), options.test_token_decimals)
                .await
                .context("deploying the test token")?;
            for (account, amount) in &options.mint {
                token.mint(*account, *amount).send().await?.get_receipt().await.context("minting")?;
            }
            *token.address()
        }
    };
    let registry = TokenNetworkRegistry::deploy(&provider, options.settle_timeout_min_s, options.settle_timeout_max_s)
        .await
        .context("deploying the registry")?;
    registry
        .createTokenNetwork(token, options.participant_deposit_limit, options.network_deposit_limit)
        .send()
        .await
        .context("createTokenNetwork")?
        .get_receipt()
        .await?;
    let token_network = registry.tokenToTokenNetwork(token).call().await?;
    Ok(Deployment { registry: *registry.address(), token, token_network, chain_id })
}
