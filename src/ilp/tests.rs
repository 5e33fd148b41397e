//! Codec tests: the public vectors (byte-exact decode and re-encode), hand-made malformed inputs
//! with their exact error positions, the address grammar, the timestamp calendar, and property
//! tests (round trips, never-panic on arbitrary and mutated input, forwarding).

use crate::ilp::address::{Address, AddressError, ADDRESS_SIZE_MAX};
use crate::ilp::error_code::{amount_too_large_data, parse_amount_too_large_data, AmountTooLarge};
use crate::ilp::ildcp;
use crate::ilp::oer::{write_var_octets, CodecError, Reader, Reason};
use crate::ilp::packet::{DATA_SIZE_MAX, MESSAGE_SIZE_MAX};
use crate::ilp::timestamp::{TIMESTAMP_MS_MAX, TIMESTAMP_MS_MIN};
use crate::ilp::*;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

const VECTORS_JSON: &str = include_str!("../../tests/data/vectors.json");
/// Vector kinds this module owns; every vector of these kinds must be checked.
const ILP_KINDS: [&str; 3] = ["ilp", "oer-varstr-address", "ilp-peer-protocol-invalid"];
/// How many vectors of [`ILP_KINDS`] the file held when these tests were written. A change means
/// vectors were added or removed: look at them and update the count.
const ILP_VECTOR_COUNT: usize = 36;

#[derive(Deserialize)]
struct Vector {
    id: String,
    kind: String,
    valid: Option<bool>,
    #[serde(default)]
    hex: String,
    #[serde(default)]
    decoded: Value,
    #[serde(default)]
    expect: String,
    #[serde(default)]
    hex_prefix: String,
    #[serde(default, rename = "dataLen")]
    data_len: usize,
    #[serde(default, rename = "dataByte")]
    data_byte: String,
    #[serde(default, rename = "totalLen")]
    total_len: usize,
    #[serde(default)]
    ildcp: Value,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(VECTORS_JSON).expect("vectors.json parses")
}

fn vector(id: &str) -> Vector {
    vectors()
        .into_iter()
        .find(|vector| vector.id == id)
        .expect("vector exists")
}

fn unhex(text: &str) -> Bytes {
    Bytes::from(hex::decode(text).expect("valid hex"))
}

// ---------------------------------------------------------------------------------------------
// Vectors

#[test]
fn every_ilp_vector_decodes_and_re_encodes() {
    let mut covered_count = 0;
    for vector in vectors()
        .iter()
        .filter(|vector| ILP_KINDS.contains(&vector.kind.as_str()))
    {
        match (vector.kind.as_str(), vector.valid) {
            ("oer-varstr-address", Some(true)) => check_address_vector(vector),
            (_, Some(true)) if !vector.hex_prefix.is_empty() => check_large_vector(vector),
            (_, Some(true)) => check_packet(&vector.id, &unhex(&vector.hex), &vector.decoded),
            (_, None) => check_negative_vector(vector),
            _ => panic!(
                "vector {} of kind {} is not covered",
                vector.id, vector.kind
            ),
        }
        covered_count += 1;
    }
    assert_eq!(
        covered_count, ILP_VECTOR_COUNT,
        "vectors of ILP kinds changed: cover the new ones"
    );
}

/// Decodes `input` in both modes, compares every field with `decoded`, and checks that the
/// builder re-encodes it byte for byte.
fn check_packet(id: &str, input: &Bytes, decoded: &Value) {
    for options in [ParseOptions::LENIENT, ParseOptions::STRICT] {
        let packet = Packet::parse_with(input.clone(), &options)
            .unwrap_or_else(|error| panic!("{id} ({options:?}): {error}"));
        assert_eq!(
            packet_json(&packet),
            *decoded,
            "{id} ({options:?}): decoded fields"
        );
        assert_eq!(packet.as_bytes(), &input[..], "{id}: as_bytes");
        assert_eq!(rebuild(&packet), *input, "{id}: builder re-encoding");
    }
}

/// The packet's fields in the vectors' JSON shape.
fn packet_json(packet: &Packet) -> Value {
    match packet {
        Packet::Prepare(prepare) => json!({
            "type": 12,
            "amount": prepare.amount(),
            "expiresAt": String::from_utf8_lossy(&format_timestamp(prepare.expires_at_ms())),
            "executionCondition": hex::encode(prepare.execution_condition()),
            "destination": prepare.destination(),
            "data": hex::encode(prepare.data()),
        }),
        Packet::Fulfill(fulfill) => json!({
            "type": 13,
            "fulfillment": hex::encode(fulfill.fulfillment()),
            "data": hex::encode(fulfill.data()),
        }),
        Packet::Reject(reject) => json!({
            "type": 14,
            "code": reject.code().as_str(),
            "triggeredBy": String::from_utf8_lossy(reject.triggered_by_raw()),
            "message": reject.message_lossy(),
            "data": hex::encode(reject.data()),
        }),
    }
}

