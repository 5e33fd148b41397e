//! Canonical OER (RFC 30) primitives shared by the ILP and BTP codecs.
//!
//! Readers work over a byte slice with a cursor and report failures as a [`CodecError`] naming
//! the absolute byte offset and the field being read, so an operator can find the bad byte in a
//! hex dump. Decoders here are strict about canonical form (short lengths in short form, no
//! leading zeros) and never allocate: a length is checked against the bytes actually present
//! before anything is sliced, so a hostile length prefix cannot trigger a large allocation.

use std::fmt;

/// Why a field could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The input ended before the field did.
    UnexpectedEnd { needed: usize, available: usize },
    /// A length determinant in long form encoded a value below 128, or had leading zero bytes.
    NonCanonicalLength,
    /// `0x80` (indefinite length) or a length-of-length above 8.
    InvalidLengthPrefix,
    /// A variable-length unsigned integer of zero bytes, with a leading zero, or wider than u64.
    InvalidVarUInt,
    /// A value outside the range the type allows (a length above its maximum, say).
    OutOfRange,
    /// Bytes that are not allowed in this field (a non-digit in a timestamp, non-ASCII code...).
    InvalidCharacters,
    /// An unknown packet or frame type byte.
    UnknownType(u8),
    /// Bytes left over inside a container after its last field (strict mode only).
    TrailingBytes(usize),
    /// A field-specific rule, described by a static message.
    Invalid(&'static str),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::UnexpectedEnd { needed, available } => {
                write!(f, "unexpected end of input: needed {needed} bytes, {available} available")
            }
            Reason::NonCanonicalLength => f.write_str("non-canonical length determinant"),
            Reason::InvalidLengthPrefix => f.write_str("invalid length determinant"),
            Reason::InvalidVarUInt => f.write_str("invalid variable-length unsigned integer"),
            Reason::OutOfRange => f.write_str("value out of range"),
            Reason::InvalidCharacters => f.write_str("invalid characters"),
            Reason::UnknownType(t) => write!(f, "unknown type {t}"),
            Reason::TrailingBytes(n) => write!(f, "{n} trailing bytes"),
            Reason::Invalid(message) => f.write_str(message),
        }
    }
}

/// A decoding failure: where it happened and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}, field `{field}`: {reason}")]
pub struct CodecError {
    /// Absolute offset (from the start of the outermost buffer) of the first byte of the field.
    pub offset: usize,
    pub field: &'static str,
    pub reason: Reason,
}

/// A cursor over an input buffer. `base` is the absolute offset of `input[0]`, so errors from
/// nested readers (the contents of an envelope, say) still report offsets in the outer buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    position: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input, position: 0, base: 0 }
    }

    /// A reader whose offsets are reported relative to an outer buffer starting `base` bytes earlier.
    pub fn with_base(input: &'a [u8], base: usize) -> Self {
        Reader { input, position: 0, base }
    }

    /// Position within this reader's input.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Absolute offset of the next byte (position plus base).
    pub fn offset(&self) -> usize {
        self.base + self.position
    }

    pub fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn error(&self, field: &'static str, reason: Reason) -> CodecError {
        CodecError { offset: self.offset(), field, reason }
    }

    /// Reads exactly `size` bytes.
    pub fn read_bytes(&mut self, size: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        if size > self.remaining() {
            return Err(self.error(
                field,
                Reason::UnexpectedEnd { needed: size, available: self.remaining() },
            ));
        }
        let bytes = &self.input[self.position..self.position + size];
        self.position += size;
        Ok(bytes)
    }

    pub fn read_array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let bytes = self.read_bytes(N, field)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    pub fn read_u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.read_bytes(1, field)?[0])
    }

    pub fn read_u16(&mut self, field: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.read_array(field)?))
    }

    pub fn read_u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.read_array(field)?))
    }

    pub fn read_u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.read_array(field)?))
    }

    /// Reads a canonical length determinant. The value is not checked against the remaining
    /// input here; [`Reader::read_var_octets`] does that before slicing.
    pub fn read_length(&mut self, field: &'static str) -> Result<usize, CodecError> {
        let start = self.clone();
        let first = self.read_u8(field)?;
        if first & 0x80 == 0 {
            return Ok(first as usize);
        }
        let length_size = (first & 0x7f) as usize;
        if length_size == 0 || length_size > 8 {
            return Err(start.error(field, Reason::InvalidLengthPrefix));
        }
        let bytes = self.read_bytes(length_size, field)?;
        if bytes[0] == 0 {
            return Err(start.error(field, Reason::NonCanonicalLength));
        }
        let value = bytes.iter().fold(0u64, |value, &byte| (value << 8) | byte as u64);
        if value < 128 {
            return Err(start.error(field, Reason::NonCanonicalLength));
        }
        // Any length that does not fit in usize can't be satisfied by the input anyway.
        usize::try_from(value).map_err(|_| start.error(field, Reason::OutOfRange))
    }

    /// Reads a length-prefixed octet string, checking the length against the input first.
    pub fn read_var_octets(&mut self, field: &'static str) -> Result<&'a [u8], CodecError> {
        let start = self.clone();
        let length = self.read_length(field)?;
        if length > self.remaining() {
            return Err(start.error(
                field,
                Reason::UnexpectedEnd { needed: length, available: self.remaining() },
            ));
        }
        self.read_bytes(length, field)
    }

    /// Like [`Reader::read_var_octets`], with an upper bound on the length.
    pub fn read_var_octets_max(
        &mut self,
        size_max: usize,
        field: &'static str,
    ) -> Result<&'a [u8], CodecError> {
        let start = self.clone();
        let bytes = self.read_var_octets(field)?;
        if bytes.len() > size_max {
            return Err(start.error(field, Reason::OutOfRange));
        }
        Ok(bytes)
    }

    /// Reads a canonical variable-length unsigned integer that fits in a u64.
    pub fn read_var_uint(&mut self, field: &'static str) -> Result<u64, CodecError> {
        let start = self.clone();
        let bytes = self.read_var_octets(field)?;
        if bytes.is_empty() || bytes.len() > 8 || (bytes.len() > 1 && bytes[0] == 0) {
            return Err(start.error(field, Reason::InvalidVarUInt));
        }
        Ok(bytes.iter().fold(0u64, |value, &byte| (value << 8) | byte as u64))
    }
}

