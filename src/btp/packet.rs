//! BTP 2.0 (RFC 23) frame codec.
//!
//! Input: one WebSocket binary message as `Bytes`. Output: a [`BtpPacket`] whose byte fields are
//! zero-copy slices of that input. The decoder is strict and canonical: every length must use its
//! shortest form, the protocol-data count must be a canonical VarUInt, and no byte may follow the
//! last field, either inside `contents` or after it. So a frame that parses re-encodes to exactly
//! the bytes it came from (the fuzz target checks this).
//!
//! This module never allocates in proportion to a length or count before checking it against the
//! bytes actually present, and never panics on input. It knows nothing about sessions: duplicate
//! names, authentication and which sub-protocols are understood are the session's business.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::ilp::oer::{self, CodecError, Reader, Reason};

pub const TYPE_RESPONSE: u8 = 1;
pub const TYPE_ERROR: u8 = 2;
pub const TYPE_MESSAGE: u8 = 6;
pub const TYPE_TRANSFER: u8 = 7;

pub const CONTENT_OCTET_STREAM: u8 = 0;
pub const CONTENT_TEXT: u8 = 1;
pub const CONTENT_JSON: u8 = 2;

/// The sub-protocol name reserved for ILP packets (RFC 23).
pub const PROTOCOL_ILP: &str = "ilp";

/// RFC 23's ASN.1 bounds the Error `data` field with `SIZE (0..8192)`.
pub const ERROR_DATA_SIZE_MAX: usize = 8192;

/// `type` (1 byte) and `requestId` (4 bytes) precede the contents' length prefix.
const FRAME_HEADER_SIZE: usize = 5;

/// The smallest protocol-data entry: empty name (1 length byte), content type, empty data (1).
/// Used to bound the entry count by the bytes that remain before anything is allocated.
const PROTOCOL_DATA_ENTRY_SIZE_MIN: usize = 3;

/// The fixed part of an `ilp` entry as `write_ilp_frame` writes it: count `01 01`, name
/// `03 "ilp"`, content type 0. The packet's own length prefix follows.
const ILP_ENTRY_HEAD: [u8; 7] = [0x01, 0x01, 0x03, b'i', b'l', b'p', CONTENT_OCTET_STREAM];

/// One protocol-data entry. The fields are slices of the frame that was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolData {
    /// ASCII in practice; the decoder requires valid UTF-8 (as interledger-rs does).
    pub protocol_name: Bytes,
    /// One of the `CONTENT_*` constants; unknown values are kept and re-encoded unchanged.
    pub content_type: u8,
    pub data: Bytes,
}

impl ProtocolData {
    pub fn new(protocol_name: &str, content_type: u8, data: Bytes) -> Self {
        ProtocolData {
            protocol_name: Bytes::copy_from_slice(protocol_name.as_bytes()),
            content_type,
            data,
        }
    }

    /// The name as text. Always `Some` for a parsed entry; `None` only for a hand-built entry
    /// whose name is not UTF-8.
    pub fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.protocol_name).ok()
    }

    pub fn is_named(&self, name: &str) -> bool {
        self.protocol_name.as_ref() == name.as_bytes()
    }

    fn encoded_len(&self) -> usize {
        var_octets_len(self.protocol_name.len()) + 1 + var_octets_len(self.data.len())
    }
}

/// A BTP 2.0 frame. Types 3, 4 and 5 (BTP 1.0) and any other type byte are rejected by `parse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtpPacket {
    Response {
        request_id: u32,
        protocol_data: Vec<ProtocolData>,
    },
    Error {
        request_id: u32,
        /// Three ASCII bytes, e.g. `F00` (see [`BtpErrorCode`]).
        code: [u8; 3],
        name: String,
        triggered_at: GeneralizedTime,
        /// At most [`ERROR_DATA_SIZE_MAX`] bytes; UTF-8 (often JSON) in practice.
        data: Bytes,
        protocol_data: Vec<ProtocolData>,
    },
    Message {
        request_id: u32,
        protocol_data: Vec<ProtocolData>,
    },
    Transfer {
        request_id: u32,
        amount: u64,
        protocol_data: Vec<ProtocolData>,
    },
}

