//! The routes the node uses and the routes it announces (issue 13): configured routes
//! (children's addresses, `[[routes]]`, the default route to the only parent) and routes
//! learned from peers over CCP, merged into the [`RoutingTable`] the forwarder looks up.
//!
//! For each prefix the route in use is: a configured one if there is any (a learned route never
//! outranks configuration), else the learned candidate whose announcing peer has the highest
//! relation priority (child, then peer, then parent, as ilp-connector ranks them), then the
//! shortest path, then the lowest peer id. The default route is a fallback for destinations no
//! prefix matches, so a learned route, being a prefix, is used before it.
//!
//! Every change of a prefix's route in use is also a change of what we announce: a new epoch in
//! the [`RouteLog`] that [`super::ccp_sender`] cuts peers' updates from. We announce our own
//! address, each connected child's address, configured routes and learned routes (with our
//! address prepended to the path), all under the global prefix; never the default route.
//!
//! Pure and deterministic: built from a `RoutingConfigured` event and changed by
//! `RouteLearned`/`RouteWithdrawn` events (and children's liveness, which only changes what we
//! announce), so a replay of the journal rebuilds the table as it was at any event
//! ([`Routes::apply`]).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::ccp_sender::{Announced, RouteLog};
use super::routing::{PeerIndex, RoutingTable};
use crate::config::Relation;
use crate::ilp::ccp::RoutingTableId;
use crate::journal::{Event, RoutingConfigured};

/// Where a route in use comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteSource {
    /// A child's address (`<our address>.<child id>`).
    Child,
    /// `[[routes]]` in the configuration.
    Configured,
    /// Learned from a peer (CCP).
    Learned,
    /// The default route: the only parent, for destinations no prefix matches.
    Default,
}

impl RouteSource {
    pub fn label(self) -> &'static str {
        match self {
            RouteSource::Child => "child",
            RouteSource::Configured => "static",
            RouteSource::Learned => "learned",
            RouteSource::Default => "default",
        }
    }
}

/// A route in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInUse {
    pub next_hop: PeerIndex,
    pub source: RouteSource,
    /// For a learned route, the connectors it passes through (the next hop first); empty
    /// otherwise.
    pub path: Vec<String>,
    /// Journal time at which this route became the one in use.
    pub since_ms: i64,
}

#[derive(Debug, Clone)]
struct Candidate {
    peer: PeerIndex,
    path: Vec<String>,
    auth: [u8; 32],
}

/// What changed for one prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing the forwarder or a peer would see.
    None,
    /// The route in use (or its absence) changed.
    Changed,
}

#[derive(Debug, Clone)]
pub struct Routes {
    own_address: String,
    /// `test.`, `g.`: the scheme every announced prefix is under.
    global_prefix: String,
    peer_ids: Vec<String>,
    relations: Vec<Relation>,
    configured: FxHashMap<String, (PeerIndex, RouteSource)>,
    default_route: Option<PeerIndex>,
    learned: FxHashMap<String, Vec<Candidate>>,
    in_use: BTreeMap<String, RouteInUse>,
    table: RoutingTable,
    log: RouteLog,
    /// What the log last said for each prefix (None: withdrawn or never announced).
    announced: FxHashMap<String, Announced>,
    /// Children whose address we announce (connected, or not gone for long).
    children_live: Vec<bool>,
}

