//! The receiving side of CCP for one peer (issue 13, second step): what we have learned from
//! its route updates, as a pure function of the updates and the time they arrived at. It does
//! no IO and reads no clock, so the forwarder can apply updates in journal order and a replay
//! arrives at the same routes.
//!
//! Epochs follow the reference connector: an update covers `fromEpochIndex..toEpochIndex` of
//! the speaker's routing table; one that starts after the epoch we hold leaves a gap, so we
//! apply nothing and ask again from where we are ([`Applied::resync`]); one that ends before it
//! is old and ignored; a new routing table id (the speaker restarted) starts over from epoch 0.
//! Unlike the reference, routes learned under the old table id are dropped at once rather than
//! kept until withdrawn: the new table's first update names everything it still reaches.
//!
//! Each route is checked against the peer that announced it before it is learned
//! ([`Refusal`]): it must be under the node's global prefix, its path must not pass through us
//! (a loop), nobody but our own children may announce prefixes under our address, and a child
//! may announce nothing outside its own address. Every route is held for the speaker's
//! hold-down time after its last update; past it ([`Receiver::expired`]) the forwarder drops
//! them all.

use std::collections::BTreeMap;

use crate::ilp::ccp::{Mode, RouteControlRequest, RouteUpdateRequest, RoutingTableId};

/// A route learned from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    /// The connectors it passes through, the peer first.
    pub path: Vec<String>,
    pub auth: [u8; 32],
    /// When it was last announced (journal time).
    pub learned_at_ms: i64,
}

/// What the node's own place in the network allows a peer to announce.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// Our ILP address: no path may contain it, and only our children announce under it.
    pub own_address: &'a str,
    /// The scheme every learned prefix must be under, with its dot (`test.`, `g.`).
    pub global_prefix: &'a str,
    /// For a child, its address: the only prefix (and what lies under it) it may announce.
    pub child_address: Option<&'a str>,
}

/// Why a route in an update was not learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not under the global prefix (or the global prefix itself).
    OutsideGlobalPrefix,
    /// Its path already passes through us.
    Loop,
    /// A prefix under our own address from someone who is not our child there.
    UnderOurAddress,
    /// A child announcing a prefix outside its own address.
    NotTheChilds,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::OutsideGlobalPrefix => "outside_global_prefix",
            Refusal::Loop => "loop",
            Refusal::UnderOurAddress => "under_our_address",
            Refusal::NotTheChilds => "not_the_childs",
        }
    }
}

/// What one update changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Prefixes learned or announced again.
    pub learned: Vec<String>,
    /// Prefixes no longer reachable through this peer.
    pub withdrawn: Vec<String>,
    /// Routes the policy refused, with why.
    pub refused: Vec<(String, Refusal)>,
    /// Set when the update left a gap: send this control request to get the missing epochs.
    pub resync: Option<RouteControlRequest>,
}

/// Our view of one peer's routing table.
#[derive(Debug, Clone, Default)]
pub struct Receiver {
    table_id: RoutingTableId,
    epoch: u32,
    /// Journal time after which everything learned from the peer is dropped.
    hold_until_ms: i64,
    routes: BTreeMap<String, Learned>,
}

impl Receiver {
    pub fn new() -> Receiver {
        Receiver::default()
    }

    /// The request that asks the peer for updates after what we hold.
    pub fn control_request(&self) -> RouteControlRequest {
        RouteControlRequest { mode: Mode::Sync, last_known_routing_table_id: self.table_id, last_known_epoch: self.epoch, features: Vec::new() }
    }