impl BtpPacket {
    /// Decodes one frame. See the module documentation for the rules it enforces.
    pub fn parse(input: Bytes) -> Result<BtpPacket, CodecError> {
        let mut reader = Reader::new(&input);
        let frame_type = reader.read_u8("type")?;
        if !is_known_type(frame_type) {
            return Err(CodecError {
                offset: 0,
                field: "type",
                reason: Reason::UnknownType(frame_type),
            });
        }
        let request_id = reader.read_u32("requestId")?;
        let contents = reader.read_var_octets("contents")?;
        let contents_offset = reader.offset() - contents.len();
        let mut contents_reader = Reader::with_base(contents, contents_offset);
        let packet = parse_contents(frame_type, request_id, &input, &mut contents_reader)?;
        expect_end(&contents_reader, "contents")?;
        expect_end(&reader, "frame")?;
        Ok(packet)
    }

    /// A BTP Error stamped with the current time. `data` beyond [`ERROR_DATA_SIZE_MAX`] bytes is
    /// cut off, so the frame is always one that a strict peer (and `parse`) accepts.
    pub fn error(request_id: u32, code: [u8; 3], name: &str, data: &[u8]) -> BtpPacket {
        let data_size = data.len().min(ERROR_DATA_SIZE_MAX);
        BtpPacket::Error {
            request_id,
            code,
            name: name.to_owned(),
            triggered_at: GeneralizedTime::now(),
            data: Bytes::copy_from_slice(&data[..data_size]),
            protocol_data: Vec::new(),
        }
    }

    pub fn frame_type(&self) -> u8 {
        match self {
            BtpPacket::Response { .. } => TYPE_RESPONSE,
            BtpPacket::Error { .. } => TYPE_ERROR,
            BtpPacket::Message { .. } => TYPE_MESSAGE,
            BtpPacket::Transfer { .. } => TYPE_TRANSFER,
        }
    }

    pub fn request_id(&self) -> u32 {
        match self {
            BtpPacket::Response { request_id, .. }
            | BtpPacket::Error { request_id, .. }
            | BtpPacket::Message { request_id, .. }
            | BtpPacket::Transfer { request_id, .. } => *request_id,
        }
    }

    pub fn protocol_data(&self) -> &[ProtocolData] {
        match self {
            BtpPacket::Response { protocol_data, .. }
            | BtpPacket::Error { protocol_data, .. }
            | BtpPacket::Message { protocol_data, .. }
            | BtpPacket::Transfer { protocol_data, .. } => protocol_data,
        }
    }

    /// The first entry: RFC 23 says it decides what the request means.
    pub fn primary(&self) -> Option<&ProtocolData> {
        self.protocol_data().first()
    }

    pub fn find(&self, name: &str) -> Option<&ProtocolData> {
        self.protocol_data().iter().find(|entry| entry.is_named(name))
    }

    /// RFC 23 requires names to be unique within a frame; the auth handshake must refuse a frame
    /// that repeats one. Sorting keeps this O(n log n) for frames with many entries.
    pub fn has_duplicate_protocol_names(&self) -> bool {
        let mut names: Vec<&[u8]> =
            self.protocol_data().iter().map(|entry| &entry.protocol_name[..]).collect();
        names.sort_unstable();
        names.windows(2).any(|pair| pair[0] == pair[1])
    }

    pub fn encoded_len(&self) -> usize {
        let contents_len = self.contents_len();
        FRAME_HEADER_SIZE + oer::length_prefix_size(contents_len) + contents_len
    }

