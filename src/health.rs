//! The node's health: what `/health` and `/health/ready` report.
//!
//! [`Health`] is shared as an `Arc<Health>` by the tasks that change it (the BTP listener, the
//! session registry, journal recovery, shutdown) and read by the HTTP handlers. The hot flags
//! and counts are atomics; only the component table takes a `Mutex`, and it changes rarely.
//! Nothing here is on the packet path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// The state of one named component (journal, tigerbeetle, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentStatus {
    Ok,
    /// Working with reduced guarantees or capacity; the text says why.
    Degraded(String),
    /// Not working; the node cannot do its job. The text says why.
    Failed(String),
}

/// The overall status of `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Healthy,
    Degraded,
    Starting,
    Unhealthy,
}

impl NodeStatus {
    /// Healthy and degraded nodes still serve traffic, so they answer 200; the others 503.
    pub fn is_serving(self) -> bool {
        matches!(self, NodeStatus::Healthy | NodeStatus::Degraded)
    }
}

/// Shared node status. See [`Health::status`] for the rule that turns it into a [`NodeStatus`].
#[derive(Debug)]
pub struct Health {
    node_id: String,
    version: String,
    started_at: Instant,
    peers_total: u32,
    ready_peers_min: u32,
    btp_listening: AtomicBool,
    /// Peers with at least one authenticated session.
    peers_connected: AtomicU32,
    recovery_done: AtomicBool,
    stopping: AtomicBool,
    components: Mutex<BTreeMap<String, ComponentStatus>>,
    /// Components that hold `/health/ready` at 503 while they have a reason here (the TigerBeetle
    /// projection with `READY_REQUIRES_TIGERBEETLE=true`).
    ready_blockers: Mutex<BTreeMap<String, String>>,
}

