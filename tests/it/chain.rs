//! A real Ethereum node for the settlement tests: anvil (npm `@foundry-rs/anvil-linux-amd64`,
//! installed by `scripts/contracts.sh`), started on a free port on 127.0.0.1, mining a block
//! every second, with the contracts from `contracts/out/` deployed on it.
//!
//! A missing anvil fails the test with the command that installs it: never a silent skip.

#![allow(dead_code)] // Each test module uses its own subset.

use std::future::IntoFuture;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use m2m_connector::settlement::evm::contracts::{M2MToken, TokenNetwork};
use m2m_connector::settlement::evm::deploy::{self, DeployOptions, Deployment};

use crate::support::free_port;

/// Anvil's development keys (from its public test mnemonic): never real money.
pub const DEPLOYER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const NODE_A_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
pub const NODE_B_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
pub const MALLORY_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

pub const CHAIN_ID: u64 = 31337;

pub fn address_of(key: &str) -> Address {
    key.parse::<PrivateKeySigner>().expect("a valid key").address()
}

/// Lower-case 0x hex, as the journal writes addresses.
pub fn hex(address: Address) -> String {
    format!("{address:#x}")
}

fn anvil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ANVIL_BIN") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        path.is_file(),
        "anvil is not installed at {} (run `bash scripts/contracts.sh install`, which .ci/run does)",
        path.display()
    );
    path
}

/// A running anvil; killed when dropped.
pub struct Anvil {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Anvil {
    pub fn start() -> Anvil {
        let dir = tempfile::Builder::new().prefix("m2m-it-anvil-").tempdir().expect("a temporary directory");
        let log = dir.path().join("anvil.log");
        let port = free_port();
        let child = Command::new(anvil_binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--block-time", "1", "--chain-id", &CHAIN_ID.to_string()])
            .args(["--accounts", "10", "--balance", "10000"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("anvil.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("starting anvil");
        let anvil = Anvil { child: Some(child), port, log, _dir: dir };
        anvil.wait_ready();
        anvil
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let runtime = runtime();
        loop {
            let ready = runtime.block_on(async {
                let provider = ProviderBuilder::new().connect_http(self.url());
                tokio::time::timeout(Duration::from_secs(1), provider.get_chain_id()).await
            });
            if matches!(ready, Ok(Ok(CHAIN_ID))) {
                return;
            }
            assert!(Instant::now() < deadline, "anvil did not answer within 20 s; its log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> url::Url {
        format!("http://127.0.0.1:{}", self.port).parse().expect("a URL")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("anvil runs").id();
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Freezes anvil (SIGSTOP): its socket accepts nothing more, every RPC times out.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Deploys a test token (6 decimals, minted to `mint`), a registry and its token network.
    pub fn deploy(&self, mint: &[(Address, u128)]) -> Deployment {
        let options = DeployOptions {
            mint: mint.iter().map(|(address, amount)| (*address, U256::from(*amount))).collect(),
            settle_timeout_min_s: 10,
            ..DeployOptions::default()
        };
        let deployer: PrivateKeySigner = DEPLOYER_KEY.parse().unwrap();
        runtime().block_on(deploy::deploy(&self.url(), deployer, &options)).expect("deploying the contracts to anvil")
    }

    /// A provider signing with `key`.
    pub fn provider(&self, key: &str) -> DynProvider {
        let signer: PrivateKeySigner = key.parse().unwrap();
        ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(self.url()).erased()
    }

    pub fn token_balance(&self, deployment: &Deployment, account: Address) -> u128 {
        let token = M2MToken::new(deployment.token, self.provider(DEPLOYER_KEY));
        let balance = runtime().block_on(token.balanceOf(account).call().into_future()).expect("balanceOf");
        u128::try_from(balance).unwrap()
    }

    /// Moves the chain's clock forward and mines a block (for challenge periods).
    pub fn travel(&self, seconds: u64) {
        let provider = self.provider(DEPLOYER_KEY);
        runtime().block_on(async {
            let _: serde_json::Value = provider.raw_request("evm_increaseTime".into(), [seconds]).await.expect("evm_increaseTime");
            let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.expect("evm_mine");
        });
    }

    pub fn network(&self, deployment: &Deployment, key: &str) -> TokenNetwork::TokenNetworkInstance<DynProvider> {
        TokenNetwork::new(deployment.token_network, self.provider(key))
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A small runtime for the blocking test code's chain calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}
