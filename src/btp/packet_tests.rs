//! Tests for the BTP frame codec: the shared test vectors, hand-written tables and properties.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};

const VECTORS_JSON: &str = include_str!("../../tests/data/vectors.json");

/// The expected failure of each invalid BTP vector: (id, offset, field, reason).
const INVALID_VECTORS: &[(&str, usize, &str, Reason)] = &[
    ("NEG-BTP-01", 0, "type", Reason::UnexpectedEnd { needed: 1, available: 0 }),
    ("NEG-BTP-02", 6, "protocolData.count", Reason::UnexpectedEnd { needed: 45, available: 0 }),
    ("NEG-BTP-03", 5, "contents", Reason::UnexpectedEnd { needed: 4, available: 1 }),
    ("NEG-BTP-04", 6, "protocolData.count", Reason::InvalidVarUInt),
    ("NEG-BTP-05", 8, "contents", Reason::TrailingBytes(4)),
    ("NEG-BTP-06", 5, "contents", Reason::UnexpectedEnd { needed: 0x8400_5bff, available: 1 }),
    ("NEG-BTP-07", 5, "contents", Reason::UnexpectedEnd { needed: 6, available: 2 }),
    ("NEG-BTP-08", 6, "protocolData.count", Reason::NonCanonicalLength),
    ("NEG-BTP-09", 6, "protocolData.count", Reason::InvalidVarUInt),
    ("NEG-BTP-11", 19, "triggeredAt", Reason::InvalidCharacters),
];

/// The vectors' `decoded` form of a frame.
fn to_json(packet: &BtpPacket) -> Value {
    let entries: Vec<Value> = packet
        .protocol_data()
        .iter()
        .map(|entry| {
            json!({
                "protocolName": entry.name_str().unwrap(),
                "contentType": entry.content_type,
                "data": hex::encode(&entry.data),
            })
        })
        .collect();
    let mut value = json!({ "type": packet.frame_type(), "requestId": packet.request_id() });
    match packet {
        BtpPacket::Error { code, name, triggered_at, data, .. } => {
            value["code"] = json!(std::str::from_utf8(code).unwrap());
            value["name"] = json!(name);
            value["triggeredAt"] = json!(triggered_at.as_str());
            value["data"] = json!(hex::encode(data));
        }
        BtpPacket::Transfer { amount, .. } => value["amount"] = json!(amount),
        BtpPacket::Response { .. } | BtpPacket::Message { .. } => {}
    }
    value["protocolData"] = Value::Array(entries);
    value
}

fn parse_hex(hex_input: &str) -> Result<BtpPacket, CodecError> {
    BtpPacket::parse(Bytes::from(hex::decode(hex_input).unwrap()))
}

/// Decodes `hex_input`, compares with `expect`, and re-encodes byte-exact when it decoded.
fn check(hex_input: &str, expect: Result<Value, (usize, &str, Reason)>) {
    let got = parse_hex(hex_input);
    match (&got, expect) {
        (Ok(packet), Ok(expected)) => {
            assert_eq!(to_json(packet), expected, "decode of {hex_input}");
            assert_eq!(hex::encode(packet.encode()), hex_input, "re-encode of {hex_input}");
            assert_eq!(packet.encoded_len(), hex_input.len() / 2);
        }
        (Err(error), Err((offset, field, reason))) => {
            assert_eq!(
                (error.offset, error.field, error.reason),
                (offset, field, reason),
                "{hex_input}"
            );
        }
        (got, expect) => panic!("{hex_input}: got {got:?}, expected {expect:?}"),
    }
}

