//! IPVS mode configuration, resolved by the caller (flags, node addresses); plain data, no I/O.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
pub use kube_proxy_iptables::LocalDetector;
use kube_proxy_model::IpFamily;

use crate::types::{Scheduler, Timeouts};

/// The dummy interface every service address is bound to.
pub const DUMMY_DEVICE: &str = "kube-ipvs0";

/// Everything the IPVS renderer and applier need besides the [`kube_proxy_model::ProxyState`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsConfig {
    pub family: IpFamily,
    /// `--ipvs-scheduler` (rr when empty).
    pub scheduler: Scheduler,
    /// Node addresses of this family that accept NodePorts (resolved `--nodeport-addresses`, or all of the
    /// node's addresses). One virtual server per address and NodePort.
    pub node_port_ips: Vec<IpAddr>,
    /// `--ipvs-exclude-cidrs`: virtual servers in these ranges are never removed as stale.
    pub exclude_cidrs: Vec<IpNet>,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// `--iptables-masquerade-bit` (14 by default).
    pub masquerade_bit: u32,
    pub local_detector: LocalDetector,
    /// `--ipvs-strict-arp`: arp_ignore=1, arp_announce=2.
    pub strict_arp: bool,
    /// `--ipvs-tcp-timeout`, `--ipvs-tcpfin-timeout`, `--ipvs-udp-timeout` (seconds; 0 leaves the kernel's).
    pub timeouts: Timeouts,
    /// How long a removed real server may keep weight 0 before it is deleted even with active connections.
    pub graceful_termination_bound: Duration,
}

impl IpvsConfig {
    /// Upstream's defaults for one family.
    pub fn new(family: IpFamily) -> IpvsConfig {
        IpvsConfig {
            family,
            scheduler: Scheduler::RoundRobin,
            node_port_ips: Vec::new(),
            exclude_cidrs: Vec::new(),
            masquerade_all: false,
            masquerade_bit: 14,
            local_detector: LocalDetector::None,
            strict_arp: false,
            timeouts: Timeouts::default(),
            graceful_termination_bound: Duration::from_secs(15 * 60),
        }
    }

    /// The masquerade mark as upstream writes it (`0x00004000` for bit 14).
    pub fn masquerade_mark(&self) -> String {
        format!("{:#010x}", 1u32 << self.masquerade_bit)
    }
}
