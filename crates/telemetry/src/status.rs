//! [`StatusBoard`]: what the proxy last programmed, per IP family, for the `/statusz` page.
//!
//! The binary's sync listener calls [`StatusBoard::record_sync`] after every successful sync; the metrics server
//! reads a consistent [`StatusSnapshot`]. Recording keeps a reference to the programmed `ProxyState` (which the
//! runner holds anyway) and nothing else, so a sync pays O(1) here; the per-service strings of `/statusz` are
//! made only when someone asks for a snapshot. No I/O and no HTTP here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use kube_proxy_model::{Endpoint, IpFamily, ProxyState, ServicePortState};

use crate::clock::{Clock, SystemClock};

/// Thread-safe holder of the last programmed status of every family.
pub struct StatusBoard {
    mode: String,
    clock: Arc<dyn Clock>,
    families: RwLock<BTreeMap<IpFamily, Recorded>>,
}

/// What a sync recorded for one family; the services are read out of `state` at snapshot time.
struct Recorded {
    status: FamilyStatus,
    state: Arc<ProxyState>,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Everything the board knows, copied out at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSnapshot {
    /// The proxy mode (`iptables`, `nftables`, ...).
    pub mode: String,
    /// When the snapshot was taken.
    pub now: SystemTime,
    /// One entry per family that synced at least once, IPv4 first.
    pub families: Vec<FamilyStatus>,
}

/// The last programmed status of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyStatus {
    pub family: IpFamily,
    /// End of the last successful full sync.
    pub last_full_sync: Option<SystemTime>,
    /// End of the last successful partial sync.
    pub last_partial_sync: Option<SystemTime>,
    /// Successful full and partial syncs recorded so far.
    pub full_syncs: u64,
    pub partial_syncs: u64,
    /// Rule or element counts the dataplane reported for the last sync, e.g. `("nat", 42)`.
    pub counts: Vec<(String, u64)>,
    /// This node's pod CIDRs of the family (clients in them count as local, e.g. for the userspace proxy).
    pub pod_cidrs: Vec<String>,
    /// Every programmed service port, sorted by name.
    pub services: Vec<ServiceStatus>,
}

/// One programmed service port and the endpoints this node uses for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStatus {
    /// `ns/name:port` (upstream's ServicePortName string).
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    pub cluster_ip: IpAddr,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<IpAddr>,
    pub load_balancer_ips: Vec<IpAddr>,
    pub internal_policy_local: bool,
    pub external_policy_local: bool,
    pub health_check_node_port: Option<u16>,
    /// ClientIP session affinity timeout in seconds; `None` without affinity.
    pub session_affinity_timeout: Option<u32>,
    /// Endpoints (`ip:port`) for Cluster-policy traffic.
    pub cluster_endpoints: Vec<String>,
    /// Endpoints (`ip:port`) for Local-policy traffic.
    pub local_endpoints: Vec<String>,
    /// Endpoints known in the whole cluster, usable or not.
    pub total_endpoints: usize,
}

impl ServiceStatus {
    /// Copies what `/statusz` shows out of a programmed service port.
    pub fn from_state(svc: &ServicePortState) -> ServiceStatus {
        let addrs = |eps: &[Endpoint]| eps.iter().map(Endpoint::addr_string).collect();
        ServiceStatus {
            name: svc.name.to_string(),
            protocol: svc.protocol.as_k8s().to_string(),
            cluster_ip: svc.cluster_ip,
            port: svc.port,
            node_port: svc.node_port,
            external_ips: svc.external_ips.clone(),
            load_balancer_ips: svc.load_balancer_ips.clone(),
            internal_policy_local: svc.internal_policy_local,
            external_policy_local: svc.external_policy_local,
            health_check_node_port: svc.health_check_node_port,
            session_affinity_timeout: svc.session_affinity_timeout,
            cluster_endpoints: addrs(&svc.cluster_endpoints),
            local_endpoints: addrs(&svc.local_endpoints),
            total_endpoints: svc.endpoints.len(),
        }
    }
}

impl StatusBoard {
    /// An empty board for `mode`, reading the system clock.
    pub fn new(mode: impl Into<String>) -> StatusBoard {
        StatusBoard::with_clock(mode, Arc::new(SystemClock))
    }

    /// An empty board reading `clock` (tests use a [`crate::FakeClock`]).
    pub fn with_clock(mode: impl Into<String>, clock: Arc<dyn Clock>) -> StatusBoard {
        StatusBoard {
            mode: mode.into(),
            clock,
            families: RwLock::new(BTreeMap::new()),
        }
    }

