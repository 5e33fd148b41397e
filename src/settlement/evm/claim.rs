//! EVM claims (scheme 1): EIP-712 `BalanceProof`s of the TokenNetwork contract.
//!
//! Wire layout after the version and scheme bytes (255 bytes in all, big-endian):
//!
//! ```text
//! offset size field
//!      0    1 version (1)
//!      1    1 scheme (1)
//!      2    8 chain id (EIP-155)
//!     10   20 TokenNetwork address
//!     30   32 channel id
//!     62   32 nonce              uint256, must fit in 64 bits
//!     94   32 transferred amount uint256, must fit in 128 bits
//!    126   32 locked amount      uint256, must be 0
//!    158   32 locks root         must be 0
//!    190   65 signature          r ‖ s ‖ v (v = 27 or 28, s in the lower half)
//! ```
//!
//! The signed digest is EIP-712 over `BalanceProof(bytes32 channelId,uint256 nonce,uint256
//! transferredAmount,uint256 lockedAmount,bytes32 locksRoot)` under the domain `{name:
//! "TokenNetwork", version: "1", chainId, verifyingContract}`: what the contract checks, so any
//! accepted claim can be redeemed on chain.

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::{Eip712Domain, SolStruct};

use super::contracts::BalanceProof;
use crate::settlement::claim::{
    Claim, ClaimError, ClaimSigner, UnsignedClaim, SCHEME_EVM_BALANCE_PROOF, WIRE_VERSION,
};

/// Bytes of a scheme-1 claim on the wire.
pub const WIRE_SIZE: usize = 255;

/// The EIP-712 domain of a TokenNetwork on a chain.
pub fn domain(chain_id: u64, token_network: Address) -> Eip712Domain {
    alloy::sol_types::eip712_domain! {
        name: "TokenNetwork",
        version: "1",
        chain_id: chain_id,
        verifying_contract: token_network,
    }
}

/// The digest a balance proof's signer signs.
pub fn digest(chain_id: u64, token_network: Address, channel_id: B256, nonce: u64, transferred: u128) -> B256 {
    let proof = BalanceProof {
        channelId: channel_id,
        nonce: U256::from(nonce),
        transferredAmount: U256::from(transferred),
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
    };
    proof.eip712_signing_hash(&domain(chain_id, token_network))
}

/// A claim's EVM fields, parsed from its chain-agnostic form.
pub struct EvmClaim {
    pub chain_id: u64,
    pub token_network: Address,
    pub channel_id: B256,
    pub nonce: u64,
    pub transferred: u128,
}

impl EvmClaim {
    pub fn parse(claim: &Claim) -> Result<EvmClaim, ClaimError> {
        let chain_id = super::chain_id_of(&claim.chain)
            .ok_or_else(|| ClaimError::Field { field: "chain", reason: format!("`{}` is not an eip155 chain", claim.chain) })?;
        let token_network = claim
            .contract
            .parse::<Address>()
            .map_err(|error| ClaimError::Field { field: "contract", reason: error.to_string() })?;
        let channel_id = claim
            .channel_id
            .parse::<B256>()
            .map_err(|error| ClaimError::Field { field: "channel_id", reason: error.to_string() })?;
        Ok(EvmClaim { chain_id, token_network, channel_id, nonce: claim.nonce, transferred: claim.cumulative })
    }

    pub fn digest(&self) -> B256 {
        digest(self.chain_id, self.token_network, self.channel_id, self.nonce, self.transferred)
    }
}

pub fn decode(bytes: &[u8]) -> Result<Claim, ClaimError> {
    if bytes.len() != WIRE_SIZE {
        return Err(ClaimError::Length { scheme: SCHEME_EVM_BALANCE_PROOF, expected: WIRE_SIZE, found: bytes.len() });
    }
    debug_assert_eq!((bytes[0], bytes[1]), (WIRE_VERSION, SCHEME_EVM_BALANCE_PROOF));
    let chain_id = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
    let token_network = Address::from_slice(&bytes[10..30]);
    let channel_id = B256::from_slice(&bytes[30..62]);
    let nonce = uint_field(&bytes[62..94], 8, "nonce", "must fit in 64 bits")?;
    let transferred = uint_field(&bytes[94..126], 16, "transferred_amount", "must fit in 128 bits")?;
    if bytes[126..190].iter().any(|&byte| byte != 0) {
        return Err(ClaimError::Range { field: "locked_amount/locks_root", reason: "must be zero (claims carry no locks)" });
    }
    if chain_id == 0 {
        return Err(ClaimError::Range { field: "chain_id", reason: "must not be 0" });
    }
    Ok(Claim {
        chain: super::caip2(chain_id),
        contract: super::hex_address(token_network),
        channel_id: super::hex_b256(channel_id),
        nonce: u64::try_from(nonce).expect("checked to fit"),
        cumulative: transferred,
        signature: bytes[190..255].to_vec(),
    })
}

