//! The immutable per-node, per-family state every dataplane renders from.
//!
//! Holds plain data only: no API types, no I/O. Ordering is deterministic (BTreeMap, sorted vectors) so that
//! renderers produce byte-identical output for equal states.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::endpoint_list::EndpointList;

/// An IP family. Dual-stack nodes run one proxier per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Whether `ip` belongs to this family.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        IpFamily::of(ip) == *self
    }
}

/// A transport protocol a Service port may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Kubernetes' spelling: "TCP", "UDP", "SCTP".
    pub fn as_k8s(&self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// Lower-case spelling used by iptables/nft: "tcp", "udp", "sctp".
    pub fn as_lower(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// Parses Kubernetes' spelling (case-sensitive, as the API server validates it).
    pub fn from_k8s(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_k8s())
    }
}

/// Identifies one port of one Service: namespace, name, port name and protocol.
///
/// Displays as upstream's `ServicePortName.String()`: `ns/name:portname`, or `ns/name` when the port is unnamed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServicePortName {
    // Shared strings: a state is cloned per change and holds one name per service port, so cloning a name
    // must not allocate.
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    /// The port's `name` field; empty for a single unnamed port.
    pub port: Arc<str>,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// An endpoint's topology hints (`hints.forZones`, `hints.forNodes`): names sorted and deduplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EndpointHints {
    pub zones: Vec<String>,
    pub nodes: Vec<String>,
}

impl EndpointHints {
    /// Hints as an [`Endpoint`] holds them: sorted, deduplicated, shared; `None` when there are none.
    pub fn shared(
        zones: impl IntoIterator<Item = String>,
        nodes: impl IntoIterator<Item = String>,
    ) -> Option<Arc<EndpointHints>> {
        let sorted = |names: &mut Vec<String>| {
            names.sort();
            names.dedup();
        };
        let mut hints = EndpointHints {
            zones: zones.into_iter().collect(),
            nodes: nodes.into_iter().collect(),
        };
        sorted(&mut hints.zones);
        sorted(&mut hints.nodes);
        (!hints.zones.is_empty() || !hints.nodes.is_empty()).then(|| Arc::new(hints))
    }
}

/// One backend of a service port, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    /// The endpoint's `nodeName` equals this node's name.
    pub is_local: bool,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// Topology hints, shared with the EndpointSlice they came from; `None` when there are none.
    pub hints: Option<Arc<EndpointHints>>,
}

impl Endpoint {
    /// Zone hints (`hints.forZones`), sorted.
    pub fn zone_hints(&self) -> &[String] {
        self.hints.as_deref().map_or(&[], |h| &h.zones)
    }

    /// Node hints (`hints.forNodes`), sorted.
    pub fn node_hints(&self) -> &[String] {
        self.hints.as_deref().map_or(&[], |h| &h.nodes)
    }

    /// `ip:port`, with brackets around IPv6 addresses (upstream's endpoint string).
    pub fn addr_string(&self) -> String {
        std::net::SocketAddr::new(self.ip, self.port).to_string()
    }
}

/// Everything a dataplane needs to program one service port in one IP family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServicePortState {
    pub name: ServicePortName,
    pub family: IpFamily,
    pub cluster_ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    /// NodePort, for NodePort and LoadBalancer services that have one.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` of this family, normalised, sorted, deduplicated.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` of this family, excluding ipMode Proxy; sorted, deduplicated.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges` of this family (parsed, normalised).
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// `externalTrafficPolicy: Local` (only meaningful when externally accessible).
    pub external_policy_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_policy_local: bool,
    /// `spec.healthCheckNodePort`, when the service is eTP=Local LoadBalancer.
    pub health_check_node_port: Option<u16>,
    /// ClientIP affinity timeout in seconds; `None` means no session affinity.
    pub session_affinity_timeout: Option<u32>,
    /// All endpoints of this port from every slice of this family, merged and deduplicated, sorted by (ip, port).
    pub endpoints: Vec<Endpoint>,
    /// Endpoints for traffic that uses the Cluster policy (topology and terminating fallback applied).
    /// The three views below share one list when they are equal.
    pub cluster_endpoints: EndpointList,
    /// Endpoints for traffic that uses the Local policy (terminating fallback applied).
    pub local_endpoints: EndpointList,
    /// Union of `cluster_endpoints` and `local_endpoints` (the endpoints that get per-endpoint rules).
    pub all_reachable_endpoints: EndpointList,
    /// Whether any usable (ready, or serving+terminating) endpoint exists anywhere in the cluster.
    /// Distinguishes DROP (Local policy, endpoints only elsewhere) from REJECT (no endpoints at all).
    pub has_any_endpoints: bool,
}

impl ServicePortState {
    /// Reachable from outside the cluster: has a NodePort, an externalIP or a load-balancer IP.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some()
            || !self.external_ips.is_empty()
            || !self.load_balancer_ips.is_empty()
    }

    /// Some traffic to this port uses the Cluster traffic policy. As upstream: any externally accessible port
    /// does, even with `externalTrafficPolicy: Local`, because traffic from pods on this node to an external
    /// address is short-circuited to the Cluster endpoints.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || self.externally_accessible()
    }

    /// Some traffic to this port uses the Local traffic policy.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.externally_accessible() && self.external_policy_local)
    }

    /// Endpoints internal (ClusterIP) traffic goes to.
    pub fn internal_endpoints(&self) -> &[Endpoint] {
        if self.internal_policy_local {
            &self.local_endpoints
        } else {
            &self.cluster_endpoints
        }
    }

    /// Endpoints external (NodePort, externalIP, LB) traffic goes to.
    pub fn external_endpoints(&self) -> &[Endpoint] {
        if self.external_policy_local {
            &self.local_endpoints
        } else {
            &self.cluster_endpoints
        }
    }

    /// Number of local endpoints that are ready (what the health-check node port reports).
    pub fn local_ready_endpoint_count(&self) -> usize {
        self.endpoints
            .iter()
            .filter(|e| e.is_local && e.ready)
            .count()
    }
}

/// The complete state one proxier (one IP family on one node) programs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyState {
    pub family: IpFamily,
    /// This node's name.
    pub node_name: String,
    /// This node's `spec.podCIDRs` of this family (for the NodeCIDR local-traffic detector).
    pub node_pod_cidrs: Vec<IpNet>,
    /// Every programmable service port, keyed by name. Values are shared between successive states when unchanged.
    pub services: BTreeMap<ServicePortName, Arc<ServicePortState>>,
}

impl ProxyState {
    /// An empty state (nothing programmed yet).
    pub fn empty(family: IpFamily, node_name: impl Into<String>) -> ProxyState {
        ProxyState {
            family,
            node_name: node_name.into(),
            node_pod_cidrs: Vec::new(),
            services: BTreeMap::new(),
        }
    }
}

/// Why an object, or part of one, was not programmed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RejectionKind {
    InvalidClusterIp(String),
    InvalidExternalIp(String),
    InvalidLoadBalancerIp(String),
    InvalidSourceRange(String),
    InvalidEndpointAddress(String),
    InvalidPort(i64),
    UnknownProtocol(String),
    Other(String),
}

/// A typed, loggable rejection naming the object (`Service ns/name`, `EndpointSlice ns/name`) it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[error("{object}: {kind:?}")]
pub struct Rejection {
    /// `Kind ns/name`.
    pub object: String,
    pub kind: RejectionKind,
}
