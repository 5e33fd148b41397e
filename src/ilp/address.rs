//! ILP addresses (RFC 15).
//!
//! Grammar: `scheme 1*("." segment)` where the scheme is one of the allocated ones and a segment
//! is `1*(ALPHA / DIGIT / "_" / "~" / "-")`; the whole address is 1..=1023 bytes and
//! case-sensitive. [`Address::validate`] is the single implementation of the grammar: it runs on
//! every Prepare on the hot path, so it never allocates and looks at each byte once.

use std::fmt;
use std::sync::Arc;

/// Longest address RFC 15 allows, in bytes.
pub const ADDRESS_SIZE_MAX: usize = 1023;

/// The allocation schemes of RFC 15, the first segment of every address.
const SCHEMES: [&[u8]; 10] = [
    b"g", b"private", b"example", b"peer", b"self", b"test", b"test1", b"test2", b"test3", b"local",
];

/// `SEGMENT_BYTE[b]` is true for the bytes a segment may contain: `[A-Za-z0-9_~-]`.
const SEGMENT_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || b == b'_' || b == b'~' || b == b'-';
        byte += 1;
    }
    table
};

/// What is wrong with a would-be address. Offsets are byte positions within the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is {size} bytes, more than the {ADDRESS_SIZE_MAX} allowed")]
    TooLong { size: usize },
    #[error("address does not start with a known scheme (g, private, example, peer, self, test, test1-3, local)")]
    UnknownScheme,
    #[error("address has a scheme but no segment after it")]
    MissingSegment,
    #[error("address has an empty segment at byte {offset}")]
    EmptySegment { offset: usize },
    #[error("address has byte 0x{byte:02x} at byte {offset}, allowed are A-Z a-z 0-9 _ ~ - and .")]
    InvalidByte { offset: usize, byte: u8 },
}

impl AddressError {
    /// A fixed description, for error types that only carry static text ([`crate::ilp::oer::Reason`]).
    pub fn as_static_str(&self) -> &'static str {
        match self {
            AddressError::Empty => "address is empty",
            AddressError::TooLong { .. } => "address longer than 1023 bytes",
            AddressError::UnknownScheme => "address has an unknown scheme",
            AddressError::MissingSegment => "address has no segment after its scheme",
            AddressError::EmptySegment { .. } => "address has an empty segment",
            AddressError::InvalidByte { .. } => "address has a byte outside [A-Za-z0-9_~-.]",
        }
    }
}

/// A validated ILP address. Cloning is a reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(Arc<str>);

impl Address {
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        Address::validate(text.as_bytes())?;
        Ok(Address(Arc::from(text)))
    }

    /// True if `bytes` is a valid address. No allocation; meant for the per-packet path.
    pub fn is_valid(bytes: &[u8]) -> bool {
        Address::validate(bytes).is_ok()
    }

    /// Checks the RFC 15 grammar and says what is wrong first.
    pub fn validate(bytes: &[u8]) -> Result<(), AddressError> {
        if bytes.is_empty() {
            return Err(AddressError::Empty);
        }
        if bytes.len() > ADDRESS_SIZE_MAX {
            return Err(AddressError::TooLong { size: bytes.len() });
        }
        let scheme_size = bytes.iter().position(|&b| b == b'.').unwrap_or(bytes.len());
        if !SCHEMES.contains(&&bytes[..scheme_size]) {
            return Err(AddressError::UnknownScheme);
        }
        if scheme_size == bytes.len() {
            return Err(AddressError::MissingSegment);
        }
        validate_segments(bytes, scheme_size)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first segment (`g`, `test`, `peer`...).
    pub fn scheme(&self) -> &str {
        self.0.split('.').next().unwrap_or("")
    }

    /// True if `prefix` names this address or one of its ancestors, on segment boundaries:
    /// `g.alice` is a prefix of `g.alice.bob` but not of `g.alicebob`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        match self.0.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('.'),
            None => false,
        }
    }
}

/// Checks everything after the scheme: `bytes[dot_offset]` is the first `.`.
fn validate_segments(bytes: &[u8], dot_offset: usize) -> Result<(), AddressError> {
    let mut segment_size = 0;
    for (offset, &byte) in bytes.iter().enumerate().skip(dot_offset + 1) {
        if byte == b'.' {
            if segment_size == 0 {
                return Err(AddressError::EmptySegment { offset });
            }
            segment_size = 0;
        } else if SEGMENT_BYTE[byte as usize] {
            segment_size += 1;
        } else {
            return Err(AddressError::InvalidByte { offset, byte });
        }
    }
    if segment_size == 0 {
        return Err(AddressError::EmptySegment {
            offset: bytes.len(),
        });
    }
    Ok(())
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({:?})", &*self.0)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(text: &str) -> Result<Address, AddressError> {
        Address::parse(text)
    }
}

impl TryFrom<&str> for Address {
    type Error = AddressError;
    fn try_from(text: &str) -> Result<Address, AddressError> {
        Address::parse(text)
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
