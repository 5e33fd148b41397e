//! `m2m-connector packet decode|encode`: the operator's view of bytes on the wire.
//!
//! `decode` reads hex (an argument or standard input) and prints the ILP packet or BTP frame as
//! pretty JSON with the field names of the shared test vectors; `encode` reads that JSON and
//! prints hex, so `decode | encode` gives back canonical input byte for byte. Decoding goes
//! through the connector's own codecs with the connector's own rules: BTP is strict; ILP accepts
//! bytes after the last field (RFC 30), reports how many under `trailingBytesIgnored` and, like
//! the connector, never re-emits them. Invalid input gets one line on stderr naming the byte
//! offset and field, and exit status 2. Nothing here panics on input.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::btp::packet::{
    BtpPacket, GeneralizedTime, ProtocolData, ERROR_DATA_SIZE_MAX, PROTOCOL_ILP, TYPE_ERROR,
    TYPE_MESSAGE, TYPE_RESPONSE, TYPE_TRANSFER,
};
use crate::ilp::packet::{FulfillBuilder, Packet, PrepareBuilder, RejectBuilder};
use crate::ilp::{format_timestamp, parse_timestamp, ErrorCode};

/// Exit status for input that cannot be decoded or encoded, the same as clap's usage errors.
const EXIT_STATUS_INVALID_INPUT: u8 = 2;

const TYPE_PREPARE: u8 = 12;
const TYPE_FULFILL: u8 = 13;
const TYPE_REJECT: u8 = 14;

/// Keys that `decode` adds for the reader and `encode` ignores: they are derived from the bytes
/// that the other fields already describe.
const INFORMATIONAL_KEYS: [&str; 4] = ["kind", "trailingBytesIgnored", "messageHex", "ilp"];

#[derive(clap::Args, Debug)]
pub struct PacketArgs {
    #[command(subcommand)]
    command: PacketCommand,
}

#[derive(clap::Subcommand, Debug)]
enum PacketCommand {
    /// Decode an ILP packet or a BTP frame from hex and print it as JSON.
    Decode {
        /// Hex bytes (whitespace and a leading 0x allowed); `-` or nothing reads standard input.
        input: Option<String>,
        /// What the bytes are; `auto` goes by the first byte (12-14 ILP, 1, 2, 6, 7 BTP).
        #[arg(long, value_enum, default_value_t = PacketKind::Auto)]
        kind: PacketKind,
    },
    /// Encode JSON, as `decode` prints it, back to hex. `kind` (or else `type`) picks the codec.
    Encode {
        /// The JSON; `-` or nothing reads standard input.
        input: Option<String>,
    },
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Ilp,
    Btp,
    Auto,
}

pub fn run(args: PacketArgs) -> ExitCode {
    let output = match args.command {
        PacketCommand::Decode { input, kind } => {
            read_input(input).and_then(|text| decode(&text, kind))
        }
        PacketCommand::Encode { input } => read_input(input).and_then(|text| encode(&text)),
    };
    match output {
        Ok(text) => {
            // A closed pipe (`| head`) is not worth a panic or an error status.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let message = format!("{error:#}").replace(['\n', '\r'], " ");
            let _ = writeln!(std::io::stderr().lock(), "error: {message}");
            ExitCode::from(EXIT_STATUS_INVALID_INPUT)
        }
    }
}

