//! Interop with the JavaScript reference stack (npm packages pinned in
//! `tests/interop/package-lock.json`, installed by `tests/interop/install.sh`):
//!
//! - `ilp-plugin-btp` clients authenticate to a real connector process and exchange
//!   Prepare/Fulfill/Reject through it (`plugin_exchange.js`);
//! - an `ilp-protocol-stream` payment between two child accounts, IL-DCP answered by the
//!   connector (`stream_payment.js`);
//! - `ilp-packet`/`btp-packet` and our codec agree byte for byte on generated corpora, in both
//!   directions (`codec_corpus.js`); the CCP codec likewise with `ilp-protocol-ccp`
//!   (`ccp_corpus.js`, driven from `ccp_interop.rs`).
//!
//! These tests never skip: without Node or the installed packages they fail and say how to
//! install them.
//!
//! Corpus format (shared with `codec_corpus.js`): a JSON array of
//! `{id, kind: "ilp"|"btp", valid: true, hex, decoded}` where `decoded` has the field names of
//! `tests/data/vectors.json`, binary fields as lower-case hex, and amounts as decimal strings.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use m2m_connector::btp::packet::{BtpPacket, GeneralizedTime, ProtocolData};
use m2m_connector::ilp::error_code::ErrorCode;
use m2m_connector::ilp::packet::{
    FulfillBuilder, Packet, ParseOptions, PrepareBuilder, RejectBuilder,
};
use m2m_connector::ilp::timestamp::{format_timestamp, parse_timestamp};
use serde_json::{json, Map, Value};

use crate::support::{run_with_timeout, CommandOutput, Connector};

/// Longer than the scripts' own 30 s watchdog, so a hang shows the script's own message.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const CORPUS_SEED: u64 = 0x6d32_6d5f_696c_7034;
const CORPUS_SIZE: usize = 300;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// Panics with the install instructions unless `node` runs and the pinned packages are present.
pub(crate) fn require_js_stack() {
    let dir = interop_dir();
    let install = format!(
        "install the JavaScript reference stack with `bash {}/install.sh` (runs `npm ci` from the \
         committed package-lock.json; needs Node >= 20 and npm)",
        dir.display()
    );
    let version = Command::new("node").arg("--version").output();
    match version {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout);
            let major = text
                .trim()
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok());
            assert!(
                major.is_some_and(|major| major >= 20),
                "interop tests need Node >= 20, found {}; {install}",
                text.trim()
            );
        }
        Ok(output) => panic!("`node --version` failed ({}); {install}", output.status),
        Err(error) => panic!("cannot run `node` ({error}); {install}"),
    }
    for package in [
        "ilp-plugin-btp",
        "ilp-protocol-stream",
        "ilp-packet",
        "btp-packet",
        "ilp-protocol-ildcp",
        "ilp-protocol-ccp",
        "ws",
    ] {
        let manifest = dir.join("node_modules").join(package).join("package.json");
        assert!(
            manifest.is_file(),
            "missing {}; {install}",
            manifest.display()
        );
    }
}

pub(crate) fn node_script(script: &str, args: &[&str]) -> CommandOutput {
    let mut command = Command::new("node");
    command
        .arg(interop_dir().join(script))
        .args(args)
        .current_dir(interop_dir());
    run_with_timeout(&mut command, SCRIPT_TIMEOUT)
}

/// The last line of stdout that parses as a JSON object (the scripts' summary line).
fn summary_line(output: &CommandOutput) -> Option<Value> {
    output.stdout.lines().rev().find_map(|line| {
        serde_json::from_str::<Value>(line.trim())
            .ok()
            .filter(Value::is_object)
    })
}

/// Panics with the script's output unless it exited 0 with an `ok: true` summary. (A
/// [`Connector`] prints its own log when it is dropped during the panic.)
pub(crate) fn expect_script_success(output: &CommandOutput, what: &str) {
    let summary = summary_line(output);
    let ok = output.success()
        && summary
            .as_ref()
            .and_then(|s| s.get("ok"))
            .and_then(Value::as_bool)
            == Some(true);
    if !ok {
        let failed = summary
            .as_ref()
            .and_then(|s| s.get("failedChecks").or_else(|| s.get("mismatches")))
            .map(Value::to_string)
            .unwrap_or_else(|| "(no summary line)".into());
        panic!(
            "{what} failed; failed checks: {failed}\n{}",
            output.describe(what)
        );
    }
    println!("{what}: {}", output.stdout.trim_end());
}

