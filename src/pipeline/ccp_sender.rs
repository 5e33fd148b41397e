//! The sending side of CCP (issue 13, third step): the log of our routing table's changes, one
//! epoch per change, and for each peer the epoch it has confirmed, from which its next update
//! is cut. Pure, like [`super::ccp_receiver`]: no IO, no clock.
//!
//! As in the reference connector, a prefix that changes again clears its older log entry, so
//! an update carries only each prefix's latest state; an update covers at most
//! [`EPOCHS_PER_UPDATE_MAX`] epochs; a peer asking with another routing table id (or none)
//! starts from epoch 0. What a peer is told follows split horizon: a route whose next hop is
//! that peer is sent to it as a withdrawal, and so is, to a parent, any route through a peer or
//! another parent (a parent learns from us only what is below us).

use rustc_hash::FxHashMap;

use super::routing::PeerIndex;
use crate::config::Relation;
use crate::ilp::ccp::{Mode, Route, RouteControlRequest, RouteUpdateRequest, RoutingTableId};

/// The most epochs one update covers; a peer further behind gets several updates.
pub const EPOCHS_PER_UPDATE_MAX: usize = 50;

/// A route as we announce it: the next hop we use, and the path as peers will see it (ours
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// None: we are the destination (our own address).
    pub next_hop: Option<PeerIndex>,
    pub path: Vec<String>,
    pub auth: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    prefix: String,
    /// None: withdrawn.
    route: Option<Announced>,
}

/// Our routing table's changes, by epoch.
#[derive(Debug, Clone)]
pub struct RouteLog {
    table_id: RoutingTableId,
    /// `changes[e]` is what epoch `e + 1` changed; None once a later change replaced it.
    changes: Vec<Option<Change>>,
    latest: FxHashMap<String, usize>,
}

impl RouteLog {
    pub fn new(table_id: RoutingTableId) -> RouteLog {
        RouteLog { table_id, changes: Vec::new(), latest: FxHashMap::default() }
    }

    pub fn table_id(&self) -> RoutingTableId {
        self.table_id
    }

    /// The epoch of the last change (0 before any).
    pub fn epoch(&self) -> u32 {
        u32::try_from(self.changes.len()).unwrap_or(u32::MAX)
    }

    /// `prefix` is now reached through `route`.
    pub fn announce(&mut self, prefix: &str, route: Announced) {
        self.record(prefix, Some(route));
    }

    /// `prefix` is no longer reachable through us.
    pub fn withdraw(&mut self, prefix: &str) {
        self.record(prefix, None);
    }

    fn record(&mut self, prefix: &str, route: Option<Announced>) {
        if let Some(previous) = self.latest.insert(prefix.to_string(), self.changes.len()) {
            self.changes[previous] = None;
        }
        self.changes.push(Some(Change { prefix: prefix.to_string(), route }));
    }
}

/// What we are sending one peer.
#[derive(Debug, Clone)]
pub struct Sender {
    peer: PeerIndex,
    mode: Mode,
    /// The epoch the peer holds: its next update starts here.
    confirmed_epoch: u32,
}