/// Encodes a parsed packet again with the builders.
fn rebuild(packet: &Packet) -> Bytes {
    let result = match packet {
        Packet::Prepare(prepare) => PrepareBuilder {
            amount: prepare.amount(),
            expires_at_ms: prepare.expires_at_ms(),
            execution_condition: *prepare.execution_condition(),
            destination: prepare.destination(),
            data: prepare.data(),
        }
        .build(),
        Packet::Fulfill(fulfill) => FulfillBuilder {
            fulfillment: *fulfill.fulfillment(),
            data: fulfill.data(),
        }
        .build(),
        Packet::Reject(reject) => RejectBuilder {
            code: reject.code(),
            triggered_by: std::str::from_utf8(reject.triggered_by_raw()).expect("ASCII"),
            message: std::str::from_utf8(reject.message()).expect("UTF-8 message"),
            data: reject.data(),
        }
        .build(),
    };
    result.expect("a parsed packet can be rebuilt")
}

fn check_address_vector(vector: &Vector) {
    let input = hex::decode(&vector.hex).unwrap();
    let mut reader = Reader::new(&input);
    let value = reader.read_var_octets("address").expect("decodes");
    assert!(reader.is_empty(), "{}: whole input consumed", vector.id);
    let address = Address::parse(std::str::from_utf8(value).unwrap()).expect("valid address");
    assert_eq!(address.as_str(), vector.decoded["address"], "{}", vector.id);
    let mut encoded = Vec::new();
    write_var_octets(&mut encoded, address.as_str().as_bytes());
    assert_eq!(encoded, input, "{}: re-encoding", vector.id);
}

/// DRV-ILP-05: a Prepare with the largest legal data. `hex_prefix` stops before the data's length
/// determinant (`827fff`, per ILP-REFERENCE.md), which `totalLen` counts.
fn check_large_vector(vector: &Vector) {
    let data_byte = hex::decode(&vector.data_byte).unwrap()[0];
    let mut input = hex::decode(&vector.hex_prefix).unwrap();
    crate::ilp::oer::write_length(&mut input, vector.data_len);
    assert!(input.ends_with(&[0x82, 0x7f, 0xff]), "{}", vector.id);
    input.extend(std::iter::repeat_n(data_byte, vector.data_len));
    assert_eq!(input.len(), vector.total_len, "{}", vector.id);
    let input = Bytes::from(input);
    let prepare = Prepare::parse_with(input.clone(), &ParseOptions::STRICT).expect("decodes");
    assert_eq!(prepare.amount(), 1);
    assert_eq!(
        &format_timestamp(prepare.expires_at_ms()),
        b"20171223012140549"
    );
    assert_eq!(prepare.execution_condition(), &[0; 32]);
    assert_eq!(prepare.destination(), "test.a");
    assert_eq!(prepare.data().len(), DATA_SIZE_MAX);
    assert!(prepare.data().iter().all(|&byte| byte == data_byte));
    assert_eq!(
        rebuild(&Packet::Prepare(prepare)),
        input,
        "{}: re-encoding",
        vector.id
    );
}