impl Routes {
    /// The routes a start configures. Unknown peers in `[[routes]]` are skipped (validation
    /// has refused them already).
    pub fn new(configured: &RoutingConfigured, table_id: RoutingTableId, now_ms: i64) -> Routes {
        let peer_ids: Vec<String> = configured.peers.iter().map(|peer| peer.peer.clone()).collect();
        let relations: Vec<Relation> = configured
            .peers
            .iter()
            .map(|peer| match peer.relation.as_str() {
                "parent" => Relation::Parent,
                "child" => Relation::Child,
                _ => Relation::Peer,
            })
            .collect();
        let own_address = configured.node_address.clone();
        let global_prefix = match own_address.split_once('.') {
            Some((scheme, _)) => format!("{scheme}."),
            None => format!("{own_address}."),
        };
        let mut routes = Routes {
            global_prefix,
            configured: FxHashMap::default(),
            default_route: None,
            learned: FxHashMap::default(),
            in_use: BTreeMap::new(),
            table: RoutingTable::new(),
            log: RouteLog::new(table_id),
            announced: FxHashMap::default(),
            children_live: vec![false; peer_ids.len()],
            peer_ids,
            relations,
            own_address,
        };
        for (index, relation) in routes.relations.iter().enumerate() {
            if *relation == Relation::Child {
                let address = format!("{}.{}", routes.own_address, routes.peer_ids[index]);
                routes.configured.insert(address, (index, RouteSource::Child));
            }
        }
        for route in &configured.routes {
            if let Some(index) = routes.peer_ids.iter().position(|id| *id == route.peer) {
                routes.configured.insert(route.prefix.clone(), (index, RouteSource::Configured));
            }
        }
        let parents: Vec<PeerIndex> = (0..routes.relations.len()).filter(|&index| routes.relations[index] == Relation::Parent).collect();
        if let [parent] = parents[..] {
            routes.default_route = Some(parent);
            routes.table.set_default_route(Some(parent));
        }
        // Our own address first: epoch 1 of every table.
        let own = routes.own_address.clone();
        let own_route = Announced { next_hop: None, path: vec![own.clone()], auth: local_auth(&own) };
        routes.announced.insert(own.clone(), own_route.clone());
        routes.log.announce(&own, own_route);
        let mut prefixes: Vec<String> = routes.configured.keys().cloned().collect();
        prefixes.sort();
        for prefix in prefixes {
            routes.update(&prefix, now_ms);
        }
        routes
    }

    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    pub fn log(&self) -> &RouteLog {
        &self.log
    }

    pub fn own_address(&self) -> &str {
        &self.own_address
    }

    pub fn global_prefix(&self) -> &str {
        &self.global_prefix
    }

    pub fn relation(&self, peer: PeerIndex) -> Relation {
        self.relations[peer]
    }

    pub fn peer_id(&self, peer: PeerIndex) -> &str {
        &self.peer_ids[peer]
    }

    /// The routes in use, by prefix (the default route is [`Routes::default_route`]).
    pub fn in_use(&self) -> &BTreeMap<String, RouteInUse> {
        &self.in_use
    }

    pub fn default_route(&self) -> Option<PeerIndex> {
        self.default_route
    }

    /// The number of learned candidates (every peer's, in use or not).
    pub fn learned_count(&self) -> usize {
        self.learned.values().map(Vec::len).sum()
    }

    /// `peer` announced `prefix` along `path` (already checked by its receiver).
    pub fn learn(&mut self, peer: PeerIndex, prefix: &str, path: Vec<String>, auth: [u8; 32], now_ms: i64) -> Change {
        let candidates = self.learned.entry(prefix.to_string()).or_default();
        let candidate = Candidate { peer, path, auth };
        match candidates.iter_mut().find(|existing| existing.peer == peer) {
            Some(existing) => *existing = candidate,
            None => candidates.push(candidate),
        }
        self.update(prefix, now_ms)
    }

    /// `peer` no longer reaches `prefix`.
    pub fn withdraw(&mut self, peer: PeerIndex, prefix: &str, now_ms: i64) -> Change {
        let Some(candidates) = self.learned.get_mut(prefix) else { return Change::None };
        let before = candidates.len();
        candidates.retain(|candidate| candidate.peer != peer);
        if candidates.len() == before {
            return Change::None;
        }
        if candidates.is_empty() {
            self.learned.remove(prefix);
        }
        self.update(prefix, now_ms)
    }

    /// Whether a child's address is announced (it is connected, or has not been gone longer
    /// than the route expiry). Its route is in use either way: it is configured.
    pub fn set_child_live(&mut self, child: PeerIndex, live: bool) {
        if self.relations.get(child) != Some(&Relation::Child) || self.children_live[child] == live {
            return;
        }
        self.children_live[child] = live;
        let address = format!("{}.{}", self.own_address, self.peer_ids[child]);
        self.announce(&address);
    }

