//! Plain-data mode configuration of one nftables proxier (one family): masquerading, the local-traffic
//! detector, NodePort addresses and service CIDRs. Resolved by the caller; nothing here performs I/O.

use std::net::IpAddr;

use ipnet::IpNet;
use kube_proxy_model::IpFamily;

use crate::plan::{AddrField, CmpOp, Match};

/// How traffic from local pods is recognised (upstream's `LocalTrafficDetector`, nft flavour).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LocalDetector {
    /// No detector: no off-cluster masquerade rule and no pod short-circuit in external chains.
    #[default]
    None,
    /// ClusterCIDR / NodeCIDR mode: the first CIDR of the proxier's family is used, as upstream.
    Cidrs(Vec<IpNet>),
    /// `iifname "<bridge>"`.
    BridgeInterface(String),
    /// `iifname "<prefix>*"`.
    InterfaceNamePrefix(String),
}

impl LocalDetector {
    fn matcher(&self, family: IpFamily, op: CmpOp) -> Option<Match> {
        match self {
            LocalDetector::None => None,
            LocalDetector::Cidrs(cidrs) => {
                cidrs
                    .iter()
                    .find(|c| family.contains(&c.addr()))
                    .map(|c| Match::Addr {
                        field: AddrField::Saddr,
                        op,
                        net: c.trunc(),
                    })
            }
            LocalDetector::BridgeInterface(i) => Some(Match::Iifname {
                op,
                name: i.clone(),
            }),
            LocalDetector::InterfaceNamePrefix(p) => Some(Match::Iifname {
                op,
                name: format!("{p}*"),
            }),
        }
    }

    /// The match for traffic from a local pod, or `None` when not implemented for `family`.
    pub fn if_local(&self, family: IpFamily) -> Option<Match> {
        self.matcher(family, CmpOp::Eq)
    }

    /// The match for traffic that is not from a local pod.
    pub fn if_not_local(&self, family: IpFamily) -> Option<Match> {
        self.matcher(family, CmpOp::Neq)
    }
}

/// Which node addresses accept NodePort traffic (`--nodeport-addresses`, resolved by the caller).
/// Upstream's nftables mode defaults to `primary`: the node IPs, i.e. [`NodePortAddresses::Ips`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodePortAddresses {
    /// Every local address except loopback (`fib daddr type local`).
    All,
    /// Only these addresses (loopback entries are ignored: no localhost NodePorts in this mode).
    Ips(Vec<IpAddr>),
}

/// Mode configuration of one nftables proxier (one family).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderConfig {
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// `masqueradeBit` (default 14).
    pub masquerade_bit: u8,
    pub local_detector: LocalDetector,
    pub node_port_addresses: NodePortAddresses,
    /// This node's addresses of this family; the first is upstream's node IP (for loadBalancerSourceRanges).
    pub node_ips: Vec<IpAddr>,
    /// Service CIDRs of this family (ServiceCIDR objects, else `--service-cluster-ip-range`): traffic to
    /// unallocated addresses inside them is dropped.
    pub service_cidrs: Vec<IpNet>,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            masquerade_all: false,
            masquerade_bit: 14,
            local_detector: LocalDetector::None,
            node_port_addresses: NodePortAddresses::All,
            node_ips: Vec::new(),
            service_cidrs: Vec::new(),
        }
    }
}

impl RenderConfig {
    /// The masquerade mark bit as a value (`1 << masquerade_bit`).
    pub fn masquerade_mark(&self) -> u32 {
        1u32 << self.masquerade_bit.min(31)
    }
}