/// A big-endian uint256 field that must fit in `width` bytes.
fn uint_field(field: &[u8], width: usize, name: &'static str, reason: &'static str) -> Result<u128, ClaimError> {
    let (high, low) = field.split_at(32 - width);
    if high.iter().any(|&byte| byte != 0) {
        return Err(ClaimError::Range { field: name, reason });
    }
    Ok(low.iter().fold(0u128, |value, &byte| (value << 8) | u128::from(byte)))
}

pub fn encode(claim: &Claim) -> Result<Vec<u8>, ClaimError> {
    let evm = EvmClaim::parse(claim)?;
    if claim.signature.len() != 65 {
        return Err(ClaimError::Field { field: "signature", reason: format!("{} bytes, not 65", claim.signature.len()) });
    }
    let mut out = Vec::with_capacity(WIRE_SIZE);
    out.push(WIRE_VERSION);
    out.push(SCHEME_EVM_BALANCE_PROOF);
    out.extend_from_slice(&evm.chain_id.to_be_bytes());
    out.extend_from_slice(evm.token_network.as_slice());
    out.extend_from_slice(evm.channel_id.as_slice());
    out.extend_from_slice(&U256::from(evm.nonce).to_be_bytes::<32>());
    out.extend_from_slice(&U256::from(evm.transferred).to_be_bytes::<32>());
    out.extend_from_slice(&[0u8; 64]);
    out.extend_from_slice(&claim.signature);
    debug_assert_eq!(out.len(), WIRE_SIZE);
    Ok(out)
}

/// The address that signed the claim. Refuses what the contract refuses: a signature that is not
/// 65 bytes, a v other than 27/28, or an s in the upper half of the curve order.
pub fn recover_signer(claim: &Claim) -> Result<String, String> {
    let evm = EvmClaim::parse(claim).map_err(|error| error.to_string())?;
    recover(&evm.digest(), &claim.signature).map(super::hex_address)
}

/// The address whose key signed `digest`, with the contract's malleability rules.
pub fn recover(digest: &B256, signature: &[u8]) -> Result<Address, String> {
    let bytes: &[u8; 65] = signature.try_into().map_err(|_| format!("signature is {} bytes, not 65", signature.len()))?;
    if bytes[64] != 27 && bytes[64] != 28 {
        return Err(format!("signature v is {}, not 27 or 28", bytes[64]));
    }
    let signature = alloy::primitives::Signature::from_raw_array(bytes).map_err(|error| error.to_string())?;
    if signature.normalize_s().is_some() {
        return Err("signature s is in the upper half of the curve order (malleable)".into());
    }
    signature.recover_address_from_prehash(digest).map_err(|error| error.to_string())
}

/// Signs balance proofs with a local key (`EVM_PRIVATE_KEY`).
pub struct LocalClaimSigner {
    signer: PrivateKeySigner,
    account: String,
}

impl LocalClaimSigner {
    pub fn new(signer: PrivateKeySigner) -> LocalClaimSigner {
        let account = super::hex_address(signer.address());
        LocalClaimSigner { signer, account }
    }

    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// Signs any EIP-712 digest (cooperative settles).
    pub fn sign_digest(&self, digest: &B256) -> Result<[u8; 65], String> {
        let signature = self.signer.sign_hash_sync(digest).map_err(|error| error.to_string())?;
        Ok(signature.as_bytes())
    }
}

impl std::fmt::Debug for LocalClaimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: only the account it signs for.
        f.debug_struct("LocalClaimSigner").field("account", &self.account).finish_non_exhaustive()
    }
}

impl ClaimSigner for LocalClaimSigner {
    fn account(&self) -> &str {
        &self.account
    }

