//! [`ProxyHealth`]: upstream's proxy health state machine (pkg/proxy/healthcheck/proxy_health.go semantics).
//!
//! Each IP family's proxier reports `queued_update` when it learns of a change and `updated` after a
//! successful sync. A family is unhealthy when its oldest unprocessed queued update is older than the health
//! timeout (2 × syncPeriod). Families that never reported `updated` are not judged (a proxier is healthy
//! while starting up), so the runner should call `updated` once when it starts, as upstream's SyncLoop does.
//! /healthz additionally requires the node to be eligible (not being deleted, not tainted
//! `ToBeDeletedByClusterAutoscaler`); /livez ignores the node. Time is read through a [`Clock`]; the verdict
//! itself is the pure [`ProxyHealth::status_at`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use kube_proxy_model::IpFamily;

use crate::clock::{Clock, SystemClock};

/// The taint the cluster autoscaler puts on a node it is about to delete.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// What the health check needs to know about this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// Keys of `spec.taints`.
    pub taint_keys: Vec<String>,
}

impl NodeInfo {
    /// Extracts the relevant facts from a Node object.
    pub fn from_node(node: &k8s_openapi::api::core::v1::Node) -> NodeInfo {
        NodeInfo {
            deleting: node.metadata.deletion_timestamp.is_some(),
            taint_keys: node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .map(|t| t.iter().map(|t| t.key.clone()).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether a node in this state should still receive load-balancer traffic.
    pub fn eligible(&self) -> bool {
        !self.deleting && !self.taint_keys.iter().any(|k| k == TO_BE_DELETED_TAINT)
    }
}

/// The health of one IP family's proxier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyHealth {
    pub last_updated: SystemTime,
    pub healthy: bool,
}

/// A snapshot of the proxy's health at `current_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthStatus {
    /// Every proxier is healthy (node eligibility not included: that is /livez' answer).
    pub healthy: bool,
    /// The node is neither being deleted nor tainted for deletion.
    pub node_eligible: bool,
    /// The most recent successful sync of any family; `None` before the first one.
    pub last_updated: Option<SystemTime>,
    pub current_time: SystemTime,
    /// Per-family detail, for families that have synced at least once.
    pub families: BTreeMap<IpFamily, FamilyHealth>,
}

impl HealthStatus {
    /// /healthz answers 200 only when the proxy is healthy and the node is eligible.
    pub fn healthz_ok(&self) -> bool {
        self.healthy && self.node_eligible
    }

    /// /livez answers 200 when the proxy is healthy, whatever the node's state.
    pub fn livez_ok(&self) -> bool {
        self.healthy
    }
}

#[derive(Debug)]
struct State {
    last_updated: BTreeMap<IpFamily, SystemTime>,
    oldest_pending: BTreeMap<IpFamily, SystemTime>,
    node_eligible: bool,
}

/// Thread-safe proxy health, shared (`Arc`) between the sync runner, the node watcher and the HTTP servers.
pub struct ProxyHealth {
    clock: Arc<dyn Clock>,
    timeout: Duration,
    state: RwLock<State>,
}

impl std::fmt::Debug for ProxyHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHealth")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ProxyHealth {
    /// Health with the real clock and a timeout of 2 × `sync_period`, as upstream.
    pub fn new(sync_period: Duration) -> ProxyHealth {
        ProxyHealth::with_clock(sync_period, Arc::new(SystemClock))
    }

    /// Health reading time from `clock` (tests pass a [`crate::FakeClock`]).
    pub fn with_clock(sync_period: Duration, clock: Arc<dyn Clock>) -> ProxyHealth {
        ProxyHealth {
            clock,
            timeout: sync_period.saturating_mul(2),
            state: RwLock::new(State {
                last_updated: BTreeMap::new(),
                oldest_pending: BTreeMap::new(),
                // Eligible until a node update says otherwise (upstream's start-up behaviour).
                node_eligible: true,
            }),
        }
    }

    /// How long a queued update may stay unprocessed before the proxy is unhealthy.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The current time of this health's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The proxier of `family` has a change it has not synced yet. Only the oldest pending change counts.
    pub fn queued_update(&self, family: IpFamily) {
        let now = self.clock.now();
        self.write().oldest_pending.entry(family).or_insert(now);
    }

    /// The proxier of `family` synced successfully: nothing is pending any more.
    pub fn updated(&self, family: IpFamily) {
        let now = self.clock.now();
        let mut s = self.write();
        s.oldest_pending.remove(&family);
        s.last_updated.insert(family, now);
    }

    /// Records this node's state; a node being deleted or tainted for deletion makes /healthz fail.
    pub fn sync_node(&self, node: &NodeInfo) {
        self.write().node_eligible = node.eligible();
    }

    /// This node's object was deleted from the API: not eligible until it reappears.
    pub fn sync_node_removed(&self) {
        self.write().node_eligible = false;
    }

    /// Whether the node is eligible for load-balancer traffic.
    pub fn node_eligible(&self) -> bool {
        self.read().node_eligible
    }

    /// Whether every proxier is healthy now (ignores the node, like upstream's service health checks).
    pub fn is_healthy(&self) -> bool {
        self.status().healthy
    }

    /// The health now, by this health's clock.
    pub fn status(&self) -> HealthStatus {
        self.status_at(self.clock.now())
    }

    /// The health at `now`: a pure function of the recorded state.
    pub fn status_at(&self, now: SystemTime) -> HealthStatus {
        let s = self.read();
        let mut families = BTreeMap::new();
        for (&family, &last_updated) in &s.last_updated {
            let late = s.oldest_pending.get(&family).is_some_and(|&queued| {
                now.duration_since(queued).unwrap_or(Duration::ZERO) >= self.timeout
            });
            families.insert(
                family,
                FamilyHealth {
                    last_updated,
                    healthy: !late,
                },
            );
        }
        HealthStatus {
            healthy: families.values().all(|f| f.healthy),
            node_eligible: s.node_eligible,
            last_updated: s.last_updated.values().max().copied(),
            current_time: now,
            families,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
