//! UDP conntrack entries left pointing at a listener that no longer exists: behind REDIRECT/DNAT, a UDP client
//! keeps its translated flow (to the old listener's port) until conntrack forgets it, so after a restart or a
//! re-opened portal its datagrams would go nowhere. Pure selection here; the caller deletes through
//! [`kube_proxy_conntrack::ConntrackOps`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use kube_proxy_conntrack::{Flow, IPPROTO_UDP};
use kube_proxy_model::Protocol;
use kube_proxy_userspace::Portal;

/// UDP portals as `(virtual address, port) → listener`.
pub type UdpPortals = BTreeMap<(IpAddr, u16), SocketAddr>;

/// The UDP portals among `portals`.
pub fn udp_portals(portals: &[Portal]) -> UdpPortals {
    portals
        .iter()
        .filter(|p| p.key.protocol == Protocol::Udp)
        .map(|p| ((p.key.vip, p.key.port), p.listen))
        .collect()
}

fn lookup(portals: &UdpPortals, dst: IpAddr, port: u16) -> Option<&SocketAddr> {
    let any = match dst {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    portals
        .get(&(dst, port))
        .or_else(|| portals.get(&(any, port)))
}

/// Translated UDP flows towards a portal whose listener is not the one they were translated to, and towards
/// portals of `previous` that are gone. Untranslated flows (bind-VIPs addressing, or not ours) are kept.
pub fn stale_udp_flows(flows: &[Flow], current: &UdpPortals, previous: &UdpPortals) -> Vec<Flow> {
    flows
        .iter()
        .filter(|f| f.protocol == IPPROTO_UDP)
        .filter(|f| f.reply.src != f.original.dst || f.reply.src_port != f.original.dst_port)
        .filter(|f| {
            let (dst, port) = (f.original.dst, f.original.dst_port);
            match lookup(current, dst, port) {
                Some(listen) => f.reply.src_port != listen.port(),
                None => lookup(previous, dst, port).is_some(),
            }
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_conntrack::FlowTuple;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A flow from a client to `vip:port`, translated to `to`.
    fn flow(vip: &str, port: u16, to: &str) -> Flow {
        let to: SocketAddr = to.parse().unwrap();
        Flow::udp(
            FlowTuple::new(ip("10.244.1.10"), 5353, ip(vip), port),
            FlowTuple::new(to.ip(), to.port(), ip("10.244.1.10"), 5353),
        )
    }

    fn portals(list: &[(&str, u16, &str)]) -> UdpPortals {
        list.iter()
            .map(|(vip, port, listen)| ((ip(vip), *port), listen.parse().unwrap()))
            .collect()
    }

    #[test]
    fn flows_to_old_listeners_and_gone_portals_are_stale() {
        let current = portals(&[
            ("10.96.0.53", 53, "10.100.0.1:40000"),
            ("0.0.0.0", 30053, "10.100.0.1:40001"),
        ]);
        let previous = portals(&[("10.96.0.54", 53, "10.100.0.1:41000")]);
        let live = flow("10.96.0.53", 53, "10.100.0.1:40000");
        let old_listener = flow("10.96.0.53", 53, "10.100.0.1:39999");
        let node_port_old = flow("10.100.0.1", 30053, "10.100.0.1:39998");
        let node_port_live = flow("10.100.0.1", 30053, "10.100.0.1:40001");
        let gone = flow("10.96.0.54", 53, "10.100.0.1:41000");
        let untranslated = flow("10.96.0.53", 53, "10.96.0.53:53");
        let unrelated = flow("10.96.0.99", 53, "10.244.2.10:8080");
        let all = [
            live,
            old_listener,
            node_port_old,
            node_port_live,
            gone,
            untranslated,
            unrelated,
        ];
        assert_eq!(
            stale_udp_flows(&all, &current, &previous),
            vec![old_listener, node_port_old, gone]
        );
    }
}