    pub fn routes(&self) -> &BTreeMap<String, Learned> {
        &self.routes
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn table_id(&self) -> RoutingTableId {
        self.table_id
    }

    /// Whether the hold-down time has passed with no update: the routes are to be dropped.
    pub fn expired(&self, now_ms: i64) -> bool {
        !self.routes.is_empty() && now_ms > self.hold_until_ms
    }

    /// Drops every route (the peer went away for longer than its hold-down time, or was
    /// removed) and returns their prefixes.
    pub fn withdraw_all(&mut self) -> Vec<String> {
        std::mem::take(&mut self.routes).into_keys().collect()
    }

    /// Applies one update received at `now_ms`.
    pub fn apply(&mut self, update: &RouteUpdateRequest, now_ms: i64, policy: &Policy<'_>) -> Applied {
        let mut applied = Applied::default();
        self.hold_until_ms = self.hold_until_ms.max(now_ms.saturating_add(i64::from(update.hold_down_time_ms)));
        if update.routing_table_id != self.table_id {
            self.table_id = update.routing_table_id;
            self.epoch = 0;
            applied.withdrawn = self.withdraw_all();
        }
        if update.from_epoch_index > self.epoch {
            applied.resync = Some(self.control_request());
            return applied;
        }
        if self.epoch > update.to_epoch_index {
            return applied;
        }
        for prefix in &update.withdrawn_routes {
            if self.routes.remove(prefix).is_some() && !applied.withdrawn.contains(prefix) {
                applied.withdrawn.push(prefix.clone());
            }
        }
        for route in &update.new_routes {
            match refusal(&route.prefix, &route.path, policy) {
                Some(why) => applied.refused.push((route.prefix.clone(), why)),
                None => {
                    let learned = Learned { path: route.path.clone(), auth: route.auth, learned_at_ms: now_ms };
                    self.routes.insert(route.prefix.clone(), learned);
                    applied.withdrawn.retain(|prefix| prefix != &route.prefix);
                    applied.learned.push(route.prefix.clone());
                }
            }
        }
        self.epoch = update.to_epoch_index;
        applied
    }
}

/// Whether `prefix` is `base` or lies under it on a segment boundary.
fn is_at_or_under(prefix: &str, base: &str) -> bool {
    prefix == base || (prefix.len() > base.len() && prefix.starts_with(base) && prefix.as_bytes()[base.len()] == b'.')
}

fn refusal(prefix: &str, path: &[String], policy: &Policy<'_>) -> Option<Refusal> {
    if !(prefix.len() > policy.global_prefix.len() && prefix.starts_with(policy.global_prefix)) {
        return Some(Refusal::OutsideGlobalPrefix);
    }
    if path.iter().any(|hop| hop == policy.own_address) {
        return Some(Refusal::Loop);
    }
    match policy.child_address {
        Some(child) if !is_at_or_under(prefix, child) => Some(Refusal::NotTheChilds),
        Some(_) => None,
        None if is_at_or_under(prefix, policy.own_address) => Some(Refusal::UnderOurAddress),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ilp::ccp::Route;

    const PEER: Policy<'static> = Policy { own_address: "test.m2m", global_prefix: "test.", child_address: None };
    const CHILD: Policy<'static> = Policy { own_address: "test.m2m", global_prefix: "test.", child_address: Some("test.m2m.alice") };
    const TABLE: RoutingTableId = RoutingTableId([7; 16]);

    fn route(prefix: &str, path: &[&str]) -> Route {
        Route { prefix: prefix.into(), path: path.iter().map(|hop| hop.to_string()).collect(), auth: [1; 32], props: Vec::new() }
    }

    fn update(from: u32, to: u32, new_routes: Vec<Route>, withdrawn: &[&str]) -> RouteUpdateRequest {
        RouteUpdateRequest {
            routing_table_id: TABLE,
            current_epoch_index: to,
            from_epoch_index: from,
            to_epoch_index: to,
            hold_down_time_ms: 30_000,
            speaker: "test.other".into(),
            new_routes,
            withdrawn_routes: withdrawn.iter().map(|prefix| prefix.to_string()).collect(),
        }
    }

    #[test]
    fn updates_apply_in_epoch_order_and_gaps_ask_again() {
        let mut receiver = Receiver::new();
        let first = receiver.apply(&update(0, 3, vec![route("test.other", &["test.other"]), route("test.far", &["test.other", "test.x"])], &[]), 1_000, &PEER);
        assert_eq!((first.learned.len(), receiver.epoch(), first.resync.is_none()), (2, 3, true));
        // A gap: epochs 3..5 are missing. Nothing is applied; we ask from epoch 3.
        let gap = receiver.apply(&update(5, 6, vec![route("test.new", &["test.other"])], &["test.far"]), 2_000, &PEER);
        assert_eq!(gap.resync.as_ref().map(|control| (control.mode, control.last_known_epoch)), Some((Mode::Sync, 3)));
        assert!(gap.learned.is_empty() && receiver.routes().contains_key("test.far"));
        // An old update (ends before what we hold) changes nothing.
        assert_eq!(receiver.apply(&update(0, 2, vec![route("test.stale", &["test.other"])], &[]), 2_500, &PEER), Applied::default());
        // The missing epochs, overlapping what we have: applied, withdrawal included.
        let resumed = receiver.apply(&update(3, 6, vec![route("test.new", &["test.other"])], &["test.far"]), 3_000, &PEER);
        assert_eq!((resumed.learned, resumed.withdrawn, receiver.epoch()), (vec!["test.new".to_string()], vec!["test.far".to_string()], 6));
        assert_eq!(receiver.routes().keys().collect::<Vec<_>>(), ["test.new", "test.other"]);
        // A heartbeat moves the epoch and the hold-down on.
        assert_eq!(receiver.apply(&update(6, 7, Vec::new(), &[]), 40_000, &PEER), Applied::default());
        assert_eq!(receiver.epoch(), 7);
        assert!(!receiver.expired(70_000) && receiver.expired(70_001), "held 30 s after the last update");
    }

    #[test]
    fn a_new_routing_table_starts_over_and_drops_the_old_routes() {
        let mut receiver = Receiver::new();
        receiver.apply(&update(0, 9, vec![route("test.a", &["test.other"]), route("test.b", &["test.other"])], &[]), 0, &PEER);
        let mut restarted = update(0, 2, vec![route("test.a", &["test.other"])], &[]);
        restarted.routing_table_id = RoutingTableId([8; 16]);
        let applied = receiver.apply(&restarted, 1_000, &PEER);
        assert_eq!((applied.learned, applied.withdrawn, receiver.epoch()), (vec!["test.a".to_string()], vec!["test.b".to_string()], 2));
        assert_eq!(receiver.control_request().last_known_routing_table_id, RoutingTableId([8; 16]));
    }

    #[test]
    fn routes_are_checked_against_who_announces_them() {
        let mut receiver = Receiver::new();
        let from_peer = receiver.apply(
            &update(
                0,
                1,
                vec![
                    route("test.ok", &["test.other"]),
                    route("g.elsewhere", &["test.other"]),
                    route("test.", &["test.other"]),
                    route("test.loop", &["test.other", "test.m2m", "test.x"]),
                    route("test.m2m.bob", &["test.other"]),
                    route("test.m2m", &["test.other"]),
                    route("test.m2mx", &["test.other"]),
                ],
                &[],
            ),
            0,
            &PEER,
        );
        assert_eq!(from_peer.learned, ["test.ok", "test.m2mx"]);
        assert_eq!(
            from_peer.refused,
            [
                ("g.elsewhere".to_string(), Refusal::OutsideGlobalPrefix),
                ("test.".to_string(), Refusal::OutsideGlobalPrefix),
                ("test.loop".to_string(), Refusal::Loop),
                ("test.m2m.bob".to_string(), Refusal::UnderOurAddress),
                ("test.m2m".to_string(), Refusal::UnderOurAddress),
            ]
        );
        let mut child = Receiver::new();
        let from_child = child.apply(
            &update(0, 1, vec![route("test.m2m.alice", &[]), route("test.m2m.alice.sub", &[]), route("test.m2m.alicebob", &[]), route("test.ok", &[])], &[]),
            0,
            &CHILD,
        );
        assert_eq!(from_child.learned, ["test.m2m.alice", "test.m2m.alice.sub"]);
        assert_eq!(from_child.refused, [("test.m2m.alicebob".to_string(), Refusal::NotTheChilds), ("test.ok".to_string(), Refusal::NotTheChilds)]);
    }
}