#[test]
fn every_btp_vector() {
    let vectors: Vec<Value> = serde_json::from_str(VECTORS_JSON).unwrap();
    let btp_vectors: Vec<&Value> =
        vectors.iter().filter(|vector| vector["kind"] == "btp").collect();
    assert!(btp_vectors.len() >= 24, "vectors.json lost its BTP vectors");
    for vector in btp_vectors {
        let id = vector["id"].as_str().unwrap();
        let hex_input = vector["hex"].as_str().unwrap();
        match vector["valid"].as_bool() {
            Some(true) => check(hex_input, Ok(vector["decoded"].clone())),
            Some(false) => {
                let &(_, offset, field, reason) = INVALID_VECTORS
                    .iter()
                    .find(|(known, ..)| *known == id)
                    .unwrap_or_else(|| panic!("{id}: invalid vector without an expected error"));
                check(hex_input, Err((offset, field, reason)));
            }
            None => panic!("{id}: `valid` must be true or false for a BTP vector"),
        }
    }
}

#[test]
fn hand_written_frames() {
    // Types 3/4/5 (BTP 1.0) and others are unknown whatever follows.
    check("030000000100", Err((0, "type", Reason::UnknownType(3))));
    check("ff", Err((0, "type", Reason::UnknownType(255))));
    check("0100", Err((1, "requestId", Reason::UnexpectedEnd { needed: 4, available: 1 })));
    check("0100000001020100ff", Err((8, "frame", Reason::TrailingBytes(1))));
    // A count of 2^32 in a tiny frame fails before any allocation.
    check(
        "060000000106050100000000",
        Err((
            6,
            "protocolData.count",
            Reason::Invalid("more entries than the remaining bytes can hold"),
        )),
    );
    check(
        "060000000106010101ff0000",
        Err((8, "protocolData.protocolName", Reason::InvalidCharacters)),
    );
    check(
        "060000000107010101610005ff",
        Err((11, "protocolData.data", Reason::UnexpectedEnd { needed: 5, available: 1 })),
    );
    check(
        "0700000001050000000000",
        Err((6, "amount", Reason::UnexpectedEnd { needed: 8, available: 5 })),
    );
    check(
        "07000000010affffffffffffffff0100",
        Ok(json!({"type": 7, "requestId": 1, "amount": u64::MAX, "protocolData": []})),
    );
}

#[test]
fn error_frames() {
    let error = |code: &str, time: &str, data_size: usize| {
        let mut contents = hex::decode(code).unwrap();
        contents.push(0);
        oer::write_var_octets(&mut contents, time.as_bytes());
        oer::write_var_octets(&mut contents, &vec![b'x'; data_size]);
        contents.extend_from_slice(&[1, 0]);
        let mut frame = vec![TYPE_ERROR, 0, 0, 0, 9];
        oer::write_var_octets(&mut frame, &contents);
        hex::encode(frame)
    };
    assert!(parse_hex(&error("463030", "20170828183200Z", 0)).is_ok());
    assert!(parse_hex(&error("463030", "20170828183200.2Z", 0)).is_ok());
    assert!(parse_hex(&error("463030", "20170828183200.25Z", ERROR_DATA_SIZE_MAX)).is_ok());
    let too_much = error("463030", "20170828183200Z", ERROR_DATA_SIZE_MAX + 1);
    // The data field is followed only by its own bytes and the empty protocol data `01 00`.
    let data_offset = too_much.len() / 2 - (3 + ERROR_DATA_SIZE_MAX + 1 + 2);
    check(&too_much, Err((data_offset, "data", Reason::OutOfRange)));
    check(&error("46ff30", "20170828183200Z", 0), Err((6, "code", Reason::InvalidCharacters)));
    check(&error("463030", "20171328183200Z", 0), Err((10, "triggeredAt", Reason::OutOfRange)));
}