#[test]
fn interop_js_stack_is_installed() {
    require_js_stack();
}

#[test]
fn interop_btp_plugins_exchange_packets_through_the_connector() {
    require_js_stack();
    let connector = Connector::start_two_children();
    let port = connector.btp_port.to_string();
    let output = node_script(
        "plugin_exchange.js",
        &["--btp-port", &port, "--address", "test.m2m"],
    );
    expect_script_success(&output, "plugin_exchange.js");
    // /metrics counts exactly what the exchange did: one Fulfill; bob's Reject (downstream),
    // F02 and F05 (ours); the bad token; IL-DCP is not a packet.
    let metrics = connector.metrics();
    let value = |name: &str, labels: &[&str]| -> f64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
            .filter(|line| labels.iter().all(|label| line.contains(label)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let expected: [(&str, &[&str], f64); 7] = [
        ("ilp_packets_processed_total", &["type=\"prepare\"", "status=\"fulfilled\""], 1.0),
        ("ilp_packets_processed_total", &["type=\"prepare\"", "status=\"rejected\""], 3.0),
        ("ilp_rejects_total", &["code=\"F02\"", "origin=\"local\""], 1.0),
        ("ilp_rejects_total", &["code=\"F05\"", "origin=\"local\""], 1.0),
        ("ilp_rejects_total", &["origin=\"downstream\""], 1.0),
        ("btp_auth_failures_total", &[], 1.0),
        ("packets_in_total", &["peer_id=\"alice\""], 3.0),
    ];
    for (name, labels, want) in expected {
        assert_eq!(value(name, labels), want, "{name}{labels:?}\n{metrics}");
    }
}

#[test]
fn interop_stream_payment_between_two_children() {
    require_js_stack();
    let connector = Connector::start_two_children();
    let port = connector.btp_port.to_string();
    let output = node_script(
        "stream_payment.js",
        &["--btp-port", &port, "--amount", "1000"],
    );
    expect_script_success(&output, "stream_payment.js");
}

#[test]
fn interop_js_corpus_decodes_and_reencodes_with_our_codec() {
    require_js_stack();
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("js-corpus.json");
    let path_text = path.to_str().expect("UTF-8 temp path");
    let output = node_script(
        "codec_corpus.js",
        &[
            "generate", path_text, "--seed", "20240601", "--count", "300",
        ],
    );
    expect_script_success(&output, "codec_corpus.js generate");

    let corpus: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&path).expect("reading the JS corpus"))
            .expect("corpus JSON");
    assert!(
        corpus.len() >= 250,
        "the JS corpus has only {} items",
        corpus.len()
    );
    let mut failures = Vec::new();
    for item in &corpus {
        let id = item["id"].as_str().unwrap_or("?");
        if let Err(problem) = check_item_with_our_codec(item) {
            failures.push(format!("{id}: {problem}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} JS-encoded items disagree with our codec:\n{}",
        failures.len(),
        corpus.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn interop_our_corpus_verifies_with_the_js_codecs() {
    require_js_stack();
    let corpus = our_corpus(CORPUS_SEED, CORPUS_SIZE);
    // Our own decoder must agree with what we wrote before we ask anyone else.
    let own: Vec<String> = corpus
        .iter()
        .filter_map(|item| {
            check_item_with_our_codec(item)
                .err()
                .map(|e| format!("{}: {e}", item["id"]))
        })
        .collect();
    assert!(
        own.is_empty(),
        "our codec disagrees with itself:\n{}",
        own.join("\n")
    );

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("rust-corpus.json");
    std::fs::write(&path, serde_json::to_vec(&corpus).expect("corpus JSON"))
        .expect("writing corpus");
    let output = node_script(
        "codec_corpus.js",
        &["verify", path.to_str().expect("UTF-8 temp path")],
    );
    expect_script_success(&output, "codec_corpus.js verify");
}

#[test]
fn interop_js_codecs_agree_with_the_shared_vectors() {
    require_js_stack();
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors.json");
    let output = node_script(
        "codec_corpus.js",
        &["verify", vectors.to_str().expect("UTF-8 path")],
    );
    expect_script_success(&output, "codec_corpus.js verify tests/data/vectors.json");
    let checked = summary_line(&output)
        .and_then(|s| s["checked"].as_u64())
        .unwrap_or(0);
    assert!(checked >= 30, "only {checked} ILP/BTP vectors were checked");
}

// -------------------------------------------------------------------------------------------
// Our codec <-> corpus `decoded` values

/// Decodes `item.hex` with our codec (strictly: the corpora carry no trailing bytes), compares
/// the fields with `item.decoded`, and checks that both the parsed packet and a packet built
/// from the `decoded` values encode to exactly `item.hex`.
fn check_item_with_our_codec(item: &Value) -> Result<(), String> {
    let kind = item["kind"].as_str().ok_or("no kind")?;
    let hex_text = item["hex"].as_str().ok_or("no hex")?;
    let bytes = Bytes::from(hex::decode(hex_text).map_err(|e| format!("bad hex: {e}"))?);
    let want = normalize(&item["decoded"]);
    let (ours, reencoded) = match kind {
        "ilp" => {
            let packet = Packet::parse_with(bytes.clone(), &ParseOptions::STRICT)
                .map_err(|e| format!("our ILP decoder refused it: {e}"))?;
            (
                ilp_to_json(&packet)?,
                Bytes::copy_from_slice(packet.as_bytes()),
            )
        }
        "btp" => {
            let packet = BtpPacket::parse(bytes.clone())
                .map_err(|e| format!("our BTP decoder refused it: {e}"))?;
            (btp_to_json(&packet), packet.encode())
        }
        other => return Err(format!("unknown kind {other:?}")),
    };
    if let Some(difference) = first_difference(&ours, &want) {
        return Err(format!("decoded {difference}"));
    }
    if reencoded != bytes {
        return Err(format!(
            "re-encoding the parsed packet differs: {}",
            byte_difference(&reencoded, &bytes)
        ));
    }
    let built = encode_from_json(kind, &want)?;
    if built != bytes {
        return Err(format!(
            "building from `decoded` differs: {}",
            byte_difference(&built, &bytes)
        ));
    }
    Ok(())
}

fn ilp_to_json(packet: &Packet) -> Result<Value, String> {
    Ok(match packet {
        Packet::Prepare(p) => json!({
            "type": 12,
            "amount": p.amount().to_string(),
            "expiresAt": String::from_utf8_lossy(&format_timestamp(p.expires_at_ms())),
            "executionCondition": hex::encode(p.execution_condition()),
            "destination": p.destination(),
            "data": hex::encode(p.data()),
        }),
        Packet::Fulfill(f) => json!({
            "type": 13,
            "fulfillment": hex::encode(f.fulfillment()),
            "data": hex::encode(f.data()),
        }),
        Packet::Reject(r) => json!({
            "type": 14,
            "code": String::from_utf8_lossy(&r.code().0),
            "triggeredBy": String::from_utf8_lossy(r.triggered_by_raw()),
            "message": std::str::from_utf8(r.message()).map_err(|_| "Reject message is not UTF-8")?,
            "data": hex::encode(r.data()),
        }),
    })
}

fn btp_to_json(packet: &BtpPacket) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(packet.frame_type()));
    out.insert("requestId".into(), json!(packet.request_id()));
    match packet {
        BtpPacket::Error {
            code,
            name,
            triggered_at,
            data,
            ..
        } => {
            out.insert("code".into(), json!(String::from_utf8_lossy(code)));
            out.insert("name".into(), json!(name));
            out.insert("triggeredAt".into(), json!(triggered_at.as_str()));
            out.insert("data".into(), json!(hex::encode(data)));
        }
        BtpPacket::Transfer { amount, .. } => {
            out.insert("amount".into(), json!(amount.to_string()));
        }
        BtpPacket::Response { .. } | BtpPacket::Message { .. } => {}
    }
    let entries: Vec<Value> = packet
        .protocol_data()
        .iter()
        .map(|entry| {
            json!({
                "protocolName": String::from_utf8_lossy(&entry.protocol_name),
                "contentType": entry.content_type,
                "data": hex::encode(&entry.data),
            })
        })
        .collect();
    out.insert("protocolData".into(), Value::Array(entries));
    Value::Object(out)
}

/// Encodes a `decoded` value with our builders (ILP) or our frame encoder (BTP).
fn encode_from_json(kind: &str, d: &Value) -> Result<Bytes, String> {
    let text = |key: &str| {
        d[key]
            .as_str()
            .ok_or_else(|| format!("`{key}` missing or not a string"))
    };
    let binary = |key: &str| -> Result<Vec<u8>, String> {
        hex::decode(text(key)?).map_err(|e| format!("`{key}` is not hex: {e}"))
    };
    let int = |key: &str| -> Result<u64, String> {
        json_u64(&d[key]).ok_or_else(|| format!("`{key}` is not a u64"))
    };
    let packet_type = int("type")?;
    match kind {
        "ilp" => match packet_type {
            12 => {
                let expires_at = parse_timestamp(text("expiresAt")?.as_bytes())
                    .map_err(|e| format!("expiresAt: {e}"))?;
                let condition: [u8; 32] = binary("executionCondition")?
                    .try_into()
                    .map_err(|_| "executionCondition is not 32 bytes")?;
                let data = binary("data")?;
                PrepareBuilder {
                    amount: int("amount")?,
                    expires_at_ms: expires_at,
                    execution_condition: condition,
                    destination: text("destination")?,
                    data: &data,
                }
                .build()
                .map_err(|e| format!("PrepareBuilder: {e}"))
            }
            13 => {
                let fulfillment: [u8; 32] = binary("fulfillment")?
                    .try_into()
                    .map_err(|_| "fulfillment is not 32 bytes")?;
                let data = binary("data")?;
                FulfillBuilder {
                    fulfillment,
                    data: &data,
                }
                .build()
                .map_err(|e| format!("FulfillBuilder: {e}"))
            }
            14 => {
                let code: [u8; 3] = text("code")?
                    .as_bytes()
                    .try_into()
                    .map_err(|_| "code is not 3 bytes")?;
                let data = binary("data")?;
                RejectBuilder {
                    code: ErrorCode(code),
                    triggered_by: text("triggeredBy")?,
                    message: text("message")?,
                    data: &data,
                }
                .build()
                .map_err(|e| format!("RejectBuilder: {e}"))
            }
            other => Err(format!("unknown ILP type {other}")),
        },
        "btp" => {
            let request_id =
                u32::try_from(int("requestId")?).map_err(|_| "requestId is not a u32")?;
            let mut protocol_data = Vec::new();
            for entry in d["protocolData"]
                .as_array()
                .ok_or("protocolData is not an array")?
            {
                let name = entry["protocolName"].as_str().ok_or("protocolName")?;
                let content_type = json_u64(&entry["contentType"])
                    .and_then(|t| u8::try_from(t).ok())
                    .ok_or("contentType is not a u8")?;
                let data = hex::decode(entry["data"].as_str().ok_or("entry data")?)
                    .map_err(|e| e.to_string())?;
                protocol_data.push(ProtocolData::new(name, content_type, Bytes::from(data)));
            }
            let packet = match packet_type {
                1 => BtpPacket::Response {
                    request_id,
                    protocol_data,
                },
                6 => BtpPacket::Message {
                    request_id,
                    protocol_data,
                },
                7 => BtpPacket::Transfer {
                    request_id,
                    amount: int("amount")?,
                    protocol_data,
                },
                2 => BtpPacket::Error {
                    request_id,
                    code: text("code")?
                        .as_bytes()
                        .try_into()
                        .map_err(|_| "code is not 3 bytes")?,
                    name: text("name")?.to_owned(),
                    triggered_at: GeneralizedTime::parse(text("triggeredAt")?.as_bytes())
                        .map_err(|e| format!("triggeredAt: {e}"))?,
                    data: Bytes::from(binary("data")?),
                    protocol_data,
                },
                other => return Err(format!("unknown BTP type {other}")),
            };
            Ok(packet.encode())
        }
        other => Err(format!("unknown kind {other:?}")),
    }
}

/// A u64 from a JSON number or a decimal string.
fn json_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Amounts as decimal strings and hex in lower case, so equivalent spellings compare equal.
fn normalize(decoded: &Value) -> Value {
    let mut out = decoded.clone();
    if let Some(object) = out.as_object_mut() {
        if let Some(amount) = object.get("amount").and_then(json_u64) {
            object.insert("amount".into(), json!(amount.to_string()));
        }
        for key in ["executionCondition", "fulfillment", "data"] {
            if let Some(Value::String(text)) = object.get_mut(key) {
                *text = text.to_ascii_lowercase();
            }
        }
        if let Some(Value::Array(entries)) = object.get_mut("protocolData") {
            for entry in entries {
                if let Some(Value::String(text)) = entry.get_mut("data") {
                    *text = text.to_ascii_lowercase();
                }
            }
        }
    }
    out
}

fn first_difference(ours: &Value, want: &Value) -> Option<String> {
    let (Some(ours), Some(want)) = (ours.as_object(), want.as_object()) else {
        return (ours != want).then(|| format!("value differs: ours {ours}, corpus {want}"));
    };
    let clip = |v: Option<&Value>| {
        let text = v.map(Value::to_string).unwrap_or_else(|| "(absent)".into());
        if text.len() > 160 {
            format!("{}... ({} chars)", &text[..160], text.len())
        } else {
            text
        }
    };
    let mut keys: Vec<&String> = ours.keys().chain(want.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .find(|key| ours.get(*key) != want.get(*key))
        .map(|key| {
            format!(
                "field `{key}` differs: ours {}, corpus {}",
                clip(ours.get(key)),
                clip(want.get(key))
            )
        })
}

fn byte_difference(ours: &[u8], want: &[u8]) -> String {
    let at = ours
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(want.len()));
    let window = |bytes: &[u8]| {
        hex::encode(&bytes[at.saturating_sub(4).min(bytes.len())..(at + 12).min(bytes.len())])
    };
    format!(
        "first difference at byte {at} (ours {} bytes, corpus {} bytes): ours …{}…, corpus …{}…",
        ours.len(),
        want.len(),
        window(ours),
        window(want)
    )
}

// -------------------------------------------------------------------------------------------
// Our corpus: seeded random packets built with our builders

/// SplitMix64: small, seedable and good enough to spread test inputs.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (just `lo` when `hi < lo`; callers clamp to their own maximum).
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        let hi = hi.max(lo);
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() - 1)]
    }

    pub(crate) fn bytes(&mut self, size: usize) -> Vec<u8> {
        (0..size).map(|_| self.next() as u8).collect()
    }

    pub(crate) fn amount(&mut self) -> u64 {
        match self.range(0, 9) {
            0 => 0,
            1 => u64::MAX,
            2 => self.range(1, 1000) as u64,
            3 => (1 << 53) + self.range(0, 1000) as u64,
            _ => self.next(),
        }
    }

    /// Sizes around every length-determinant boundary (1, 2 and 3 bytes).
    pub(crate) fn data_size(&mut self, max: usize) -> usize {
        let size = if self.chance(12) {
            match self.range(0, 4) {
                0 => self.range(1001, 16383),
                1 => 16383,
                2 => 16384,
                3 => self.range(16385, max),
                _ => max,
            }
        } else {
            match self.range(0, 7) {
                0 => 0,
                1 => self.range(1, 64),
                2 => self.range(1, 127),
                3 => 127,
                4 => 128,
                5 => self.range(129, 1000),
                6 => 255,
                _ => 256,
            }
        };
        size.min(max)
    }

    pub(crate) fn segment(&mut self, size: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_~-";
        (0..size).map(|_| *self.pick(CHARS) as char).collect()
    }

    /// A valid address of about `target` bytes (at most 1023).
    pub(crate) fn address(&mut self) -> String {
        const SCHEMES: &[&str] = &[
            "g", "private", "example", "peer", "self", "test", "test1", "test2", "test3", "local",
        ];
        let target = match self.range(0, 5) {
            0 | 1 => self.range(3, 30),
            2 => self.range(31, 127),
            3 => self.range(128, 300),
            4 => self.range(900, 1023),
            _ => 1023,
        };
        let mut address = self.pick(SCHEMES).to_string();
        let target = target.max(address.len() + 2);
        while address.len() + 2 <= target {
            let room = target - address.len() - 1;
            let size = room.min(self.range(1, 40));
            address.push('.');
            address.push_str(&self.segment(size));
        }
        address
    }

    /// UTF-8 text of at most `max_bytes` bytes, with multi-byte characters.
    pub(crate) fn text(&mut self, max_bytes: usize) -> String {
        const PIECES: &[&str] = &["é", "ß", "€", "✗", "中", "💸", "\"", "\\", "\n", "\u{0}"];
        let target = self.range(0, max_bytes);
        let mut text = String::new();
        loop {
            let piece = if self.chance(70) {
                ((self.range(0x20, 0x7e)) as u8 as char).to_string()
            } else {
                self.pick(PIECES).to_string()
            };
            if text.len() + piece.len() > target {
                return text;
            }
            text.push_str(&piece);
        }
    }

    /// Milliseconds since the epoch for an expiry: edge instants and random ones in 2000..2099.
    pub(crate) fn instant_ms(&mut self) -> i64 {
        match self.range(0, 19) {
            0 => 1,                   // 1970-01-01T00:00:00.001Z (ilp-packet refuses the epoch itself)
            1 => 253_402_300_799_999, // 9999-12-31T23:59:59.999Z
            2 => 1_483_228_799_999,   // 2016-12-31T23:59:59.999Z
            3 => 1_709_208_000_000,   // 2024-02-29T12:00:00.000Z
            _ => 946_684_800_000 + (self.next() % 3_155_760_000_000) as i64,
        }
    }
}