    pub fn child_live(&self, child: PeerIndex) -> bool {
        self.children_live.get(child).copied().unwrap_or(false)
    }

    /// Applies a journaled routing event, as the forwarder did when it appended it: what a
    /// replay calls. Other events, and events naming unknown peers, change nothing.
    pub fn apply(&mut self, event: &Event, timestamp_ms: i64) -> Change {
        let index = |id: &str| self.peer_ids.iter().position(|peer| peer == id);
        match event {
            Event::RouteLearned(learned) => match index(&learned.peer) {
                Some(peer) => self.learn(peer, &learned.prefix, learned.path.clone(), [0; 32], timestamp_ms),
                None => Change::None,
            },
            Event::RouteWithdrawn(withdrawn) => match index(&withdrawn.peer) {
                Some(peer) => self.withdraw(peer, &withdrawn.prefix, timestamp_ms),
                None => Change::None,
            },
            _ => Change::None,
        }
    }

    fn best(&self, prefix: &str) -> Option<(PeerIndex, RouteSource, &[String])> {
        if let Some(&(peer, source)) = self.configured.get(prefix) {
            return Some((peer, source, &[]));
        }
        let candidates = self.learned.get(prefix)?;
        let priority = |relation: Relation| match relation {
            Relation::Parent => 0,
            Relation::Peer => 1,
            Relation::Child => 2,
        };
        candidates
            .iter()
            .min_by(|a, b| {
                priority(self.relations[b.peer])
                    .cmp(&priority(self.relations[a.peer]))
                    .then(a.path.len().cmp(&b.path.len()))
                    .then(self.peer_ids[a.peer].cmp(&self.peer_ids[b.peer]))
            })
            .map(|candidate| (candidate.peer, RouteSource::Learned, candidate.path.as_slice()))
    }

    fn update(&mut self, prefix: &str, now_ms: i64) -> Change {
        let best = self.best(prefix).map(|(peer, source, path)| (peer, source, path.to_vec()));
        let current = self.in_use.get(prefix).map(|route| (route.next_hop, route.source, route.path.clone()));
        if best == current {
            return Change::None;
        }
        match best {
            Some((next_hop, source, path)) => {
                self.table.insert(prefix, next_hop);
                self.in_use.insert(prefix.to_string(), RouteInUse { next_hop, source, path, since_ms: now_ms });
            }
            None => {
                self.table.remove(prefix);
                self.in_use.remove(prefix);
            }
        }
        self.announce(prefix);
        Change::Changed
    }

    /// What we tell peers about `prefix` now, logged as a new epoch if it differs from what we
    /// said last.
    fn announce(&mut self, prefix: &str) {
        let told = self.to_announce(prefix);
        let last = self.announced.get(prefix);
        if last.map(|route| (&route.next_hop, &route.path)) == told.as_ref().map(|route| (&route.next_hop, &route.path)) {
            return;
        }
        match told {
            Some(route) => {
                self.announced.insert(prefix.to_string(), route.clone());
                self.log.announce(prefix, route);
            }
            None => {
                if self.announced.remove(prefix).is_some() {
                    self.log.withdraw(prefix);
                }
            }
        }
        self.compact_if_needed();
    }

    /// The log keeps one slot per epoch, and routes that come and go (a flapping peer) would
    /// grow it without bound. Past [`LOG_SLACK`] slots more than what is announced, it starts
    /// over under a new routing table id (derived from the old one, so a replay does the same):
    /// every peer then asks for, and gets, the whole table again from epoch 0.
    fn compact_if_needed(&mut self) {
        if (self.log.epoch() as usize) <= LOG_SLACK + 4 * self.announced.len() {
            return;
        }
        let mut seed = Sha256::new();
        seed.update(self.log.table_id().0);
        seed.update(self.log.epoch().to_be_bytes());
        let digest: [u8; 32] = seed.finalize().into();
        let mut table_id = [0; 16];
        table_id.copy_from_slice(&digest[..16]);
        self.log = RouteLog::new(RoutingTableId(table_id));
        let own = self.own_address.clone();
        let mut prefixes: Vec<String> = self.announced.keys().filter(|prefix| **prefix != own).cloned().collect();
        prefixes.sort();
        for prefix in std::iter::once(own).chain(prefixes) {
            if let Some(route) = self.announced.get(&prefix) {
                self.log.announce(&prefix, route.clone());
            }
        }
    }

