//! The IPVS dataplane's error type: one variant per step that can fail.

use std::net::IpAddr;

/// Everything that can go wrong while talking to IPVS, the kube-ipvs0 link, ipset or iptables.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error("opening the generic netlink socket: {0}")]
    OpenSocket(#[source] std::io::Error),
    #[error("resolving the IPVS generic netlink family: {0}")]
    ResolveFamily(String),
    #[error("sending a netlink request: {0}")]
    Send(#[source] std::io::Error),
    #[error("receiving a netlink reply: {0}")]
    Receive(#[source] std::io::Error),
    #[error("kernel rejected {op}: {} (errno {errno})", std::io::Error::from_raw_os_error(*errno))]
    Kernel { op: &'static str, errno: i32 },
    #[error("malformed netlink reply: {0}")]
    Decode(String),
    #[error("address family mismatch: {0} does not match the virtual server")]
    FamilyMismatch(IpAddr),
    #[error("ipset: kernel rejected {op}: {} (errno {errno})", crate::ipset_wire::describe_errno(*errno))]
    Ipset { op: String, errno: i32 },
    #[error("bad ipset entry: {0}")]
    BadIpsetEntry(String),
    #[error("{op} on {link}: {detail}")]
    Link {
        op: &'static str,
        link: String,
        detail: String,
    },
    #[error("programming iptables: {0}")]
    Iptables(#[from] kube_proxy_iptables::IptablesError),
    #[error("setting sysctls: {0}")]
    Sysctl(#[source] kube_proxy_iptables::IptablesError),
    #[error("unknown IPVS scheduler {0:?}")]
    UnknownScheduler(String),
}