const ILP_CODES: &[&str] = &[
    "F00", "F01", "F02", "F03", "F04", "F05", "F06", "F07", "F08", "F09", "F99", "T00", "T01",
    "T02", "T03", "T04", "T05", "T99", "R00", "R01", "R02", "R99", "F42", "T17",
];
const BTP_ERRORS: &[(&str, &str)] = &[
    ("T00", "UnreachableError"),
    ("F00", "NotAcceptedError"),
    ("F01", "InvalidFieldsError"),
    ("F04", "InvalidFulfillmentError"),
    ("F08", "InsufficientBalanceError"),
    ("L13", "errorName"),
];

fn random_ilp(rng: &mut Rng) -> Value {
    match rng.range(0, 4) {
        0 | 1 => {
            let condition = if rng.chance(10) {
                m2m_connector::ilp::PEER_PROTOCOL_CONDITION.to_vec()
            } else {
                rng.bytes(32)
            };
            let data_size = rng.data_size(32767);
            json!({
                "type": 12,
                "amount": rng.amount().to_string(),
                "expiresAt": String::from_utf8_lossy(&format_timestamp(rng.instant_ms())),
                "executionCondition": hex::encode(condition),
                "destination": rng.address(),
                "data": hex::encode(rng.bytes(data_size)),
            })
        }
        2 => {
            let fulfillment = if rng.chance(10) {
                vec![0; 32]
            } else {
                rng.bytes(32)
            };
            let data_size = rng.data_size(32767);
            json!({ "type": 13, "fulfillment": hex::encode(fulfillment), "data": hex::encode(rng.bytes(data_size)) })
        }
        _ => {
            let code = *rng.pick(ILP_CODES);
            let data = if code == "F08" && rng.chance(80) {
                let mut data = rng.amount().to_be_bytes().to_vec();
                data.extend_from_slice(&rng.amount().to_be_bytes());
                data
            } else {
                let size = rng.data_size(32767);
                rng.bytes(size)
            };
            let triggered_by = if rng.chance(10) {
                String::new()
            } else {
                rng.address()
            };
            let message_max = if rng.chance(20) { 8191 } else { 200 };
            json!({
                "type": 14,
                "code": code,
                "triggeredBy": triggered_by,
                "message": rng.text(message_max),
                "data": hex::encode(data),
            })
        }
    }
}

