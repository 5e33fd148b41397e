//! IL-DCP (RFC 31): how a child learns its address and asset from its parent.
//!
//! The request is a zero-amount Prepare to `peer.config` with the peer-protocol condition and
//! empty data; the answer is a Fulfill with the zero fulfillment whose data is
//! `clientAddress (VarBytes ASCII) · assetScale (UInt8) · assetCode (VarBytes UTF-8)`.

use crate::ilp::address::{Address, ADDRESS_SIZE_MAX};
use crate::ilp::oer::{write_var_octets, CodecError, Reader, Reason};
use crate::ilp::packet::{BuildError, FulfillBuilder, PrepareBuilder};
use crate::ilp::{PEER_PROTOCOL_CONDITION, PEER_PROTOCOL_FULFILLMENT};
use bytes::{BufMut, Bytes};

/// Where IL-DCP requests are addressed.
pub const ILDCP_DESTINATION: &str = "peer.config";

/// The request a child sends its parent; it carries no data.
pub fn request(expires_at_ms: i64) -> PrepareBuilder<'static> {
    PrepareBuilder {
        amount: 0,
        expires_at_ms,
        execution_condition: PEER_PROTOCOL_CONDITION,
        destination: ILDCP_DESTINATION,
        data: &[],
    }
}

/// What a parent tells a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub client_address: Address,
    pub asset_scale: u8,
    pub asset_code: String,
}

impl Response {
    /// Decodes the data of an IL-DCP Fulfill. Bytes after `assetCode` are ignored (RFC 30
    /// extensibility). Offsets in errors are relative to the start of `data`.
    pub fn parse(data: &[u8]) -> Result<Response, CodecError> {
        let mut reader = Reader::new(data);
        let address_offset = reader.offset();
        let address_bytes = reader.read_var_octets_max(ADDRESS_SIZE_MAX, "clientAddress")?;
        let client_address = std::str::from_utf8(address_bytes)
            .ok()
            .and_then(|text| Address::parse(text).ok())
            .ok_or(CodecError {
                offset: address_offset,
                field: "clientAddress",
                reason: Reason::Invalid("not a valid ILP address"),
            })?;
        let asset_scale = reader.read_u8("assetScale")?;
        let code_offset = reader.offset();
        let code_bytes = reader.read_var_octets("assetCode")?;
        let asset_code = std::str::from_utf8(code_bytes).map_err(|_| CodecError {
            offset: code_offset,
            field: "assetCode",
            reason: Reason::InvalidCharacters,
        })?;
        Ok(Response {
            client_address,
            asset_scale,
            asset_code: asset_code.to_owned(),
        })
    }

    pub fn encode_fulfill_data(&self) -> Vec<u8> {
        let mut data =
            Vec::with_capacity(8 + self.client_address.as_str().len() + self.asset_code.len());
        write_var_octets(&mut data, self.client_address.as_str().as_bytes());
        data.put_u8(self.asset_scale);
        write_var_octets(&mut data, self.asset_code.as_bytes());
        data
    }

    /// The whole Fulfill answering a request; fails only if the asset code is absurdly long.
    pub fn to_fulfill(&self) -> Result<Bytes, BuildError> {
        let data = self.encode_fulfill_data();
        FulfillBuilder {
            fulfillment: PEER_PROTOCOL_FULFILLMENT,
            data: &data,
        }
        .build()
    }
}