    fn to_announce(&self, prefix: &str) -> Option<Announced> {
        if prefix == self.own_address {
            return None;
        }
        if !(prefix.len() > self.global_prefix.len() && prefix.starts_with(self.global_prefix.as_str())) {
            return None;
        }
        let route = self.in_use.get(prefix)?;
        match route.source {
            RouteSource::Child if !self.children_live[route.next_hop] => None,
            RouteSource::Child | RouteSource::Configured => {
                Some(Announced { next_hop: Some(route.next_hop), path: vec![self.own_address.clone()], auth: local_auth(prefix) })
            }
            RouteSource::Learned => {
                let candidate = self.learned.get(prefix)?.iter().find(|candidate| candidate.peer == route.next_hop)?;
                let mut path = Vec::with_capacity(route.path.len() + 1);
                path.push(self.own_address.clone());
                path.extend(route.path.iter().cloned());
                Some(Announced { next_hop: Some(route.next_hop), path, auth: Sha256::digest(candidate.auth).into() })
            }
            RouteSource::Default => None,
        }
    }
}

/// Log slots beyond four per announced prefix before the log starts over (see
/// `Routes::compact_if_needed`).
const LOG_SLACK: usize = 10_000;

/// The routing table as readers off the packet path see it (`GET /api/routes`, the Explorer):
/// a copy the forwarder publishes after a change, swapped in whole, so readers never wait on
/// the forwarder and the forwarder never waits on them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RoutesView {
    /// Our routing table id (a UUID; new at every start) and its epoch.
    pub routing_table_id: String,
    pub epoch: u32,
    pub routes: Vec<RouteRow>,
    pub peers: Vec<PeerRouting>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteRow {
    /// Empty for the default route.
    pub prefix: String,
    pub peer: String,
    /// `child`, `static`, `learned` or `default`.
    pub source: &'static str,
    /// A learned route's path (the next hop first).
    pub path: Vec<String>,
    /// Journal time (ms since the epoch) at which it became the route in use.
    pub since_ms: i64,
}

/// Route exchange with one peer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerRouting {
    pub peer: String,
    pub send_routes: bool,
    pub receive_routes: bool,
    /// Whether the peer asked us for updates (`sync`) or not (`idle`).
    pub sending: &'static str,
    /// The epoch of ours the peer has confirmed.
    pub sent_epoch: u32,
    /// The peer's routing table id and the epoch of it we hold.
    pub received_table_id: String,
    pub received_epoch: u32,
    /// Routes learned from it (in use or not).
    pub routes_learned: usize,
}

/// Where the forwarder publishes [`RoutesView`].
pub type RoutesPublished = std::sync::Arc<arc_swap::ArcSwap<RoutesView>>;

impl Routes {
    /// Every route in use, the default route last, without the peers' part.
    pub fn rows(&self) -> Vec<RouteRow> {
        let mut rows: Vec<RouteRow> = self
            .in_use
            .iter()
            .map(|(prefix, route)| RouteRow {
                prefix: prefix.clone(),
                peer: self.peer_ids[route.next_hop].clone(),
                source: route.source.label(),
                path: route.path.clone(),
                since_ms: route.since_ms,
            })
            .collect();
        if let Some(parent) = self.default_route {
            rows.push(RouteRow { prefix: String::new(), peer: self.peer_ids[parent].clone(), source: RouteSource::Default.label(), path: Vec::new(), since_ms: 0 });
        }
        rows
    }

    /// Routes in use by source: (child, static, learned).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for route in self.in_use.values() {
            match route.source {
                RouteSource::Child => counts.0 += 1,
                RouteSource::Configured => counts.1 += 1,
                RouteSource::Learned => counts.2 += 1,
                RouteSource::Default => {}
            }
        }
        counts
    }
}

