//! A local chain for the demo: anvil (npm `@foundry-rs/anvil-linux-amd64`, installed by
//! `scripts/contracts.sh install`), started on a free port on 127.0.0.1 with a block every
//! second, with the contracts deployed and a test token minted. Killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

use super::deploy::{self, DeployOptions, Deployment};

/// Anvil's development keys (its public test mnemonic): never real money.
pub const DEPLOYER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const NODE_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
pub const PAYEE_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
pub const CHAIN_ID: u64 = 31337;

pub struct LocalChain {
    child: Child,
    pub url: url::Url,
    pub deployment: Deployment,
}

/// Where anvil is: `ANVIL_BIN`, the project's `contracts/node_modules`, or the PATH.
pub fn find_anvil() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ANVIL_BIN") {
        return Some(PathBuf::from(path));
    }
    let relative = "contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";
    let candidates = [PathBuf::from(relative), PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)];
    if let Some(found) = candidates.into_iter().find(|path| path.is_file()) {
        return Some(found);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("anvil")).find(|candidate| candidate.is_file())
}

impl LocalChain {
    /// Starts anvil and deploys; `mint` tokens go to the node's account.
    pub async fn start(mint: u128) -> Result<LocalChain, String> {
        let anvil = find_anvil().ok_or_else(|| {
            "anvil not found: install it with `bash scripts/contracts.sh install` (the test command does), or set ANVIL_BIN".to_string()
        })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map_err(|error| error.to_string())?.port();
        let child = Command::new(&anvil)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--block-time", "1", "--chain-id", &CHAIN_ID.to_string(), "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", anvil.display()))?;
        let url: url::Url = format!("http://127.0.0.1:{port}").parse().expect("a URL");
        let mut chain = LocalChain { child, url: url.clone(), deployment: Deployment { registry: Address::ZERO, token: Address::ZERO, token_network: Address::ZERO, chain_id: CHAIN_ID } };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let provider = ProviderBuilder::new().connect_http(url.clone());
            if let Ok(Ok(CHAIN_ID)) = tokio::time::timeout(Duration::from_secs(1), provider.get_chain_id()).await {
                break;
            }
            if Instant::now() > deadline {
                return Err("anvil did not answer within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let node: PrivateKeySigner = NODE_KEY.parse().expect("a key");
        let options = DeployOptions { mint: vec![(node.address(), U256::from(mint))], ..DeployOptions::default() };
        let deployer: PrivateKeySigner = DEPLOYER_KEY.parse().expect("a key");
        chain.deployment = deploy::deploy(&url, deployer, &options).await.map_err(|error| format!("deploying the contracts: {error:#}"))?;
        Ok(chain)
    }

    /// The environment a node needs to settle on this chain with `NODE_KEY`.
    pub fn node_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SETTLEMENT_ENABLED", "true".into()),
            ("SETTLEMENT_EVM_RPC_URL", self.url.to_string()),
            ("SETTLEMENT_EVM_CHAIN_ID", CHAIN_ID.to_string()),
            ("TOKEN_NETWORK_REGISTRY", super::hex_address(self.deployment.registry)),
            ("M2M_TOKEN_ADDRESS", super::hex_address(self.deployment.token)),
            ("SETTLEMENT_EVM_CONFIRMATIONS", "1".into()),
            ("SETTLEMENT_EVM_POLL_INTERVAL_MS", "500".into()),
            ("SETTLEMENT_EVM_START_BLOCK", "0".into()),
            ("EVM_PRIVATE_KEY", NODE_KEY.into()),
        ]
    }
}

impl Drop for LocalChain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
