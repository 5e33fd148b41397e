//! What the sender puts in a Prepare and how the fulfiller answers it, without any shared state
//! between the two: the fulfillment is derived from the packet's `data`.
//!
//! `data` = run id (8 bytes, random per sender run) ‖ counter (8 bytes, big-endian), so every
//! packet of every run is distinct (ilp-connector answers a repeated identical packet from a
//! cache). fulfillment = SHA-256(`FULFILLMENT_KEY` ‖ data); condition = SHA-256(fulfillment).

use sha2::{Digest, Sha256};

/// Bytes of a Prepare's `data`: run id then counter.
pub const DATA_SIZE: usize = 16;

/// Mixed into every fulfillment so that only a peer that knows the scheme can fulfill.
const FULFILLMENT_KEY: &[u8] = b"m2m-loadgen fulfillment v1";

/// The `data` of packet `counter` of run `run_id`.
pub fn data_for(run_id: u64, counter: u64) -> [u8; DATA_SIZE] {
    let mut data = [0u8; DATA_SIZE];
    data[..8].copy_from_slice(&run_id.to_be_bytes());
    data[8..].copy_from_slice(&counter.to_be_bytes());
    data
}

/// The fulfillment a fulfiller derives from a Prepare's `data`.
pub fn fulfillment_for(data: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(FULFILLMENT_KEY);
    hasher.update(data);
    hasher.finalize().into()
}

/// The condition the sender puts on a Prepare carrying `data`.
pub fn condition_for(data: &[u8]) -> [u8; 32] {
    crate::ilp::condition_of(&fulfillment_for(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_is_the_hash_of_the_derived_fulfillment() {
        let data = data_for(0x0102_0304_0506_0708, 42);
        assert_eq!(&data[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(u64::from_be_bytes(data[8..].try_into().unwrap()), 42);
        assert!(crate::ilp::fulfillment_matches(
            &fulfillment_for(&data),
            &condition_for(&data)
        ));
        assert_ne!(
            condition_for(&data),
            condition_for(&data_for(0x0102_0304_0506_0708, 43))
        );
    }
}