/// Number of bytes the length determinant for `length` takes.
pub fn length_prefix_size(length: usize) -> usize {
    if length < 128 {
        1
    } else {
        1 + (usize::BITS as usize / 8 - length.leading_zeros() as usize / 8)
    }
}

/// Appends a canonical length determinant.
pub fn write_length(out: &mut impl bytes::BufMut, length: usize) {
    if length < 128 {
        out.put_u8(length as u8);
    } else {
        let size = length_prefix_size(length) - 1;
        out.put_u8(0x80 | size as u8);
        out.put_slice(&(length as u64).to_be_bytes()[8 - size..]);
    }
}

pub fn write_var_octets(out: &mut impl bytes::BufMut, bytes: &[u8]) {
    write_length(out, bytes.len());
    out.put_slice(bytes);
}

/// Number of bytes a canonical var-uint takes, including its length byte.
pub fn var_uint_size(value: u64) -> usize {
    1 + var_uint_body_size(value)
}

fn var_uint_body_size(value: u64) -> usize {
    if value == 0 {
        1
    } else {
        8 - value.leading_zeros() as usize / 8
    }
}

pub fn write_var_uint(out: &mut impl bytes::BufMut, value: u64) {
    let size = var_uint_body_size(value);
    out.put_u8(size as u8);
    out.put_slice(&value.to_be_bytes()[8 - size..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_length(hex_input: &str, expect: Result<usize, Reason>) {
        let input = hex::decode(hex_input).unwrap();
        let mut reader = Reader::new(&input);
        let got = reader.read_length("length").map_err(|error| error.reason);
        assert_eq!(got, expect, "input {hex_input}");
        if let Ok(length) = got {
            let mut out = Vec::new();
            write_length(&mut out, length);
            assert_eq!(hex::encode(out), hex_input, "canonical re-encoding");
            assert_eq!(length_prefix_size(length), input.len());
        }
    }

    #[test]
    fn length_determinants_from_rfc_30() {
        check_length("07", Ok(7));
        check_length("8182", Ok(130));
        check_length("821234", Ok(4660));
        check_length("83abcdef", Ok(11259375));
        check_length("8105", Err(Reason::NonCanonicalLength));
        check_length("820080", Err(Reason::NonCanonicalLength));
        check_length("80", Err(Reason::InvalidLengthPrefix));
        check_length("89010203040506070809", Err(Reason::InvalidLengthPrefix));
        check_length("82ff", Err(Reason::UnexpectedEnd { needed: 2, available: 1 }));
    }

    #[test]
    fn var_uints() {
        for (hex_input, value) in
            [("0100", 0u64), ("0101", 1), ("020100", 256), ("08ac01055a1debac1e", 12394193534107495454)]
        {
            let input = hex::decode(hex_input).unwrap();
            assert_eq!(Reader::new(&input).read_var_uint("n"), Ok(value));
            let mut out = Vec::new();
            write_var_uint(&mut out, value);
            assert_eq!(hex::encode(&out), hex_input);
            assert_eq!(var_uint_size(value), out.len());
        }
        for bad in ["00", "020001", "09010000000000000000"] {
            let input = hex::decode(bad).unwrap();
            assert_eq!(
                Reader::new(&input).read_var_uint("n").map_err(|e| e.reason),
                Err(Reason::InvalidVarUInt),
                "{bad}"
            );
        }
    }

    #[test]
    fn huge_length_prefix_fails_without_allocating() {
        let input = hex::decode("8484005bff32").unwrap();
        let error = Reader::with_base(&input, 10).read_var_octets("data").unwrap_err();
        assert_eq!(error.offset, 10);
        assert!(matches!(error.reason, Reason::UnexpectedEnd { .. }));
    }
}
