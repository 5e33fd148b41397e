//! Fuzzes the CCP decoders (route control and route update payloads). They must never panic,
//! and whatever they accept must encode back to the bytes they read: bytes after the last field
//! are ignored, so the encoding is a prefix of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_connector::ilp::ccp::{RouteControlRequest, RouteUpdateRequest};

fuzz_target!(|input: &[u8]| {
    if let Ok(control) = RouteControlRequest::parse(input) {
        let encoded = control.encode();
        assert_eq!(&input[..encoded.len()], &encoded[..], "a control request re-encodes to other bytes");
    }
    if let Ok(update) = RouteUpdateRequest::parse(input) {
        let encoded = update.encode();
        assert_eq!(&input[..encoded.len()], &encoded[..], "a route update re-encodes to other bytes");
    }
});
