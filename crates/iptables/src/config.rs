//! Plain-data inputs of the renderer: mode configuration ([`RenderConfig`]) and sync scope ([`RenderScope`]).
//!
//! Everything here is resolved by the caller (interfaces, CIDRs, sysctls); nothing here performs I/O.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use kube_proxy_model::{IpFamily, ProxyState, ServicePortName};

/// How traffic from local pods is recognised (upstream's `LocalTrafficDetector`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LocalDetector {
    /// No detector: no "masquerade off-cluster traffic" rule and no pod short-circuit in EXT chains.
    #[default]
    None,
    /// ClusterCIDR or NodeCIDR mode, resolved by the caller. Upstream matches a single CIDR per family:
    /// the first CIDR of the proxier's family is used, others are ignored.
    Cidrs(Vec<IpNet>),
    /// `-i <bridge>`.
    BridgeInterface(String),
    /// `-i <prefix>+`.
    InterfaceNamePrefix(String),
}

impl LocalDetector {
    /// iptables arguments matching local-pod traffic, or `None` when not implemented for `family`.
    pub fn if_local(&self, family: IpFamily) -> Option<Vec<String>> {
        match self {
            LocalDetector::None => None,
            LocalDetector::Cidrs(cidrs) => first_of_family(cidrs, family)
                .map(|c| vec!["-s".to_string(), c.trunc().to_string()]),
            LocalDetector::BridgeInterface(i) => Some(vec!["-i".to_string(), i.clone()]),
            LocalDetector::InterfaceNamePrefix(p) => Some(vec!["-i".to_string(), format!("{p}+")]),
        }
    }

    /// iptables arguments matching traffic that is not from a local pod.
    pub fn if_not_local(&self, family: IpFamily) -> Option<Vec<String>> {
        self.if_local(family).map(|mut v| {
            v.insert(0, "!".to_string());
            v
        })
    }
}

fn first_of_family(cidrs: &[IpNet], family: IpFamily) -> Option<&IpNet> {
    cidrs.iter().find(|c| family.contains(&c.addr()))
}

/// Which node addresses accept NodePort traffic (`--nodeport-addresses`, resolved by the caller).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum NodePortAddresses {
    /// Every local address (`-m addrtype --dst-type LOCAL`).
    #[default]
    All,
    /// Only these addresses of this node (this family).
    Ips(Vec<IpAddr>),
}

impl NodePortAddresses {
    /// Upstream's `ContainsIPv4Loopback`: localhost NodePorts are possible at all.
    pub fn contains_ipv4_loopback(&self) -> bool {
        match self {
            NodePortAddresses::All => true,
            NodePortAddresses::Ips(ips) => ips.iter().any(|ip| ip.is_ipv4() && ip.is_loopback()),
        }
    }
}

/// Mode configuration of one iptables proxier (one family).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderConfig {
    /// `--masquerade-all`: SNAT all traffic sent to a ClusterIP.
    pub masquerade_all: bool,
    /// `iptables.masqueradeBit` (default 14).
    pub masquerade_bit: u8,
    pub local_detector: LocalDetector,
    pub node_port_addresses: NodePortAddresses,
    /// `iptables.localhostNodePorts` (default true). Only effective for IPv4 with loopback in nodePortAddresses.
    pub localhost_nodeports: bool,
    /// This node's addresses of this family (the first is upstream's node IP).
    pub node_ips: Vec<IpAddr>,
    /// Append `--random-fully` to the MASQUERADE rule (upstream: when iptables supports it, >= 1.6.2).
    pub random_fully: bool,
    /// `net.netfilter.nf_conntrack_tcp_be_liberal` is set: skip the ctstate INVALID DROP rule.
    pub conntrack_tcp_be_liberal: bool,
    /// The nfacct counters exist: add `-m nfacct` matches as upstream does when it could create them.
    pub nfacct: bool,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            masquerade_all: false,
            masquerade_bit: 14,
            local_detector: LocalDetector::None,
            node_port_addresses: NodePortAddresses::All,
            localhost_nodeports: true,
            node_ips: Vec::new(),
            random_fully: true,
            conntrack_tcp_be_liberal: false,
            nfacct: false,
        }
    }
}

impl RenderConfig {
    /// Upstream's mark string: `fmt.Sprintf("%#08x", 1<<bit)`, e.g. `0x00004000` for bit 14.
    pub fn masquerade_mark(&self) -> String {
        format!("0x{:08x}", 1u64 << self.masquerade_bit.min(31))
    }

    /// Localhost NodePorts are in effect for `family` (IPv4 only, and loopback must be a NodePort address).
    pub fn localhost_nodeports_effective(&self, family: IpFamily) -> bool {
        family == IpFamily::V4
            && self.localhost_nodeports
            && self.node_port_addresses.contains_ipv4_loopback()
    }
}

/// What a render covers.
#[derive(Clone, Debug)]
pub enum RenderScope {
    /// Every chain. Stale per-service chains are removed by the applier
    /// ([`crate::RenderedRules::delete_stale_chains`]) from what `iptables-save` shows.
    Full,
    /// Only the per-service chains of `changed` (plus any service that differs between `previous` and the new
    /// state) are rewritten; their chains that no longer exist are deleted. Top-level chains are always rewritten.
    /// `previous` must be the state of the last successful apply.
    Partial {
        changed: BTreeSet<ServicePortName>,
        previous: Arc<ProxyState>,
    },
}