fn random_protocol_data(rng: &mut Rng, with_ilp: bool) -> Result<Value, String> {
    let count = if rng.chance(2) {
        rng.range(256, 300)
    } else {
        rng.range(0, 6)
    };
    let mut names = std::collections::HashSet::new();
    let mut entries = Vec::new();
    if with_ilp {
        let packet = random_ilp(rng);
        let bytes = encode_from_json("ilp", &packet)?;
        names.insert("ilp".to_string());
        entries
            .push(json!({ "protocolName": "ilp", "contentType": 0, "data": hex::encode(bytes) }));
    }
    while entries.len() < count + usize::from(with_ilp) {
        let name = if rng.chance(10) {
            rng.pick(&[
                "auth",
                "auth_username",
                "auth_token",
                "foo",
                "beep",
                "json",
                "settle",
                "",
            ])
            .to_string()
        } else {
            let max = if rng.chance(5) { 200 } else { 20 };
            let size = rng.range(1, max);
            rng.segment(size)
        };
        if !names.insert(name.clone()) {
            continue;
        }
        let content_type = if rng.chance(85) {
            rng.range(0, 2)
        } else {
            rng.range(3, 255)
        };
        let data = match content_type {
            1 => rng.text(300).into_bytes(),
            2 => {
                let k = rng.text(40);
                let n = rng.range(0, 1_000_000);
                json!({ "k": k, "n": n }).to_string().into_bytes()
            }
            _ => {
                let size = if count > 100 {
                    rng.range(0, 4)
                } else {
                    let max = if rng.chance(90) { 2000 } else { 20000 };
                    rng.data_size(max)
                };
                rng.bytes(size)
            }
        };
        entries.push(
            json!({ "protocolName": name, "contentType": content_type, "data": hex::encode(data) }),
        );
    }
    Ok(Value::Array(entries))
}