impl Health {
    /// `peers_total` is the number of configured peers; `ready_peers_min` how many of them must
    /// be connected before `/health/ready` answers 200 (0 to not wait for peers).
    pub fn new(node_id: &str, version: &str, peers_total: u32, ready_peers_min: u32) -> Health {
        Health {
            node_id: node_id.to_owned(),
            version: version.to_owned(),
            started_at: Instant::now(),
            peers_total,
            ready_peers_min,
            btp_listening: AtomicBool::new(false),
            peers_connected: AtomicU32::new(0),
            // Until the journal's recovery reports in, there is nothing to wait for.
            recovery_done: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            components: Mutex::new(BTreeMap::new()),
            ready_blockers: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn uptime_seconds(&self) -> f64 {
        self.started_at.elapsed().as_secs_f64()
    }

    pub fn set_btp_listening(&self, listening: bool) {
        self.btp_listening.store(listening, Ordering::Relaxed);
    }

    /// A peer went from zero to one authenticated session.
    pub fn peer_connected(&self) {
        self.peers_connected.fetch_add(1, Ordering::Relaxed);
    }

    /// A peer went from one to zero authenticated sessions. An unmatched call is a caller's
    /// bug; the count stays at zero rather than wrapping, and the bug is logged.
    pub fn peer_disconnected(&self) {
        let result = self
            .peers_connected
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if result.is_err() {
            tracing::error!("peer_disconnected without a matching peer_connected");
        }
    }

    pub fn peers_connected(&self) -> u32 {
        self.peers_connected.load(Ordering::Relaxed)
    }

    pub fn peers_total(&self) -> u32 {
        self.peers_total
    }

    pub fn set_recovery_done(&self, done: bool) {
        self.recovery_done.store(done, Ordering::Relaxed);
    }

    /// Records a component's state, replacing the previous one under the same name.
    pub fn set_component(&self, name: &str, status: ComponentStatus) {
        let mut components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        components.insert(name.to_owned(), status);
    }

    /// Holds `/health/ready` at 503 with `reason` (Some), or releases it (None). Separate from
    /// [`Health::set_component`] because a degraded component is normally still ready.
    pub fn set_ready_blocker(&self, name: &str, reason: Option<String>) {
        let mut blockers = self.ready_blockers.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(reason) => blockers.insert(name.to_owned(), reason),
            None => blockers.remove(name),
        };
    }

    /// The node is shutting down: it stops being ready and reports unhealthy.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn components(&self) -> BTreeMap<String, ComponentStatus> {
        self.components
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The overall status, by the first rule that matches:
    ///
    /// 1. `unhealthy`: the node is stopping, or a component has `Failed`.
    /// 2. `starting`: the BTP listener is not bound yet, or journal recovery has not finished.
    /// 3. `degraded`: a component is `Degraded`, or at least one configured peer has no
    ///    session (whether some or all of them). Peers are outside our control and a restart
    ///    would not bring them back, so they never make the node `unhealthy`; whether enough
    ///    of them are connected to take traffic is `/health/ready`'s question.
    /// 4. `healthy` otherwise.
    pub fn status(&self) -> NodeStatus {
        self.status_with(&self.components())
    }

    fn status_with(&self, components: &BTreeMap<String, ComponentStatus>) -> NodeStatus {
        let any = |wanted: fn(&ComponentStatus) -> bool| components.values().any(wanted);
        if self.stopping.load(Ordering::Relaxed) || any(|c| matches!(c, ComponentStatus::Failed(_)))
        {
            return NodeStatus::Unhealthy;
        }
        if !self.btp_listening.load(Ordering::Relaxed)
            || !self.recovery_done.load(Ordering::Relaxed)
        {
            return NodeStatus::Starting;
        }
        if any(|c| matches!(c, ComponentStatus::Degraded(_)))
            || self.peers_connected() < self.peers_total
        {
            return NodeStatus::Degraded;
        }
        NodeStatus::Healthy
    }

    /// Each registered component and its level for `/metrics`
    /// (`connector_component_status`): 0 ok, 1 degraded, 2 failed.
    pub fn component_levels(&self) -> Vec<(String, u8)> {
        self.components()
            .into_iter()
            .map(|(name, status)| {
                let level = match status {
                    ComponentStatus::Ok => 0,
                    ComponentStatus::Degraded(_) => 1,
                    ComponentStatus::Failed(_) => 2,
                };
                (name, level)
            })
            .collect()
    }

    /// The body of `GET /health`.
    pub fn report(&self) -> HealthReport {
        let components = self.components();
        let status = self.status_with(&components);
        let mut component_reports: BTreeMap<String, ComponentReport> = components
            .into_iter()
            .map(|(name, status)| (name, ComponentReport::from(status)))
            .collect();
        // The built-in checks appear beside the registered components, unless one of those
        // already uses the name.
        let btp = if self.btp_listening.load(Ordering::Relaxed) {
            ComponentReport::ok()
        } else {
            ComponentReport::starting("BTP listener is not bound yet")
        };
        let recovery = if self.recovery_done.load(Ordering::Relaxed) {
            ComponentReport::ok()
        } else {
            ComponentReport::starting("journal recovery has not finished")
        };
        component_reports.entry("btp".to_owned()).or_insert(btp);
        component_reports
            .entry("recovery".to_owned())
            .or_insert(recovery);
        HealthReport {
            status,
            uptime: self.uptime_seconds(),
            node_id: self.node_id.clone(),
            version: self.version.clone(),
            peers: PeersReport {
                connected: self.peers_connected(),
                total: self.peers_total,
            },
            components: component_reports,
        }
    }

    /// Why the node is not ready to take traffic; empty when it is. Backs `/health/ready`.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.stopping.load(Ordering::Relaxed) {
            reasons.push("node is stopping".to_owned());
        }
        if !self.btp_listening.load(Ordering::Relaxed) {
            reasons.push("BTP listener is not bound yet".to_owned());
        }
        if !self.recovery_done.load(Ordering::Relaxed) {
            reasons.push("journal recovery has not finished".to_owned());
        }
        for (name, status) in self.components() {
            if let ComponentStatus::Failed(why) = status {
                reasons.push(format!("component {name} failed: {why}"));
            }
        }
        let blockers = self.ready_blockers.lock().unwrap_or_else(|e| e.into_inner());
        for (name, why) in blockers.iter() {
            reasons.push(format!("component {name} is required for readiness: {why}"));
        }
        drop(blockers);
        let connected = self.peers_connected();
        if connected < self.ready_peers_min {
            reasons.push(format!(
                "{connected} peers connected, {} required",
                self.ready_peers_min
            ));
        }
        reasons
    }
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub status: NodeStatus,
    /// Seconds since the node started.
    pub uptime: f64,
    pub node_id: String,
    pub version: String,
    pub peers: PeersReport,
    pub components: BTreeMap<String, ComponentReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeersReport {
    pub connected: u32,
    pub total: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentReport {
    /// `ok`, `degraded`, `failed`, or `starting` for the built-in checks.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ComponentReport {
    fn ok() -> ComponentReport {
        ComponentReport {
            status: "ok",
            message: None,
        }
    }

    fn starting(message: &str) -> ComponentReport {
        ComponentReport {
            status: "starting",
            message: Some(message.to_owned()),
        }
    }
}

impl From<ComponentStatus> for ComponentReport {
    fn from(status: ComponentStatus) -> ComponentReport {
        match status {
            ComponentStatus::Ok => ComponentReport::ok(),
            ComponentStatus::Degraded(why) => ComponentReport {
                status: "degraded",
                message: Some(why),
            },
            ComponentStatus::Failed(why) => ComponentReport {
                status: "failed",
                message: Some(why),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening(peers_total: u32, ready_peers_min: u32) -> Health {
        let health = Health::new("node-a", "0.1.0", peers_total, ready_peers_min);
        health.set_btp_listening(true);
        health
    }

    #[test]
    fn status_rules_in_order() {
        let health = Health::new("node-a", "0.1.0", 2, 1);
        assert_eq!(
            health.status(),
            NodeStatus::Starting,
            "BTP not listening yet"
        );
        health.set_btp_listening(true);
        assert_eq!(health.status(), NodeStatus::Degraded, "no peer connected");
        health.peer_connected();
        assert_eq!(
            health.status(),
            NodeStatus::Degraded,
            "one of two peers connected"
        );
        health.peer_connected();
        assert_eq!(health.status(), NodeStatus::Healthy);

        health.set_recovery_done(false);
        assert_eq!(health.status(), NodeStatus::Starting);
        health.set_recovery_done(true);

        health.set_component("journal", ComponentStatus::Degraded("slow flush".into()));
        assert_eq!(health.status(), NodeStatus::Degraded);
        health.set_component("tigerbeetle", ComponentStatus::Failed("unreachable".into()));
        assert_eq!(health.status(), NodeStatus::Unhealthy);
        health.set_btp_listening(false);
        assert_eq!(
            health.status(),
            NodeStatus::Unhealthy,
            "failure outranks starting"
        );
        health.set_btp_listening(true);
        health.set_component("tigerbeetle", ComponentStatus::Ok);
        health.set_component("journal", ComponentStatus::Ok);
        assert_eq!(health.status(), NodeStatus::Healthy);

        health.set_stopping();
        assert_eq!(health.status(), NodeStatus::Unhealthy);
    }

    #[test]
    fn no_configured_peers_is_healthy() {
        assert_eq!(listening(0, 0).status(), NodeStatus::Healthy);
    }

    #[test]
    fn readiness_reasons() {
        let health = Health::new("node-a", "0.1.0", 3, 2);
        let reasons = health.not_ready_reasons();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        health.set_btp_listening(true);
        health.peer_connected();
        assert_eq!(
            health.not_ready_reasons(),
            ["1 peers connected, 2 required"]
        );
        health.peer_connected();
        assert!(health.not_ready_reasons().is_empty());
        health.set_component("journal", ComponentStatus::Degraded("lagging".into()));
        assert!(
            health.not_ready_reasons().is_empty(),
            "degraded is still ready"
        );
        health.set_component("journal", ComponentStatus::Failed("corrupt frame 7".into()));
        assert_eq!(
            health.not_ready_reasons(),
            ["component journal failed: corrupt frame 7"]
        );
    }

    #[test]
    fn ready_blockers() {
        let health = listening(0, 0);
        assert!(health.not_ready_reasons().is_empty());
        health.set_ready_blocker("tigerbeetle", Some("120000 events behind".into()));
        assert_eq!(
            health.not_ready_reasons(),
            ["component tigerbeetle is required for readiness: 120000 events behind"]
        );
        assert_eq!(health.status(), NodeStatus::Healthy, "a blocker only affects readiness");
        health.set_ready_blocker("tigerbeetle", None);
        assert!(health.not_ready_reasons().is_empty());
    }

    #[test]
    fn unmatched_disconnect_saturates_at_zero() {
        let health = listening(1, 0);
        health.peer_disconnected();
        assert_eq!(health.peers_connected(), 0);
        health.peer_connected();
        assert_eq!(health.peers_connected(), 1);
    }

    #[test]
    fn report_includes_built_in_checks() {
        let health = Health::new("node-a", "0.1.0", 1, 0);
        health.set_component("journal", ComponentStatus::Degraded("lagging".into()));
        let report = serde_json::to_value(health.report()).unwrap();
        assert_eq!(report["status"], "starting");
        assert_eq!(report["nodeId"], "node-a");
        assert_eq!(report["peers"]["total"], 1);
        assert_eq!(report["components"]["btp"]["status"], "starting");
        assert_eq!(report["components"]["recovery"]["status"], "ok");
        assert!(report["components"]["recovery"].get("message").is_none());
        assert_eq!(report["components"]["journal"]["status"], "degraded");
        assert_eq!(report["components"]["journal"]["message"], "lagging");
        assert!(report["uptime"].as_f64().unwrap() >= 0.0);
    }
}