    /// The proxy mode given at creation.
    pub fn mode(&self) -> &str {
        &self.mode
    }

    /// Records a successful sync of `family`: its kind, the dataplane's counts and the state now programmed.
    pub fn record_sync(
        &self,
        family: IpFamily,
        full: bool,
        counts: &[(String, u64)],
        state: &Arc<ProxyState>,
    ) {
        let now = self.clock.now();
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        let entry = families.entry(family).or_insert_with(|| Recorded {
            status: FamilyStatus {
                family,
                last_full_sync: None,
                last_partial_sync: None,
                full_syncs: 0,
                partial_syncs: 0,
                counts: Vec::new(),
                pod_cidrs: Vec::new(),
                services: Vec::new(),
            },
            state: Arc::clone(state),
        });
        let status = &mut entry.status;
        if full {
            status.last_full_sync = Some(now);
            status.full_syncs += 1;
        } else {
            status.last_partial_sync = Some(now);
            status.partial_syncs += 1;
        }
        status.counts = counts.to_vec();
        entry.state = Arc::clone(state);
    }

    /// A consistent copy of everything recorded.
    pub fn snapshot(&self) -> StatusSnapshot {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        StatusSnapshot {
            mode: self.mode.clone(),
            now: self.clock.now(),
            families: families
                .values()
                .map(|r| FamilyStatus {
                    pod_cidrs: r
                        .state
                        .node_pod_cidrs
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                    services: r
                        .state
                        .services
                        .values()
                        .map(|s| ServiceStatus::from_state(s))
                        .collect(),
                    ..r.status.clone()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube_proxy_model::{Protocol, ServicePortName};

    use super::*;
    use crate::FakeClock;

    fn endpoint(ip: &str, local: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            is_local: local,
            ready: true,
            serving: true,
            terminating: false,
            hints: None,
        }
    }

    fn state() -> ProxyState {
        let local = endpoint("10.244.1.10", true);
        let remote = endpoint("10.244.2.10", false);
        let name = ServicePortName {
            namespace: "default".into(),
            name: "web".into(),
            port: "http".into(),
            protocol: Protocol::Tcp,
        };
        let svc = ServicePortState {
            name: name.clone(),
            family: IpFamily::V4,
            cluster_ip: "10.96.0.10".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
            node_port: Some(30080),
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            external_policy_local: true,
            internal_policy_local: false,
            health_check_node_port: None,
            session_affinity_timeout: Some(600),
            endpoints: vec![local.clone(), remote.clone()],
            cluster_endpoints: vec![local.clone(), remote].into(),
            local_endpoints: vec![local].into(),
            all_reachable_endpoints: Default::default(),
            has_any_endpoints: true,
        };
        let mut st = ProxyState::empty(IpFamily::V4, "node-1");
        st.node_pod_cidrs = vec!["10.244.1.0/24".parse().unwrap()];
        st.services.insert(name, Arc::new(svc));
        st
    }

    #[test]
    fn records_full_and_partial_syncs_separately_with_endpoint_sets() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = Arc::new(FakeClock::new(start));
        let board = StatusBoard::with_clock("iptables", clock.clone());
        assert!(board.snapshot().families.is_empty());

        board.record_sync(
            IpFamily::V4,
            true,
            &[("nat".into(), 12)],
            &Arc::new(state()),
        );
        clock.advance(Duration::from_secs(5));
        board.record_sync(
            IpFamily::V4,
            false,
            &[("nat".into(), 14)],
            &Arc::new(state()),
        );

        let snap = board.snapshot();
        assert_eq!(snap.mode, "iptables");
        let v4 = &snap.families[0];
        assert_eq!(v4.last_full_sync, Some(start));
        assert_eq!(v4.last_partial_sync, Some(start + Duration::from_secs(5)));
        assert_eq!((v4.full_syncs, v4.partial_syncs), (1, 1));
        assert_eq!(v4.counts, vec![("nat".to_string(), 14)]);
        let web = &v4.services[0];
        assert_eq!(web.name, "default/web:http");
        assert_eq!(
            web.cluster_endpoints,
            vec!["10.244.1.10:8080", "10.244.2.10:8080"]
        );
        assert_eq!(web.local_endpoints, vec!["10.244.1.10:8080"]);
        assert_eq!(web.node_port, Some(30080));
        assert_eq!(web.session_affinity_timeout, Some(600));
        assert_eq!(v4.pod_cidrs, vec!["10.244.1.0/24"]);
    }
}
