//! Claims: signed, cumulative promises to pay on a payment channel, as the journal stores them
//! (chain-agnostic) and as they travel over BTP.
//!
//! A claim says "on channel C, its signer has transferred `cumulative` units to the other
//! participant in total", with a nonce that only grows. A newer claim replaces an older one, so
//! re-sending a claim is harmless and a lost one is made good by the next.
//!
//! On the wire a claim is the data of a BTP protocol-data entry named [`PROTOCOL_NAME`]
//! (content type 0, octet stream) in a BTP Message; the receiver answers with a BTP Response
//! (accepted, or a repeat of one already accepted) or a BTP Error naming why it refused. The
//! data starts with a version byte and a scheme byte; the scheme fixes the rest (see
//! [`super::evm::claim`] for scheme 1, EVM balance proofs). ARCHITECTURE.md documents the bytes.


/// The BTP protocol-data name a claim travels under.
pub const PROTOCOL_NAME: &str = "m2m-claim";

/// First byte of every claim on the wire.
pub const WIRE_VERSION: u8 = 1;

/// Second byte: how the rest is laid out and signed.
pub const SCHEME_EVM_BALANCE_PROOF: u8 = 1;

/// A claim, chain-agnostic: defined with the journal's events, which carry it; its methods are
/// here.
pub use crate::journal::Claim;

/// A claim before it is signed: what the ledger decides, and what a signer signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedClaim {
    pub chain: String,
    pub contract: String,
    pub channel_id: String,
    pub nonce: u64,
    pub cumulative: u128,
}

impl UnsignedClaim {
    pub fn matches(&self, claim: &Claim) -> bool {
        self.chain == claim.chain
            && self.contract == claim.contract
            && self.channel_id == claim.channel_id
            && self.nonce == claim.nonce
            && self.cumulative == claim.cumulative
    }
}

/// Why claim bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("claim is {0} bytes; too short for its header")]
    Truncated(usize),
    #[error("claim wire version {0} is not supported (this node reads version {WIRE_VERSION})")]
    Version(u8),
    #[error("claim scheme {0} is not supported (this node reads scheme {SCHEME_EVM_BALANCE_PROOF}, EVM balance proofs)")]
    Scheme(u8),
    #[error("claim is {found} bytes; scheme {scheme} claims are {expected}")]
    Length { scheme: u8, expected: usize, found: usize },
    #[error("claim field {field} is out of range: {reason}")]
    Range { field: &'static str, reason: &'static str },
    #[error("the chain `{0}` has no claim scheme in this build")]
    UnknownChain(String),
    #[error("claim field {field} is not valid: {reason}")]
    Field { field: &'static str, reason: String },
}

/// Reads a claim from the data of an [`PROTOCOL_NAME`] entry.
pub fn decode(bytes: &[u8]) -> Result<Claim, ClaimError> {
    let [version, scheme, ..] = bytes else { return Err(ClaimError::Truncated(bytes.len())) };
    if *version != WIRE_VERSION {
        return Err(ClaimError::Version(*version));
    }
    match *scheme {
        SCHEME_EVM_BALANCE_PROOF => super::evm::claim::decode(bytes),
        other => Err(ClaimError::Scheme(other)),
    }
}

/// The wire form of a claim.
pub fn encode(claim: &Claim) -> Result<Vec<u8>, ClaimError> {
    if claim.chain.starts_with(super::evm::CAIP2_NAMESPACE) {
        return super::evm::claim::encode(claim);
    }
    Err(ClaimError::UnknownChain(claim.chain.clone()))
}

/// Who signed the claim (the account, in the chain's canonical form), or why that can't be told
/// (a malformed or malleable signature).
pub fn recover_signer(claim: &Claim) -> Result<String, String> {
    if claim.chain.starts_with(super::evm::CAIP2_NAMESPACE) {
        return super::evm::claim::recover_signer(claim);
    }
    Err(format!("the chain `{}` has no claim scheme in this build", claim.chain))
}

/// Signs claims with the node's key. Implemented per chain (EVM: EIP-712 with a local key).
pub trait ClaimSigner: Send {
    /// The account the signatures recover to, in the chain's canonical form.
    fn account(&self) -> &str;
    /// Signs `claim`. Deterministic (RFC 6979), so signing the same claim again after a crash
    /// yields the same signature.
    fn sign(&self, claim: &UnsignedClaim) -> Result<Claim, String>;
    /// Signs a 32-byte digest the chain's contracts check (a cooperative settle, say).
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, String>;
}
