//! Fuzzes the BTP frame decoder: it must never panic, and because it is strict and canonical
//! (shortest lengths, canonical count, no trailing bytes, the timestamp kept as read), any frame
//! it accepts must re-encode to exactly the input bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_connector::btp::packet::BtpPacket;

fuzz_target!(|input: &[u8]| {
    if let Ok(packet) = BtpPacket::parse(input.to_vec().into()) {
        assert_eq!(packet.encoded_len(), input.len());
        assert_eq!(packet.encode().as_ref(), input, "{packet:?} did not re-encode byte for byte");
    }
});