/// What a `valid: null` vector must do in each mode. The `expect` text says which way it goes.
struct NegativeCase {
    id: &'static str,
    /// `Ok(fields)` if lenient decoding accepts it.
    lenient: Result<Value, (usize, &'static str)>,
    /// Strict decoding always fails: (offset, field).
    strict: (usize, &'static str),
}

fn negative_cases() -> Vec<NegativeCase> {
    vec![
        NegativeCase {
            id: "NEG-ILP-01",
            lenient: Err((2, "code")),
            strict: (2, "code"),
        },
        NegativeCase {
            id: "NEG-ILP-02",
            lenient: Ok(json!({
                "type": 14, "code": "tw\u{7f}", "triggeredBy": "test.t", "message": "", "data": ""
            })),
            strict: (14, "contents"),
        },
        NegativeCase {
            id: "NEG-ILP-03",
            lenient: Err((10, "expiresAt")),
            strict: (10, "expiresAt"),
        },
        NegativeCase {
            id: "NEG-ILP-04",
            lenient: Ok(json!({
                "type": 13,
                "fulfillment": "288801ffffffffffffffffffffa4ff0e0d88888801880800eeeeee0001000000",
                "data": "",
            })),
            strict: (35, "contents"),
        },
    ]
}

fn check_negative_vector(vector: &Vector) {
    let cases = negative_cases();
    let case = cases
        .iter()
        .find(|case| case.id == vector.id)
        .unwrap_or_else(|| panic!("negative vector {} has no case", vector.id));
    let input = unhex(&vector.hex);
    let must_fail = vector.expect.contains("MUST fail");
    assert_eq!(
        case.lenient.is_err(),
        must_fail,
        "{}: case disagrees with `{}`",
        vector.id,
        vector.expect
    );

    let lenient = Packet::parse_with(input.clone(), &ParseOptions::LENIENT);
    match (&case.lenient, lenient) {
        (Ok(fields), Ok(packet)) => {
            assert_eq!(packet_json(&packet), *fields, "{}", vector.id);
            // The trailing bytes are dropped: what remains is canonical and strict-parses.
            assert!(packet.as_bytes().len() < input.len(), "{}", vector.id);
            Packet::parse_with(packet.clone().into_bytes(), &ParseOptions::STRICT)
                .expect("canonical");
        }
        (Err(expected), Err(error)) => {
            assert_eq!((error.offset, error.field), *expected, "{}", vector.id)
        }
        (expected, got) => panic!("{}: lenient expected {expected:?}, got {got:?}", vector.id),
    }
    let error = Packet::parse_with(input, &ParseOptions::STRICT).expect_err("strict rejects");
    assert_eq!(
        (error.offset, error.field),
        case.strict,
        "{}: {error}",
        vector.id
    );
}

#[test]
fn forwarding_rewrites_amount_and_expiry_in_place() {
    let original = Prepare::parse(unhex(&vector("ILP-01").hex)).unwrap();
    let expected = unhex(&vector("DRV-FWD-01").hex);
    // Append after unrelated bytes to check that the patches land relative to the packet.
    let mut out = BytesMut::from(&b"xyz"[..]);
    original.write_forwarded(100, original.expires_at_ms() - 1000, &mut out);
    assert_eq!(&out[..3], b"xyz");
    assert_eq!(&out[3..], &expected[..]);
    assert_eq!(original.forwarded_len(), out.len() - 3);
    assert_eq!(original.forwarded_len(), original.as_bytes().len());
}

#[test]
fn forwarding_a_packet_with_trailing_bytes_emits_the_canonical_envelope() {
    let mut input = hex::decode(vector("ILP-01").hex).unwrap();
    input[1] += 2; // Two bytes inside the envelope after `data`...
    input.extend([0xaa, 0xbb, 0xcc]); // ...and one after it.
    let prepare = Prepare::parse(Bytes::from(input)).unwrap();
    assert_eq!(prepare.as_bytes(), &unhex(&vector("ILP-01").hex)[..]);
    let mut out = BytesMut::new();
    prepare.write_forwarded(100, prepare.expires_at_ms() - 1000, &mut out);
    assert_eq!(&out[..], &unhex(&vector("DRV-FWD-01").hex)[..]);
}

#[test]
fn ildcp_vectors() {
    let request = vector("ILP-07");
    let expires_at_ms = Prepare::parse(unhex(&request.hex)).unwrap().expires_at_ms();
    assert_eq!(
        ildcp::request(expires_at_ms).build().unwrap(),
        unhex(&request.hex)
    );

    let response_vector = vector("ILP-08");
    let fulfill = Fulfill::parse(unhex(&response_vector.hex)).unwrap();
    let response = ildcp::Response::parse(fulfill.data()).unwrap();
    assert_eq!(
        response.client_address.as_str(),
        response_vector.ildcp["clientAddress"]
    );
    assert_eq!(
        Value::from(response.asset_scale),
        response_vector.ildcp["assetScale"]
    );
    assert_eq!(response.asset_code, response_vector.ildcp["assetCode"]);
    assert_eq!(response.to_fulfill().unwrap(), unhex(&response_vector.hex));
    assert_eq!(fulfill.fulfillment(), &PEER_PROTOCOL_FULFILLMENT);
}

#[test]
fn ildcp_response_errors_name_the_field() {
    let check = |data_hex: &str, expect: (usize, &str)| {
        let error = ildcp::Response::parse(&hex::decode(data_hex).unwrap()).unwrap_err();
        assert_eq!((error.offset, error.field), expect, "{data_hex}: {error}");
    };
    check("0474657374", (0, "clientAddress")); // "test": scheme only
    check("06746573742e61", (7, "assetScale"));
    check("06746573742e610902ff", (8, "assetCode")); // not UTF-8... and too short
    check("06746573742e610901ff", (8, "assetCode"));
}

#[test]
fn peer_protocol_condition_is_sha256_of_zero_fulfillment() {
    assert_eq!(
        condition_of(&PEER_PROTOCOL_FULFILLMENT),
        PEER_PROTOCOL_CONDITION
    );
    assert!(fulfillment_matches(
        &PEER_PROTOCOL_FULFILLMENT,
        &PEER_PROTOCOL_CONDITION
    ));
    let mut other = PEER_PROTOCOL_FULFILLMENT;
    other[31] = 1;
    assert!(!fulfillment_matches(&other, &PEER_PROTOCOL_CONDITION));
}

// ---------------------------------------------------------------------------------------------
// Malformed input: exact error positions

fn check_error(input: &[u8], options: ParseOptions, expect: (usize, &str, Reason)) {
    let error =
        Packet::parse_with(Bytes::copy_from_slice(input), &options).expect_err("must be rejected");
    assert_eq!(
        (error.offset, error.field, error.reason),
        expect,
        "{}: {error}",
        hex::encode(input)
    );
}

/// A Prepare with the given destination and data, built by hand so that it can break the rules.
fn raw_prepare(destination: &[u8], data: &[u8]) -> Vec<u8> {
    let mut contents = Vec::new();
    contents.extend(7u64.to_be_bytes());
    contents.extend(b"20171223012140549");
    contents.extend([0x11; 32]);
    write_var_octets(&mut contents, destination);
    write_var_octets(&mut contents, data);
    let mut packet = vec![12];
    write_var_octets(&mut packet, &contents);
    packet
}

#[test]
fn malformed_packets_report_offset_and_field() {
    let lenient = ParseOptions::LENIENT;
    let end = |needed, available| Reason::UnexpectedEnd { needed, available };
    check_error(b"", lenient, (0, "type", end(1, 0)));
    check_error(&[0x0b, 0x00], lenient, (0, "type", Reason::UnknownType(11)));
    check_error(&[0x0c], lenient, (1, "length", end(1, 0)));
    check_error(&[0x0c, 0x05, 0, 0, 0], lenient, (1, "length", end(5, 3)));
    check_error(
        &[0x0d, 0x81, 0x05],
        lenient,
        (1, "length", Reason::NonCanonicalLength),
    );
    check_error(
        &[0x0e, 0x80],
        lenient,
        (1, "length", Reason::InvalidLengthPrefix),
    );
    check_error(&[0x0c, 0x01, 0x00], lenient, (2, "amount", end(8, 1)));
    // A huge length prefix fails before any allocation.
    check_error(
        &[0x0c, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        lenient,
        (1, "length", end(usize::MAX, 0)),
    );

    let invalid_destination = raw_prepare(b"test.a!", b"");
    let reason = Reason::Invalid(AddressError::InvalidByte { offset: 0, byte: 0 }.as_static_str());
    check_error(&invalid_destination, lenient, (59, "destination", reason));
    let empty_destination = raw_prepare(b"", b"");
    check_error(
        &empty_destination,
        lenient,
        (59, "destination", Reason::Invalid("address is empty")),
    );
    let too_long_data = raw_prepare(b"test.a", &[0; DATA_SIZE_MAX + 1]);
    check_error(&too_long_data, lenient, (68, "data", Reason::OutOfRange));

    let mut bad_timestamp = raw_prepare(b"test.a", b"");
    bad_timestamp[2 + 8 + 5] = b'x';
    check_error(
        &bad_timestamp,
        lenient,
        (10, "expiresAt", Reason::InvalidCharacters),
    );
}

#[test]
fn reject_limits_and_code_are_enforced() {
    let mut contents = b"F02".to_vec();
    write_var_octets(&mut contents, b"test.a");
    write_var_octets(&mut contents, &vec![b'm'; MESSAGE_SIZE_MAX + 1]);
    write_var_octets(&mut contents, b"");
    let mut packet = vec![14];
    write_var_octets(&mut packet, &contents);
    check_error(
        &packet,
        ParseOptions::LENIENT,
        (4 + 3 + 7, "message", Reason::OutOfRange),
    );
}

#[test]
fn a_parser_for_one_type_names_the_type_it_expected() {
    let fulfill = unhex(&vector("ILP-02").hex);
    let error = Prepare::parse(fulfill).unwrap_err();
    assert_eq!((error.offset, error.field), (0, "type"));
    assert_eq!(
        error.to_string(),
        "at byte 0, field `type`: expected a Prepare (type 12)"
    );
}

#[test]
fn trailing_bytes_after_the_envelope() {
    let canonical = unhex(&vector("ILP-03").hex);
    let mut input = canonical.to_vec();
    input.push(0);
    let reject = Reject::parse(Bytes::from(input.clone())).unwrap();
    assert_eq!(reject.as_bytes(), &canonical[..]);
    assert_eq!(reject.triggered_by(), Some("example.us.bob"));
    let error = Reject::parse_with(Bytes::from(input), &ParseOptions::STRICT).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "at byte {}, field `packet`: 1 trailing bytes",
            canonical.len()
        )
    );
}

#[test]
fn reject_with_invalid_triggered_by_decodes_leniently() {
    let built = |triggered_by: &[u8]| {
        let mut contents = b"T01".to_vec();
        write_var_octets(&mut contents, triggered_by);
        write_var_octets(&mut contents, "héllo".as_bytes());
        write_var_octets(&mut contents, b"\x01");
        let mut packet = vec![14];
        write_var_octets(&mut packet, &contents);
        Reject::parse_with(Bytes::from(packet), &ParseOptions::STRICT).unwrap()
    };
    let reject = built(b"not an address");
    assert_eq!(reject.triggered_by(), None);
    assert_eq!(reject.triggered_by_raw(), b"not an address");
    assert_eq!(reject.message_lossy(), "héllo");
    assert_eq!(reject.data(), b"\x01");
    assert_eq!(reject.code().class(), ErrorClass::Temporary);
    assert_eq!(built(b"").triggered_by(), None);
    assert_eq!(built(b"g.x").triggered_by(), Some("g.x"));
}

#[test]
fn builders_refuse_what_the_wire_cannot_carry() {
    let prepare = |destination: &str, data: &[u8], expires_at_ms: i64| {
        PrepareBuilder {
            amount: 1,
            expires_at_ms,
            execution_condition: [0; 32],
            destination,
            data,
        }
        .build()
        .unwrap_err()
    };
    assert_eq!(
        prepare("test", &[], 0),
        BuildError::InvalidDestination(AddressError::MissingSegment)
    );
    let data = vec![0; DATA_SIZE_MAX + 1];
    assert_eq!(
        prepare("test.a", &data, 0),
        BuildError::DataTooLong {
            size: DATA_SIZE_MAX + 1
        }
    );
    let late = TIMESTAMP_MS_MAX + 1;
    assert_eq!(
        prepare("test.a", &[], late),
        BuildError::ExpiresAtOutOfRange {
            expires_at_ms: late
        }
    );

    let reject = |code: ErrorCode, triggered_by: &str, message: &str| {
        RejectBuilder {
            code,
            triggered_by,
            message,
            data: &[],
        }
        .build()
        .unwrap_err()
    };
    let long_message = "m".repeat(MESSAGE_SIZE_MAX + 1);
    assert_eq!(
        reject(ErrorCode::F02_UNREACHABLE, "g.a", &long_message),
        BuildError::MessageTooLong {
            size: MESSAGE_SIZE_MAX + 1
        }
    );
    assert_eq!(
        reject(ErrorCode(*b"F\xff1"), "g.a", ""),
        BuildError::CodeNotAscii(ErrorCode(*b"F\xff1"))
    );
    assert!(matches!(
        reject(ErrorCode::F02_UNREACHABLE, "g.", ""),
        BuildError::InvalidTriggeredBy(_)
    ));

    let fulfill = FulfillBuilder {
        fulfillment: [0; 32],
        data: &data,
    }
    .build();
    assert_eq!(
        fulfill.unwrap_err(),
        BuildError::DataTooLong {
            size: DATA_SIZE_MAX + 1
        }
    );

    let mut out = BytesMut::from(&b"keep"[..]);
    let failed = RejectBuilder {
        code: ErrorCode(*b"\x80AA"),
        triggered_by: "",
        message: "",
        data: &[],
    };
    assert!(failed.write(&mut out).is_err());
    assert_eq!(&out[..], b"keep", "a failed write leaves the buffer alone");
}

// ---------------------------------------------------------------------------------------------
// Error codes

#[test]
fn error_codes() {
    assert_eq!(ErrorCode::known().count(), 22);
    for code in ErrorCode::known() {
        assert_eq!(ErrorCode::parse(code.as_str()), Ok(code));
        assert_ne!(code.name(), "Unknown", "{code}");
    }
    assert_eq!(ErrorCode::F08_AMOUNT_TOO_LARGE.name(), "Amount Too Large");
    assert_eq!(ErrorCode::F00_BAD_REQUEST.class(), ErrorClass::Final);
    assert_eq!(
        ErrorCode::T04_INSUFFICIENT_LIQUIDITY.class(),
        ErrorClass::Temporary
    );
    assert_eq!(
        ErrorCode::R02_INSUFFICIENT_TIMEOUT.class(),
        ErrorClass::Relative
    );
    let unknown: ErrorCode = "X42".parse().unwrap();
    assert_eq!(
        (unknown.class(), unknown.name()),
        (ErrorClass::Unknown, "Unknown")
    );
    assert_eq!(
        ErrorCode::parse("T77").unwrap().class(),
        ErrorClass::Temporary
    );
    assert!(ErrorCode::parse("F0").is_err());
    assert!(ErrorCode::parse("F000").is_err());
    assert!(ErrorCode::parse("Fé").is_err());
    assert_eq!(ErrorCode(*b"tw\x7f").to_string(), "tw\\x7f");
    assert_eq!(
        format!("{:?}", ErrorCode::R00_TRANSFER_TIMED_OUT),
        "ErrorCode(R00)"
    );
}

#[test]
fn amount_too_large_data_round_trips() {
    let data = amount_too_large_data(255, 65535);
    assert_eq!(hex::encode(data), "00000000000000ff000000000000ffff"); // DRV-ILP-01's data
    let expected = AmountTooLarge {
        received_amount: 255,
        maximum_amount: 65535,
    };
    assert_eq!(parse_amount_too_large_data(&data), Some(expected));
    assert_eq!(parse_amount_too_large_data(&data[..15]), None);
    let mut longer = data.to_vec();
    longer.push(9);
    assert_eq!(parse_amount_too_large_data(&longer), Some(expected));
}

// ---------------------------------------------------------------------------------------------
// Addresses

fn check_address(text: &str, expect: Result<(), AddressError>) {
    assert_eq!(Address::validate(text.as_bytes()), expect, "{text:?}");
    assert_eq!(
        Address::is_valid(text.as_bytes()),
        expect.is_ok(),
        "{text:?}"
    );
    match Address::parse(text) {
        Ok(address) => assert_eq!(address.as_str(), text),
        Err(error) => assert_eq!(Err(error), expect),
    }
}

#[test]
fn address_grammar() {
    use AddressError::*;
    for valid in [
        "g.a",
        "private.x.y",
        "example.alice",
        "peer.config",
        "self.node",
        "test.a",
        "test1.a-b_c~d",
        "test2.Z9",
        "test3.x.y.z",
        "local.0",
        "g.~",
        "example.us.bob",
    ] {
        check_address(valid, Ok(()));
    }
    let longest = format!("g.{}", "a".repeat(ADDRESS_SIZE_MAX - 2));
    check_address(&longest, Ok(()));
    check_address(
        &format!("{longest}b"),
        Err(TooLong {
            size: ADDRESS_SIZE_MAX + 1,
        }),
    );
    check_address("", Err(Empty));
    check_address("test", Err(MissingSegment));
    check_address("test.", Err(EmptySegment { offset: 5 }));
    check_address("test..a", Err(EmptySegment { offset: 5 }));
    check_address("g.a.", Err(EmptySegment { offset: 4 }));
    check_address(".test.a", Err(UnknownScheme));
    check_address("what.x", Err(UnknownScheme));
    check_address("test4.x", Err(UnknownScheme));
    check_address("G.a", Err(UnknownScheme));
    check_address(" test.a", Err(UnknownScheme));
    check_address(
        "test.a b",
        Err(InvalidByte {
            offset: 6,
            byte: b' ',
        }),
    );
    check_address(
        "test.a!",
        Err(InvalidByte {
            offset: 6,
            byte: b'!',
        }),
    );
    check_address(
        "test.a/b",
        Err(InvalidByte {
            offset: 6,
            byte: b'/',
        }),
    );
    check_address(
        "test.ä",
        Err(InvalidByte {
            offset: 5,
            byte: 0xc3,
        }),
    );
    check_address("test.a\0", Err(InvalidByte { offset: 6, byte: 0 }));
    assert!(!Address::is_valid(&[b't', b'e', b's', b't', b'.', 0xff]));
}

#[test]
fn address_accessors() {
    let address = Address::parse("example.alice.phone").unwrap();
    assert_eq!(address.scheme(), "example");
    assert_eq!(address.to_string(), "example.alice.phone");
    assert!(address.has_prefix("example.alice"));
    assert!(address.has_prefix("example.alice.phone"));
    assert!(!address.has_prefix("example.ali"));
    assert_eq!(format!("{address:?}"), "Address(\"example.alice.phone\")");
}

// ---------------------------------------------------------------------------------------------
// Timestamps

fn check_timestamp(text: &str, expect: Result<i64, ()>) {
    let got = parse_timestamp(text.as_bytes()).map_err(|_| ());
    assert_eq!(got, expect, "{text}");
    if let Ok(ms) = got {
        assert_eq!(&format_timestamp(ms), text.as_bytes(), "{text}: format");
    }
}

#[test]
fn timestamps_known_instants() {
    check_timestamp("19700101000000000", Ok(0));
    check_timestamp("19691231235959999", Ok(-1));
    check_timestamp("20171224161432279", Ok(1_514_132_072_279));
    check_timestamp("20171223012140549", Ok(1_513_992_100_549));
    check_timestamp("00000101000000000", Ok(TIMESTAMP_MS_MIN));
    check_timestamp("99991231235959999", Ok(TIMESTAMP_MS_MAX));
    assert_eq!(&format_timestamp(i64::MIN), b"00000101000000000", "clamped");
    assert_eq!(&format_timestamp(i64::MAX), b"99991231235959999", "clamped");
}

#[test]
fn timestamps_calendar_rules() {
    for valid in [
        "20000229", "20240229", "00000229", "16000229", "20230430", "20231231", "20230131",
    ] {
        assert!(
            parse_timestamp(format!("{valid}120000000").as_bytes()).is_ok(),
            "{valid}"
        );
    }
    for invalid in [
        "19000229", "21000229", "20230229", "20230431", "20230001", "20231301", "20230100",
        "20230132",
    ] {
        check_timestamp(&format!("{invalid}120000000"), Err(()));
    }
    check_timestamp("20171224240000000", Err(())); // midnight is 00 of the next day
    check_timestamp("20171224236000000", Err(()));
    check_timestamp("20171224235960000", Err(())); // leap seconds are smeared
    check_timestamp("20161231235960852", Err(()));
    check_timestamp("2017122423595999", Err(()));
    check_timestamp("201712242359599990", Err(()));
}

#[test]
fn timestamps_reject_a_non_digit_at_every_position() {
    let valid = *b"20171224161432279";
    for position in 0..valid.len() {
        for bad in [0x09, b'/', b':', b' ', b'a', b'-', 0xff] {
            let mut input = valid;
            input[position] = bad;
            assert_eq!(
                parse_timestamp(&input),
                Err(Reason::InvalidCharacters),
                "{position} {bad}"
            );
        }
    }
}

/// Walks day by day through a few centuries and both ends of the range, checking the calendar
/// against a plain "next day" rule: an oracle independent of the closed-form arithmetic.
#[test]
fn timestamps_consecutive_days() {
    let day_ms = 86_400_000;
    let year_start =
        |year: i64| parse_timestamp(format!("{year:04}0101000000000").as_bytes()).unwrap();
    for (first_year, last_year) in [(0, 10), (1599, 2401), (9990, 9999)] {
        let mut previous = format_timestamp(year_start(first_year));
        let mut ms = year_start(first_year) + day_ms;
        while ms <= year_start(last_year) {
            let current = format_timestamp(ms);
            assert_eq!(
                current,
                next_day(&previous),
                "after {}",
                previous.escape_ascii()
            );
            assert_eq!(parse_timestamp(&current), Ok(ms));
            previous = current;
            ms += day_ms;
        }
    }
}

fn next_day(timestamp: &[u8; 17]) -> [u8; 17] {
    let field = |range: std::ops::Range<usize>| -> i64 {
        std::str::from_utf8(&timestamp[range])
            .unwrap()
            .parse()
            .unwrap()
    };
    let (mut year, mut month, mut day) = (field(0..4), field(4..6), field(6..8));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    day += 1;
    if day > month_days[month as usize - 1] {
        (day, month) = (1, month + 1);
    }
    if month > 12 {
        (month, year) = (1, year + 1);
    }
    let text = format!(
        "{year:04}{month:02}{day:02}{}",
        std::str::from_utf8(&timestamp[8..]).unwrap()
    );
    text.as_bytes().try_into().unwrap()
}

#[test]
fn now_is_after_2020() {
    assert!(now_ms() > 1_577_836_800_000);
}

// ---------------------------------------------------------------------------------------------
// Properties

fn address_strategy() -> impl Strategy<Value = String> {
    const SCHEMES: [&str; 10] = [
        "g", "private", "example", "peer", "self", "test", "test1", "test2", "test3", "local",
    ];
    (
        prop::sample::select(SCHEMES.as_slice()),
        prop::collection::vec("[A-Za-z0-9_~-]{1,12}", 1..5),
    )
        .prop_map(|(scheme, segments)| format!("{scheme}.{}", segments.join(".")))
}

fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
    // Up to 600 bytes so envelopes take 1-, 2- and 3-byte length prefixes.
    prop::collection::vec(any::<u8>(), 0..600)
}

