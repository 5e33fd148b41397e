//! Cooperative settle over BTP: one side proposes the final split of a channel, the other signs
//! it if its own journal gives the same split, and the proposer submits both signatures on
//! chain (`cooperativeSettle`), which pays both sides at once with no challenge period.
//!
//! Messages travel as the data of a BTP protocol-data entry named [`PROTOCOL_NAME`] (content
//! type 0). Layouts (big-endian):
//!
//! ```text
//! proposal (BTP Message), 191 bytes:
//!   0  1 version (1)      1  1 kind (1)         2  8 chain id        10 20 TokenNetwork
//!  30 32 channel id      62 32 participant1's balance (uint256)     94 32 participant2's balance
//! 126 65 the proposer's signature of EIP-712 CooperativeSettle(channelId, balance1, balance2)
//! answer (BTP Response), 67 bytes:
//!   0  1 version (1)      1  1 kind (2)         2 65 the answerer's signature of the same
//! ```
//! A refusal is a BTP Error (F00) naming why.

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolStruct;

use super::contracts::CooperativeSettle;

pub const PROTOCOL_NAME: &str = "m2m-channel";
const VERSION: u8 = 1;
const KIND_PROPOSAL: u8 = 1;
const KIND_SIGNATURE: u8 = 2;
pub const PROPOSAL_SIZE: usize = 191;
pub const SIGNATURE_SIZE: usize = 67;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub chain_id: u64,
    pub token_network: Address,
    pub channel_id: B256,
    pub balance1: u128,
    pub balance2: u128,
    pub signature: [u8; 65],
}

/// The EIP-712 digest both participants sign.
pub fn digest(chain_id: u64, token_network: Address, channel_id: B256, balance1: u128, balance2: u128) -> B256 {
    let settle = CooperativeSettle {
        channelId: channel_id,
        participant1Balance: U256::from(balance1),
        participant2Balance: U256::from(balance2),
    };
    settle.eip712_signing_hash(&super::claim::domain(chain_id, token_network))
}

impl Proposal {
    pub fn digest(&self) -> B256 {
        digest(self.chain_id, self.token_network, self.channel_id, self.balance1, self.balance2)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROPOSAL_SIZE);
        out.extend_from_slice(&[VERSION, KIND_PROPOSAL]);
        out.extend_from_slice(&self.chain_id.to_be_bytes());
        out.extend_from_slice(self.token_network.as_slice());
        out.extend_from_slice(self.channel_id.as_slice());
        out.extend_from_slice(&U256::from(self.balance1).to_be_bytes::<32>());
        out.extend_from_slice(&U256::from(self.balance2).to_be_bytes::<32>());
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Proposal, String> {
        if bytes.len() != PROPOSAL_SIZE || bytes[0] != VERSION || bytes[1] != KIND_PROPOSAL {
            return Err(format!("not a version-1 cooperative settle proposal ({} bytes)", bytes.len()));
        }
        let balance = |field: &[u8]| -> Result<u128, String> {
            let value = U256::from_be_slice(field);
            u128::try_from(value).map_err(|_| "a balance does not fit in 128 bits".to_string())
        };
        Ok(Proposal {
            chain_id: u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")),
            token_network: Address::from_slice(&bytes[10..30]),
            channel_id: B256::from_slice(&bytes[30..62]),
            balance1: balance(&bytes[62..94])?,
            balance2: balance(&bytes[94..126])?,
            signature: bytes[126..191].try_into().expect("65 bytes"),
        })
    }
}

pub fn encode_signature(signature: &[u8; 65]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_SIZE);
    out.extend_from_slice(&[VERSION, KIND_SIGNATURE]);
    out.extend_from_slice(signature);
    out
}

pub fn decode_signature(bytes: &[u8]) -> Result<[u8; 65], String> {
    if bytes.len() != SIGNATURE_SIZE || bytes[0] != VERSION || bytes[1] != KIND_SIGNATURE {
        return Err(format!("not a version-1 cooperative settle signature ({} bytes)", bytes.len()));
    }
    Ok(bytes[2..].try_into().expect("65 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_and_signatures_round_trip() {
        let proposal = Proposal {
            chain_id: 8453,
            token_network: Address::repeat_byte(0x11),
            channel_id: B256::repeat_byte(0x22),
            balance1: 7,
            balance2: 1 << 100,
            signature: [0x33; 65],
        };
        let bytes = proposal.encode();
        assert_eq!(bytes.len(), PROPOSAL_SIZE);
        assert_eq!(Proposal::decode(&bytes).unwrap(), proposal);
        assert!(Proposal::decode(&bytes[..190]).is_err());
        assert_eq!(decode_signature(&encode_signature(&[9; 65])).unwrap(), [9; 65]);
        assert!(decode_signature(&bytes).is_err());
    }
}