    /// Appends the canonical encoding. It writes the fields as they are: a hand-built packet that
    /// breaks a rule (a non-ASCII code, oversized Error data) is encoded anyway and `parse` will
    /// refuse it; [`BtpPacket::error`] never builds such a packet.
    pub fn write(&self, out: &mut BytesMut) {
        let contents_len = self.contents_len();
        out.reserve(FRAME_HEADER_SIZE + oer::length_prefix_size(contents_len) + contents_len);
        out.put_u8(self.frame_type());
        out.put_u32(self.request_id());
        oer::write_length(out, contents_len);
        self.write_fields(out);
        write_protocol_data(out, self.protocol_data());
    }

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.write(&mut out);
        out.freeze()
    }

    fn contents_len(&self) -> usize {
        let fields_len = match self {
            BtpPacket::Error { name, triggered_at, data, .. } => {
                3 + var_octets_len(name.len())
                    + var_octets_len(triggered_at.as_bytes().len())
                    + var_octets_len(data.len())
            }
            BtpPacket::Transfer { .. } => 8,
            BtpPacket::Response { .. } | BtpPacket::Message { .. } => 0,
        };
        fields_len + protocol_data_len(self.protocol_data())
    }

    /// The type-specific fields that come before `protocolData`.
    fn write_fields(&self, out: &mut BytesMut) {
        match self {
            BtpPacket::Error { code, name, triggered_at, data, .. } => {
                out.put_slice(code);
                oer::write_var_octets(out, name.as_bytes());
                oer::write_var_octets(out, triggered_at.as_bytes());
                oer::write_var_octets(out, data);
            }
            BtpPacket::Transfer { amount, .. } => out.put_u64(*amount),
            BtpPacket::Response { .. } | BtpPacket::Message { .. } => {}
        }
    }
}

/// Writes the header of a frame that carries one ILP packet of `ilp_len` bytes: type, request
/// id, contents length, a one-entry protocol-data list (`ilp`, content type 0) and the packet's
/// length prefix. The caller appends the packet bytes right after, so the hot path builds a
/// Message(Prepare) or Response(Fulfill/Reject) without an intermediate `BtpPacket`. The whole
/// frame ([`ilp_frame_len`] bytes) is reserved up front so that append does not reallocate.
pub fn write_ilp_frame(out: &mut BytesMut, frame_type: u8, request_id: u32, ilp_len: usize) {
    assert!(
        frame_type == TYPE_MESSAGE || frame_type == TYPE_RESPONSE,
        "ILP travels in a BTP Message or Response, not type {frame_type}"
    );
    let contents_len = ilp_contents_len(ilp_len);
    out.reserve(FRAME_HEADER_SIZE + oer::length_prefix_size(contents_len) + contents_len);
    out.put_u8(frame_type);
    out.put_u32(request_id);
    oer::write_length(out, contents_len);
    out.put_slice(&ILP_ENTRY_HEAD);
    oer::write_length(out, ilp_len);
}

/// Total size of the frame [`write_ilp_frame`] starts, once the packet bytes are appended.
/// The shape nearly every frame on a link has: a Message or Response whose protocol data is
/// exactly one `ilp` entry of content type 0. Returns (frame type, request id, the ILP packet as
/// a slice of `input`) without allocating; `None` means "not that shape (or invalid): use
/// [`BtpPacket::parse`]". It accepts only frames the full parser accepts with the same result
/// (a property test checks this), so callers may fall back without a second validation.
pub fn parse_ilp_frame(input: &Bytes) -> Option<(u8, u32, Bytes)> {
    let mut reader = Reader::new(input);
    let frame_type = reader.read_u8("type").ok()?;
    if frame_type != TYPE_MESSAGE && frame_type != TYPE_RESPONSE {
        return None;
    }
    let request_id = reader.read_u32("requestId").ok()?;
    let contents = reader.read_var_octets("contents").ok()?;
    if !reader.is_empty() {
        return None;
    }
    let entry = contents.strip_prefix(&ILP_ENTRY_HEAD)?;
    let mut entry_reader = Reader::new(entry);
    let packet = entry_reader.read_var_octets("data").ok()?;
    if !entry_reader.is_empty() {
        return None;
    }
    Some((frame_type, request_id, input.slice_ref(packet)))
}