/// The auth we give routes we originate (the reference uses an HMAC under a routing secret;
/// nobody checks it, so a hash of the prefix serves).
fn local_auth(prefix: &str) -> [u8; 32] {
    Sha256::digest(prefix.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ilp::ccp::{Mode, RouteControlRequest};
    use crate::journal::{ConfiguredRoute, PeerRelation, RouteLearned, RouteWithdrawn, RouteWithdrawnReason};
    use crate::pipeline::ccp_sender::Sender;

    const PARENT: PeerIndex = 0;
    const PEER_A: PeerIndex = 1;
    const PEER_B: PeerIndex = 2;
    const CHILD: PeerIndex = 3;

    fn configured() -> RoutingConfigured {
        let peer = |peer: &str, relation: &str| PeerRelation { peer: peer.into(), relation: relation.into() };
        RoutingConfigured {
            node_address: "test.m2m".into(),
            peers: vec![peer("up", "parent"), peer("a", "peer"), peer("b", "peer"), peer("kid", "child")],
            routes: vec![ConfiguredRoute { prefix: "test.fixed".into(), peer: "b".into() }],
        }
    }

    fn path(hops: &[&str]) -> Vec<String> {
        hops.iter().map(|hop| hop.to_string()).collect()
    }

    fn everything_told_to(routes: &Routes, peer: PeerIndex) -> (Vec<String>, Vec<String>) {
        let mut sender = Sender::new(peer);
        let control = RouteControlRequest { mode: Mode::Sync, last_known_routing_table_id: RoutingTableId::default(), last_known_epoch: 0, features: Vec::new() };
        sender.handle_control(&control, routes.log());
        let update = sender.next_update_of(routes.log(), "test.m2m", 1_000, |peer| routes.relation(peer), 10_000).unwrap();
        (update.new_routes.into_iter().map(|route| route.prefix).collect(), update.withdrawn_routes)
    }

    #[test]
    fn configured_routes_outrank_learned_ones_and_relation_then_path_decides() {
        let mut routes = Routes::new(&configured(), RoutingTableId([1; 16]), 0);
        assert_eq!(routes.table().lookup("test.fixed.x"), Some(PEER_B));
        assert_eq!(routes.table().lookup("test.m2m.kid.x"), Some(CHILD));
        assert_eq!(routes.table().lookup("test.nowhere"), Some(PARENT), "the default route");
        // A learned route for a configured prefix changes nothing.
        assert_eq!(routes.learn(PEER_A, "test.fixed", path(&["test.a"]), [0; 32], 1), Change::None);
        assert_eq!(routes.table().lookup("test.fixed.x"), Some(PEER_B));
        // Among learned routes: peer over parent, however long the path...
        routes.learn(PARENT, "test.far", path(&["test.up"]), [0; 32], 2);
        routes.learn(PEER_A, "test.far", path(&["test.a", "test.x", "test.y"]), [0; 32], 3);
        assert_eq!(routes.table().lookup("test.far.z"), Some(PEER_A));
        // ...then the shorter path...
        routes.learn(PEER_B, "test.far", path(&["test.b", "test.x"]), [0; 32], 4);
        assert_eq!(routes.table().lookup("test.far.z"), Some(PEER_B));
        assert_eq!(routes.in_use()["test.far"].since_ms, 4);
        // ...and a withdrawal falls back to the next best, then to the default route.
        routes.withdraw(PEER_B, "test.far", 5);
        assert_eq!(routes.table().lookup("test.far.z"), Some(PEER_A));
        routes.withdraw(PEER_A, "test.far", 6);
        routes.withdraw(PARENT, "test.far", 7);
        assert_eq!((routes.table().lookup_explicit("test.far.z"), routes.table().lookup("test.far.z")), (None, Some(PARENT)));
        assert!(!routes.in_use().contains_key("test.far"));
    }

    #[test]
    fn what_we_announce_follows_the_table_and_childrens_liveness() {
        let mut routes = Routes::new(&configured(), RoutingTableId([1; 16]), 0);
        // Our address and the configured route; the child only once it is connected.
        assert_eq!(everything_told_to(&routes, PEER_A).0, ["test.m2m", "test.fixed"]);
        routes.set_child_live(CHILD, true);
        routes.learn(PEER_A, "test.far", path(&["test.a"]), [9; 32], 1);
        assert_eq!(everything_told_to(&routes, PEER_B), (path(&["test.m2m", "test.m2m.kid", "test.far"]), path(&["test.fixed"])));
        // Split horizon: the configured route's next hop and the learned route's are told a
        // withdrawal; the parent hears only what is below us.
        assert_eq!(everything_told_to(&routes, PEER_A), (path(&["test.m2m", "test.fixed", "test.m2m.kid"]), path(&["test.far"])));
        assert_eq!(everything_told_to(&routes, PARENT), (path(&["test.m2m", "test.m2m.kid"]), path(&["test.fixed", "test.far"])));
        let epoch = routes.log().epoch();
        routes.set_child_live(CHILD, false);
        assert_eq!(routes.log().epoch(), epoch + 1);
        assert_eq!(everything_told_to(&routes, PEER_B).1, ["test.fixed", "test.m2m.kid"]);
        assert_eq!(routes.table().lookup("test.m2m.kid.x"), Some(CHILD), "still routed: it is configured");
        // A learned route is announced with our address in front.
        let mut sender = Sender::new(PEER_B);
        let control = RouteControlRequest { mode: Mode::Sync, last_known_routing_table_id: RoutingTableId::default(), last_known_epoch: 0, features: Vec::new() };
        sender.handle_control(&control, routes.log());
        let update = sender.next_update(routes.log(), "test.m2m", 1_000, |peer| routes.relation(peer)).unwrap();
        let far = update.new_routes.iter().find(|route| route.prefix == "test.far").unwrap();
        assert_eq!((far.path.clone(), far.auth), (path(&["test.m2m", "test.a"]), <[u8; 32]>::from(Sha256::digest([9; 32]))));
    }

    #[test]
    fn a_flapping_route_cannot_grow_the_log_without_bound() {
        let mut routes = Routes::new(&configured(), RoutingTableId([1; 16]), 0);
        let first_table = routes.log().table_id();
        for round in 0..30_000 {
            routes.learn(PEER_A, "test.flap", path(&["test.a"]), [0; 32], round);
            routes.withdraw(PEER_A, "test.flap", round);
        }
        assert!(routes.log().epoch() as usize <= LOG_SLACK + 4 * 8, "epoch {}", routes.log().epoch());
        assert_ne!(routes.log().table_id(), first_table, "a new table: peers resync from epoch 0");
        // What a peer gets from the new table is everything still announced.
        let (new_routes, withdrawn) = everything_told_to(&routes, PEER_B);
        assert_eq!(new_routes, ["test.m2m"]);
        assert!(withdrawn.contains(&"test.fixed".to_string()), "{withdrawn:?}");
    }

    #[test]
    fn a_replay_of_the_events_rebuilds_the_same_table() {
        let mut live = Routes::new(&configured(), RoutingTableId([1; 16]), 0);
        let mut events = Vec::new();
        let mut learn = |routes: &mut Routes, peer: PeerIndex, prefix: &str, hops: &[&str], at: i64| {
            routes.learn(peer, prefix, path(hops), [3; 32], at);
            events.push((Event::RouteLearned(RouteLearned { peer: routes.peer_id(peer).into(), prefix: prefix.into(), path: path(hops) }), at));
        };
        learn(&mut live, PEER_A, "test.one", &["test.a"], 1);
        learn(&mut live, PEER_B, "test.one", &["test.b"], 2);
        learn(&mut live, PARENT, "test.two", &["test.up"], 3);
        live.withdraw(PEER_A, "test.one", 4);
        events.push((Event::RouteWithdrawn(RouteWithdrawn { peer: "a".into(), prefix: "test.one".into(), reason: RouteWithdrawnReason::Withdrawn }), 4));
        let mut replayed = Routes::new(&configured(), RoutingTableId([2; 16]), 0);
        for (event, at) in &events {
            replayed.apply(event, *at);
        }
        assert_eq!(replayed.in_use(), live.in_use());
        assert_eq!(replayed.table().lookup("test.one.x"), Some(PEER_B));
    }
}
