//! The routing table: longest ILP address prefix, matched on segment boundaries.
//!
//! A prefix `P` matches a destination `D` when `D == P` or `D` starts with `P` followed by `.`,
//! so `g.alice` never matches `g.alicebob`. Lookup probes the destination's own prefixes from
//! the longest to the shortest, one hash lookup per segment boundary; addresses have a handful
//! of segments, so this is a few lookups and no allocation. Pure data, owned by the forwarder
//! (the only reader on the packet path, and the only writer): [`super::routes`] keeps it in step
//! with configured and learned routes.

use rustc_hash::FxHashMap;

/// Index of a peer in the configuration's peer list.
pub type PeerIndex = usize;

#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    routes: FxHashMap<Box<str>, PeerIndex>,
    /// Where destinations with no matching prefix go (the parent, when there is exactly one).
    default_route: Option<PeerIndex>,
}

impl RoutingTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the route for `prefix`.
    pub fn insert(&mut self, prefix: &str, peer: PeerIndex) {
        self.routes.insert(prefix.into(), peer);
    }

    /// Removes the route for `prefix`, if any.
    pub fn remove(&mut self, prefix: &str) {
        self.routes.remove(prefix);
    }

    pub fn set_default_route(&mut self, peer: Option<PeerIndex>) {
        self.default_route = peer;
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The next hop for `destination`, or None when nothing (not even a default) matches.
    pub fn lookup(&self, destination: &str) -> Option<PeerIndex> {
        self.lookup_explicit(destination).or(self.default_route)
    }

    /// Like [`RoutingTable::lookup`] without the default route: used for destinations under
    /// our own address, which must never leak to the parent.
    pub fn lookup_explicit(&self, destination: &str) -> Option<PeerIndex> {
        if let Some(&peer) = self.routes.get(destination) {
            return Some(peer);
        }
        let bytes = destination.as_bytes();
        let mut end = bytes.len();
        while let Some(dot) = bytes[..end].iter().rposition(|&byte| byte == b'.') {
            if let Some(&peer) = self.routes.get(&destination[..dot]) {
                return Some(peer);
            }
            end = dot;
        }
        None
    }

    /// Like [`RoutingTable::lookup_explicit`], considering only prefixes longer than
    /// `length_min` bytes (the routes below an address of that length).
    pub fn lookup_below(&self, destination: &str, length_min: usize) -> Option<PeerIndex> {
        let bytes = destination.as_bytes();
        let mut end = bytes.len();
        while end > length_min {
            if let Some(&peer) = self.routes.get(&destination[..end]) {
                return Some(peer);
            }
            end = bytes[..end].iter().rposition(|&byte| byte == b'.')?;
        }
        None
    }

    /// The prefix that would route `destination` (for logs and the Explorer); None for the
    /// default route or no route.
    pub fn matching_prefix<'d>(&self, destination: &'d str) -> Option<&'d str> {
        let bytes = destination.as_bytes();
        let mut end = bytes.len();
        loop {
            if self.routes.contains_key(&destination[..end]) {
                return Some(&destination[..end]);
            }
            end = bytes[..end].iter().rposition(|&byte| byte == b'.')?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RoutingTable {
        let mut table = RoutingTable::new();
        table.insert("g.alice", 1);
        table.insert("g.alice.sub", 2);
        table.insert("g.bob", 3);
        table
    }

    fn check(table: &RoutingTable, destination: &str, expect: Option<PeerIndex>) {
        assert_eq!(table.lookup(destination), expect, "destination {destination}");
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let table = table();
        check(&table, "g.alice", Some(1));
        check(&table, "g.alice.x", Some(1));
        check(&table, "g.alice.sub", Some(2));
        check(&table, "g.alice.sub.deeper.still", Some(2));
        check(&table, "g.alice.subway", Some(1));
        check(&table, "g.alicebob", None);
        check(&table, "g.alicebob.x", None);
        check(&table, "g.bo", None);
        check(&table, "g", None);
        check(&table, "test.alice", None);
    }

    #[test]
    fn default_route_catches_the_rest() {
        let mut table = table();
        table.set_default_route(Some(9));
        check(&table, "g.alicebob", Some(9));
        check(&table, "g.alice.x", Some(1));
    }

    #[test]
    fn routes_below_an_address_ignore_shorter_prefixes() {
        let mut table = table();
        table.insert("g", 7);
        assert_eq!(table.lookup_below("g.alice.x", "g.alice".len()), None);
        assert_eq!(table.lookup_below("g.alice.sub.x", "g.alice".len()), Some(2));
        assert_eq!(table.lookup_explicit("g.alice.x"), Some(1));
    }

    #[test]
    fn matching_prefix_names_the_route() {
        let table = table();
        assert_eq!(table.matching_prefix("g.alice.sub.x"), Some("g.alice.sub"));
        assert_eq!(table.matching_prefix("g.alicebob"), None);
    }
}