impl Sender {
    pub fn new(peer: PeerIndex) -> Sender {
        Sender { peer, mode: Mode::Idle, confirmed_epoch: 0 }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The epoch the peer holds, as far as we know.
    pub fn confirmed_epoch(&self) -> u32 {
        self.confirmed_epoch
    }

    /// The peer's route control request: start (from the epoch it names, if it names our
    /// table) or stop.
    pub fn handle_control(&mut self, control: &RouteControlRequest, log: &RouteLog) {
        self.mode = control.mode;
        self.confirmed_epoch = if control.last_known_routing_table_id == log.table_id { control.last_known_epoch.min(log.epoch()) } else { 0 };
    }

    /// The next update for the peer, or None when it is idle. An update with no routes is a
    /// heartbeat (it keeps the peer's hold-down time going). `relation` tells the relation of
    /// a next hop; `own_address` is the speaker.
    pub fn next_update(&self, log: &RouteLog, own_address: &str, hold_down_time_ms: u32, relation: impl Fn(PeerIndex) -> Relation) -> Option<RouteUpdateRequest> {
        self.next_update_of(log, own_address, hold_down_time_ms, relation, EPOCHS_PER_UPDATE_MAX)
    }

    /// [`Sender::next_update`] covering at most `epochs_max` epochs (an update too large for
    /// one Prepare is cut again with fewer).
    pub fn next_update_of(
        &self,
        log: &RouteLog,
        own_address: &str,
        hold_down_time_ms: u32,
        relation: impl Fn(PeerIndex) -> Relation,
        epochs_max: usize,
    ) -> Option<RouteUpdateRequest> {
        if self.mode != Mode::Sync {
            return None;
        }
        let from = (self.confirmed_epoch as usize).min(log.changes.len());
        let to = log.changes.len().min(from + epochs_max.max(1));
        let to_parent = relation(self.peer) == Relation::Parent;
        let mut new_routes = Vec::new();
        let mut withdrawn_routes = Vec::new();
        for change in log.changes[from..to].iter().flatten() {
            let told = change.route.as_ref().filter(|route| match route.next_hop {
                None => true,
                Some(next_hop) => {
                    next_hop != self.peer && !(to_parent && matches!(relation(next_hop), Relation::Peer | Relation::Parent))
                }
            });
            match told {
                Some(route) => new_routes.push(Route { prefix: change.prefix.clone(), path: route.path.clone(), auth: route.auth, props: Vec::new() }),
                None => withdrawn_routes.push(change.prefix.clone()),
            }
        }
        Some(RouteUpdateRequest {
            routing_table_id: log.table_id,
            current_epoch_index: log.epoch(),
            from_epoch_index: u32::try_from(from).unwrap_or(u32::MAX),
            to_epoch_index: u32::try_from(to).unwrap_or(u32::MAX),
            hold_down_time_ms,
            speaker: own_address.to_string(),
            new_routes,
            withdrawn_routes,
        })
    }

    /// Our log started over under a new table id: the peer is sent everything from epoch 0
    /// (it resets when it sees the new id).
    pub fn restart(&mut self) {
        self.confirmed_epoch = 0;
    }

    /// The peer fulfilled `update`: it now holds its `to_epoch_index`.
    pub fn confirmed(&mut self, update: &RouteUpdateRequest, log: &RouteLog) {
        if update.routing_table_id != log.table_id {
            return;
        }
        self.confirmed_epoch = self.confirmed_epoch.max(update.to_epoch_index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: RoutingTableId = RoutingTableId([3; 16]);
    const PARENT: PeerIndex = 0;
    const PEER: PeerIndex = 1;
    const CHILD: PeerIndex = 2;

    fn relation(peer: PeerIndex) -> Relation {
        [Relation::Parent, Relation::Peer, Relation::Child][peer]
    }

    fn via(next_hop: PeerIndex) -> Announced {
        Announced { next_hop: Some(next_hop), path: vec!["test.m2m".into()], auth: [next_hop as u8; 32] }
    }

    fn sync(epoch: u32, table_id: RoutingTableId) -> RouteControlRequest {
        RouteControlRequest { mode: Mode::Sync, last_known_routing_table_id: table_id, last_known_epoch: epoch, features: Vec::new() }
    }

    fn prefixes(routes: &[Route]) -> Vec<&str> {
        routes.iter().map(|route| route.prefix.as_str()).collect()
    }

    #[test]
    fn a_peer_gets_each_prefixs_latest_state_from_the_epoch_it_holds() {
        let mut log = RouteLog::new(TABLE);
        log.announce("test.m2m.alice", via(CHILD)); // epoch 1
        log.announce("test.far", via(PEER)); // 2
        log.withdraw("test.far"); // 3, clears 2
        log.announce("test.m2m.carol", via(CHILD)); // 4
        let mut sender = Sender::new(PEER);
        assert!(sender.next_update(&log, "test.m2m", 30_000, relation).is_none(), "idle until asked");
        // Asked with an unknown table: everything from epoch 0.
        sender.handle_control(&sync(9, RoutingTableId::default()), &log);
        let update = sender.next_update(&log, "test.m2m", 30_000, relation).unwrap();
        assert_eq!((update.from_epoch_index, update.to_epoch_index, update.current_epoch_index), (0, 4, 4));
        assert_eq!(prefixes(&update.new_routes), ["test.m2m.alice", "test.m2m.carol"]);
        assert_eq!(update.withdrawn_routes, ["test.far"]);
        assert_eq!((update.speaker.as_str(), update.hold_down_time_ms), ("test.m2m", 30_000));
        sender.confirmed(&update, &log);
        // Nothing new: a heartbeat from 4 to 4.
        let heartbeat = sender.next_update(&log, "test.m2m", 30_000, relation).unwrap();
        assert_eq!((heartbeat.from_epoch_index, heartbeat.to_epoch_index, heartbeat.new_routes.len()), (4, 4, 0));
        // A peer that already holds epoch 3 of this table gets only epoch 4.
        let mut other = Sender::new(PEER);
        other.handle_control(&sync(3, TABLE), &log);
        let update = other.next_update(&log, "test.m2m", 30_000, relation).unwrap();
        assert_eq!((update.from_epoch_index, prefixes(&update.new_routes)), (3, vec!["test.m2m.carol"]));
        // Asked to stop, it sends nothing.
        other.handle_control(&RouteControlRequest { mode: Mode::Idle, ..sync(4, TABLE) }, &log);
        assert!(other.next_update(&log, "test.m2m", 30_000, relation).is_none());
    }

    #[test]
    fn split_horizon_and_what_a_parent_is_told() {
        let mut log = RouteLog::new(TABLE);
        log.announce("test.m2m.alice", via(CHILD));
        log.announce("test.peerland", via(PEER));
        log.announce("test.up", via(PARENT));
        let told = |peer: PeerIndex| {
            let mut sender = Sender::new(peer);
            sender.handle_control(&sync(0, TABLE), &log);
            let update = sender.next_update(&log, "test.m2m", 1_000, relation).unwrap();
            (prefixes(&update.new_routes).into_iter().map(String::from).collect::<Vec<_>>(), update.withdrawn_routes)
        };
        // The peer is not told its own route back; the parent only what is below us.
        assert_eq!(told(PEER), (vec!["test.m2m.alice".to_string(), "test.up".to_string()], vec!["test.peerland".to_string()]));
        assert_eq!(told(PARENT), (vec!["test.m2m.alice".to_string()], vec!["test.peerland".to_string(), "test.up".to_string()]));
        assert_eq!(told(CHILD).0, ["test.peerland", "test.up"]);
    }

    #[test]
    fn a_peer_far_behind_catches_up_in_several_updates() {
        let mut log = RouteLog::new(TABLE);
        for index in 0..120 {
            log.announce(&format!("test.p{index}"), via(CHILD));
        }
        let mut sender = Sender::new(PEER);
        sender.handle_control(&sync(0, TABLE), &log);
        let mut ranges = Vec::new();
        while let Some(update) = sender.next_update(&log, "test.m2m", 1_000, relation).filter(|update| update.to_epoch_index > update.from_epoch_index) {
            ranges.push((update.from_epoch_index, update.to_epoch_index, update.new_routes.len()));
            sender.confirmed(&update, &log);
        }
        assert_eq!(ranges, [(0, 50, 50), (50, 100, 50), (100, 120, 20)]);
    }
}
