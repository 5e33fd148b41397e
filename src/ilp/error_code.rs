//! ILP error codes (RFC 27 §"Error Codes") and the F08 "Amount Too Large" data.
//!
//! A code is three IA5 (7-bit ASCII) bytes. The first letter is the class: F final, T temporary,
//! R relative. Codes we do not know are still valid on the wire and must be relayed untouched,
//! so [`ErrorCode`] holds any three bytes and classifies unknown ones by their first letter.

use std::fmt;

/// Three bytes of an ILP error code, as on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub [u8; 3]);

/// What a sender should do about a Reject, from the code's first letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// F: don't retry the same packet.
    Final,
    /// T: retry later, the condition may clear.
    Temporary,
    /// R: retry with more amount or more time.
    Relative,
    /// Any other first byte.
    Unknown,
}

/// A string that is not three 7-bit ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an ILP error code is exactly three 7-bit ASCII characters")]
pub struct InvalidErrorCode;

/// Every code with its name: the one table that `name()` and the tests read.
const KNOWN_CODES: [(ErrorCode, &str); 22] = [
    (ErrorCode::F00_BAD_REQUEST, "Bad Request"),
    (ErrorCode::F01_INVALID_PACKET, "Invalid Packet"),
    (ErrorCode::F02_UNREACHABLE, "Unreachable"),
    (ErrorCode::F03_INVALID_AMOUNT, "Invalid Amount"),
    (
        ErrorCode::F04_INSUFFICIENT_DESTINATION_AMOUNT,
        "Insufficient Destination Amount",
    ),
    (ErrorCode::F05_WRONG_CONDITION, "Wrong Condition"),
    (ErrorCode::F06_UNEXPECTED_PAYMENT, "Unexpected Payment"),
    (ErrorCode::F07_CANNOT_RECEIVE, "Cannot Receive"),
    (ErrorCode::F08_AMOUNT_TOO_LARGE, "Amount Too Large"),
    (
        ErrorCode::F09_INVALID_PEER_RESPONSE,
        "Invalid Peer Response",
    ),
    (ErrorCode::F99_APPLICATION_ERROR, "Application Error"),
    (ErrorCode::T00_INTERNAL_ERROR, "Internal Error"),
    (ErrorCode::T01_PEER_UNREACHABLE, "Peer Unreachable"),
    (ErrorCode::T02_PEER_BUSY, "Peer Busy"),
    (ErrorCode::T03_CONNECTOR_BUSY, "Connector Busy"),
    (
        ErrorCode::T04_INSUFFICIENT_LIQUIDITY,
        "Insufficient Liquidity",
    ),
    (ErrorCode::T05_RATE_LIMITED, "Rate Limited"),
    (ErrorCode::T99_APPLICATION_ERROR, "Application Error"),
    (ErrorCode::R00_TRANSFER_TIMED_OUT, "Transfer Timed Out"),
    (
        ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT,
        "Insufficient Source Amount",
    ),
    (ErrorCode::R02_INSUFFICIENT_TIMEOUT, "Insufficient Timeout"),
    (ErrorCode::R99_APPLICATION_ERROR, "Application Error"),
];

