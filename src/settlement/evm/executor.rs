//! The EVM executor: everything settlement does on chain, on tokio, beside the packet path.
//!
//! Two tasks share one RPC client:
//! - the **watcher** finds the token network for the configured token (then reports
//!   `ChainReady`), and follows the TokenNetwork's events block range by block range, reporting
//!   those about our channels once they are `confirmations` blocks deep. It never reads past
//!   `head - confirmations`, so a reorganisation shallower than that never reaches the journal.
//!   Every few minutes it reports how far it has scanned (journaled as a marker), so a restart
//!   resumes there instead of rescanning.
//! - the **job runner** takes the forwarder's jobs one at a time: open and fund a channel,
//!   answer a close with our newest proof, settle a closed channel after its challenge period.
//!   Each job first reads the chain's state and does only what is missing, so a job repeated
//!   after a crash or a lost report never pays twice (deposits name a total, not an increment).
//!
//! Every RPC call has a deadline; a chain that is down or slow only delays settlement: failures
//! go back to the forwarder (journaled, counted, retried with backoff) and `/health` shows the
//! `settlement` component degraded. Neither task ever holds up a packet.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{BlockNumberOrTag, Filter, Log};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEventInterface;
use tokio::sync::{mpsc, watch};

use super::contracts::{M2MToken, TokenNetwork, TokenNetworkRegistry};
use super::{caip2, hex_address, hex_b256};
use crate::health::{ComponentStatus, Health};
use crate::journal::{ChannelChange, ChannelObserved, SettlementChainReady};
use crate::settlement::claim::Claim;
use crate::settlement::ledger::Funding;
use crate::settlement::{Refused, ReportQueue, SettlementInput, SettlementJob};

/// Deadline of one RPC call. A chain that does not answer within it counts as down.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a sent transaction may take to be mined before the job counts as failed (it is
/// then repeated, and the repeat finds the chain's state and does only what is still missing).
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// Most blocks asked for in one `eth_getLogs` (public endpoints refuse large ranges).
const LOG_RANGE_BLOCKS_MAX: u64 = 1_000;

/// How far back the first start of a node scans when `SETTLEMENT_EVM_START_BLOCK` is unset:
/// about two days of Base blocks, so a channel a peer opened before our first start is found.
const FIRST_SCAN_BLOCKS_BACK: u64 = 100_000;

/// How often the watcher reports how far it has scanned (journaled as a resume marker).
const SCAN_MARK_INTERVAL: Duration = Duration::from_secs(300);

/// The health component this executor reports.
const COMPONENT: &str = "settlement";

/// What the executor needs to know.
pub struct ExecutorConfig {
    pub rpc_url: url::Url,
    pub chain_id: u64,
    pub registry: Address,
    pub token: Address,
    pub confirmations: u64,
    pub poll_interval: Duration,
    pub signer: PrivateKeySigner,
    /// The asset scale of every peer settling on this chain: each must equal the token's
    /// decimals (a claim's amount is in the peer's units and in token units at once).
    pub peer_scales: Vec<(String, u8)>,
    /// Where to resume the scan: the journal's last chain event or scan marker; None on a first
    /// start (then `start_block`, or the head minus [`FIRST_SCAN_BLOCKS_BACK`]).
    pub resume_block: Option<u64>,
    pub start_block: Option<u64>,
    /// Channels the journal already knows (their later events are ours).
    pub known_channels: Vec<B256>,
    /// Addresses of the configured peers: a channel opened with one of them is ours.
    pub peer_addresses: Vec<Address>,
}