fn read_input(argument: Option<String>) -> anyhow::Result<String> {
    match argument {
        Some(text) if text != "-" => Ok(text),
        _ => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
            Ok(text)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON shapes. Field order is the print order; `skip_deserializing` marks informational fields.

#[derive(Serialize)]
#[serde(untagged)]
enum DecodedJson {
    Ilp(IlpJson),
    Btp(BtpJson),
}

#[derive(Serialize)]
#[serde(untagged)]
enum IlpJson {
    Prepare(PrepareJson),
    Fulfill(FulfillJson),
    Reject(RejectJson),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrepareJson {
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(rename = "type")]
    packet_type: u8,
    amount: u64,
    expires_at: String,
    execution_condition: String,
    destination: String,
    data: String,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    trailing_bytes_ignored: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FulfillJson {
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(rename = "type")]
    packet_type: u8,
    fulfillment: String,
    data: String,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    trailing_bytes_ignored: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RejectJson {
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(rename = "type")]
    packet_type: u8,
    code: String,
    triggered_by: String,
    /// The message, with invalid UTF-8 replaced; `messageHex` then holds the exact bytes.
    message: String,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    message_hex: Option<String>,
    data: String,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    trailing_bytes_ignored: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BtpJson {
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(rename = "type")]
    frame_type: u8,
    request_id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amount: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    triggered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    protocol_data: Vec<ProtocolDataJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProtocolDataJson {
    protocol_name: String,
    content_type: u8,
    data: String,
    /// The entry's data decoded, when the entry is `ilp` and holds a valid ILP packet.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    ilp: Option<IlpJson>,
}

// ---------------------------------------------------------------------------------------------
// decode

fn decode(text: &str, kind: PacketKind) -> anyhow::Result<String> {
    let bytes = Bytes::from(parse_hex(text)?);
    let kind = match kind {
        PacketKind::Auto => detect_kind(&bytes)?,
        chosen => chosen,
    };
    let decoded = match kind {
        PacketKind::Btp => DecodedJson::Btp(decode_btp(bytes)?),
        PacketKind::Ilp | PacketKind::Auto => DecodedJson::Ilp(decode_ilp(bytes)?),
    };
    Ok(serde_json::to_string_pretty(&decoded)?)
}

/// The first byte decides: the ILP and BTP type numbers do not overlap, so no input could be
/// both and there is nothing to try twice.
fn detect_kind(bytes: &[u8]) -> anyhow::Result<PacketKind> {
    match bytes.first() {
        Some(&(TYPE_PREPARE | TYPE_FULFILL | TYPE_REJECT)) => Ok(PacketKind::Ilp),
        Some(&(TYPE_RESPONSE | TYPE_ERROR | TYPE_MESSAGE | TYPE_TRANSFER)) => Ok(PacketKind::Btp),
        Some(other) => bail!(
            "not an ILP packet or BTP frame: first byte {other} is neither an ILP type (12, 13, 14) \
             nor a BTP type (1, 2, 6, 7)"
        ),
        None => bail!("no input: expected the hex bytes of an ILP packet or BTP frame"),
    }
}

fn parse_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let trimmed = text.trim();
    let digits =
        trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")).unwrap_or(trimmed);
    let digits: String = digits.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(digits).map_err(|error| anyhow!("invalid hex: {error}"))
}

fn decode_ilp(bytes: Bytes) -> anyhow::Result<IlpJson> {
    let input_size = bytes.len();
    let packet = Packet::parse(bytes.clone())
        .map_err(|error| anyhow!("invalid {}: {error}", ilp_type_name(bytes.first())))?;
    let trailing_size = input_size - packet.as_bytes().len();
    Ok(ilp_to_json(&packet, Some("ilp"), Some(trailing_size).filter(|&size| size > 0)))
}

fn ilp_to_json(
    packet: &Packet,
    kind: Option<&'static str>,
    trailing_bytes_ignored: Option<usize>,
) -> IlpJson {
    match packet {
        Packet::Prepare(prepare) => IlpJson::Prepare(PrepareJson {
            kind,
            packet_type: TYPE_PREPARE,
            amount: prepare.amount(),
            expires_at: String::from_utf8_lossy(&format_timestamp(prepare.expires_at_ms()))
                .into_owned(),
            execution_condition: hex::encode(prepare.execution_condition()),
            destination: prepare.destination().to_owned(),
            data: hex::encode(prepare.data()),
            trailing_bytes_ignored,
        }),
        Packet::Fulfill(fulfill) => IlpJson::Fulfill(FulfillJson {
            kind,
            packet_type: TYPE_FULFILL,
            fulfillment: hex::encode(fulfill.fulfillment()),
            data: hex::encode(fulfill.data()),
            trailing_bytes_ignored,
        }),
        Packet::Reject(reject) => IlpJson::Reject(RejectJson {
            kind,
            packet_type: TYPE_REJECT,
            code: reject.code().as_str().to_owned(),
            triggered_by: String::from_utf8_lossy(reject.triggered_by_raw()).into_owned(),
            message: reject.message_lossy().into_owned(),
            message_hex: std::str::from_utf8(reject.message())
                .is_err()
                .then(|| hex::encode(reject.message())),
            data: hex::encode(reject.data()),
            trailing_bytes_ignored,
        }),
    }
}

fn decode_btp(bytes: Bytes) -> anyhow::Result<BtpJson> {
    let packet = BtpPacket::parse(bytes.clone())
        .map_err(|error| anyhow!("invalid {}: {error}", btp_type_name(bytes.first())))?;
    Ok(btp_to_json(&packet))
}

fn btp_to_json(packet: &BtpPacket) -> BtpJson {
    let mut json = BtpJson {
        kind: Some("btp"),
        frame_type: packet.frame_type(),
        request_id: packet.request_id(),
        amount: None,
        code: None,
        name: None,
        triggered_at: None,
        data: None,
        protocol_data: packet.protocol_data().iter().map(protocol_data_to_json).collect(),
    };
    match packet {
        BtpPacket::Transfer { amount, .. } => json.amount = Some(*amount),
        BtpPacket::Error { code, name, triggered_at, data, .. } => {
            json.code = Some(String::from_utf8_lossy(code).into_owned());
            json.name = Some(name.clone());
            json.triggered_at = Some(triggered_at.as_str().to_owned());
            json.data = Some(hex::encode(data));
        }
        BtpPacket::Response { .. } | BtpPacket::Message { .. } => {}
    }
    json
}

fn protocol_data_to_json(entry: &ProtocolData) -> ProtocolDataJson {
    let ilp =
        entry.is_named(PROTOCOL_ILP).then(|| Packet::parse(entry.data.clone()).ok()).flatten().map(
            |packet| {
                let trailing_size = entry.data.len() - packet.as_bytes().len();
                ilp_to_json(&packet, None, Some(trailing_size).filter(|&size| size > 0))
            },
        );
    ProtocolDataJson {
        protocol_name: String::from_utf8_lossy(&entry.protocol_name).into_owned(),
        content_type: entry.content_type,
        data: hex::encode(&entry.data),
        ilp,
    }
}

fn ilp_type_name(first_byte: Option<&u8>) -> &'static str {
    match first_byte {
        Some(&TYPE_PREPARE) => "ILP Prepare",
        Some(&TYPE_FULFILL) => "ILP Fulfill",
        Some(&TYPE_REJECT) => "ILP Reject",
        _ => "ILP packet",
    }
}

fn btp_type_name(first_byte: Option<&u8>) -> &'static str {
    match first_byte {
        Some(&TYPE_RESPONSE) => "BTP Response",
        Some(&TYPE_ERROR) => "BTP Error",
        Some(&TYPE_MESSAGE) => "BTP Message",
        Some(&TYPE_TRANSFER) => "BTP Transfer",
        _ => "BTP frame",
    }
}