#[test]
fn generalized_times() {
    let check_time = |text: &str, expect: Result<(), Reason>| {
        let got = GeneralizedTime::parse(text.as_bytes());
        assert_eq!(got.map(|time| assert_eq!(time.as_str(), text)), expect, "{text}");
    };
    let length_error = Err(Reason::Invalid("GeneralizedTime must be 15, 17, 18 or 19 characters"));
    check_time("20170828183200Z", Ok(()));
    check_time("20170828183200.2Z", Ok(()));
    check_time("20170828183200.25Z", Ok(()));
    check_time("20170828183200.000Z", Ok(()));
    check_time("20160229235959.999Z", Ok(()));
    check_time("20170828183200.Z", length_error);
    check_time("20170828183200.0000Z", length_error);
    check_time("2017082818320Z", length_error);
    check_time("20170828183200z", Err(Reason::InvalidCharacters));
    check_time("20170828183200,000Z", Err(Reason::InvalidCharacters));
    check_time("2017082818320a.000Z", Err(Reason::InvalidCharacters));
    check_time("20170828183200.0a0Z", Err(Reason::InvalidCharacters));
    check_time("2017-08-28T18:3200Z", Err(Reason::InvalidCharacters));
    check_time("20170229000000Z", Err(Reason::OutOfRange));
    check_time("20170100000000Z", Err(Reason::OutOfRange));
    check_time("20171231240000Z", Err(Reason::OutOfRange));
    check_time("20171231236000Z", Err(Reason::OutOfRange));
    check_time("20161231235960Z", Err(Reason::OutOfRange));
}

#[test]
fn times_from_unix_ms() {
    for (unix_ms, text) in [
        (0, "19700101000000.000Z"),
        (1_535_684_004_899, "20180831025324.899Z"),
        (951_782_400_000, "20000229000000.000Z"),
        (4_107_542_399_001, "21000228235959.001Z"),
        (u64::MAX, "99991231235959.999Z"),
    ] {
        let time = GeneralizedTime::from_unix_ms(unix_ms);
        assert_eq!(time.as_str(), text);
        assert_eq!(GeneralizedTime::parse(time.as_bytes()), Ok(time));
    }
    let now = GeneralizedTime::now();
    assert_eq!(now.as_bytes().len(), 19);
    assert!(now.as_str() > "2024", "{now}");
}

#[test]
fn error_helper_stamps_now_and_bounds_data() {
    let packet = BtpErrorCode::F00_NOT_ACCEPTED.packet(7, &vec![b'x'; ERROR_DATA_SIZE_MAX + 10]);
    let BtpPacket::Error { request_id, code, name, data, triggered_at, .. } = &packet else {
        panic!("not an Error: {packet:?}");
    };
    assert_eq!((*request_id, code, name.as_str()), (7, b"F00", "NotAcceptedError"));
    assert_eq!(data.len(), ERROR_DATA_SIZE_MAX);
    assert_eq!(triggered_at.as_bytes().len(), 19);
    assert_eq!(BtpPacket::parse(packet.encode()), Ok(packet.clone()));
    assert!(!BtpErrorCode::F00_NOT_ACCEPTED.is_temporary());
    assert!(BtpErrorCode::T00_UNREACHABLE.is_temporary());
}

#[test]
fn accessors() {
    let vectors: Vec<Value> = serde_json::from_str(VECTORS_JSON).unwrap();
    let btp_01 = vectors.iter().find(|vector| vector["id"] == "BTP-01").unwrap();
    let packet = parse_hex(btp_01["hex"].as_str().unwrap()).unwrap();
    assert_eq!(packet.request_id(), 1);
    assert!(packet.primary().unwrap().is_named(PROTOCOL_ILP));
    assert_eq!(packet.find("beep").map(|entry| &entry.data[..]), Some(&b"boop"[..]));
    assert_eq!(packet.find("json").map(|entry| entry.content_type), Some(CONTENT_JSON));
    assert!(packet.find("nope").is_none());
    assert!(!packet.has_duplicate_protocol_names());
    let twice = BtpPacket::Message {
        request_id: 1,
        protocol_data: vec![
            ProtocolData::new("auth", CONTENT_OCTET_STREAM, Bytes::new()),
            ProtocolData::new("auth_token", CONTENT_TEXT, Bytes::from_static(b"a")),
            ProtocolData::new("auth", CONTENT_OCTET_STREAM, Bytes::new()),
        ],
    };
    assert!(twice.has_duplicate_protocol_names());
}

