//! This node's addresses: the IPs on local interfaces, the Node object's IPs, and which of them NodePorts use.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube_proxy_config::NodePortAddresses;
pub use kube_proxy_iptables::NodePortAddresses as NodePortSelection;
use kube_proxy_model::IpFamily;

/// Addresses configured on this host's interfaces (in the current network namespace).
pub fn local_addresses() -> Result<Vec<IpAddr>, nix::Error> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs()? {
        let Some(addr) = ifa.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            out.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            out.push(IpAddr::V6(v6.ip()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The node's IPs as upstream picks them: a specific `--bind-address` wins; otherwise the Node's InternalIPs,
/// then ExternalIPs. Empty when nothing is known.
pub fn node_ips(node: Option<&Node>, bind_address: Option<IpAddr>) -> Vec<IpAddr> {
    if let Some(ip) = bind_address.filter(|ip| !ip.is_unspecified()) {
        return vec![ip];
    }
    let addresses = node
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.addresses.as_ref());
    let Some(addresses) = addresses else {
        return Vec::new();
    };
    for wanted in ["InternalIP", "ExternalIP"] {
        let ips: Vec<IpAddr> = addresses
            .iter()
            .filter(|a| a.type_ == wanted)
            .filter_map(|a| IpAddr::from_str(a.address.trim()).ok())
            .collect();
        if !ips.is_empty() {
            return ips;
        }
    }
    Vec::new()
}

/// Resolves `nodePortAddresses` against this host's addresses for one family.
///
/// No CIDR of this family (or one covering the whole family) selects every local address, as upstream does;
/// `primary` selects the node's IPs of this family.
pub fn resolve_nodeport_addresses(
    spec: &NodePortAddresses,
    family: IpFamily,
    local: &[IpAddr],
    node_ips: &[IpAddr],
) -> NodePortSelection {
    let mut ips: Vec<IpAddr> = match spec {
        NodePortAddresses::All => return NodePortSelection::All,
        NodePortAddresses::Primary => node_ips
            .iter()
            .filter(|ip| family.contains(ip))
            .copied()
            .collect(),
        NodePortAddresses::Cidrs(cidrs) => {
            let mine: Vec<&IpNet> = cidrs
                .iter()
                .filter(|c| family.contains(&c.addr()))
                .collect();
            if mine.is_empty() || mine.iter().any(|c| c.prefix_len() == 0) {
                return NodePortSelection::All;
            }
            local
                .iter()
                .filter(|ip| family.contains(ip) && mine.iter().any(|c| c.contains(*ip)))
                .copied()
                .collect()
        }
    };
    ips.sort();
    ips.dedup();
    NodePortSelection::Ips(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn node(addrs: &[(&str, &str)]) -> Node {
        let addrs: Vec<serde_json::Value> = addrs
            .iter()
            .map(|(t, a)| serde_json::json!({"type": t, "address": a}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"}, "status": {"addresses": addrs}
        }))
        .unwrap()
    }

    #[test]
    fn node_ip_preference() {
        let n = node(&[
            ("Hostname", "n"),
            ("ExternalIP", "1.2.3.4"),
            ("InternalIP", "10.0.0.5"),
        ]);
        assert_eq!(node_ips(Some(&n), None), vec![ip("10.0.0.5")]);
        let n = node(&[("ExternalIP", "1.2.3.4")]);
        assert_eq!(node_ips(Some(&n), None), vec![ip("1.2.3.4")]);
        assert_eq!(
            node_ips(Some(&n), Some(ip("10.9.9.9"))),
            vec![ip("10.9.9.9")]
        );
        assert_eq!(node_ips(Some(&n), Some(ip("0.0.0.0"))), vec![ip("1.2.3.4")]);
        assert!(node_ips(None, None).is_empty());
    }

    #[test]
    fn nodeport_address_resolution() {
        let local = [
            ip("127.0.0.1"),
            ip("10.0.0.5"),
            ip("192.168.1.5"),
            ip("fd00::5"),
        ];
        let nodes = [ip("10.0.0.5"), ip("fd00::5")];
        let cidrs =
            |v: &[&str]| NodePortAddresses::Cidrs(v.iter().map(|x| x.parse().unwrap()).collect());
        let r = |spec: &NodePortAddresses, f| resolve_nodeport_addresses(spec, f, &local, &nodes);
        assert_eq!(
            r(&NodePortAddresses::All, IpFamily::V4),
            NodePortSelection::All
        );
        assert_eq!(
            r(&cidrs(&["0.0.0.0/0"]), IpFamily::V4),
            NodePortSelection::All
        );
        assert_eq!(
            r(&cidrs(&["192.168.0.0/16"]), IpFamily::V4),
            NodePortSelection::Ips(vec![ip("192.168.1.5")])
        );
        assert_eq!(
            r(&cidrs(&["192.168.0.0/16"]), IpFamily::V6),
            NodePortSelection::All
        );
        assert_eq!(
            r(&cidrs(&["127.0.0.0/8", "10.0.0.0/8"]), IpFamily::V4),
            NodePortSelection::Ips(vec![ip("10.0.0.5"), ip("127.0.0.1")])
        );
        assert_eq!(
            r(&NodePortAddresses::Primary, IpFamily::V4),
            NodePortSelection::Ips(vec![ip("10.0.0.5")])
        );
        assert_eq!(
            r(&NodePortAddresses::Primary, IpFamily::V6),
            NodePortSelection::Ips(vec![ip("fd00::5")])
        );
    }

    #[test]
    fn local_addresses_include_loopback() {
        let addrs = local_addresses().unwrap();
        assert!(addrs.contains(&ip("127.0.0.1")), "{addrs:?}");
    }
}
