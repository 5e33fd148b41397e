//! ILPv4 packets (RFC 27): Prepare, Fulfill and Reject as zero-copy views over [`Bytes`], and
//! builders that write their canonical encoding.
//!
//! Every packet is `type: UInt8` then the type-specific contents as one OER `VarBytes` (the
//! envelope). Parsing checks every field once, then keeps the buffer and the offsets, so the
//! accessors are slices into it and relaying a packet is a reference-count increment.
//!
//! Invariants:
//! - A parsed packet's [`as_bytes`](Prepare::as_bytes) is always its canonical envelope. Bytes
//!   after the last field (which RFC 30 says to ignore, and [`ParseOptions::LENIENT`] accepts)
//!   are never re-emitted: bytes after the envelope are cut off without copying, and in the rare
//!   case of bytes inside the envelope after the last field the fields are copied once behind a
//!   corrected length.
//! - Decoding never panics and never allocates in proportion to a length prefix: every length is
//!   checked against the bytes present before anything is sliced.
//! - A Prepare's destination is a valid address (F01 material otherwise). A Reject's
//!   `triggeredBy` is not required to be one (ILP-REFERENCE §2.4): relays must pass Rejects on
//!   unchanged, and interledger-rs emits an empty one.
//! - A Reject's message is kept as bytes, not required to be UTF-8, for the same reason.

use crate::ilp::address::{Address, AddressError, ADDRESS_SIZE_MAX};
use crate::ilp::error_code::ErrorCode;
use crate::ilp::oer::{
    length_prefix_size, write_length, write_var_octets, CodecError, Reader, Reason,
};
use crate::ilp::timestamp::{
    format_timestamp, parse_timestamp, TIMESTAMP_MS_MAX, TIMESTAMP_MS_MIN, TIMESTAMP_SIZE,
};
use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Largest `data` of any packet: ASN.1 `OCTET STRING (SIZE (0..32767))`.
pub const DATA_SIZE_MAX: usize = 32767;
/// Largest Reject `message`: ASN.1 `UTF8String (SIZE (0..8191))`.
pub const MESSAGE_SIZE_MAX: usize = 8191;

/// `message` cut to at most `size_max` bytes on a character boundary, so text we build from a
/// peer's input (a BTP Error's name, say) always fits a Reject.
pub fn truncate_message(message: &str, size_max: usize) -> &str {
    if message.len() <= size_max {
        return message;
    }
    let mut end = size_max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}
/// Bytes of a condition or a fulfillment (`UInt256`).
pub const CONDITION_SIZE: usize = 32;
/// Fixed-width bytes at the start of a Prepare's contents: amount, expiresAt, condition.
const PREPARE_FIXED_SIZE: usize = 8 + TIMESTAMP_SIZE + CONDITION_SIZE;

/// The type byte of an ILP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    Prepare = 12,
    Fulfill = 13,
    Reject = 14,
}

impl PacketType {
    pub fn from_byte(byte: u8) -> Option<PacketType> {
        match byte {
            12 => Some(PacketType::Prepare),
            13 => Some(PacketType::Fulfill),
            14 => Some(PacketType::Reject),
            _ => None,
        }
    }

    /// The type of a packet from its first byte alone, without checking the rest.
    pub fn peek(bytes: &[u8]) -> Option<PacketType> {
        PacketType::from_byte(*bytes.first()?)
    }

    /// The error text when a parser for this type is handed another type.
    fn expected_text(self) -> &'static str {
        match self {
            PacketType::Prepare => "expected a Prepare (type 12)",
            PacketType::Fulfill => "expected a Fulfill (type 13)",
            PacketType::Reject => "expected a Reject (type 14)",
        }
    }
}

/// How strict decoding is about bytes after a packet's last field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept (and drop) bytes after the last field, inside or after the envelope. RFC 30 says
    /// ILP decoders must ignore them, for extensibility; strict mode exists for tests and
    /// fuzzing, where it proves that what we accept is exactly what we would encode.
    pub trailing_bytes_allowed: bool,
}

impl ParseOptions {
    pub const LENIENT: ParseOptions = ParseOptions {
        trailing_bytes_allowed: true,
    };
    pub const STRICT: ParseOptions = ParseOptions {
        trailing_bytes_allowed: false,
    };
}