/// A BTP Error as one bounded line of text for logs and Reject messages: a peer chooses the
/// name and data, so both are cut (to 64 and 200 bytes).
pub fn error_text(code: &[u8; 3], name: &str, data: &[u8]) -> String {
    let name = crate::ilp::packet::truncate_message(name, 64);
    format!(
        "{} {}: {}",
        String::from_utf8_lossy(code),
        name,
        String::from_utf8_lossy(&data[..data.len().min(200)])
    )
}

/// A BTP Response carrying an ILP Fulfill or Reject.
pub fn reply_frame(request_id: u32, packet: &[u8]) -> Bytes {
    ilp_frame(TYPE_RESPONSE, request_id, packet)
}

/// A fresh frame of `frame_type` (Message or Response) carrying one ILP packet.
pub fn ilp_frame(frame_type: u8, request_id: u32, packet: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(ilp_frame_len(packet.len()));
    write_ilp_frame(&mut out, frame_type, request_id, packet.len());
    out.extend_from_slice(packet);
    out.freeze()
}

pub fn ilp_frame_len(ilp_len: usize) -> usize {
    let contents_len = ilp_contents_len(ilp_len);
    FRAME_HEADER_SIZE + oer::length_prefix_size(contents_len) + contents_len
}

fn ilp_contents_len(ilp_len: usize) -> usize {
    ILP_ENTRY_HEAD.len() + var_octets_len(ilp_len)
}

/// An RFC 23 error code and its name, for the `code` and `name` of a BTP Error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtpErrorCode {
    pub code: [u8; 3],
    pub name: &'static str,
}

impl BtpErrorCode {
    pub const T00_UNREACHABLE: Self = Self { code: *b"T00", name: "UnreachableError" };
    pub const F00_NOT_ACCEPTED: Self = Self { code: *b"F00", name: "NotAcceptedError" };
    pub const F01_INVALID_FIELDS: Self = Self { code: *b"F01", name: "InvalidFieldsError" };
    pub const F03_TRANSFER_NOT_FOUND: Self = Self { code: *b"F03", name: "TransferNotFoundError" };
    pub const F04_INVALID_FULFILLMENT: Self =
        Self { code: *b"F04", name: "InvalidFulfillmentError" };
    pub const F05_DUPLICATE_ID: Self = Self { code: *b"F05", name: "DuplicateIdError" };
    pub const F06_ALREADY_ROLLED_BACK: Self =
        Self { code: *b"F06", name: "AlreadyRolledBackError" };
    pub const F07_ALREADY_FULFILLED: Self = Self { code: *b"F07", name: "AlreadyFulfilledError" };
    pub const F08_INSUFFICIENT_BALANCE: Self =
        Self { code: *b"F08", name: "InsufficientBalanceError" };

    /// T errors may be retried after a wait; F errors must not be (RFC 23).
    pub fn is_temporary(&self) -> bool {
        self.code[0] == b'T'
    }

    /// A BTP Error with this code and name, stamped now.
    pub fn packet(&self, request_id: u32, data: &[u8]) -> BtpPacket {
        BtpPacket::error(request_id, self.code, self.name, data)
    }
}

/// A BTP `GeneralizedTime` (`YYYYMMDDHHmmSS[.f{1,3}]Z`, UTC), kept as the text that was read so
/// re-encoding is byte-exact whatever fraction width the peer chose.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneralizedTime {
    text: [u8; GeneralizedTime::SIZE_MAX],
    size: u8,
}

impl GeneralizedTime {
    /// `YYYYMMDDHHmmSS.fffZ`: 14 digits, a dot, three fraction digits and `Z`.
    pub const SIZE_MAX: usize = 19;

    /// The latest time four year digits can show, 9999-12-31T23:59:59.999Z.
    const UNIX_MS_MAX: u64 = 253_402_300_799_999;

