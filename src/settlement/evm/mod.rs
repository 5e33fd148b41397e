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