impl Default for ParseOptions {
    fn default() -> ParseOptions {
        ParseOptions::LENIENT
    }
}

/// Why a builder refused its input. Builders check everything before writing anything, so
/// `write` leaves the output buffer untouched on error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("destination: {0}")]
    InvalidDestination(AddressError),
    #[error("triggeredBy: {0}")]
    InvalidTriggeredBy(AddressError),
    #[error("data is {size} bytes, more than the {DATA_SIZE_MAX} allowed")]
    DataTooLong { size: usize },
    #[error("message is {size} bytes, more than the {MESSAGE_SIZE_MAX} allowed")]
    MessageTooLong { size: usize },
    #[error("error code {0} is not three 7-bit ASCII characters")]
    CodeNotAscii(ErrorCode),
    #[error("expiresAt {expires_at_ms} ms is outside years 0000..9999")]
    ExpiresAtOutOfRange { expires_at_ms: i64 },
}

/// Any ILP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Prepare(Prepare),
    Fulfill(Fulfill),
    Reject(Reject),
}

impl Packet {
    pub fn parse(bytes: Bytes) -> Result<Packet, CodecError> {
        Packet::parse_with(bytes, &ParseOptions::LENIENT)
    }

    pub fn parse_with(bytes: Bytes, options: &ParseOptions) -> Result<Packet, CodecError> {
        let Some(&type_byte) = bytes.first() else {
            return Err(Reader::new(&bytes).error(
                "type",
                Reason::UnexpectedEnd {
                    needed: 1,
                    available: 0,
                },
            ));
        };
        match PacketType::from_byte(type_byte) {
            Some(PacketType::Prepare) => Prepare::parse_with(bytes, options).map(Packet::Prepare),
            Some(PacketType::Fulfill) => Fulfill::parse_with(bytes, options).map(Packet::Fulfill),
            Some(PacketType::Reject) => Reject::parse_with(bytes, options).map(Packet::Reject),
            None => Err(Reader::new(&bytes).error("type", Reason::UnknownType(type_byte))),
        }
    }

    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Prepare(_) => PacketType::Prepare,
            Packet::Fulfill(_) => PacketType::Fulfill,
            Packet::Reject(_) => PacketType::Reject,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Packet::Prepare(prepare) => prepare.as_bytes(),
            Packet::Fulfill(fulfill) => fulfill.as_bytes(),
            Packet::Reject(reject) => reject.as_bytes(),
        }
    }

    pub fn into_bytes(self) -> Bytes {
        match self {
            Packet::Prepare(prepare) => prepare.into_bytes(),
            Packet::Fulfill(fulfill) => fulfill.into_bytes(),
            Packet::Reject(reject) => reject.into_bytes(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Prepare

/// An ILP Prepare. `amount` and `expiresAt` are fixed-width at the start of the contents, which
/// is what lets [`Prepare::write_forwarded`] rewrite them in place.
#[derive(Clone, PartialEq, Eq)]
pub struct Prepare {
    /// The canonical envelope.
    bytes: Bytes,
    /// Offset of `amount` (the first content byte) in `bytes`: 2, 3 or 4.
    contents_start: usize,
    amount: u64,
    expires_at_ms: i64,
    execution_condition: [u8; CONDITION_SIZE],
    destination: Range<usize>,
    data: Range<usize>,
}

struct PrepareFields {
    amount: u64,
    expires_at_ms: i64,
    execution_condition: [u8; CONDITION_SIZE],
    destination: Range<usize>,
    data: Range<usize>,
}

impl Prepare {
    pub fn parse(bytes: Bytes) -> Result<Prepare, CodecError> {
        Prepare::parse_with(bytes, &ParseOptions::LENIENT)
    }

    pub fn parse_with(bytes: Bytes, options: &ParseOptions) -> Result<Prepare, CodecError> {
        let (bytes, contents_start, fields) =
            parse_envelope(bytes, PacketType::Prepare, options, read_prepare_fields)?;
        Ok(Prepare {
            bytes,
            contents_start,
            amount: fields.amount,
            expires_at_ms: fields.expires_at_ms,
            execution_condition: fields.execution_condition,
            destination: shift(fields.destination, contents_start),
            data: shift(fields.data, contents_start),
        })
    }

    pub fn amount(&self) -> u64 {
        self.amount
    }

    pub fn expires_at_ms(&self) -> i64 {
        self.expires_at_ms
    }

    pub fn execution_condition(&self) -> &[u8; CONDITION_SIZE] {
        &self.execution_condition
    }

    /// The destination address, validated when the packet was parsed.
    pub fn destination(&self) -> &str {
        // Validated addresses are ASCII, so this never falls back.
        std::str::from_utf8(&self.bytes[self.destination.clone()]).unwrap_or("")
    }

    pub fn data(&self) -> &[u8] {
        &self.bytes[self.data.clone()]
    }

    /// The canonical encoding of this packet.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The canonical encoding, sharing this packet's buffer.
    pub fn to_bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Size of the canonical encoding; a packet is never empty.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes that [`Prepare::write_forwarded`] appends.
    pub fn forwarded_len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends this Prepare with `amount` and `expiresAt` replaced: one copy of the canonical
    /// bytes, then two fixed-width patches. Condition, destination and data are untouched, as a
    /// connector must leave them. An expiry outside years 0000..=9999 is clamped to that range
    /// (see [`format_timestamp`]); a caller only ever moves expiries earlier than a parsed one.
    pub fn write_forwarded(&self, amount: u64, expires_at_ms: i64, out: &mut BytesMut) {
        let amount_start = out.len() + self.contents_start;
        let expires_at_start = amount_start + 8;
        out.extend_from_slice(&self.bytes);
        out[amount_start..expires_at_start].copy_from_slice(&amount.to_be_bytes());
        out[expires_at_start..expires_at_start + TIMESTAMP_SIZE]
            .copy_from_slice(&format_timestamp(expires_at_ms));
    }
}

fn read_prepare_fields(contents: &mut Reader<'_>) -> Result<PrepareFields, CodecError> {
    let amount = contents.read_u64("amount")?;
    let expires_at_offset = contents.offset();
    let expires_at = contents.read_bytes(TIMESTAMP_SIZE, "expiresAt")?;
    let expires_at_ms = parse_timestamp(expires_at).map_err(|reason| CodecError {
        offset: expires_at_offset,
        field: "expiresAt",
        reason,
    })?;
    let execution_condition = contents.read_array("executionCondition")?;
    let destination_offset = contents.offset();
    let (destination, destination_bytes) = read_value(contents, ADDRESS_SIZE_MAX, "destination")?;
    if let Err(error) = Address::validate(destination_bytes) {
        let reason = Reason::Invalid(error.as_static_str());
        return Err(CodecError {
            offset: destination_offset,
            field: "destination",
            reason,
        });
    }
    let data = read_range(contents, DATA_SIZE_MAX, "data")?;
    Ok(PrepareFields {
        amount,
        expires_at_ms,
        execution_condition,
        destination,
        data,
    })
}

impl fmt::Debug for Prepare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepare")
            .field("amount", &self.amount)
            .field("expires_at", &TimestampText(self.expires_at_ms))
            .field(
                "execution_condition",
                &HexPreview(&self.execution_condition),
            )
            .field("destination", &self.destination())
            .field("data", &HexPreview(self.data()))
            .finish()
    }
}

/// Writes a canonical Prepare. Fields are checked first (see [`BuildError`]): destinations and
/// data often come from outside (an echo request, the operator CLI), so a bad one is an error to
/// handle, not a bug to assert on.
#[derive(Debug, Clone, Copy)]
pub struct PrepareBuilder<'a> {
    pub amount: u64,
    pub expires_at_ms: i64,
    pub execution_condition: [u8; CONDITION_SIZE],
    pub destination: &'a str,
    pub data: &'a [u8],
}