/// Starts the watcher and the job runner. `inputs` is the forwarder's input queue.
pub fn spawn(
    config: ExecutorConfig,
    jobs: mpsc::Receiver<SettlementJob>,
    inputs: Arc<dyn ReportQueue>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let account = config.signer.address();
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        // Asks the node for the nonce before every transaction: a transaction that never reached
        // the node (the chain was down) cannot leave a cached nonce ahead of the chain.
        .with_simple_nonce_management()
        .with_chain_id(config.chain_id)
        .wallet(EthereumWallet::from(config.signer.clone()))
        .connect_http(config.rpc_url.clone())
        .erased();
    let (network_tx, network_rx) = watch::channel::<Option<Address>>(None);
    let chain = Chain { provider, account, chain_id: config.chain_id, inputs: inputs.clone(), health: health.clone() };
    tracing::info!(
        chain_id = config.chain_id,
        account = %hex_address(account),
        registry = %hex_address(config.registry),
        token = %hex_address(config.token),
        confirmations = config.confirmations,
        rpc = %config.rpc_url.origin().ascii_serialization(),
        "EVM settlement executor starting"
    );
    health.set_component(COMPONENT, ComponentStatus::Degraded("connecting to the chain".into()));
    let watcher = Watcher::new(chain.clone(), &config, network_tx);
    let runner = JobRunner { chain, network: network_rx, poll_interval: config.poll_interval };
    vec![tokio::spawn(watcher.run(shutdown.clone())), tokio::spawn(runner.run(jobs, shutdown))]
}

/// The RPC client with our key, and where reports go.
#[derive(Clone)]
struct Chain {
    provider: DynProvider,
    account: Address,
    chain_id: u64,
    inputs: Arc<dyn ReportQueue>,
    health: Arc<Health>,
}