fn prepare_strategy() -> impl Strategy<Value = (u64, i64, [u8; 32], String, Vec<u8>)> {
    (
        any::<u64>(),
        TIMESTAMP_MS_MIN..=TIMESTAMP_MS_MAX,
        any::<[u8; 32]>(),
        address_strategy(),
        data_strategy(),
    )
}

fn reject_strategy() -> impl Strategy<Value = ([u8; 3], String, String, Vec<u8>)> {
    let triggered_by = prop_oneof![Just(String::new()), address_strategy()];
    (
        any::<[u8; 3]>().prop_map(|code| code.map(|byte| byte & 0x7f)),
        triggered_by,
        "\\PC{0,200}",
        data_strategy(),
    )
}

/// Any packet a peer could legitimately send, as canonical bytes.
fn packet_strategy() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        prepare_strategy().prop_map(
            |(amount, expires_at_ms, execution_condition, destination, data)| {
                PrepareBuilder {
                    amount,
                    expires_at_ms,
                    execution_condition,
                    destination: &destination,
                    data: &data,
                }
                .build()
                .unwrap()
            }
        ),
        (any::<[u8; 32]>(), data_strategy()).prop_map(|(fulfillment, data)| FulfillBuilder {
            fulfillment,
            data: &data
        }
        .build()
        .unwrap()),
        reject_strategy().prop_map(|(code, triggered_by, message, data)| {
            RejectBuilder {
                code: ErrorCode(code),
                triggered_by: &triggered_by,
                message: &message,
                data: &data,
            }
            .build()
            .unwrap()
        }),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(index, byte)| Mutation::Set(index, byte)),
        (any::<usize>(), any::<u8>()).prop_map(|(index, byte)| Mutation::Insert(index, byte)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(input: &mut Vec<u8>, mutation: &Mutation) {
    let position = |index: usize, size: usize| if size == 0 { 0 } else { index % size };
    match *mutation {
        Mutation::Set(index, byte) if !input.is_empty() => {
            let at = position(index, input.len());
            input[at] = byte;
        }
        Mutation::Insert(index, byte) => input.insert(position(index, input.len() + 1), byte),
        Mutation::Remove(index) if !input.is_empty() => {
            input.remove(position(index, input.len()));
        }
        Mutation::Truncate(index) => input.truncate(position(index, input.len() + 1)),
        _ => {}
    }
}

/// Whatever parses must rebuild: strictly parsed input is exactly what we would encode, and
/// leniently parsed input rebuilds to its canonical bytes.
fn check_parse_is_consistent(input: Bytes) {
    if let Ok(packet) = Packet::parse_with(input.clone(), &ParseOptions::STRICT) {
        assert_eq!(packet.as_bytes(), &input[..]);
        check_rebuilds(&packet);
    }
    if let Ok(packet) = Packet::parse_with(input, &ParseOptions::LENIENT) {
        check_rebuilds(&packet);
    }
}

fn check_rebuilds(packet: &Packet) {
    let rebuildable = match packet {
        Packet::Reject(reject) => {
            (reject.triggered_by_raw().is_empty() || reject.triggered_by().is_some())
                && std::str::from_utf8(reject.message()).is_ok()
        }
        _ => true,
    };
    if rebuildable {
        assert_eq!(rebuild(packet), packet.as_bytes());
    }
}

proptest! {
    #[test]
    fn prepare_round_trips((amount, expires_at_ms, execution_condition, destination, data) in prepare_strategy()) {
        let builder = PrepareBuilder { amount, expires_at_ms, execution_condition, destination: &destination, data: &data };
        let bytes = builder.build().unwrap();
        let prepare = Prepare::parse_with(bytes.clone(), &ParseOptions::STRICT).unwrap();
        prop_assert_eq!(prepare.amount(), amount);
        prop_assert_eq!(prepare.expires_at_ms(), expires_at_ms);
        prop_assert_eq!(prepare.execution_condition(), &execution_condition);
        prop_assert_eq!(prepare.destination(), destination.as_str());
        prop_assert_eq!(prepare.data(), &data[..]);
        prop_assert_eq!(prepare.as_bytes(), &bytes[..]);
        prop_assert_eq!(prepare.len(), bytes.len());
        let mut written = BytesMut::new();
        builder.write(&mut written).unwrap();
        prop_assert_eq!(&written[..], &bytes[..]);
    }

    #[test]
    fn fulfill_round_trips(fulfillment in any::<[u8; 32]>(), data in data_strategy()) {
        let bytes = FulfillBuilder { fulfillment, data: &data }.build().unwrap();
        let fulfill = Fulfill::parse_with(bytes.clone(), &ParseOptions::STRICT).unwrap();
        prop_assert_eq!(fulfill.fulfillment(), &fulfillment);
        prop_assert_eq!(fulfill.data(), &data[..]);
        prop_assert_eq!(fulfill.as_bytes(), &bytes[..]);
    }

    #[test]
    fn reject_round_trips((code, triggered_by, message, data) in reject_strategy()) {
        let builder = RejectBuilder { code: ErrorCode(code), triggered_by: &triggered_by, message: &message, data: &data };
        let bytes = builder.build().unwrap();
        let reject = Reject::parse_with(bytes.clone(), &ParseOptions::STRICT).unwrap();
        prop_assert_eq!(reject.code(), ErrorCode(code));
        prop_assert_eq!(reject.triggered_by_raw(), triggered_by.as_bytes());
        let expected_triggered_by = Some(triggered_by.as_str()).filter(|text| !text.is_empty());
        prop_assert_eq!(reject.triggered_by(), expected_triggered_by);
        prop_assert_eq!(reject.message(), message.as_bytes());
        prop_assert_eq!(reject.data(), &data[..]);
        prop_assert_eq!(reject.as_bytes(), &bytes[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..300)) {
        check_parse_is_consistent(Bytes::from(input));
    }

    #[test]
    fn mutated_packets_never_panic(
        packet in packet_strategy(),
        mutations in prop::collection::vec(mutation_strategy(), 1..4),
    ) {
        let mut input = packet.to_vec();
        for mutation in &mutations {
            apply(&mut input, mutation);
        }
        check_parse_is_consistent(Bytes::from(input));
    }

    #[test]
    fn forwarded_prepares_parse_and_keep_the_end_to_end_fields(
        (amount, expires_at_ms, execution_condition, destination, data) in prepare_strategy(),
        forwarded_amount in any::<u64>(),
        forwarded_expires_at_ms in TIMESTAMP_MS_MIN..=TIMESTAMP_MS_MAX,
    ) {
        let bytes = PrepareBuilder { amount, expires_at_ms, execution_condition, destination: &destination, data: &data }
            .build()
            .unwrap();
        let original = Prepare::parse(bytes).unwrap();
        let mut out = BytesMut::new();
        original.write_forwarded(forwarded_amount, forwarded_expires_at_ms, &mut out);
        prop_assert_eq!(out.len(), original.forwarded_len());
        let forwarded = Prepare::parse_with(out.freeze(), &ParseOptions::STRICT).unwrap();
        prop_assert_eq!(forwarded.amount(), forwarded_amount);
        prop_assert_eq!(forwarded.expires_at_ms(), forwarded_expires_at_ms);
        prop_assert_eq!(forwarded.execution_condition(), original.execution_condition());
        prop_assert_eq!(forwarded.destination(), original.destination());
        prop_assert_eq!(forwarded.data(), original.data());
    }

    #[test]
    fn timestamps_round_trip(ms in TIMESTAMP_MS_MIN..=TIMESTAMP_MS_MAX) {
        prop_assert_eq!(parse_timestamp(&format_timestamp(ms)), Ok(ms));
    }

    #[test]
    fn generated_addresses_are_valid(address in address_strategy()) {
        prop_assert!(Address::is_valid(address.as_bytes()));
    }
}

/// The error text operators see, for one representative case.
#[test]
fn codec_error_display() {
    let error = CodecError {
        offset: 2,
        field: "code",
        reason: Reason::InvalidCharacters,
    };
    assert_eq!(
        error.to_string(),
        "at byte 2, field `code`: invalid characters"
    );
    let input = unhex(&vector("NEG-ILP-01").hex);
    assert_eq!(Packet::parse(input).unwrap_err(), error);
}