    /// Accepts the 15, 17, 18 and 19 character forms, digits where digits belong, and field
    /// values in range (seconds up to 59: RFC 30 smears leap seconds).
    pub fn parse(text: &[u8]) -> Result<GeneralizedTime, Reason> {
        if !matches!(text.len(), 15 | 17 | 18 | 19) {
            return Err(Reason::Invalid("GeneralizedTime must be 15, 17, 18 or 19 characters"));
        }
        let fraction = &text[14..text.len() - 1];
        let shape_valid = text[..14].iter().all(u8::is_ascii_digit)
            && text[text.len() - 1] == b'Z'
            && (fraction.is_empty()
                || (fraction[0] == b'.' && fraction[1..].iter().all(u8::is_ascii_digit)));
        if !shape_valid {
            return Err(Reason::InvalidCharacters);
        }
        check_calendar_fields(text)?;
        let mut time = GeneralizedTime { text: [0; Self::SIZE_MAX], size: text.len() as u8 };
        time.text[..text.len()].copy_from_slice(text);
        Ok(time)
    }

    /// The current time as `YYYYMMDDHHmmSS.fffZ`, the form btp-packet emits.
    pub fn now() -> GeneralizedTime {
        // A clock before 1970 is a misconfigured host; the epoch is as good a stamp as any.
        let unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis());
        GeneralizedTime::from_unix_ms(u64::try_from(unix_ms).unwrap_or(u64::MAX))
    }

    /// Formats milliseconds since the Unix epoch as `YYYYMMDDHHmmSS.fffZ`, saturating at the
    /// last millisecond of year 9999.
    pub fn from_unix_ms(unix_ms: u64) -> GeneralizedTime {
        let unix_ms = unix_ms.min(Self::UNIX_MS_MAX);
        let (year, month, day) = civil_from_days(unix_ms / 86_400_000);
        let ms_of_day = unix_ms % 86_400_000;
        let fields = [
            (year, 4),
            (month, 2),
            (day, 2),
            (ms_of_day / 3_600_000, 2),
            (ms_of_day / 60_000 % 60, 2),
            (ms_of_day / 1000 % 60, 2),
        ];
        let mut time = GeneralizedTime { text: [0; Self::SIZE_MAX], size: Self::SIZE_MAX as u8 };
        let mut position = 0;
        for (value, width) in fields {
            write_digits(&mut time.text[position..position + width], value);
            position += width;
        }
        time.text[14] = b'.';
        write_digits(&mut time.text[15..18], ms_of_day % 1000);
        time.text[18] = b'Z';
        time
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.size as usize]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, `.` and `Z` ever get in, so this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Debug for GeneralizedTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GeneralizedTime({:?})", self.as_str())
    }
}

impl fmt::Display for GeneralizedTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_known_type(frame_type: u8) -> bool {
    matches!(frame_type, TYPE_RESPONSE | TYPE_ERROR | TYPE_MESSAGE | TYPE_TRANSFER)
}

fn parse_contents(
    frame_type: u8,
    request_id: u32,
    input: &Bytes,
    reader: &mut Reader<'_>,
) -> Result<BtpPacket, CodecError> {
    match frame_type {
        TYPE_RESPONSE => Ok(BtpPacket::Response {
            request_id,
            protocol_data: parse_protocol_data(input, reader)?,
        }),
        TYPE_MESSAGE => Ok(BtpPacket::Message {
            request_id,
            protocol_data: parse_protocol_data(input, reader)?,
        }),
        TYPE_TRANSFER => {
            let amount = reader.read_u64("amount")?;
            Ok(BtpPacket::Transfer {
                request_id,
                amount,
                protocol_data: parse_protocol_data(input, reader)?,
            })
        }
        TYPE_ERROR => parse_error_contents(request_id, input, reader),
        _ => Err(CodecError { offset: 0, field: "type", reason: Reason::UnknownType(frame_type) }),
    }
}