impl PrepareBuilder<'_> {
    pub fn build(&self) -> Result<Bytes, BuildError> {
        let mut out = BytesMut::new();
        self.write(&mut out)?;
        Ok(out.freeze())
    }

    pub fn write(&self, out: &mut BytesMut) -> Result<(), BuildError> {
        Address::validate(self.destination.as_bytes()).map_err(BuildError::InvalidDestination)?;
        check_data(self.data)?;
        if !(TIMESTAMP_MS_MIN..=TIMESTAMP_MS_MAX).contains(&self.expires_at_ms) {
            return Err(BuildError::ExpiresAtOutOfRange {
                expires_at_ms: self.expires_at_ms,
            });
        }
        let contents_size = PREPARE_FIXED_SIZE
            + var_octets_size(self.destination.len())
            + var_octets_size(self.data.len());
        write_envelope_head(out, PacketType::Prepare, contents_size);
        out.put_u64(self.amount);
        out.put_slice(&format_timestamp(self.expires_at_ms));
        out.put_slice(&self.execution_condition);
        write_var_octets(out, self.destination.as_bytes());
        write_var_octets(out, self.data);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Fulfill

/// An ILP Fulfill. Parsing does not check the fulfillment against any condition: that needs the
/// Prepare, see [`crate::ilp::fulfillment_matches`].
#[derive(Clone, PartialEq, Eq)]
pub struct Fulfill {
    bytes: Bytes,
    fulfillment: [u8; CONDITION_SIZE],
    data: Range<usize>,
}

struct FulfillFields {
    fulfillment: [u8; CONDITION_SIZE],
    data: Range<usize>,
}

impl Fulfill {
    pub fn parse(bytes: Bytes) -> Result<Fulfill, CodecError> {
        Fulfill::parse_with(bytes, &ParseOptions::LENIENT)
    }

    pub fn parse_with(bytes: Bytes, options: &ParseOptions) -> Result<Fulfill, CodecError> {
        let (bytes, contents_start, fields) =
            parse_envelope(bytes, PacketType::Fulfill, options, |contents| {
                let fulfillment = contents.read_array("fulfillment")?;
                let data = read_range(contents, DATA_SIZE_MAX, "data")?;
                Ok(FulfillFields { fulfillment, data })
            })?;
        let data = shift(fields.data, contents_start);
        Ok(Fulfill {
            bytes,
            fulfillment: fields.fulfillment,
            data,
        })
    }

    pub fn fulfillment(&self) -> &[u8; CONDITION_SIZE] {
        &self.fulfillment
    }

    pub fn data(&self) -> &[u8] {
        &self.bytes[self.data.clone()]
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn to_bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl fmt::Debug for Fulfill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fulfill")
            .field("fulfillment", &HexPreview(&self.fulfillment))
            .field("data", &HexPreview(self.data()))
            .finish()
    }
}

/// Writes a canonical Fulfill; fails only on data above [`DATA_SIZE_MAX`].
#[derive(Debug, Clone, Copy)]
pub struct FulfillBuilder<'a> {
    pub fulfillment: [u8; CONDITION_SIZE],
    pub data: &'a [u8],
}

