//! CCP, the connector-to-connector route exchange, as the reference implementation
//! (`ilp-protocol-ccp`, used by `ilp-connector`) puts it on the wire.
//!
//! Both messages travel as zero-amount Prepares with the peer-protocol condition, answered by a
//! Fulfill with the zero fulfillment and no data:
//! - to `peer.route.control`, a [`RouteControlRequest`]: "send me updates" (`Sync`) or "stop"
//!   (`Idle`), with the routing table id and epoch the sender already has;
//! - to `peer.route.update`, a [`RouteUpdateRequest`]: the speaker's routing table id, the epoch
//!   range the update covers, the hold-down time, new routes (prefix, path, auth, properties)
//!   and withdrawn prefixes.
//!
//! This module is the codec only (issue 13's first step); the protocol (who asks whom, epochs,
//! expiry, loop rejection) sits above it. Decoding is strict where re-encoding would otherwise
//! differ (a property's flags in a form the reference encoder never writes are refused), so
//! what decodes encodes back to the same bytes; bytes after the last field are ignored, as for
//! IL-DCP (RFC 30's extensibility). Counts are checked against the bytes left before anything
//! is allocated, and text fields against the ILP address size limit.

use std::fmt;

use bytes::BufMut;

use crate::ilp::address::ADDRESS_SIZE_MAX;
use crate::ilp::oer::{write_var_octets, write_var_uint, CodecError, Reader, Reason};

/// Where route control requests are addressed.
pub const CONTROL_DESTINATION: &str = "peer.route.control";
/// Where route updates are addressed.
pub const UPDATE_DESTINATION: &str = "peer.route.update";

/// Longest feature name or property value we accept (the reference sets no bound).
const VALUE_SIZE_MAX: usize = 4096;

/// What a route control request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stop sending updates.
    Idle,
    /// Send updates, starting after the epoch named.
    Sync,
}

/// A routing table's id: 16 bytes, shown as a UUID (`8-4-4-4-12` hex).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoutingTableId(pub [u8; 16]);

impl fmt::Display for RoutingTableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if matches!(index, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RoutingTableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteControlRequest {
    pub mode: Mode,
    pub last_known_routing_table_id: RoutingTableId,
    pub last_known_epoch: u32,
    pub features: Vec<String>,
}

/// A route property. The reference writes `optional` (0x80), `transitive` (0x40, always set on
/// a required property), `partial` (0x20, only on an optional transitive one) and `utf8` (0x10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteProp {
    pub optional: bool,
    pub transitive: bool,
    pub partial: bool,
    pub utf8: bool,
    pub id: u16,
    pub value: Vec<u8>,
}