#[test]
fn parsed_fields_share_the_input_buffer() {
    let input = Bytes::from(
        hex::decode("060000000217010204746573740002ffff0474657874010568656c6c6f").unwrap(),
    );
    let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
    let packet = BtpPacket::parse(input.clone()).unwrap();
    for entry in packet.protocol_data() {
        assert!(range.contains(&(entry.data.as_ptr() as usize)));
        assert!(range.contains(&(entry.protocol_name.as_ptr() as usize)));
    }
}

#[test]
fn ilp_frames_for_every_length_prefix_size() {
    for ilp_len in [0, 1, 100, 127, 128, 200, 255, 256, 32_767, 70_000] {
        let ilp_packet: Vec<u8> = (0..ilp_len).map(|index| index as u8).collect();
        let packet = check_ilp_frame(TYPE_RESPONSE, 0xdead_beef, &ilp_packet);
        assert_eq!(packet.frame_type(), TYPE_RESPONSE);
    }
}

/// Builds a frame with `write_ilp_frame`, checks its size and that it parses to one `ilp` entry.
fn check_ilp_frame(frame_type: u8, request_id: u32, ilp_packet: &[u8]) -> BtpPacket {
    let mut out = BytesMut::new();
    write_ilp_frame(&mut out, frame_type, request_id, ilp_packet.len());
    out.put_slice(ilp_packet);
    assert_eq!(out.len(), ilp_frame_len(ilp_packet.len()));
    let frame = out.freeze();
    let packet = BtpPacket::parse(frame.clone()).unwrap();
    assert_eq!(packet.request_id(), request_id);
    assert_eq!(packet.protocol_data().len(), 1);
    let entry = packet.primary().unwrap();
    assert!(entry.is_named(PROTOCOL_ILP));
    assert_eq!((entry.content_type, &entry.data[..]), (CONTENT_OCTET_STREAM, ilp_packet));
    assert_eq!(packet.encode(), frame);
    packet
}

#[test]
fn drv_btp_04_is_what_write_ilp_frame_writes() {
    let vectors: Vec<Value> = serde_json::from_str(VECTORS_JSON).unwrap();
    let vector = vectors.iter().find(|vector| vector["id"] == "DRV-BTP-04").unwrap();
    let ilp_packet =
        hex::decode(vector["decoded"]["protocolData"][0]["data"].as_str().unwrap()).unwrap();
    let mut out = BytesMut::new();
    write_ilp_frame(&mut out, TYPE_MESSAGE, 1, ilp_packet.len());
    out.put_slice(&ilp_packet);
    assert_eq!(hex::encode(out), vector["hex"].as_str().unwrap());
}

