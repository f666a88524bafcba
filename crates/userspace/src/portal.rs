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

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_model::ServicePortName;

    fn svc(family: IpFamily, cluster_ip: &str) -> ServicePortState {
        ServicePortState {
            name: ServicePortName {
                namespace: "ns".into(),
                name: "web".into(),
                port: "http".into(),
                protocol: Protocol::Tcp,
            },
            family,
            cluster_ip: cluster_ip.parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
            node_port: Some(30080),
            external_ips: vec!["192.0.2.1".parse().unwrap()],
            load_balancer_ips: vec!["198.51.100.1".parse().unwrap()],
            load_balancer_source_ranges: vec![],
            external_policy_local: false,
            internal_policy_local: false,
            health_check_node_port: None,
            session_affinity_timeout: None,
            endpoints: vec![],
            cluster_endpoints: Default::default(),
            local_endpoints: Default::default(),
            all_reachable_endpoints: Default::default(),
            has_any_endpoints: false,
        }
    }

    #[test]
    fn every_address_of_the_family_gets_a_portal() {
        let config = UserspaceConfig {
            node_port_addresses: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
            ..UserspaceConfig::default()
        };
        let keys: Vec<_> = portal_keys(&svc(IpFamily::V4, "10.96.0.1"), &config)
            .into_iter()
            .map(|k| (k.kind, k.vip.to_string(), k.port))
            .collect();
        assert_eq!(
            keys,
            vec![
                (PortalKind::ClusterIp, "10.96.0.1".into(), 80),
                (PortalKind::ExternalIp, "192.0.2.1".into(), 80),
                (PortalKind::LoadBalancer, "198.51.100.1".into(), 80),
                (PortalKind::NodePort, "10.0.0.5".into(), 30080),
            ]
        );
        // No NodePort addresses configured: no NodePort portals.
        let none = portal_keys(&svc(IpFamily::V4, "10.96.0.1"), &UserspaceConfig::default());
        assert!(none.iter().all(|k| k.kind != PortalKind::NodePort));
    }

    #[test]
    fn listen_address_depends_on_addressing() {
        let key =
            portal_keys(&svc(IpFamily::V4, "10.96.0.1"), &UserspaceConfig::default()).remove(0);
        assert_eq!(
            listen_addr(&key, &Addressing::BindVips),
            ("10.96.0.1:80".parse().unwrap(), true)
        );
        assert_eq!(
            listen_addr(&key, &Addressing::Redirect { listen_ip: None }),
            ("0.0.0.0:0".parse().unwrap(), false)
        );
        let v6_listen = Some("::1".parse().unwrap());
        assert_eq!(
            listen_addr(
                &key,
                &Addressing::Redirect {
                    listen_ip: v6_listen
                }
            ),
            ("0.0.0.0:0".parse().unwrap(), false),
            "a listen address of the other family is not used"
        );
    }
}