impl RouteProp {
    fn meta(&self) -> u8 {
        let mut meta = 0;
        if self.optional {
            meta |= 0x80;
            if self.transitive {
                meta |= 0x40;
                if self.partial {
                    meta |= 0x20;
                }
            }
        } else {
            meta |= 0x40;
        }
        if self.utf8 {
            meta |= 0x10;
        }
        meta
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: String,
    /// The connectors the route passes through, the announcing one first.
    pub path: Vec<String>,
    pub auth: [u8; 32],
    pub props: Vec<RouteProp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUpdateRequest {
    pub routing_table_id: RoutingTableId,
    pub current_epoch_index: u32,
    pub from_epoch_index: u32,
    pub to_epoch_index: u32,
    /// How long the receiver may keep these routes without hearing from the speaker again.
    pub hold_down_time_ms: u32,
    pub speaker: String,
    pub new_routes: Vec<Route>,
    pub withdrawn_routes: Vec<String>,
}

impl RouteControlRequest {
    /// Decodes the data of a `peer.route.control` Prepare. Offsets are relative to `data`.
    pub fn parse(data: &[u8]) -> Result<RouteControlRequest, CodecError> {
        let mut reader = Reader::new(data);
        let mode_reader = reader.clone();
        let mode = match reader.read_u8("mode")? {
            0 => Mode::Idle,
            1 => Mode::Sync,
            _ => return Err(mode_reader.error("mode", Reason::Invalid("mode must be 0 (idle) or 1 (sync)"))),
        };
        let last_known_routing_table_id = RoutingTableId(reader.read_array("lastKnownRoutingTableId")?);
        let last_known_epoch = reader.read_u32("lastKnownEpoch")?;
        let count = read_count(&mut reader, "features")?;
        let mut features = Vec::with_capacity(count);
        for _ in 0..count {
            features.push(read_text(&mut reader, VALUE_SIZE_MAX, Text::Utf8, "features")?);
        }
        Ok(RouteControlRequest { mode, last_known_routing_table_id, last_known_epoch, features })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(32);
        data.put_u8(match self.mode {
            Mode::Idle => 0,
            Mode::Sync => 1,
        });
        data.put_slice(&self.last_known_routing_table_id.0);
        data.put_u32(self.last_known_epoch);
        write_var_uint(&mut data, self.features.len() as u64);
        for feature in &self.features {
            write_var_octets(&mut data, feature.as_bytes());
        }
        data
    }
}

impl RouteUpdateRequest {
    /// Decodes the data of a `peer.route.update` Prepare. Offsets are relative to `data`.
    pub fn parse(data: &[u8]) -> Result<RouteUpdateRequest, CodecError> {
        let mut reader = Reader::new(data);
        let routing_table_id = RoutingTableId(reader.read_array("routingTableId")?);
        let current_epoch_index = reader.read_u32("currentEpochIndex")?;
        let from_epoch_index = reader.read_u32("fromEpochIndex")?;
        let to_epoch_index = reader.read_u32("toEpochIndex")?;
        let hold_down_time_ms = reader.read_u32("holdDownTime")?;
        let speaker = read_text(&mut reader, ADDRESS_SIZE_MAX, Text::Ascii, "speaker")?;
        let count = read_count(&mut reader, "newRoutes")?;
        let mut new_routes = Vec::with_capacity(count);
        for _ in 0..count {
            new_routes.push(read_route(&mut reader)?);
        }
        let count = read_count(&mut reader, "withdrawnRoutes")?;
        let mut withdrawn_routes = Vec::with_capacity(count);
        for _ in 0..count {
            withdrawn_routes.push(read_text(&mut reader, ADDRESS_SIZE_MAX, Text::Ascii, "withdrawnRoutes")?);
        }
        Ok(RouteUpdateRequest {
            routing_table_id,
            current_epoch_index,
            from_epoch_index,
            to_epoch_index,
            hold_down_time_ms,
            speaker,
            new_routes,
            withdrawn_routes,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(64 + self.new_routes.len() * 64);
        data.put_slice(&self.routing_table_id.0);
        data.put_u32(self.current_epoch_index);
        data.put_u32(self.from_epoch_index);
        data.put_u32(self.to_epoch_index);
        data.put_u32(self.hold_down_time_ms);
        write_var_octets(&mut data, self.speaker.as_bytes());
        write_var_uint(&mut data, self.new_routes.len() as u64);
        for route in &self.new_routes {
            write_var_octets(&mut data, route.prefix.as_bytes());
            write_var_uint(&mut data, route.path.len() as u64);
            for hop in &route.path {
                write_var_octets(&mut data, hop.as_bytes());
            }
            data.put_slice(&route.auth);
            write_var_uint(&mut data, route.props.len() as u64);
            for prop in &route.props {
                data.put_u8(prop.meta());
                data.put_u16(prop.id);
                write_var_octets(&mut data, &prop.value);
            }
        }
        write_var_uint(&mut data, self.withdrawn_routes.len() as u64);
        for prefix in &self.withdrawn_routes {
            write_var_octets(&mut data, prefix.as_bytes());
        }
        data
    }
}

fn read_route(reader: &mut Reader<'_>) -> Result<Route, CodecError> {
    let prefix = read_text(reader, ADDRESS_SIZE_MAX, Text::Ascii, "newRoutes.prefix")?;
    let count = read_count(reader, "newRoutes.path")?;
    let mut path = Vec::with_capacity(count);
    for _ in 0..count {
        path.push(read_text(reader, ADDRESS_SIZE_MAX, Text::Ascii, "newRoutes.path")?);
    }
    let auth = reader.read_array("newRoutes.auth")?;
    let count = read_count(reader, "newRoutes.props")?;
    let mut props = Vec::with_capacity(count);
    for _ in 0..count {
        let meta_reader = reader.clone();
        let meta = reader.read_u8("newRoutes.props.meta")?;
        let prop = RouteProp {
            optional: meta & 0x80 != 0,
            transitive: meta & 0x40 != 0,
            partial: meta & 0x20 != 0,
            utf8: meta & 0x10 != 0,
            id: reader.read_u16("newRoutes.props.id")?,
            value: Vec::new(),
        };
        // Only the forms the reference writes, so that decoding and encoding agree.
        if prop.meta() != meta {
            return Err(meta_reader.error("newRoutes.props.meta", Reason::Invalid("flags in a form the reference encoder never writes")));
        }
        let value_reader = reader.clone();
        let value = reader.read_var_octets_max(VALUE_SIZE_MAX, "newRoutes.props.value")?;
        if prop.utf8 && std::str::from_utf8(value).is_err() {
            return Err(value_reader.error("newRoutes.props.value", Reason::InvalidCharacters));
        }
        props.push(RouteProp { value: value.to_vec(), ..prop });
    }
    Ok(Route { prefix, path, auth, props })
}

/// A VarUInt count, refused when the bytes left could not hold that many items (each takes at
/// least one byte), so a hostile count never sizes an allocation.
fn read_count(reader: &mut Reader<'_>, field: &'static str) -> Result<usize, CodecError> {
    let start = reader.clone();
    let count = reader.read_var_uint(field)?;
    match usize::try_from(count) {
        Ok(count) if count <= reader.remaining() => Ok(count),
        _ => Err(start.error(field, Reason::OutOfRange)),
    }
}

#[derive(Clone, Copy)]
enum Text {
    /// Prefixes, paths, the speaker: what the reference writes as ASCII.
    Ascii,
    /// Feature names: UTF-8.
    Utf8,
}

fn read_text(reader: &mut Reader<'_>, size_max: usize, text: Text, field: &'static str) -> Result<String, CodecError> {
    let start = reader.clone();
    let bytes = reader.read_var_octets_max(size_max, field)?;
    let valid = match text {
        Text::Ascii => bytes.is_ascii(),
        Text::Utf8 => std::str::from_utf8(bytes).is_ok(),
    };
    if !valid {
        return Err(start.error(field, Reason::InvalidCharacters));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    // Written by ilp-protocol-ccp 1.2.3's serializers (Node 20) from the values the tests
    // below compare against.
    const CONTROL: &str = "0170f8d4e81b2a4c3d9e8f0123456789ab00000020010203666f6f0462c3a472";
    const IDLE: &str = "0000000000000000000000000000000000000000000100";
    const UPDATE: &str = "21e55f8eabcb45949fca3b4f30d5f9a80000003400000030000000340000753008746573742e6d326d01020e746573742e6d326d2e616c696365010108746573742e6d326dabababababababababababababababababababababababababababababababab01000a746573742e6f7468657201020a746573742e6f7468657208746573742e686f7001010101010101010101010101010101010101010101010101010101010101010102d00009056869e282ac4003e8030102ff010209746573742e676f6e650c746573742e6d326d2e6f6c64";
    const EMPTY_UPDATE: &str = "21e55f8eabcb45949fca3b4f30d5f9a80000000000000000000000000000afc803672e6101000100";

    #[test]
    fn route_control_requests_match_the_reference_both_ways() {
        let sync = RouteControlRequest::parse(&hex(CONTROL)).unwrap();
        assert_eq!(sync.mode, Mode::Sync);
        assert_eq!(sync.last_known_routing_table_id.to_string(), "70f8d4e8-1b2a-4c3d-9e8f-0123456789ab");
        assert_eq!((sync.last_known_epoch, sync.features.as_slice()), (32, &["foo".to_string(), "bär".to_string()][..]));
        assert_eq!(sync.encode(), hex(CONTROL));
        let idle = RouteControlRequest::parse(&hex(IDLE)).unwrap();
        assert_eq!((idle.mode, idle.last_known_epoch, idle.features.len()), (Mode::Idle, 0, 0));
        assert_eq!(idle.encode(), hex(IDLE));
    }

    #[test]
    fn route_updates_match_the_reference_both_ways() {
        let update = RouteUpdateRequest::parse(&hex(UPDATE)).unwrap();
        assert_eq!(update.routing_table_id.to_string(), "21e55f8e-abcb-4594-9fca-3b4f30d5f9a8");
        assert_eq!((update.current_epoch_index, update.from_epoch_index, update.to_epoch_index), (52, 48, 52));
        assert_eq!((update.hold_down_time_ms, update.speaker.as_str()), (30_000, "test.m2m"));
        assert_eq!(update.new_routes.len(), 2);
        let alice = &update.new_routes[0];
        assert_eq!((alice.prefix.as_str(), alice.path.as_slice(), alice.auth), ("test.m2m.alice", &["test.m2m".to_string()][..], [0xab; 32]));
        let other = &update.new_routes[1];
        assert_eq!(other.path, ["test.other", "test.hop"]);
        assert_eq!(
            other.props,
            [
                RouteProp { optional: true, transitive: true, partial: false, utf8: true, id: 9, value: "hi€".as_bytes().to_vec() },
                RouteProp { optional: false, transitive: true, partial: false, utf8: false, id: 1000, value: vec![1, 2, 0xff] },
            ]
        );
        assert_eq!(update.withdrawn_routes, ["test.gone", "test.m2m.old"]);
        assert_eq!(update.encode(), hex(UPDATE));
        let empty = RouteUpdateRequest::parse(&hex(EMPTY_UPDATE)).unwrap();
        assert_eq!((empty.hold_down_time_ms, empty.speaker.as_str(), empty.new_routes.len()), (45_000, "g.a", 0));
        assert_eq!(empty.encode(), hex(EMPTY_UPDATE));
    }

    #[test]
    fn bad_input_is_refused_with_its_offset_and_field() {
        // Every truncation of a valid update fails (and never panics).
        let update = hex(UPDATE);
        for end in 0..update.len() {
            assert!(RouteUpdateRequest::parse(&update[..end]).is_err(), "truncated at {end}");
        }
        // A mode that is neither idle nor sync.
        let mut control = hex(CONTROL);
        control[0] = 2;
        let error = RouteControlRequest::parse(&control).unwrap_err();
        assert_eq!((error.offset, error.field), (0, "mode"));
        // A count larger than the bytes left, before any allocation.
        let mut huge = hex(EMPTY_UPDATE);
        let at = huge.len() - 4; // newRoutes count: 01 00
        huge.splice(at.., [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let error = RouteUpdateRequest::parse(&huge).unwrap_err();
        assert_eq!((error.field, error.reason), ("newRoutes", Reason::OutOfRange));
        // A required property without the transitive flag: the reference never writes it.
        let mut flags = hex(UPDATE);
        let meta_at = flags.windows(3).position(|w| w == [0x40, 0x03, 0xe8]).unwrap();
        flags[meta_at] = 0x00;
        assert_eq!(RouteUpdateRequest::parse(&flags).unwrap_err().field, "newRoutes.props.meta");
        // A non-ASCII prefix.
        let mut text = hex(UPDATE);
        let prefix_at = text.windows(14).position(|w| w == b"test.m2m.alice").unwrap();
        text[prefix_at] = 0xc3;
        assert_eq!(RouteUpdateRequest::parse(&text).unwrap_err().reason, Reason::InvalidCharacters);
    }

    /// Whatever decodes encodes back to the bytes it was read from (the same invariant the
    /// `ccp` fuzz target checks), over random byte flips of the reference's vectors.
    #[test]
    fn what_decodes_reencodes_to_its_own_bytes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0063_6370);
        let (mut controls, mut updates) = (0, 0);
        for _ in 0..20_000 {
            let mut input = hex(if rng.gen_bool(0.5) { UPDATE } else { CONTROL });
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..input.len());
                input[at] = rng.gen();
            }
            if let Ok(control) = RouteControlRequest::parse(&input) {
                let encoded = control.encode();
                assert_eq!(&input[..encoded.len()], &encoded[..]);
                controls += 1;
            }
            if let Ok(update) = RouteUpdateRequest::parse(&input) {
                let encoded = update.encode();
                assert_eq!(&input[..encoded.len()], &encoded[..]);
                updates += 1;
            }
        }
        assert!(controls > 100 && updates > 100, "the flips left some inputs decodable: {controls} controls, {updates} updates");
    }
}