fn protocol_data_strategy() -> impl Strategy<Value = Vec<ProtocolData>> {
    let entry = ("[ -~]{0,12}", any::<u8>(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(
        |(name, content_type, data)| ProtocolData::new(&name, content_type, Bytes::from(data)),
    );
    prop::collection::vec(entry, 0..5)
}

fn generalized_time_strategy() -> impl Strategy<Value = GeneralizedTime> {
    (0..=GeneralizedTime::UNIX_MS_MAX, prop::sample::select(vec![15usize, 17, 18, 19])).prop_map(
        |(unix_ms, size)| {
            let full = GeneralizedTime::from_unix_ms(unix_ms);
            let mut text = full.as_bytes()[..size - 1].to_vec();
            if size == 15 {
                text.truncate(14);
            }
            text.push(b'Z');
            GeneralizedTime::parse(&text).unwrap()
        },
    )
}

fn packet_strategy() -> impl Strategy<Value = BtpPacket> {
    let error = (
        any::<u32>(),
        "[ -~]{3}",
        "\\PC{0,20}",
        generalized_time_strategy(),
        prop::collection::vec(any::<u8>(), 0..200),
        protocol_data_strategy(),
    )
        .prop_map(|(request_id, code, name, triggered_at, data, protocol_data)| {
            BtpPacket::Error {
                request_id,
                code: code.as_bytes().try_into().unwrap(),
                name,
                triggered_at,
                data: Bytes::from(data),
                protocol_data,
            }
        });
    prop_oneof![
        (any::<u32>(), protocol_data_strategy()).prop_map(|(request_id, protocol_data)| {
            BtpPacket::Response { request_id, protocol_data }
        }),
        (any::<u32>(), protocol_data_strategy()).prop_map(|(request_id, protocol_data)| {
            BtpPacket::Message { request_id, protocol_data }
        }),
        (any::<u32>(), any::<u64>(), protocol_data_strategy()).prop_map(
            |(request_id, amount, protocol_data)| BtpPacket::Transfer {
                request_id,
                amount,
                protocol_data
            }
        ),
        error,
    ]
}

/// The fuzz target's property: whatever parses re-encodes to exactly its input.
fn check_canonical(input: &[u8]) {
    if let Ok(packet) = BtpPacket::parse(Bytes::copy_from_slice(input)) {
        assert_eq!(packet.encode().as_ref(), input);
        assert_eq!(packet.encoded_len(), input.len());
    }
}

proptest! {
    #[test]
    fn frames_round_trip(packet in packet_strategy()) {
        let encoded = packet.encode();
        prop_assert_eq!(encoded.len(), packet.encoded_len());
        prop_assert_eq!(BtpPacket::parse(encoded.clone()), Ok(packet));
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
        check_canonical(&input);
    }

    #[test]
    fn mutated_frames_never_panic(
        packet in packet_strategy(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let mut input = packet.encode().to_vec();
        for (index, byte, kind) in edits {
            if input.is_empty() {
                break;
            }
            let position = index.index(input.len());
            match kind {
                0 => input[position] = byte,
                1 => input.truncate(position),
                _ => input.insert(position, byte),
            }
        }
        check_canonical(&input);
    }

    #[test]
    fn ilp_fast_path_agrees_with_the_full_parser(
        packet in packet_strategy(),
        ilp_packet in prop::collection::vec(any::<u8>(), 0..300),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        is_message in any::<bool>(),
    ) {
        // Half the inputs have the fast path's shape, the rest are any frame; then mutate.
        let frame_type = if is_message { TYPE_MESSAGE } else { TYPE_RESPONSE };
        let mut input = if ilp_packet.len() % 2 == 0 {
            let mut out = BytesMut::new();
            write_ilp_frame(&mut out, frame_type, 7, ilp_packet.len());
            out.put_slice(&ilp_packet);
            out.to_vec()
        } else {
            packet.encode().to_vec()
        };
        for (index, byte) in edits {
            if !input.is_empty() {
                let position = index.index(input.len());
                input[position] = byte;
            }
        }
        let input = Bytes::from(input);
        if let Some((fast_type, fast_request_id, fast_packet)) = parse_ilp_frame(&input) {
            let full = BtpPacket::parse(input.clone()).expect("the fast path accepts only valid frames");
            prop_assert_eq!(full.frame_type(), fast_type);
            prop_assert_eq!(full.request_id(), fast_request_id);
            prop_assert_eq!(full.protocol_data().len(), 1);
            let entry = &full.protocol_data()[0];
            prop_assert!(entry.is_named("ilp"));
            prop_assert_eq!(entry.content_type, CONTENT_OCTET_STREAM);
            prop_assert_eq!(&entry.data, &fast_packet);
        }
    }

    #[test]
    fn ilp_frames_parse_back(
        is_message in any::<bool>(),
        request_id in any::<u32>(),
        ilp_packet in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let frame_type = if is_message { TYPE_MESSAGE } else { TYPE_RESPONSE };
        check_ilp_frame(frame_type, request_id, &ilp_packet);
    }
}
