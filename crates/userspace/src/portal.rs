//! Portals: the (virtual address, port, protocol) triples a service port is reachable on, and where the proxy
//! listens for each.
//!
//! Pure functions of a [`ServicePortState`] and the configuration; no sockets here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use kube_proxy_model::{IpFamily, Protocol, ServicePortName, ServicePortState};

use crate::config::{Addressing, UserspaceConfig};

/// Which kind of service address a portal serves; decides internal vs external endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortalKind {
    ClusterIp,
    ExternalIp,
    LoadBalancer,
    NodePort,
}

impl PortalKind {
    /// Traffic to this kind of address uses the external traffic policy.
    pub fn is_external(&self) -> bool {
        !matches!(self, PortalKind::ClusterIp)
    }
}

/// One address a service port is served on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortalKey {
    pub service: ServicePortName,
    pub kind: PortalKind,
    /// The virtual address clients use; for NodePorts a node address (unspecified = every local address).
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

/// A portal with the socket address the proxy actually listens on for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Portal {
    pub key: PortalKey,
    /// Equal to `(vip, port)` in [`Addressing::BindVips`]; an ephemeral port in [`Addressing::Redirect`].
    pub listen: SocketAddr,
}

/// Every portal of one service port, in a deterministic order.
pub fn portal_keys(svc: &ServicePortState, config: &UserspaceConfig) -> Vec<PortalKey> {
    let key = |kind, vip, port| PortalKey {
        service: svc.name.clone(),
        kind,
        vip,
        port,
        protocol: svc.protocol,
    };
    let mut keys = vec![key(PortalKind::ClusterIp, svc.cluster_ip, svc.port)];
    keys.extend(
        svc.external_ips
            .iter()
            .map(|ip| key(PortalKind::ExternalIp, *ip, svc.port)),
    );
    keys.extend(
        svc.load_balancer_ips
            .iter()
            .map(|ip| key(PortalKind::LoadBalancer, *ip, svc.port)),
    );
    if let Some(node_port) = svc.node_port {
        keys.extend(
            config
                .node_port_addresses
                .iter()
                .filter(|ip| svc.family.contains(ip))
                .map(|ip| key(PortalKind::NodePort, *ip, node_port)),
        );
    }
    keys.retain(|k| svc.family.contains(&k.vip));
    keys.sort();
    keys.dedup();
    keys
}

/// The address to bind for a portal and whether it needs IP_FREEBIND.
pub(crate) fn listen_addr(key: &PortalKey, addressing: &Addressing) -> (SocketAddr, bool) {
    match addressing {
        Addressing::BindVips => (
            SocketAddr::new(key.vip, key.port),
            !key.vip.is_unspecified(),
        ),
        Addressing::Redirect { listen_ip } => {
            let family = IpFamily::of(&key.vip);
            let ip = match listen_ip {
                Some(ip) if family.contains(ip) => *ip,
                _ => unspecified(family),
            };
            (SocketAddr::new(ip, 0), false)
        }
    }
}

fn unspecified(family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}