impl Chain {
    async fn report(&self, mut input: SettlementInput) {
        // The forwarder's queue is bounded: wait for room, never drop a chain fact.
        loop {
            match self.inputs.offer(input) {
                Ok(()) | Err(Refused::Closed) => return,
                Err(Refused::Full(returned)) => {
                    input = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    fn healthy(&self) {
        self.health.set_component(COMPONENT, ComponentStatus::Ok);
    }

    fn unhealthy(&self, error: &str) {
        self.health.set_component(COMPONENT, ComponentStatus::Degraded(format!("chain unreachable or failing: {error}")));
    }
}

/// Runs `future` with [`RPC_TIMEOUT`], flattening both failures into one message.
async fn rpc<T, E: std::fmt::Display>(what: &str, future: impl std::future::IntoFuture<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(RPC_TIMEOUT, future.into_future()).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {}", short(&error.to_string()))),
        Err(_) => Err(format!("{what}: no answer within {} s", RPC_TIMEOUT.as_secs())),
    }
}

/// RPC errors can quote whole responses; keep logs and events readable.
fn short(text: &str) -> String {
    const LENGTH_MAX: usize = 300;
    if text.len() <= LENGTH_MAX {
        return text.to_owned();
    }
    let mut end = LENGTH_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

// ---------------------------------------------------------------------------------------------
// The watcher

struct Watcher {
    chain: Chain,
    registry: Address,
    token: Address,
    confirmations: u64,
    poll_interval: Duration,
    peer_scales: Vec<(String, u8)>,
    resume_block: Option<u64>,
    start_block: Option<u64>,
    channels: BTreeSet<B256>,
    peer_addresses: Vec<Address>,
    network: watch::Sender<Option<Address>>,
}

impl Watcher {
    fn new(chain: Chain, config: &ExecutorConfig, network: watch::Sender<Option<Address>>) -> Watcher {
        Watcher {
            chain,
            registry: config.registry,
            token: config.token,
            confirmations: config.confirmations,
            poll_interval: config.poll_interval,
            peer_scales: config.peer_scales.clone(),
            resume_block: config.resume_block,
            start_block: config.start_block,
            channels: config.known_channels.iter().copied().collect(),
            peer_addresses: config.peer_addresses.clone(),
            network,
        }
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(self.poll_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut token_network: Option<Address> = None;
        let mut next_block: Option<u64> = None;
        let mut last_mark = tokio::time::Instant::now();
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = interval.tick() => {}
            }
            let result = match token_network {
                None => self.resolve().await.map(|network| {
                    token_network = Some(network);
                }),
                Some(network) => self.scan(network, &mut next_block, &mut last_mark).await,
            };
            match result {
                Ok(()) => {
                    if last_error.take().is_some() {
                        tracing::info!("the chain answers again");
                    }
                    self.chain.healthy();
                }
                Err(error) => {
                    if last_error.as_deref() != Some(error.as_str()) {
                        tracing::warn!(%error, "settlement watcher: chain read failed; retrying every poll");
                    }
                    crate::metrics::global().count_error(crate::metrics::ErrorKind::PeerUnreachable);
                    self.chain.unhealthy(&error);
                    last_error = Some(error);
                }
            }
        }
    }

    /// Checks the chain id, finds the token network and checks the token's decimals.
    async fn resolve(&self) -> Result<Address, String> {
        let provider = &self.chain.provider;
        let chain_id = rpc("eth_chainId", provider.get_chain_id()).await?;
        if chain_id != self.chain.chain_id {
            return Err(format!(
                "the RPC endpoint is on chain {chain_id}, not SETTLEMENT_EVM_CHAIN_ID {}",
                self.chain.chain_id
            ));
        }
        let registry = TokenNetworkRegistry::new(self.registry, provider.clone());
        let network = rpc("tokenToTokenNetwork", registry.tokenToTokenNetwork(self.token).call()).await?;
        if network == Address::ZERO {
            return Err(format!(
                "the registry {} has no token network for {}: create it (createTokenNetwork) first",
                hex_address(self.registry),
                hex_address(self.token)
            ));
        }
        let decimals = rpc("decimals", M2MToken::new(self.token, provider.clone()).decimals().call()).await?;
        if let Some((peer, scale)) = self.peer_scales.iter().find(|(_, scale)| *scale != decimals) {
            return Err(format!(
                "peer {peer} has asset_scale {scale} but the token has {decimals} decimals: claims would \
                 pay the wrong amounts, so settlement waits for a configuration that matches"
            ));
        }
        tracing::info!(token_network = %hex_address(network), decimals, "token network found");
        let _ = self.network.send(Some(network));
        self.chain
            .report(SettlementInput::ChainReady(SettlementChainReady {
                chain: caip2(self.chain.chain_id),
                contract: hex_address(network),
                token: hex_address(self.token),
                token_decimals: decimals,
            }))
            .await;
        Ok(network)
    }

    /// Reads the next range of confirmed blocks and reports our channels' events in order.
    async fn scan(&mut self, network: Address, next_block: &mut Option<u64>, last_mark: &mut tokio::time::Instant) -> Result<(), String> {
        let provider = &self.chain.provider;
        let head = rpc("eth_blockNumber", provider.get_block_number()).await?;
        let safe = head.saturating_sub(self.confirmations);
        let from = match *next_block {
            Some(block) => block,
            None => self.resume_block.or(self.start_block).unwrap_or_else(|| head.saturating_sub(FIRST_SCAN_BLOCKS_BACK)),
        };
        *next_block = Some(from);
        if from > safe {
            return Ok(());
        }
        let to = safe.min(from + LOG_RANGE_BLOCKS_MAX - 1);
        let filter = Filter::new().address(network).from_block(from).to_block(to);
        let mut logs = rpc("eth_getLogs", provider.get_logs(&filter)).await?;
        logs.sort_by_key(|log| (log.block_number, log.log_index));
        let mut timestamps: Vec<(u64, u64)> = Vec::new();
        let mut observed: Vec<ChannelObserved> = Vec::new();
        for log in &logs {
            if log.removed {
                continue;
            }
            let Some((channel_id, change)) = self.decode(log) else { continue };
            let block_number = log.block_number.unwrap_or_default();
            let block_timestamp_s = match timestamps.iter().find(|(block, _)| *block == block_number) {
                Some((_, timestamp)) => *timestamp,
                None => {
                    let timestamp = self.block_timestamp(block_number).await?;
                    timestamps.push((block_number, timestamp));
                    timestamp
                }
            };
            observed.push(ChannelObserved {
                chain: caip2(self.chain.chain_id),
                contract: hex_address(network),
                channel_id: hex_b256(channel_id),
                tx_hash: log.transaction_hash.map(hex_b256).unwrap_or_default(),
                block_number,
                log_index: log.log_index.unwrap_or_default(),
                block_timestamp_s,
                change,
            });
        }
        for event in observed {
            self.chain.report(SettlementInput::Observed(event)).await;
        }
        *next_block = Some(to + 1);
        if last_mark.elapsed() >= SCAN_MARK_INTERVAL {
            *last_mark = tokio::time::Instant::now();
            self.chain.report(SettlementInput::Scanned { block: to }).await;
        }
        Ok(())
    }

    async fn block_timestamp(&self, block_number: u64) -> Result<u64, String> {
        let block = rpc(
            "eth_getBlockByNumber",
            self.chain.provider.get_block_by_number(BlockNumberOrTag::Number(block_number)),
        )
        .await?;
        block.map(|block| block.header.timestamp).ok_or_else(|| format!("block {block_number} not found"))
    }

    /// A log of ours as a channel change: a channel opened with us and a configured peer, or any
    /// event of a channel we know.
    fn decode(&mut self, log: &Log) -> Option<(B256, ChannelChange)> {
        let decoded = TokenNetwork::TokenNetworkEvents::decode_log(&log.inner).ok()?.data;
        use TokenNetwork::TokenNetworkEvents as E;
        let (channel_id, change) = match decoded {
            E::ChannelOpened(event) => {
                let ours = event.participant1 == self.chain.account || event.participant2 == self.chain.account;
                let partner = if event.participant1 == self.chain.account { event.participant2 } else { event.participant1 };
                if !ours || !self.peer_addresses.contains(&partner) {
                    return None;
                }
                self.channels.insert(event.channelId);
                let change = ChannelChange::Opened {
                    participant1: hex_address(event.participant1),
                    participant2: hex_address(event.participant2),
                    settle_timeout_s: event.settleTimeout,
                };
                (event.channelId, change)
            }
            E::ChannelNewDeposit(event) => {
                (event.channelId, ChannelChange::Deposit { participant: hex_address(event.participant), total: amount(event.totalDeposit) })
            }
            E::ChannelWithdraw(event) => {
                (event.channelId, ChannelChange::Withdraw { participant: hex_address(event.participant), total: amount(event.totalWithdraw) })
            }
            E::ChannelClosed(event) => (
                event.channelId,
                ChannelChange::Closed {
                    closer: hex_address(event.closingParticipant),
                    nonce: nonce(event.nonce),
                    transferred: amount(event.transferredAmount),
                    settle_at_s: event.settleAt,
                },
            ),
            E::NonClosingBalanceProofUpdated(event) => (
                event.channelId,
                ChannelChange::ProofUpdated {
                    closer: hex_address(event.closingParticipant),
                    nonce: nonce(event.nonce),
                    transferred: amount(event.transferredAmount),
                },
            ),
            E::ChannelSettled(event) => (
                event.channelId,
                ChannelChange::Settled {
                    amount1: amount(event.participant1Amount),
                    amount2: amount(event.participant2Amount),
                    cooperative: event.cooperative,
                },
            ),
        };
        self.channels.contains(&channel_id).then_some((channel_id, change))
    }
}

/// A token amount from the chain. Amounts beyond 128 bits cannot come from deposits capped by
/// the contract; saturate rather than wrap if one ever did.
fn amount(value: U256) -> u128 {
    u128::try_from(value).unwrap_or(u128::MAX)
}

fn nonce(value: U256) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// The job runner

struct JobRunner {
    chain: Chain,
    network: watch::Receiver<Option<Address>>,
    poll_interval: Duration,
}

enum Outcome {
    Done(String),
    Waiting(Duration),
}

impl JobRunner {
    async fn run(self, mut jobs: mpsc::Receiver<SettlementJob>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let job = tokio::select! {
                _ = shutdown.changed() => return,
                job = jobs.recv() => match job { Some(job) => job, None => return },
            };
            let key = job.key();
            let action = job.action();
            let outcome = match *self.network.borrow() {
                Some(network) => Ok(network),
                None => Err("the token network is not known yet (chain unreachable?)".to_owned()),
            };
            let outcome = match outcome {
                Ok(network) => self.execute(network, job).await,
                Err(error) => Err(error),
            };
            let report = match outcome {
                Ok(Outcome::Done(detail)) => SettlementInput::JobDone { job: key, detail },
                Ok(Outcome::Waiting(wait)) => {
                    SettlementInput::JobWaiting { job: key, retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX) }
                }
                Err(error) => {
                    tracing::warn!(action, %error, "settlement transaction failed");
                    SettlementInput::JobFailed { job: key, error }
                }
            };
            self.chain.report(report).await;
        }
    }

    async fn execute(&self, network: Address, job: SettlementJob) -> Result<Outcome, String> {
        let contract = TokenNetwork::new(network, self.chain.provider.clone());
        match job {
            SettlementJob::Fund { funding, .. } => self.fund(&contract, funding).await,
            SettlementJob::UpdateProof { channel_id, claim, .. } => self.update_proof(&contract, &channel_id, &claim).await,
            SettlementJob::Settle { channel_id, .. } => self.settle(&contract, &channel_id).await,
            SettlementJob::Close { channel_id, claim, .. } => self.close(&contract, &channel_id, claim.as_ref()).await,
            SettlementJob::CooperativeSettle { channel_id, balance1, balance2, signature1, signature2, .. } => {
                let id: B256 = channel_id.parse().map_err(|error| format!("channel id {channel_id}: {error}"))?;
                let channel = rpc("getChannel", contract.getChannel(id).call()).await?;
                if channel.state != CHANNEL_OPEN && channel.state != CHANNEL_CLOSED {
                    return Ok(Outcome::Done(format!("channel {channel_id} is already settled")));
                }
                let call = contract.cooperativeSettle(id, U256::from(balance1), U256::from(balance2), signature1.into(), signature2.into());
                self.transact("cooperativeSettle", call).await?;
                tracing::info!(channel = %channel_id, balance1 = %balance1, balance2 = %balance2, "channel settled cooperatively");
                Ok(Outcome::Done("settled cooperatively".into()))
            }
        }
    }

    async fn fund(&self, contract: &TokenNetwork::TokenNetworkInstance<DynProvider>, funding: Funding) -> Result<Outcome, String> {
        match funding {
            Funding::Open { partner, settle_timeout_s, deposit_total } => {
                let partner: Address = partner.parse().map_err(|error| format!("peer address {partner}: {error}"))?;
                let mut channel_id = rpc("channelOf", contract.channelOf(self.chain.account, partner).call()).await?;
                if channel_id == B256::ZERO {
                    let call = contract.openChannel(partner, settle_timeout_s);
                    self.transact("openChannel", call).await?;
                    channel_id = rpc("channelOf", contract.channelOf(self.chain.account, partner).call()).await?;
                    if channel_id == B256::ZERO {
                        return Err("openChannel was mined but the registry shows no channel".into());
                    }
                    tracing::info!(channel = %hex_b256(channel_id), partner = %hex_address(partner), "channel opened");
                }
                let deposited = self.ensure_deposit(contract, channel_id, deposit_total).await?;
                Ok(Outcome::Done(format!("channel {} open; {deposited}", hex_b256(channel_id))))
            }
            Funding::Deposit { channel_id, deposit_total } => {
                let channel_id: B256 = channel_id.parse().map_err(|error| format!("channel id {channel_id}: {error}"))?;
                self.ensure_deposit(contract, channel_id, deposit_total).await.map(Outcome::Done)
            }
            Funding::AwaitSettlement { channel_id, .. } => self.settle(contract, &channel_id).await,
            Funding::Nothing => Ok(Outcome::Done("nothing to fund".into())),
            Funding::Refused(reason) => Err(reason),
        }
    }

    /// Raises our deposit to `total` unless the chain already has it: approve what is missing,
    /// then `setTotalDeposit`. Repeating it after a crash finds the total reached and does nothing.
    async fn ensure_deposit(&self, contract: &TokenNetwork::TokenNetworkInstance<DynProvider>, channel_id: B256, total: u128) -> Result<String, String> {
        let participant = rpc("getParticipant", contract.getParticipant(channel_id, self.chain.account).call()).await?;
        let current = amount(participant.deposit);
        if current >= total {
            return Ok(format!("deposit already {current} (asked {total})"));
        }
        let missing = U256::from(total - current);
        let token_address = rpc("token", contract.token().call()).await?;
        let token = M2MToken::new(token_address, self.chain.provider.clone());
        let balance = rpc("balanceOf", token.balanceOf(self.chain.account).call()).await?;
        if balance < missing {
            return Err(format!(
                "the account {} holds {balance} tokens, {missing} are needed for the deposit",
                hex_address(self.chain.account)
            ));
        }
        let allowance = rpc("allowance", token.allowance(self.chain.account, *contract.address()).call()).await?;
        if allowance < missing {
            self.transact("approve", token.approve(*contract.address(), missing)).await?;
        }
        self.transact("setTotalDeposit", contract.setTotalDeposit(channel_id, U256::from(total))).await?;
        tracing::info!(channel = %hex_b256(channel_id), from = current, to = total, "deposit raised");
        Ok(format!("deposit raised from {current} to {total}"))
    }

    async fn update_proof(&self, contract: &TokenNetwork::TokenNetworkInstance<DynProvider>, channel_id: &str, claim: &Claim) -> Result<Outcome, String> {
        let id: B256 = channel_id.parse().map_err(|error| format!("channel id {channel_id}: {error}"))?;
        let channel = rpc("getChannel", contract.getChannel(id).call()).await?;
        if channel.state != CHANNEL_CLOSED {
            return Ok(Outcome::Done(format!("channel {channel_id} is not closed (state {})", channel.state)));
        }
        let closer = rpc("getParticipant", contract.getParticipant(id, channel.closer).call()).await?;
        if nonce(closer.nonce) >= claim.nonce {
            return Ok(Outcome::Done(format!("the chain already holds nonce {} (ours {})", closer.nonce, claim.nonce)));
        }
        let proof = TokenNetwork::BalanceProofData {
            nonce: U256::from(claim.nonce),
            transferredAmount: U256::from(claim.cumulative),
            lockedAmount: U256::ZERO,
            locksRoot: B256::ZERO,
        };
        let call = contract.updateNonClosingBalanceProof(id, proof, claim.signature.clone().into());
        self.transact("updateNonClosingBalanceProof", call).await?;
        tracing::info!(channel = channel_id, nonce = claim.nonce, transferred = %claim.cumulative, "our newest proof submitted against a stale close");
        Ok(Outcome::Done(format!("proof nonce {} submitted", claim.nonce)))
    }

    async fn close(&self, contract: &TokenNetwork::TokenNetworkInstance<DynProvider>, channel_id: &str, claim: Option<&Claim>) -> Result<Outcome, String> {
        let id: B256 = channel_id.parse().map_err(|error| format!("channel id {channel_id}: {error}"))?;
        let channel = rpc("getChannel", contract.getChannel(id).call()).await?;
        if channel.state != CHANNEL_OPEN {
            return Ok(Outcome::Done(format!("channel {channel_id} is no longer open (state {})", channel.state)));
        }
        let (proof, signature) = match claim {
            Some(claim) => (
                TokenNetwork::BalanceProofData {
                    nonce: U256::from(claim.nonce),
                    transferredAmount: U256::from(claim.cumulative),
                    lockedAmount: U256::ZERO,
                    locksRoot: B256::ZERO,
                },
                claim.signature.clone(),
            ),
            None => (
                TokenNetwork::BalanceProofData { nonce: U256::ZERO, transferredAmount: U256::ZERO, lockedAmount: U256::ZERO, locksRoot: B256::ZERO },
                Vec::new(),
            ),
        };
        self.transact("closeChannel", contract.closeChannel(id, proof, signature.into())).await?;
        tracing::info!(channel = channel_id, nonce = claim.map_or(0, |claim| claim.nonce), "channel closed on chain; it settles after its challenge period");
        Ok(Outcome::Done("closed".into()))
    }

    async fn settle(&self, contract: &TokenNetwork::TokenNetworkInstance<DynProvider>, channel_id: &str) -> Result<Outcome, String> {
        let id: B256 = channel_id.parse().map_err(|error| format!("channel id {channel_id}: {error}"))?;
        let channel = rpc("getChannel", contract.getChannel(id).call()).await?;
        if channel.state != CHANNEL_CLOSED {
            return Ok(Outcome::Done(format!("channel {channel_id} is not closed (state {})", channel.state)));
        }
        let block = rpc(
            "eth_getBlockByNumber",
            self.chain.provider.get_block_by_number(BlockNumberOrTag::Latest),
        )
        .await?
        .ok_or("no latest block")?;
        let now_s = block.header.timestamp;
        if now_s <= channel.settleAt {
            let wait_s = (channel.settleAt - now_s + 1).clamp(1, 60);
            return Ok(Outcome::Waiting(Duration::from_secs(wait_s)));
        }
        self.transact("settleChannel", contract.settleChannel(id)).await?;
        tracing::info!(channel = channel_id, "channel settled");
        Ok(Outcome::Done("settled".into()))
    }

    /// Sends a transaction and waits for its receipt; a revert is an error naming the contract's
    /// custom error when it has one.
    async fn transact<C, D>(&self, what: &str, call: alloy::contract::CallBuilder<C, D>) -> Result<B256, String>
    where
        C: Provider + Clone,
        D: alloy::contract::CallDecoder,
    {
        let pending = match tokio::time::timeout(RPC_TIMEOUT, call.send()).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(error)) => return Err(format!("{what}: {}", describe_error(&error))),
            Err(_) => return Err(format!("{what}: no answer within {} s", RPC_TIMEOUT.as_secs())),
        };
        let hash = *pending.tx_hash();
        tracing::info!(what, tx = %hex_b256(hash), "transaction sent");
        let deadline = tokio::time::Instant::now() + RECEIPT_TIMEOUT;
        loop {
            match rpc("eth_getTransactionReceipt", self.chain.provider.get_transaction_receipt(hash)).await {
                Ok(Some(receipt)) if receipt.status() => return Ok(hash),
                Ok(Some(_)) => return Err(format!("{what}: transaction {} reverted", hex_b256(hash))),
                Ok(None) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(self.poll_interval.min(Duration::from_secs(2))).await;
                }
                Ok(None) => return Err(format!("{what}: transaction {} not mined within {} s", hex_b256(hash), RECEIPT_TIMEOUT.as_secs())),
                Err(error) => return Err(error),
            }
        }
    }
}

/// `ChannelState.Opened` and `ChannelState.Closed` in the contract's enum.
const CHANNEL_OPEN: u8 = 1;
const CHANNEL_CLOSED: u8 = 2;

/// A contract call error, with the TokenNetwork's custom error decoded when it is one.
fn describe_error(error: &alloy::contract::Error) -> String {
    if let Some(decoded) = error.as_decoded_interface_error::<TokenNetwork::TokenNetworkErrors>() {
        return format!("reverted with {decoded:?}");
    }
    if let Some(decoded) = error.as_decoded_interface_error::<M2MToken::M2MTokenErrors>() {
        return format!("the token reverted with {decoded:?}");
    }
    short(&error.to_string())
}
