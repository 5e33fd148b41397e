//! Interledger (ILPv4) wire formats: OER primitives, addresses, error codes, timestamps, the
//! Prepare/Fulfill/Reject packets and IL-DCP.
//!
//! Input: untrusted bytes from peers. Output: validated zero-copy views, and canonical bytes
//! from builders. This module never does IO, never reads the clock except in
//! [`timestamp::now_ms`], never panics on input and never allocates in proportion to a length
//! prefix before checking it against the bytes present. Wire rules follow RFC 27, RFC 30 and
//! RFC 15; `shared/spec/ILP-REFERENCE.md` records where the reference implementations differ
//! and which way we went.

pub mod address;
pub mod ccp;
pub mod error_code;
pub mod ildcp;
pub mod oer;
pub mod packet;
pub mod timestamp;

#[cfg(test)]
mod tests;

pub use address::{Address, AddressError};
pub use error_code::{ErrorClass, ErrorCode};
pub use oer::{CodecError, Reason};
pub use packet::{
    BuildError, Fulfill, FulfillBuilder, Packet, PacketType, ParseOptions, Prepare, PrepareBuilder,
    Reject, RejectBuilder,
};
pub use timestamp::{format_timestamp, now_ms, parse_timestamp};

use sha2::{Digest, Sha256};

/// The fulfillment every peer protocol (IL-DCP, CCP, `peer.settle`) uses: 32 zero bytes.
pub const PEER_PROTOCOL_FULFILLMENT: [u8; 32] = [0; 32];

/// SHA-256 of [`PEER_PROTOCOL_FULFILLMENT`]: `66687aad…0d5f2925`.
pub const PEER_PROTOCOL_CONDITION: [u8; 32] = [
    0x66, 0x68, 0x7a, 0xad, 0xf8, 0x62, 0xbd, 0x77, 0x6c, 0x8f, 0xc1, 0x8b, 0x8e, 0x9f, 0x8e, 0x20,
    0x08, 0x97, 0x14, 0x85, 0x6e, 0xe2, 0x33, 0xb3, 0x90, 0x2a, 0x59, 0x1d, 0x0d, 0x5f, 0x29, 0x25,
];

/// The condition a fulfillment satisfies: its SHA-256.
pub fn condition_of(fulfillment: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(fulfillment).into()
}

/// True if `fulfillment` is the preimage of `condition`. Both values are public once the
/// Fulfill is on the wire, so a constant-time comparison buys nothing here.
pub fn fulfillment_matches(fulfillment: &[u8; 32], condition: &[u8; 32]) -> bool {
    condition_of(fulfillment) == *condition
}