impl FulfillBuilder<'_> {
    pub fn build(&self) -> Result<Bytes, BuildError> {
        let mut out = BytesMut::new();
        self.write(&mut out)?;
        Ok(out.freeze())
    }

    pub fn write(&self, out: &mut BytesMut) -> Result<(), BuildError> {
        check_data(self.data)?;
        let contents_size = CONDITION_SIZE + var_octets_size(self.data.len());
        write_envelope_head(out, PacketType::Fulfill, contents_size);
        out.put_slice(&self.fulfillment);
        write_var_octets(out, self.data);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reject

/// An ILP Reject.
#[derive(Clone, PartialEq, Eq)]
pub struct Reject {
    bytes: Bytes,
    code: ErrorCode,
    triggered_by: Range<usize>,
    triggered_by_valid: bool,
    message: Range<usize>,
    data: Range<usize>,
}

struct RejectFields {
    code: ErrorCode,
    triggered_by: Range<usize>,
    triggered_by_valid: bool,
    message: Range<usize>,
    data: Range<usize>,
}

impl Reject {
    pub fn parse(bytes: Bytes) -> Result<Reject, CodecError> {
        Reject::parse_with(bytes, &ParseOptions::LENIENT)
    }

    pub fn parse_with(bytes: Bytes, options: &ParseOptions) -> Result<Reject, CodecError> {
        let (bytes, contents_start, fields) =
            parse_envelope(bytes, PacketType::Reject, options, read_reject_fields)?;
        Ok(Reject {
            bytes,
            code: fields.code,
            triggered_by: shift(fields.triggered_by, contents_start),
            triggered_by_valid: fields.triggered_by_valid,
            message: shift(fields.message, contents_start),
            data: shift(fields.data, contents_start),
        })
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The address of the node that created the Reject, or `None` if the field is empty or not a
    /// valid address (accepted on decode, see the module invariants).
    pub fn triggered_by(&self) -> Option<&str> {
        if !self.triggered_by_valid {
            return None;
        }
        std::str::from_utf8(self.triggered_by_raw()).ok()
    }

    pub fn triggered_by_raw(&self) -> &[u8] {
        &self.bytes[self.triggered_by.clone()]
    }

    /// The message as sent: meant to be UTF-8, not checked.
    pub fn message(&self) -> &[u8] {
        &self.bytes[self.message.clone()]
    }

    pub fn message_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.message())
    }

    pub fn data(&self) -> &[u8] {
        &self.bytes[self.data.clone()]
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn to_bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

fn read_reject_fields(contents: &mut Reader<'_>) -> Result<RejectFields, CodecError> {
    let code_offset = contents.offset();
    let code = ErrorCode(contents.read_array("code")?);
    if !code.is_ascii() {
        let reason = Reason::InvalidCharacters;
        return Err(CodecError {
            offset: code_offset,
            field: "code",
            reason,
        });
    }
    let (triggered_by, triggered_by_bytes) = read_value(contents, ADDRESS_SIZE_MAX, "triggeredBy")?;
    let triggered_by_valid = Address::is_valid(triggered_by_bytes);
    let message = read_range(contents, MESSAGE_SIZE_MAX, "message")?;
    let data = read_range(contents, DATA_SIZE_MAX, "data")?;
    Ok(RejectFields {
        code,
        triggered_by,
        triggered_by_valid,
        message,
        data,
    })
}

impl fmt::Debug for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reject")
            .field("code", &self.code)
            .field(
                "triggered_by",
                &String::from_utf8_lossy(self.triggered_by_raw()),
            )
            .field("message", &self.message_lossy())
            .field("data", &HexPreview(self.data()))
            .finish()
    }
}

