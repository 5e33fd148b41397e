//! Events as JSON for people and browsers: conditions and fulfillments as hex, reject codes as
//! their three characters, stages in lower case, times in RFC 3339. Used by `journal inspect
//! --json` and the Explorer's API.

use serde_json::Value;

use super::JournalEntry;
use crate::ilp::format_timestamp;

/// The event's own fields, made readable: conditions and fulfillments as hex, codes as their
/// three characters, stages in lower case.
pub fn event_fields(entry: &JournalEntry) -> serde_json::Map<String, Value> {
    let value = serde_json::to_value(&entry.event).expect("events serialize to JSON");
    // Externally tagged: {"Kind": {fields}} (or a bare "Kind" for an event without fields).
    let inner = match value {
        Value::Object(map) => map.into_iter().next().map_or(Value::Null, |(_, inner)| inner),
        _ => Value::Null,
    };
    match inner {
        Value::Object(fields) => fields.into_iter().map(|(key, value)| {
            let value = readable(&key, value);
            (key, value)
        }).collect(),
        Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("value".to_string(), other)]),
    }
}

pub fn readable(key: &str, value: Value) -> Value {
    match value {
        Value::Array(items) => match byte_array(&items) {
            Some(bytes) if key == "code" => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            Some(bytes) if bytes.len() == 32 || key == "condition" || key == "fulfillment" => {
                Value::String(hex::encode(bytes))
            }
            _ => Value::Array(items.into_iter().map(|item| readable("", item)).collect()),
        },
        Value::Object(map) => Value::Object(map.into_iter().map(|(key, value)| {
            let value = readable(&key, value);
            (key, value)
        }).collect()),
        Value::String(text) if key == "stage" => Value::String(text.to_lowercase()),
        other => other,
    }
}

fn byte_array(items: &[Value]) -> Option<Vec<u8>> {
    if items.is_empty() {
        return None;
    }
    items.iter().map(|item| item.as_u64().and_then(|byte| u8::try_from(byte).ok())).collect()
}

/// `{"seq":..,"timestamp":..,"timestamp_ms":..,"type":..,<fields>}` on one line.
pub fn json_line(entry: &JournalEntry, fields: &serde_json::Map<String, Value>) -> String {
    let mut line = format!(
        "{{\"seq\":{},\"timestamp\":\"{}\",\"timestamp_ms\":{},\"type\":\"{}\"",
        entry.seq,
        rfc3339(entry.timestamp_ms),
        entry.timestamp_ms,
        entry.event.kind()
    );
    for (key, value) in fields {
        line.push(',');
        line.push_str(&Value::String(key.clone()).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push('}');
    line
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-03-01T12:00:00.250Z`.
pub fn rfc3339(timestamp_ms: i64) -> String {
    let digits = format_timestamp(timestamp_ms);
    let text = std::str::from_utf8(&digits).expect("timestamps are ASCII digits");
    format!(
        "{}-{}-{}T{}:{}:{}.{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[8..10],
        &text[10..12],
        &text[12..14],
        &text[14..17]
    )
}

/// Unix milliseconds, or RFC 3339 in UTC (`2026-12-04T17:00:00Z`, fractions optional).
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let invalid = || format!("{text:?}: expected Unix milliseconds or RFC 3339 such as 2026-12-04T17:00:00Z");
    let body = text.strip_suffix('Z').ok_or_else(invalid)?;
    let (seconds_part, fraction) = body.split_once('.').unwrap_or((body, ""));
    let digits: String = seconds_part.chars().filter(|c| c.is_ascii_digit()).collect();
    let separators = seconds_part.as_bytes().get(4..17).is_some_and(|middle| {
        middle[0] == b'-' && middle[3] == b'-' && middle[6] == b'T' && middle[9] == b':' && middle[12] == b':'
    });
    let shape_ok = seconds_part.len() == 19
        && separators
        && digits.len() == 14
        && fraction.len() <= 3
        && fraction.chars().all(|c| c.is_ascii_digit());
    if !shape_ok {
        return Err(invalid());
    }
    let ilp = format!("{digits}{fraction:0<3}");
    crate::ilp::timestamp::parse_timestamp(ilp.as_bytes()).map_err(|_| invalid())
}