fn random_btp(rng: &mut Rng) -> Result<Value, String> {
    let frame_type = *rng.pick(&[1u8, 1, 6, 6, 6, 2, 7]);
    let request_id: u32 = match rng.range(0, 3) {
        0 => 0,
        1 => u32::MAX,
        2 => rng.range(1, 1000) as u32,
        _ => rng.next() as u32,
    };
    let mut frame = Map::new();
    frame.insert("type".into(), json!(frame_type));
    frame.insert("requestId".into(), json!(request_id));
    match frame_type {
        2 => {
            let (code, name) = *rng.pick(BTP_ERRORS);
            let when = GeneralizedTime::from_unix_ms(rng.instant_ms() as u64);
            // btp-packet treats Error data as a UTF-8 string, so keep it text (often JSON).
            let data = if rng.chance(50) {
                json!({ "message": rng.text(200) }).to_string()
            } else {
                let max = if rng.chance(10) { 8192 } else { 100 };
                rng.text(max)
            };
            frame.insert("code".into(), json!(code));
            frame.insert("name".into(), json!(name));
            frame.insert("triggeredAt".into(), json!(when.as_str()));
            frame.insert("data".into(), json!(hex::encode(data.as_bytes())));
            frame.insert("protocolData".into(), random_protocol_data(rng, false)?);
        }
        7 => {
            frame.insert("amount".into(), json!(rng.amount().to_string()));
            frame.insert("protocolData".into(), random_protocol_data(rng, false)?);
        }
        _ => {
            let with_ilp = rng.chance(50);
            frame.insert("protocolData".into(), random_protocol_data(rng, with_ilp)?);
        }
    }
    Ok(Value::Object(frame))
}