/// Writes a canonical Reject. `triggered_by` must be a valid address or empty: empty is legal
/// on the wire (ASN.1 `SIZE(0..1023)`) and appears in the test vectors, but a connector creating
/// its own Reject should always name itself.
#[derive(Debug, Clone, Copy)]
pub struct RejectBuilder<'a> {
    pub code: ErrorCode,
    pub triggered_by: &'a str,
    pub message: &'a str,
    pub data: &'a [u8],
}

impl RejectBuilder<'_> {
    pub fn build(&self) -> Result<Bytes, BuildError> {
        let mut out = BytesMut::new();
        self.write(&mut out)?;
        Ok(out.freeze())
    }

    pub fn write(&self, out: &mut BytesMut) -> Result<(), BuildError> {
        self.check()?;
        let contents_size = self.code.0.len()
            + var_octets_size(self.triggered_by.len())
            + var_octets_size(self.message.len())
            + var_octets_size(self.data.len());
        write_envelope_head(out, PacketType::Reject, contents_size);
        out.put_slice(&self.code.0);
        write_var_octets(out, self.triggered_by.as_bytes());
        write_var_octets(out, self.message.as_bytes());
        write_var_octets(out, self.data);
        Ok(())
    }

    fn check(&self) -> Result<(), BuildError> {
        if !self.code.is_ascii() {
            return Err(BuildError::CodeNotAscii(self.code));
        }
        if !self.triggered_by.is_empty() {
            Address::validate(self.triggered_by.as_bytes())
                .map_err(BuildError::InvalidTriggeredBy)?;
        }
        if self.message.len() > MESSAGE_SIZE_MAX {
            return Err(BuildError::MessageTooLong {
                size: self.message.len(),
            });
        }
        check_data(self.data)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared envelope handling

/// Checks the type byte and envelope of `bytes`, reads the contents with `read_fields`, checks
/// for trailing bytes, and returns the canonical envelope, where its contents start, and the
/// fields (with ranges relative to the start of the contents).
fn parse_envelope<F>(
    bytes: Bytes,
    packet_type: PacketType,
    options: &ParseOptions,
    read_fields: impl FnOnce(&mut Reader<'_>) -> Result<F, CodecError>,
) -> Result<(Bytes, usize, F), CodecError> {
    let contents_range = read_envelope(&bytes, packet_type, options)?;
    let mut contents = Reader::with_base(&bytes[contents_range.clone()], contents_range.start);
    let fields = read_fields(&mut contents)?;
    if !contents.is_empty() && !options.trailing_bytes_allowed {
        return Err(contents.error("contents", Reason::TrailingBytes(contents.remaining())));
    }
    let fields_size = contents.position();
    let (bytes, contents_start) = canonical_envelope(bytes, contents_range, fields_size);
    Ok((bytes, contents_start, fields))
}

/// Returns the range of the envelope's contents within `input`.
fn read_envelope(
    input: &[u8],
    packet_type: PacketType,
    options: &ParseOptions,
) -> Result<Range<usize>, CodecError> {
    let mut reader = Reader::new(input);
    let type_byte = reader.read_u8("type")?;
    if type_byte != packet_type as u8 {
        let reason = match PacketType::from_byte(type_byte) {
            Some(_) => Reason::Invalid(packet_type.expected_text()),
            None => Reason::UnknownType(type_byte),
        };
        return Err(CodecError {
            offset: 0,
            field: "type",
            reason,
        });
    }
    let contents = reader.read_var_octets("length")?;
    let contents_end = reader.position();
    if !reader.is_empty() && !options.trailing_bytes_allowed {
        return Err(reader.error("packet", Reason::TrailingBytes(reader.remaining())));
    }
    Ok(contents_end - contents.len()..contents_end)
}

/// The envelope holding exactly the fields: `bytes` cut after the contents when nothing trails
/// inside them (no copy), else a copy of the fields behind a corrected length.
fn canonical_envelope(
    mut bytes: Bytes,
    contents: Range<usize>,
    fields_size: usize,
) -> (Bytes, usize) {
    if fields_size == contents.len() {
        bytes.truncate(contents.end);
        return (bytes, contents.start);
    }
    let mut canonical = BytesMut::with_capacity(1 + length_prefix_size(fields_size) + fields_size);
    canonical.put_u8(bytes[0]);
    write_length(&mut canonical, fields_size);
    let contents_start = canonical.len();
    canonical.extend_from_slice(&bytes[contents.start..contents.start + fields_size]);
    (canonical.freeze(), contents_start)
}

fn write_envelope_head(out: &mut BytesMut, packet_type: PacketType, contents_size: usize) {
    out.reserve(1 + length_prefix_size(contents_size) + contents_size);
    out.put_u8(packet_type as u8);
    write_length(out, contents_size);
}

/// Reads a length-prefixed field of at most `size_max` bytes and returns its value and where the
/// value lies, relative to the start of the reader's input.
fn read_value<'a>(
    reader: &mut Reader<'a>,
    size_max: usize,
    field: &'static str,
) -> Result<(Range<usize>, &'a [u8]), CodecError> {
    let value = reader.read_var_octets_max(size_max, field)?;
    let end = reader.position();
    Ok((end - value.len()..end, value))
}

fn read_range(
    reader: &mut Reader<'_>,
    size_max: usize,
    field: &'static str,
) -> Result<Range<usize>, CodecError> {
    Ok(read_value(reader, size_max, field)?.0)
}

fn shift(range: Range<usize>, offset: usize) -> Range<usize> {
    range.start + offset..range.end + offset
}

fn var_octets_size(size: usize) -> usize {
    length_prefix_size(size) + size
}

fn check_data(data: &[u8]) -> Result<(), BuildError> {
    if data.len() > DATA_SIZE_MAX {
        return Err(BuildError::DataTooLong { size: data.len() });
    }
    Ok(())
}

/// Debug output for byte strings: hex, cut after 64 bytes so a 32 KB payload can't flood a log.
struct HexPreview<'a>(&'a [u8]);

impl fmt::Debug for HexPreview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PREVIEW_SIZE_MAX: usize = 64;
        if self.0.len() <= PREVIEW_SIZE_MAX {
            write!(f, "{}", hex::encode(self.0))
        } else {
            let preview = hex::encode(&self.0[..PREVIEW_SIZE_MAX]);
            write!(f, "{preview}...({} bytes)", self.0.len())
        }
    }
}

struct TimestampText(i64);

impl fmt::Debug for TimestampText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_timestamp(self.0).escape_ascii())
    }
}