impl ErrorCode {
    pub const F00_BAD_REQUEST: ErrorCode = ErrorCode(*b"F00");
    pub const F01_INVALID_PACKET: ErrorCode = ErrorCode(*b"F01");
    pub const F02_UNREACHABLE: ErrorCode = ErrorCode(*b"F02");
    pub const F03_INVALID_AMOUNT: ErrorCode = ErrorCode(*b"F03");
    pub const F04_INSUFFICIENT_DESTINATION_AMOUNT: ErrorCode = ErrorCode(*b"F04");
    pub const F05_WRONG_CONDITION: ErrorCode = ErrorCode(*b"F05");
    pub const F06_UNEXPECTED_PAYMENT: ErrorCode = ErrorCode(*b"F06");
    pub const F07_CANNOT_RECEIVE: ErrorCode = ErrorCode(*b"F07");
    pub const F08_AMOUNT_TOO_LARGE: ErrorCode = ErrorCode(*b"F08");
    /// De-facto (rfcs PR #511, used by interledger-rs); ilp-connector uses F05 instead.
    pub const F09_INVALID_PEER_RESPONSE: ErrorCode = ErrorCode(*b"F09");
    pub const F99_APPLICATION_ERROR: ErrorCode = ErrorCode(*b"F99");
    pub const T00_INTERNAL_ERROR: ErrorCode = ErrorCode(*b"T00");
    pub const T01_PEER_UNREACHABLE: ErrorCode = ErrorCode(*b"T01");
    pub const T02_PEER_BUSY: ErrorCode = ErrorCode(*b"T02");
    pub const T03_CONNECTOR_BUSY: ErrorCode = ErrorCode(*b"T03");
    pub const T04_INSUFFICIENT_LIQUIDITY: ErrorCode = ErrorCode(*b"T04");
    pub const T05_RATE_LIMITED: ErrorCode = ErrorCode(*b"T05");
    pub const T99_APPLICATION_ERROR: ErrorCode = ErrorCode(*b"T99");
    pub const R00_TRANSFER_TIMED_OUT: ErrorCode = ErrorCode(*b"R00");
    pub const R01_INSUFFICIENT_SOURCE_AMOUNT: ErrorCode = ErrorCode(*b"R01");
    pub const R02_INSUFFICIENT_TIMEOUT: ErrorCode = ErrorCode(*b"R02");
    pub const R99_APPLICATION_ERROR: ErrorCode = ErrorCode(*b"R99");

    /// Accepts any three 7-bit ASCII characters: unknown codes are legal and get relayed.
    pub fn parse(text: &str) -> Result<ErrorCode, InvalidErrorCode> {
        let bytes: [u8; 3] = text.as_bytes().try_into().map_err(|_| InvalidErrorCode)?;
        let code = ErrorCode(bytes);
        if code.is_ascii() {
            Ok(code)
        } else {
            Err(InvalidErrorCode)
        }
    }

    /// True if all three bytes are 7-bit ASCII, as the wire format requires.
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }

    pub fn class(&self) -> ErrorClass {
        match self.0[0] {
            b'F' => ErrorClass::Final,
            b'T' => ErrorClass::Temporary,
            b'R' => ErrorClass::Relative,
            _ => ErrorClass::Unknown,
        }
    }

    /// The RFC 27 name ("Bad Request"), or "Unknown".
    pub fn name(&self) -> &'static str {
        KNOWN_CODES
            .iter()
            .find(|(code, _)| code == self)
            .map_or("Unknown", |(_, name)| name)
    }

    /// The code as text; `"???"` only for bytes that are not UTF-8, which a decoded code never is.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Every code RFC 27 (plus de-facto F09) names.
    pub fn known() -> impl Iterator<Item = ErrorCode> {
        KNOWN_CODES.iter().map(|(code, _)| *code)
    }
}

impl fmt::Display for ErrorCode {
    /// Control characters are escaped so a hostile code can't garble a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({})", self)
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = InvalidErrorCode;
    fn from_str(text: &str) -> Result<ErrorCode, InvalidErrorCode> {
        ErrorCode::parse(text)
    }
}

/// The data of an F08 Reject: both amounts in the units of the link the Prepare arrived on;
/// `maximum_amount` is inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountTooLarge {
    pub received_amount: u64,
    pub maximum_amount: u64,
}

/// Encodes F08 data: `receivedAmount UInt64 || maximumAmount UInt64`, big-endian.
pub fn amount_too_large_data(received_amount: u64, maximum_amount: u64) -> [u8; 16] {
    let mut data = [0u8; 16];
    data[..8].copy_from_slice(&received_amount.to_be_bytes());
    data[8..].copy_from_slice(&maximum_amount.to_be_bytes());
    data
}

/// Decodes F08 data. Bytes after the 16 are ignored (RFC 30 extensibility); fewer is `None`.
pub fn parse_amount_too_large_data(data: &[u8]) -> Option<AmountTooLarge> {
    let received_amount = u64::from_be_bytes(data.get(..8)?.try_into().ok()?);
    let maximum_amount = u64::from_be_bytes(data.get(8..16)?.try_into().ok()?);
    Some(AmountTooLarge {
        received_amount,
        maximum_amount,
    })
}