/// `size` items encoded by our codec, deterministic for a given seed.
fn our_corpus(seed: u64, size: usize) -> Vec<Value> {
    let mut rng = Rng(seed);
    let mut decoded: Vec<(&str, Value)> = vec![
        (
            "ilp",
            json!({ "type": 12, "amount": "0", "expiresAt": "20150616000100000",
                    "executionCondition": hex::encode(m2m_connector::ilp::PEER_PROTOCOL_CONDITION),
                    "destination": "peer.config", "data": "" }),
        ),
        (
            "ilp",
            json!({ "type": 14, "code": "T00", "triggeredBy": "", "message": "", "data": "" }),
        ),
        (
            "ilp",
            json!({ "type": 12, "amount": u64::MAX.to_string(), "expiresAt": "99991231235959999",
                    "executionCondition": "ff".repeat(32), "destination": format!("g.{}", "a".repeat(1021)),
                    "data": "ab".repeat(32767) }),
        ),
        (
            "btp",
            json!({ "type": 1, "requestId": 0, "protocolData": [] }),
        ),
    ];
    while decoded.len() < size {
        if rng.chance(40) {
            decoded.push(("btp", random_btp(&mut rng).expect("random BTP frame")));
        } else {
            decoded.push(("ilp", random_ilp(&mut rng)));
        }
    }
    decoded
        .into_iter()
        .enumerate()
        .map(|(index, (kind, value))| {
            let bytes = encode_from_json(kind, &value).unwrap_or_else(|e| {
                panic!("our encoder refused generated item {index} ({value}): {e}")
            });
            json!({
                "id": format!("RS-{}-{index:04}", kind.to_ascii_uppercase()),
                "kind": kind,
                "valid": true,
                "hex": hex::encode(&bytes),
                "decoded": value,
            })
        })
        .collect()
}
