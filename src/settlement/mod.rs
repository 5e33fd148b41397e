//! Settlement (issue 9): paying peers what we owe them and being paid what they owe us, over
//! payment channels, as a projection of the journal.
//!
//! - [`ledger`]: the pure state (channels, claims, settlements in progress) and every decision
//!   (trigger, claim, verdict, funding, correction), derived from the journal alone.
//! - [`claim`]: claims as the journal stores them (chain-agnostic) and their BTP wire form.
//! - [`evm`]: the first chain: EIP-712 balance proofs and the executor that opens, funds, watches,
//!   disputes and settles channels of the TokenNetwork contracts.
//! - `projections::audit` (above this layer, beside the balances it replays into):
//!   `m2m-connector audit settlements`, which replays the journal and re-derives every decision.
//!
//! The forwarder owns the journal, so it applies the ledger's decisions: it appends what is due
//! right after the event that made it due, signs claims, sends them to peers and judges the
//! claims peers send. The executor does the chain's IO on tokio and reports back as inputs to the
//! forwarder (through [`ReportQueue`], which the pipeline implements); nothing it does ever waits on the packet path, and nothing on the packet path waits
//! for it.

pub mod claim;
pub mod evm;
pub mod ledger;

use crate::journal::{ChannelObserved, SettlementChainReady, SettlementConfigured};
use claim::{Claim, ClaimSigner};
use ledger::Funding;

/// What the forwarder needs to settle: the terms it journals at start, the key that signs our
/// claims, and the executor's job queue.
pub struct SettlementLink {
    pub configured: SettlementConfigured,
    pub signer: Box<dyn ClaimSigner>,
    pub jobs: tokio::sync::mpsc::Sender<SettlementJob>,
}

/// Work for the executor: chain transactions, each idempotent (it checks the chain's state
/// before sending anything, so a repeated job does nothing twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettlementJob {
    /// Open and/or fund a channel with `peer` (for settlement `settlement_id`, or the initial
    /// deposit when None).
    Fund { peer: String, settlement_id: Option<u64>, funding: Funding },
    /// The peer closed the channel with an older proof of its payments than `claim`: submit it.
    UpdateProof { peer: String, channel_id: String, claim: Claim },
    /// The channel is closed: settle it once the chain's time passes `settle_at_s`.
    Settle { peer: String, channel_id: String, settle_at_s: u64 },
    /// Close the channel (an operator asked), with the peer's newest proof if we hold one.
    Close { peer: String, channel_id: String, claim: Option<Claim> },
    /// Both participants signed this split: submit it.
    CooperativeSettle { peer: String, channel_id: String, balance1: u128, balance2: u128, signature1: Vec<u8>, signature2: Vec<u8> },
}

impl SettlementJob {
    pub fn key(&self) -> JobKey {
        match self {
            SettlementJob::Fund { peer, .. } => JobKey::Fund { peer: peer.clone() },
            SettlementJob::UpdateProof { channel_id, .. } => JobKey::UpdateProof { channel_id: channel_id.clone() },
            SettlementJob::Settle { channel_id, .. } => JobKey::Settle { channel_id: channel_id.clone() },
            SettlementJob::Close { channel_id, .. } | SettlementJob::CooperativeSettle { channel_id, .. } => {
                JobKey::Close { channel_id: channel_id.clone() }
            }
        }
    }

    pub fn action(&self) -> &'static str {
        match self {
            SettlementJob::Fund { funding: Funding::Open { .. }, .. } => "open",
            SettlementJob::Fund { .. } => "deposit",
            SettlementJob::UpdateProof { .. } => "update_proof",
            SettlementJob::Settle { .. } => "settle",
            SettlementJob::Close { .. } => "close",
            SettlementJob::CooperativeSettle { .. } => "cooperative_settle",
        }
    }
}

/// Which job an executor report is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobKey {
    Fund { peer: String },
    UpdateProof { channel_id: String },
    Settle { channel_id: String },
    Close { channel_id: String },
}

/// Where the executor's reports go: the forwarder's input queue, seen from below (the pipeline
/// implements this for its queue, so settlement needs nothing from the layer above it).
pub trait ReportQueue: Send + Sync + 'static {
    /// Queues `input` now, or hands it back when the queue is full.
    // The report comes back by value to be offered again (rare: a full queue), not boxed.
    #[allow(clippy::result_large_err)]
    fn offer(&self, input: SettlementInput) -> Result<(), Refused>;
}

/// Why [`ReportQueue::offer`] did not take a report.
#[derive(Debug)]
pub enum Refused {
    /// The queue is full now; here is the report back, to offer again.
    Full(SettlementInput),
    /// The forwarder is gone (the node is stopping).
    Closed,
}

/// What the executor reports to the forwarder (through its reply queue).
#[derive(Debug, Clone)]
pub enum SettlementInput {
    /// The token network for the configured token was found on the configured chain.
    ChainReady(SettlementChainReady),
    /// A contract event about one of our channels, at the confirmation depth.
    Observed(ChannelObserved),
    /// The job's transaction was mined (or the chain already had what it asked for); its effect
    /// arrives as `Observed` once confirmed.
    JobDone { job: JobKey, detail: String },
    /// Not yet (the challenge period is not over): ask again after `retry_after_ms`.
    JobWaiting { job: JobKey, retry_after_ms: u64 },
    JobFailed { job: JobKey, error: String },
    /// Every block up to `block` has been read: a restart may resume after it.
    Scanned { block: u64 },
}

/// An operator's request, from the admin HTTP API to the forwarder, answered on `reply`.
#[derive(Debug)]
pub enum AdminRequest {
    /// Close the peer's channel: on chain at once, or cooperatively (the peer signs the split).
    CloseChannel { peer: String, cooperative: bool, reply: tokio::sync::oneshot::Sender<Result<String, AdminError>> },
}

/// Why an operator's request was refused; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// 404: no such peer, or no settlement with it.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request does not fit the channel's state.
    #[error("{0}")]
    Conflict(String),
    /// 503: settlement is not running or the chain was not reached yet.
    #[error("{0}")]
    Unavailable(String),
}