// ---------------------------------------------------------------------------------------------
// encode

fn encode(text: &str) -> anyhow::Result<String> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|error| anyhow!("invalid JSON: {error}"))?;
    let kind = json_kind(&value)?;
    strip_informational_keys(&mut value);
    let bytes = match kind {
        PacketKind::Btp => encode_btp(value)?,
        PacketKind::Ilp | PacketKind::Auto => encode_ilp(value)?,
    };
    Ok(hex::encode(bytes))
}

/// `kind` when present, else what `type` says.
fn json_kind(value: &Value) -> anyhow::Result<PacketKind> {
    let Some(object) = value.as_object() else {
        bail!("invalid JSON: expected an object like the ones `packet decode` prints");
    };
    match object.get("kind") {
        Some(Value::String(kind)) if kind == "ilp" => return Ok(PacketKind::Ilp),
        Some(Value::String(kind)) if kind == "btp" => return Ok(PacketKind::Btp),
        Some(other) => bail!("invalid JSON: `kind` is {other}, expected \"ilp\" or \"btp\""),
        None => {}
    }
    let type_byte = object.get("type").and_then(Value::as_u64).unwrap_or(0);
    detect_kind(&[u8::try_from(type_byte).unwrap_or(0)]).map_err(|_| {
        anyhow!("invalid JSON: no `kind`, and `type` is not an ILP or BTP type number")
    })
}

