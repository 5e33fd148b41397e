//! Fuzzes the ILP packet decoder in both modes. It must never panic; strict mode must accept only
//! canonical bytes (what the builders would write); whatever either mode accepts must re-encode
//! through the builders to a packet with the same fields; and a parsed Prepare must forward to
//! a packet that parses and keeps its condition, destination and data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_connector::ilp::packet::{
    BuildError, FulfillBuilder, Packet, ParseOptions, Prepare, PrepareBuilder, RejectBuilder,
};
use m2m_connector::ilp::timestamp::TIMESTAMP_MS_MIN;

fuzz_target!(|input: &[u8]| {
    let strict = Packet::parse_with(input.to_vec().into(), &ParseOptions::STRICT);
    let lenient = Packet::parse_with(input.to_vec().into(), &ParseOptions::LENIENT);
    if let Ok(packet) = &strict {
        assert_eq!(
            packet.as_bytes(),
            input,
            "strict mode accepted non-canonical bytes"
        );
        assert_eq!(
            lenient.as_ref().ok(),
            Some(packet),
            "lenient mode disagrees with strict"
        );
    }
    if let Ok(packet) = &lenient {
        check_rebuild(packet);
        if let Packet::Prepare(prepare) = packet {
            check_forwarding(prepare);
        }
    }
});

/// Re-encodes with the builders and parses again: same fields, same canonical bytes.
fn check_rebuild(packet: &Packet) {
    match rebuild(packet) {
        Ok(reparsed) => assert_eq!(&reparsed, packet, "rebuilt packet differs"),
        // Decoding is lenient about a Reject's triggeredBy (it is relayed as bytes); the builder
        // only writes a valid or empty address.
        Err(BuildError::InvalidTriggeredBy(_)) => {
            let Packet::Reject(reject) = packet else {
                panic!("{packet:?}")
            };
            assert!(reject.triggered_by().is_none() && !reject.triggered_by_raw().is_empty());
        }
        Err(error) => panic!("{packet:?} cannot be rebuilt: {error}"),
    }
}

/// The packet encoded by the builders, then parsed strictly.
fn rebuild(packet: &Packet) -> Result<Packet, BuildError> {
    let bytes = match packet {
        Packet::Prepare(prepare) => PrepareBuilder {
            amount: prepare.amount(),
            expires_at_ms: prepare.expires_at_ms(),
            execution_condition: *prepare.execution_condition(),
            destination: prepare.destination(),
            data: prepare.data(),
        }
        .build()?,
        Packet::Fulfill(fulfill) => FulfillBuilder {
            fulfillment: *fulfill.fulfillment(),
            data: fulfill.data(),
        }
        .build()?,
        Packet::Reject(reject) => {
            let triggered_by = std::str::from_utf8(reject.triggered_by_raw()).unwrap_or("!");
            match std::str::from_utf8(reject.message()) {
                Ok(message) => RejectBuilder {
                    code: reject.code(),
                    triggered_by,
                    message,
                    data: reject.data(),
                }
                .build()?,
                // The builder takes a &str message, so a non-UTF-8 one (legal on the wire, kept
                // as bytes) can't go through it: check that the canonical bytes re-parse instead.
                Err(_) => reject.to_bytes(),
            }
        }
    };
    let reparsed = Packet::parse_with(bytes, &ParseOptions::STRICT);
    Ok(reparsed.unwrap_or_else(|error| panic!("rebuilt {packet:?} does not parse: {error}")))
}

fn check_forwarding(prepare: &Prepare) {
    let amount = prepare.amount().wrapping_add(1);
    let expires_at_ms = prepare.expires_at_ms() - 1;
    let mut out = Default::default();
    prepare.write_forwarded(amount, expires_at_ms, &mut out);
    let forwarded = Prepare::parse_with(out.freeze(), &ParseOptions::STRICT)
        .unwrap_or_else(|error| panic!("forwarded {prepare:?} does not parse: {error}"));
    assert_eq!(forwarded.amount(), amount);
    // Clamped at year 0000, the earliest instant the format holds.
    assert_eq!(
        forwarded.expires_at_ms(),
        expires_at_ms.max(TIMESTAMP_MS_MIN)
    );
    assert_eq!(
        forwarded.execution_condition(),
        prepare.execution_condition()
    );
    assert_eq!(forwarded.destination(), prepare.destination());
    assert_eq!(forwarded.data(), prepare.data());
}
