//! Plain data describing IPVS virtual servers and real servers, independent of how they reach the kernel.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use kube_proxy_model::Protocol;

use crate::IpvsError;

/// `IP_VS_SVC_F_PERSISTENT`: ClientIP affinity (persistence) is on.
pub const SVC_F_PERSISTENT: u32 = 0x1;
/// `IP_VS_SVC_F_HASHED`: set by the kernel on every service; ignored when comparing.
pub const SVC_F_HASHED: u32 = 0x2;
/// `IP_VS_SVC_F_ONEPACKET`: schedule every UDP datagram separately.
pub const SVC_F_ONEPACKET: u32 = 0x4;
/// `IP_VS_SVC_F_SCHED1..3`: scheduler flags (e.g. `sh-fallback`, `sh-port` for the sh scheduler).
pub const SVC_F_SCHED1: u32 = 0x8;
pub const SVC_F_SCHED2: u32 = 0x10;
pub const SVC_F_SCHED3: u32 = 0x20;

/// An IPVS scheduler (`--ipvs-scheduler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Scheduler {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    LeastConnection,
    WeightedLeastConnection,
    LocalityBasedLeastConnection,
    LocalityBasedLeastConnectionReplication,
    SourceHashing,
    DestinationHashing,
    ShortestExpectedDelay,
    NeverQueue,
}

impl Scheduler {
    /// Every scheduler, in `--ipvs-scheduler` documentation order.
    pub const ALL: [Scheduler; 10] = [
        Scheduler::RoundRobin,
        Scheduler::WeightedRoundRobin,
        Scheduler::LeastConnection,
        Scheduler::WeightedLeastConnection,
        Scheduler::LocalityBasedLeastConnection,
        Scheduler::LocalityBasedLeastConnectionReplication,
        Scheduler::SourceHashing,
        Scheduler::DestinationHashing,
        Scheduler::ShortestExpectedDelay,
        Scheduler::NeverQueue,
    ];

    /// The kernel's name (`ip_vs_<name>` is the module).
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheduler::RoundRobin => "rr",
            Scheduler::WeightedRoundRobin => "wrr",
            Scheduler::LeastConnection => "lc",
            Scheduler::WeightedLeastConnection => "wlc",
            Scheduler::LocalityBasedLeastConnection => "lblc",
            Scheduler::LocalityBasedLeastConnectionReplication => "lblcr",
            Scheduler::SourceHashing => "sh",
            Scheduler::DestinationHashing => "dh",
            Scheduler::ShortestExpectedDelay => "sed",
            Scheduler::NeverQueue => "nq",
        }
    }
}

impl FromStr for Scheduler {
    type Err = IpvsError;
    /// Parses a kernel scheduler name; the empty string means the default (rr), as upstream.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(Scheduler::RoundRobin);
        }
        Scheduler::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| IpvsError::UnknownScheduler(s.to_string()))
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How IPVS forwards to a real server (`IP_VS_CONN_F_*` forwarding bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ForwardMethod {
    /// NAT ("Masq" in ipvsadm); what kube-proxy uses.
    Masquerade,
    Local,
    Tunnel,
    DirectRoute,
    Bypass,
}

impl ForwardMethod {
    pub fn to_kernel(self) -> u32 {
        match self {
            ForwardMethod::Masquerade => 0,
            ForwardMethod::Local => 1,
            ForwardMethod::Tunnel => 2,
            ForwardMethod::DirectRoute => 3,
            ForwardMethod::Bypass => 4,
        }
    }

    pub fn from_kernel(v: u32) -> ForwardMethod {
        match v & 0x7 {
            1 => ForwardMethod::Local,
            2 => ForwardMethod::Tunnel,
            3 => ForwardMethod::DirectRoute,
            4 => ForwardMethod::Bypass,
            _ => ForwardMethod::Masquerade,
        }
    }

    /// ipvsadm's column text.
    pub fn as_ipvsadm(&self) -> &'static str {
        match self {
            ForwardMethod::Masquerade => "Masq",
            ForwardMethod::Local => "Local",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::DirectRoute => "Route",
            ForwardMethod::Bypass => "Bypass",
        }
    }
}

/// What identifies a virtual server: protocol, address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol.as_k8s(),
            SocketAddr::new(self.addr, self.port)
        )
    }
}

/// An IPVS virtual service's settings (everything but its real servers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    pub key: ServiceKey,
    pub scheduler: String,
    /// `SVC_F_*` bits (without `SVC_F_HASHED`).
    pub flags: u32,
    /// Persistence timeout in seconds (0 when not persistent).
    pub timeout: u32,
}

impl VirtualServer {
    /// Whether two descriptions program the same service (the kernel's HASHED bit ignored).
    pub fn same_settings(&self, other: &VirtualServer) -> bool {
        self.key == other.key
            && self.scheduler == other.scheduler
            && (self.flags & !SVC_F_HASHED) == (other.flags & !SVC_F_HASHED)
            && self.timeout == other.timeout
    }
}

/// An IPVS real server (destination) of a virtual server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub forward: ForwardMethod,
    /// Read from the kernel; ignored when programming.
    pub active_conns: u32,
    pub inactive_conns: u32,
}

impl RealServer {
    /// A masquerading real server with the given weight (what kube-proxy programs).
    pub fn masq(addr: IpAddr, port: u16, weight: u32) -> RealServer {
        RealServer {
            addr,
            port,
            weight,
            forward: ForwardMethod::Masquerade,
            active_conns: 0,
            inactive_conns: 0,
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// IPVS connection timeouts (`ipvsadm --set tcp tcpfin udp`); 0 leaves a value unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}