fn strip_informational_keys(value: &mut Value) {
    let Some(object) = value.as_object_mut() else { return };
    for key in INFORMATIONAL_KEYS {
        object.remove(key);
    }
    let Some(Value::Array(entries)) = object.get_mut("protocolData") else { return };
    for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
        entry.remove("ilp");
    }
}

fn encode_ilp(value: Value) -> anyhow::Result<Bytes> {
    match value.get("type").and_then(Value::as_u64) {
        Some(12) => encode_prepare(from_json(value, "ILP Prepare")?),
        Some(13) => encode_fulfill(from_json(value, "ILP Fulfill")?),
        Some(14) => encode_reject(from_json(value, "ILP Reject")?),
        _ => bail!(
            "invalid ILP packet JSON: `type` must be 12 (Prepare), 13 (Fulfill) or 14 (Reject)"
        ),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(value).map_err(|error| anyhow!("invalid {what} JSON: {error}"))
}

fn encode_prepare(json: PrepareJson) -> anyhow::Result<Bytes> {
    let expires_at_ms = parse_timestamp(json.expires_at.as_bytes())
        .map_err(|reason| anyhow!("invalid ILP Prepare: field `expiresAt`: {reason}"))?;
    let builder = PrepareBuilder {
        amount: json.amount,
        expires_at_ms,
        execution_condition: hex_array(
            &json.execution_condition,
            "ILP Prepare",
            "executionCondition",
        )?,
        destination: &json.destination,
        data: &hex_field(&json.data, "ILP Prepare", "data")?,
    };
    builder.build().map_err(|error| anyhow!("invalid ILP Prepare: {error}"))
}

fn encode_fulfill(json: FulfillJson) -> anyhow::Result<Bytes> {
    let builder = FulfillBuilder {
        fulfillment: hex_array(&json.fulfillment, "ILP Fulfill", "fulfillment")?,
        data: &hex_field(&json.data, "ILP Fulfill", "data")?,
    };
    builder.build().map_err(|error| anyhow!("invalid ILP Fulfill: {error}"))
}

fn encode_reject(json: RejectJson) -> anyhow::Result<Bytes> {
    let code = ErrorCode::parse(&json.code)
        .map_err(|error| anyhow!("invalid ILP Reject: field `code`: {error}"))?;
    let builder = RejectBuilder {
        code,
        triggered_by: &json.triggered_by,
        message: &json.message,
        data: &hex_field(&json.data, "ILP Reject", "data")?,
    };
    builder.build().map_err(|error| anyhow!("invalid ILP Reject: {error}"))
}

fn encode_btp(value: Value) -> anyhow::Result<Bytes> {
    let json: BtpJson = from_json(value, "BTP frame")?;
    let what = btp_type_name(Some(&json.frame_type));
    let protocol_data = json
        .protocol_data
        .iter()
        .map(|entry| {
            let data = hex_field(&entry.data, what, "protocolData.data")?;
            Ok(ProtocolData::new(&entry.protocol_name, entry.content_type, Bytes::from(data)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request_id = json.request_id;
    let packet = match json.frame_type {
        TYPE_RESPONSE | TYPE_MESSAGE => {
            forbid_fields(&json, what, &[("amount", json.amount.is_some())])?;
            if json.frame_type == TYPE_RESPONSE {
                BtpPacket::Response { request_id, protocol_data }
            } else {
                BtpPacket::Message { request_id, protocol_data }
            }
        }
        TYPE_TRANSFER => {
            forbid_fields(&json, what, &[])?;
            let amount = json.amount.ok_or_else(|| missing_field(what, "amount"))?;
            BtpPacket::Transfer { request_id, amount, protocol_data }
        }
        TYPE_ERROR => btp_error_from_json(json, protocol_data)?,
        other => bail!(
            "invalid BTP frame JSON: `type` {other} is not 1 (Response), 2 (Error), 6 (Message) \
             or 7 (Transfer)"
        ),
    };
    Ok(packet.encode())
}

/// Fails if an Error-only field, or any field listed in `others` as present, is set.
fn forbid_fields(json: &BtpJson, what: &str, others: &[(&str, bool)]) -> anyhow::Result<()> {
    let error_fields = [
        ("code", json.code.is_some()),
        ("name", json.name.is_some()),
        ("triggeredAt", json.triggered_at.is_some()),
        ("data", json.data.is_some()),
    ];
    match error_fields.iter().chain(others).find(|(_, present)| *present) {
        Some((field, _)) => bail!("invalid {what} JSON: a {what} has no field `{field}`"),
        None => Ok(()),
    }
}

fn btp_error_from_json(
    json: BtpJson,
    protocol_data: Vec<ProtocolData>,
) -> anyhow::Result<BtpPacket> {
    let what = "BTP Error";
    if json.amount.is_some() {
        bail!("invalid {what} JSON: a {what} has no field `amount`");
    }
    let code_text = json.code.ok_or_else(|| missing_field(what, "code"))?;
    let code: [u8; 3] =
        code_text.as_bytes().try_into().ok().filter(|code: &[u8; 3]| code.is_ascii()).ok_or_else(
            || anyhow!("invalid {what}: field `code`: expected three ASCII characters"),
        )?;
    let triggered_at_text = json.triggered_at.ok_or_else(|| missing_field(what, "triggeredAt"))?;
    let triggered_at = GeneralizedTime::parse(triggered_at_text.as_bytes())
        .map_err(|reason| anyhow!("invalid {what}: field `triggeredAt`: {reason}"))?;
    let data = hex_field(&json.data.ok_or_else(|| missing_field(what, "data"))?, what, "data")?;
    if data.len() > ERROR_DATA_SIZE_MAX {
        bail!(
            "invalid {what}: field `data`: {} bytes, more than the {ERROR_DATA_SIZE_MAX} allowed",
            data.len()
        );
    }
    let name = json.name.ok_or_else(|| missing_field(what, "name"))?;
    let request_id = json.request_id;
    Ok(BtpPacket::Error {
        request_id,
        code,
        name,
        triggered_at,
        data: Bytes::from(data),
        protocol_data,
    })
}

fn missing_field(what: &str, field: &str) -> anyhow::Error {
    anyhow!("invalid {what} JSON: missing field `{field}`")
}

fn hex_field(text: &str, what: &str, field: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(text)
        .map_err(|error| anyhow!("invalid {what}: field `{field}`: invalid hex: {error}"))
}

fn hex_array<const N: usize>(text: &str, what: &str, field: &str) -> anyhow::Result<[u8; N]> {
    let bytes = hex_field(text, what, field)?;
    let size = bytes.len();
    bytes
        .try_into()
        .map_err(|_| anyhow!("invalid {what}: field `{field}`: {size} bytes, expected {N}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const VECTORS_JSON: &str = include_str!("../../tests/data/vectors.json");

    fn vectors() -> Vec<Value> {
        serde_json::from_str(VECTORS_JSON).unwrap()
    }

    fn vector(id: &str) -> Value {
        vectors().into_iter().find(|vector| vector["id"] == id).unwrap()
    }

    /// The full hex of a vector, expanding DRV-ILP-05's prefix-plus-zeros form.
    fn vector_hex(vector: &Value) -> String {
        match vector["hex"].as_str() {
            Some(hex_text) => hex_text.to_owned(),
            None => {
                let data_size = vector["dataLen"].as_u64().unwrap() as usize;
                let mut length_prefix = Vec::new();
                crate::ilp::oer::write_length(&mut length_prefix, data_size);
                let full = vector["hex_prefix"].as_str().unwrap().to_owned()
                    + &hex::encode(length_prefix)
                    + &vector["dataByte"].as_str().unwrap().repeat(data_size);
                assert_eq!(Some(full.len() as u64 / 2), vector["totalLen"].as_u64());
                full
            }
        }
    }

    fn without_informational_keys(mut value: Value) -> Value {
        strip_informational_keys(&mut value);
        value
    }

    /// Decodes `hex_input` (auto-detected), compares with `expect`, and encodes it back.
    fn check(hex_input: &str, expect: Result<Option<&Value>, &str>) {
        // Long inputs (DRV-ILP-05 is 32 KB) would drown a failure message.
        let hex_input_short = &hex_input[..hex_input.len().min(200)];
        match (decode(hex_input, PacketKind::Auto), expect) {
            (Ok(json_text), Ok(expected)) => {
                let decoded: Value = serde_json::from_str(&json_text).unwrap();
                if let Some(expected) = expected {
                    assert_eq!(&without_informational_keys(decoded), expected, "{hex_input_short}");
                }
                assert!(
                    encode(&json_text).unwrap() == hex_input,
                    "round trip of {hex_input_short}"
                );
            }
            (Err(error), Err(expected)) => assert_eq!(format!("{error:#}"), expected),
            (Ok(_), Err(expected)) => panic!("{hex_input_short}: decoded, expected {expected:?}"),
            (Err(error), Ok(_)) => panic!("{hex_input_short}: {error:#}"),
        }
    }

    #[test]
    fn every_valid_vector_round_trips() {
        let mut checked_count = 0;
        for vector in vectors() {
            let kind = vector["kind"].as_str().unwrap();
            let is_packet = matches!(kind, "ilp" | "btp" | "ilp-peer-protocol-invalid");
            if is_packet && vector["valid"] == true {
                let decoded = vector.get("decoded");
                check(&vector_hex(&vector), Ok(decoded));
                checked_count += 1;
            }
        }
        assert!(checked_count >= 44, "only {checked_count} vectors checked");
    }

    #[test]
    fn lenient_ilp_vectors_report_ignored_bytes() {
        let decoded = decode("0e0d74777f06746573742e7400002a", PacketKind::Auto).unwrap();
        let value: Value = serde_json::from_str(&decoded).unwrap();
        assert_eq!(value["trailingBytesIgnored"], 1);
        assert_eq!(value["triggeredBy"], "test.t");
        assert_eq!(encode(&decoded).unwrap(), "0e0c74777f06746573742e740000");
    }

    #[test]
    fn errors_name_offset_and_field() {
        // ILP-01 with a `!` in the destination.
        let ilp_01 = vector_hex(&vector("ILP-01"));
        let bad_destination =
            ilp_01.replacen("6578616d706c652e616c696365", "6578616d706c652e616c69632a", 1);
        let error = decode(&bad_destination, PacketKind::Auto).unwrap_err().to_string();
        assert!(
            error.starts_with("invalid ILP Prepare: at byte 59, field `destination`: "),
            "{error}"
        );
        check("", Err("no input: expected the hex bytes of an ILP packet or BTP frame"));
        check(
            vector_hex(&vector("NEG-BTP-11")).as_str(),
            Err("invalid BTP Error: at byte 19, field `triggeredAt`: invalid characters"),
        );
        check(
            "0e0d7477ff06746573742e7400002a",
            Err("invalid ILP Reject: at byte 2, field `code`: invalid characters"),
        );
        check(
            "0600000100012d",
            Err("invalid BTP Message: at byte 6, field `protocolData.count`: unexpected end of input: needed 45 bytes, 0 available"),
        );
        check(
            "05000000",
            Err(
                "not an ILP packet or BTP frame: first byte 5 is neither an ILP type (12, 13, 14) \
                 nor a BTP type (1, 2, 6, 7)",
            ),
        );
        check("0c0g", Err("invalid hex: Invalid character 'g' at position 3"));
        check("0c0", Err("invalid hex: Odd number of digits"));
    }

    #[test]
    fn kind_can_be_forced() {
        let ilp_02 = vector_hex(&vector("ILP-02"));
        let error = decode(&ilp_02, PacketKind::Btp).unwrap_err().to_string();
        assert_eq!(error, "invalid BTP frame: at byte 0, field `type`: unknown type 13");
        assert!(decode(&ilp_02, PacketKind::Ilp).unwrap().contains("\"kind\": \"ilp\""));
        let drv_btp_03 = vector_hex(&vector("DRV-BTP-03"));
        let error = decode(&drv_btp_03, PacketKind::Ilp).unwrap_err().to_string();
        assert_eq!(error, "invalid ILP packet: at byte 0, field `type`: unknown type 1");
    }

    #[test]
    fn hex_input_may_have_whitespace_and_prefix() {
        let spaced = " 0x01 00 00 00 7b\n02 01 00\n";
        let value: Value =
            serde_json::from_str(&decode(spaced, PacketKind::Auto).unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"kind": "btp", "type": 1, "requestId": 123, "protocolData": []})
        );
    }

    #[test]
    fn btp_ilp_entries_are_decoded_too() {
        let decoded = decode(&vector_hex(&vector("DRV-BTP-04")), PacketKind::Auto).unwrap();
        let value: Value = serde_json::from_str(&decoded).unwrap();
        let ilp = &value["protocolData"][0]["ilp"];
        assert_eq!(
            (ilp["type"].as_u64(), ilp["destination"].as_str()),
            (Some(12), Some("example.alice"))
        );
        assert_eq!(ilp["amount"], 107);
        let reject = decode(&vector_hex(&vector("DRV-BTP-06")), PacketKind::Auto).unwrap();
        assert!(reject.contains("\"code\": \"F01\""), "{reject}");
    }

    #[test]
    fn encode_refuses_bad_json_with_one_line() {
        let cases = [
            ("{", "invalid JSON: EOF while parsing an object at line 1 column 1"),
            ("[]", "invalid JSON: expected an object like the ones `packet decode` prints"),
            (r#"{"kind": "xrp"}"#, "invalid JSON: `kind` is \"xrp\", expected \"ilp\" or \"btp\""),
            (r#"{"type": 99}"#, "invalid JSON: no `kind`, and `type` is not an ILP or BTP type number"),
            (
                r#"{"type": 13, "fulfillment": "00", "data": ""}"#,
                "invalid ILP Fulfill: field `fulfillment`: 1 bytes, expected 32",
            ),
            (
                r#"{"type": 14, "code": "F0", "triggeredBy": "", "message": "", "data": ""}"#,
                "invalid ILP Reject: field `code`: an ILP error code is exactly three 7-bit ASCII characters",
            ),
            (r#"{"type": 7, "requestId": 1, "protocolData": []}"#, "invalid BTP Transfer JSON: missing field `amount`"),
            (
                r#"{"type": 6, "requestId": 1, "amount": 5, "protocolData": []}"#,
                "invalid BTP Message JSON: a BTP Message has no field `amount`",
            ),
            (
                r#"{"type": 2, "requestId": 1, "code": "F00", "name": "x", "triggeredAt": "2017", "data": "", "protocolData": []}"#,
                "invalid BTP Error: field `triggeredAt`: GeneralizedTime must be 15, 17, 18 or 19 characters",
            ),
            (
                r#"{"type": 1, "requestId": 1, "protocolData": [{"protocolName": "a", "contentType": 0, "data": "zz"}]}"#,
                "invalid BTP Response: field `protocolData.data`: invalid hex: Invalid character 'z' at position 0",
            ),
        ];
        for (json_text, expected) in cases {
            assert_eq!(format!("{:#}", encode(json_text).unwrap_err()), expected, "{json_text}");
        }
        let unknown =
            format!("{:#}", encode(r#"{"type": 13, "fulfilment": "00", "data": ""}"#).unwrap_err());
        assert!(
            unknown.starts_with("invalid ILP Fulfill JSON: unknown field `fulfilment`"),
            "{unknown}"
        );
        let prepare =
            vector("ILP-01")["decoded"].to_string().replace("example.alice", "example alice");
        let error = format!("{:#}", encode(&prepare).unwrap_err());
        assert!(error.starts_with("invalid ILP Prepare: destination: "), "{error}");
    }

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        args: PacketArgs,
    }

    #[test]
    fn run_exits_2_on_invalid_input() {
        let run_with = |arguments: &[&str]| run(TestCli::try_parse_from(arguments).unwrap().args);
        assert_eq!(
            run_with(&["packet", "decode", "zz"]),
            ExitCode::from(EXIT_STATUS_INVALID_INPUT)
        );
        assert_eq!(
            run_with(&["packet", "decode", "--kind", "btp", "010000007b020100"]),
            ExitCode::SUCCESS
        );
        assert_eq!(
            run_with(&["packet", "encode", "{}"]),
            ExitCode::from(EXIT_STATUS_INVALID_INPUT)
        );
    }
}