fn parse_error_contents(
    request_id: u32,
    input: &Bytes,
    reader: &mut Reader<'_>,
) -> Result<BtpPacket, CodecError> {
    let code_start = reader.clone();
    let code: [u8; 3] = reader.read_array("code")?;
    if !code.is_ascii() {
        return Err(code_start.error("code", Reason::InvalidCharacters));
    }
    let name_start = reader.clone();
    let name = std::str::from_utf8(reader.read_var_octets("name")?)
        .map_err(|_| name_start.error("name", Reason::InvalidCharacters))?
        .to_owned();
    let triggered_at_start = reader.clone();
    let triggered_at = GeneralizedTime::parse(reader.read_var_octets("triggeredAt")?)
        .map_err(|reason| triggered_at_start.error("triggeredAt", reason))?;
    let data = input.slice_ref(reader.read_var_octets_max(ERROR_DATA_SIZE_MAX, "data")?);
    let protocol_data = parse_protocol_data(input, reader)?;
    Ok(BtpPacket::Error { request_id, code, name, triggered_at, data, protocol_data })
}

fn parse_protocol_data(
    input: &Bytes,
    reader: &mut Reader<'_>,
) -> Result<Vec<ProtocolData>, CodecError> {
    let count_start = reader.clone();
    let count = reader.read_var_uint("protocolData.count")?;
    // Checked before allocating: a count of billions in a small frame fails here, at once.
    let count_max = reader.remaining() / PROTOCOL_DATA_ENTRY_SIZE_MIN;
    let count =
        usize::try_from(count).ok().filter(|&count| count <= count_max).ok_or_else(|| {
            count_start.error(
                "protocolData.count",
                Reason::Invalid("more entries than the remaining bytes can hold"),
            )
        })?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(parse_protocol_data_entry(input, reader)?);
    }
    Ok(entries)
}

fn parse_protocol_data_entry(
    input: &Bytes,
    reader: &mut Reader<'_>,
) -> Result<ProtocolData, CodecError> {
    let name_start = reader.clone();
    let protocol_name = reader.read_var_octets("protocolData.protocolName")?;
    if std::str::from_utf8(protocol_name).is_err() {
        return Err(name_start.error("protocolData.protocolName", Reason::InvalidCharacters));
    }
    let content_type = reader.read_u8("protocolData.contentType")?;
    let data = reader.read_var_octets("protocolData.data")?;
    Ok(ProtocolData {
        protocol_name: input.slice_ref(protocol_name),
        content_type,
        data: input.slice_ref(data),
    })
}

fn expect_end(reader: &Reader<'_>, field: &'static str) -> Result<(), CodecError> {
    match reader.remaining() {
        0 => Ok(()),
        trailing => Err(reader.error(field, Reason::TrailingBytes(trailing))),
    }
}

fn protocol_data_len(entries: &[ProtocolData]) -> usize {
    oer::var_uint_size(entries.len() as u64)
        + entries.iter().map(ProtocolData::encoded_len).sum::<usize>()
}

fn write_protocol_data(out: &mut BytesMut, entries: &[ProtocolData]) {
    oer::write_var_uint(out, entries.len() as u64);
    for entry in entries {
        oer::write_var_octets(out, &entry.protocol_name);
        out.put_u8(entry.content_type);
        oer::write_var_octets(out, &entry.data);
    }
}

fn var_octets_len(size: usize) -> usize {
    oer::length_prefix_size(size) + size
}

/// Range checks for a GeneralizedTime whose shape (digits, `.`, `Z`) is already known good.
fn check_calendar_fields(text: &[u8]) -> Result<(), Reason> {
    let field = |start: usize, width: usize| {
        text[start..start + width]
            .iter()
            .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'))
    };
    let (year, month, day) = (field(0, 4), field(4, 2), field(6, 2));
    let month_valid = (1..=12).contains(&month);
    let day_valid = month_valid && day >= 1 && day <= days_in_month(year, month);
    if !day_valid || field(8, 2) > 23 || field(10, 2) > 59 || field(12, 2) > 59 {
        return Err(Reason::OutOfRange);
    }
    Ok(())
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01. The calendar repeats
/// every 400 years (146097 days); counting eras from 0000-03-01 puts the leap day last in each
/// year, so month lengths follow the 153-days-per-5-months pattern.
fn civil_from_days(days_since_epoch: u64) -> (u64, u64, u64) {
    let days = days_since_epoch + 719_468; // 0000-03-01 to 1970-01-01
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// Writes `value` as zero-padded decimal filling `out`.
fn write_digits(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