    fn sign(&self, claim: &UnsignedClaim) -> Result<Claim, String> {
        let mut signed = Claim {
            chain: claim.chain.clone(),
            contract: claim.contract.clone(),
            channel_id: claim.channel_id.clone(),
            nonce: claim.nonce,
            cumulative: claim.cumulative,
            signature: Vec::new(),
        };
        let evm = EvmClaim::parse(&signed).map_err(|error| error.to_string())?;
        signed.signature = self.sign_digest(&evm.digest())?.to_vec();
        Ok(signed)
    }

    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, String> {
        LocalClaimSigner::sign_digest(self, &B256::from(*digest)).map(|signature| signature.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> LocalClaimSigner {
        // Anvil's first development key: public knowledge, never a real one.
        let key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        LocalClaimSigner::new(key.parse().unwrap())
    }

    fn unsigned() -> UnsignedClaim {
        UnsignedClaim {
            chain: "eip155:31337".into(),
            contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
            channel_id: format!("0x{}", "ab".repeat(32)),
            nonce: 7,
            cumulative: 123_456_789,
        }
    }

    #[test]
    fn a_signed_claim_round_trips_on_the_wire_and_recovers_its_signer() {
        let signer = signer();
        let claim = signer.sign(&unsigned()).unwrap();
        let bytes = crate::settlement::claim::encode(&claim).unwrap();
        assert_eq!(bytes.len(), WIRE_SIZE);
        assert_eq!(crate::settlement::claim::decode(&bytes).unwrap(), claim);
        assert_eq!(recover_signer(&claim).unwrap(), signer.account());
        assert_eq!(signer.account(), "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
        // Deterministic: the same claim signs to the same bytes (a re-sign after a crash is a repeat).
        assert_eq!(signer.sign(&unsigned()).unwrap(), claim);
    }

    #[test]
    fn any_changed_field_changes_the_signer() {
        let signer = signer();
        let claim = signer.sign(&unsigned()).unwrap();
        for edit in 0..4 {
            let mut changed = claim.clone();
            match edit {
                0 => changed.nonce += 1,
                1 => changed.cumulative += 1,
                2 => changed.channel_id = format!("0x{}", "cd".repeat(32)),
                _ => changed.chain = "eip155:8453".into(),
            }
            assert_ne!(recover_signer(&changed).ok().as_deref(), Some(signer.account()), "edit {edit}");
        }
    }

    #[test]
    fn malformed_wire_claims_are_refused_with_the_field() {
        let claim = signer().sign(&unsigned()).unwrap();
        let bytes = crate::settlement::claim::encode(&claim).unwrap();
        let decode = crate::settlement::claim::decode;
        assert_eq!(decode(&bytes[..1]), Err(ClaimError::Truncated(1)));
        assert!(matches!(decode(&bytes[..200]), Err(ClaimError::Length { .. })));
        let mut version = bytes.clone();
        version[0] = 9;
        assert_eq!(decode(&version), Err(ClaimError::Version(9)));
        let mut scheme = bytes.clone();
        scheme[1] = 2;
        assert_eq!(decode(&scheme), Err(ClaimError::Scheme(2)));
        let mut big_nonce = bytes.clone();
        big_nonce[62] = 1;
        assert!(matches!(decode(&big_nonce), Err(ClaimError::Range { field: "nonce", .. })));
        let mut locked = bytes.clone();
        locked[150] = 1;
        assert!(matches!(decode(&locked), Err(ClaimError::Range { .. })));
    }

    #[test]
    fn malleable_and_bad_v_signatures_are_refused() {
        let claim = signer().sign(&unsigned()).unwrap();
        let mut bad_v = claim.clone();
        bad_v.signature[64] = 1;
        assert!(recover_signer(&bad_v).unwrap_err().contains("v is 1"));
        // The high-s twin of a valid signature: s' = n - s, v flipped.
        let signature = alloy::primitives::Signature::from_raw(&claim.signature).unwrap();
        let n = alloy::primitives::U256::from_str_radix(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
            16,
        )
        .unwrap();
        let twin = alloy::primitives::Signature::new(signature.r(), n - signature.s(), !signature.v());
        let mut malleable = claim.clone();
        malleable.signature = twin.as_bytes().to_vec();
        assert!(recover_signer(&malleable).unwrap_err().contains("malleable"));
    }
}
