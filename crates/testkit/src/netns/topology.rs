//! A small dual-stack cluster made of namespaces: an external client, two nodes on a shared LAN (a bridge inside
//! a dedicated `lan` namespace), and pods connected to their node by routed veths (no bridge on the nodes, so
//! pod traffic is always routed through the node's netfilter hooks, as with ptp CNI plugins).
//!
//! Addressing (test-private ranges, only ever configured inside the namespaces):
//!
//! | what | IPv4 | IPv6 |
//! |---|---|---|
//! | LAN | 10.100.0.0/24 | fd00:100::/64 |
//! | node1 / node2 / client (`eth0`) | .1 / .2 / .100 | ::1 / ::2 / ::100 |
//! | pod CIDR node1 / node2 | 10.244.1.0/24 / 10.244.2.0/24 | fd00:10:244:1::/64 / fd00:10:244:2::/64 |
//! | pod-a, pod-b (node1); pod-c (node2) | 10.244.1.10, .11; 10.244.2.10 | fd00:10:244:1::10, ::11; fd00:10:244:2::10 |
//! | pod gateway (on every node-side veth) | 10.244.N.1/32 | fd00:10:244:N::1/128 |
//!
//! Node-side pod interfaces are named `veth-<pod>` (so `--pod-interface-name-prefix=veth` matches them; the LAN
//! interface is `eth0`). Nodes route each other's pod CIDR over the LAN. The client reaches node IPs directly,
//! and reaches the prefixes in [`TopologyOpts::vip_routes`] via node1.

use std::net::IpAddr;

use super::link::{add_addr, add_route, attach_to_bridge, bridge, veth};
use super::{Netns, Result};

/// An IP family of the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

/// Options of [`ClusterTopology::build`].
#[derive(Clone, Debug)]
pub struct TopologyOpts {
    /// Configure IPv4 addresses and routes.
    pub ipv4: bool,
    /// Configure IPv6 addresses and routes.
    pub ipv6: bool,
    /// Prefixes (e.g. `192.168.100.0/24`, `fd00:100:1::/64`) the client routes via node1: load-balancer IPs and
    /// externalIPs used by tests.
    pub vip_routes: Vec<String>,
    /// Also give the client routes to each node's pod CIDR via that node.
    pub client_routes_to_pods: bool,
}

impl Default for TopologyOpts {
    /// Dual-stack, no VIP routes, no client routes to pods.
    fn default() -> TopologyOpts {
        TopologyOpts {
            ipv4: true,
            ipv6: true,
            vip_routes: Vec::new(),
            client_routes_to_pods: false,
        }
    }
}

/// A pod: its namespace, the node it runs on and its addresses.
#[derive(Debug)]
pub struct Pod {
    pub name: String,
    /// 1 or 2.
    pub node: u8,
    pub ns: Netns,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    /// Name of the node-side veth (`veth-<pod>`).
    pub host_if: String,
}

impl Pod {
    /// The pod's address of `family`. Panics when that family is not configured.
    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
        .unwrap_or_else(|| panic!("{} has no {family:?} address", self.name))
    }
}

/// The namespaces of a two-node cluster; everything is removed on drop.
#[derive(Debug)]
pub struct ClusterTopology {
    pub opts: TopologyOpts,
    /// The external client (on the LAN).
    pub client: Netns,
    /// Node 1: runs the proxy under test.
    pub node1: Netns,
    /// Node 2: a remote node.
    pub node2: Netns,
    /// pod-a and pod-b on node1, pod-c on node2.
    pub pods: Vec<Pod>,
    /// Holds the LAN bridge `br0`.
    pub lan: Netns,
}

const PODS: [(&str, u8, u8); 3] = [("pod-a", 1, 10), ("pod-b", 1, 11), ("pod-c", 2, 10)];

fn lan_ip(host: u8, family: Family) -> IpAddr {
    match family {
        Family::V4 => format!("10.100.0.{host}"),
        Family::V6 => format!("fd00:100::{host:x}"),
    }
    .parse()
    .expect("valid address")
}

fn pod_ip(node: u8, host: u8, family: Family) -> IpAddr {
    match family {
        Family::V4 => format!("10.244.{node}.{host}"),
        Family::V6 => format!("fd00:10:244:{node}::{host:x}"),
    }
    .parse()
    .expect("valid address")
}

/// Pod CIDR of node `node` (1 or 2).
pub fn pod_cidr(node: u8, family: Family) -> String {
    match family {
        Family::V4 => format!("10.244.{node}.0/24"),
        Family::V6 => format!("fd00:10:244:{node}::/64"),
    }
}

impl ClusterTopology {
    /// Builds the namespaces, links, addresses and routes.
    pub fn build(opts: TopologyOpts) -> Result<ClusterTopology> {
        let families: Vec<Family> = [(opts.ipv4, Family::V4), (opts.ipv6, Family::V6)]
            .into_iter()
            .filter(|f| f.0)
            .map(|f| f.1)
            .collect();
        let lan = Netns::new("lan")?;
        let client = Netns::new("client")?;
        let node1 = Netns::new("node1")?;
        let node2 = Netns::new("node2")?;
        bridge(&lan, "br0")?;
        for (ns, host, port) in [
            (&client, 100u8, "lan-client"),
            (&node1, 1, "lan-node1"),
            (&node2, 2, "lan-node2"),
        ] {
            veth(ns, "eth0", &lan, port)?;
            attach_to_bridge(&lan, port, "br0")?;
            for &f in &families {
                let len = if f == Family::V4 { 24 } else { 64 };
                add_addr(ns, "eth0", &format!("{}/{len}", lan_ip(host, f)))?;
            }
        }
        node1.enable_forwarding()?;
        node2.enable_forwarding()?;

        let mut pods = Vec::new();
        for (name, node_no, host) in PODS {
            let node = if node_no == 1 { &node1 } else { &node2 };
            let ns = Netns::new(name)?;
            let host_if = format!("veth-{name}");
            veth(node, &host_if, &ns, "eth0")?;
            let mut pod = Pod {
                name: name.to_string(),
                node: node_no,
                ns,
                ipv4: None,
                ipv6: None,
                host_if,
            };
            for &f in &families {
                let (gw, ip, len) = (
                    pod_ip(node_no, 1, f),
                    pod_ip(node_no, host, f),
                    if f == Family::V4 { 32 } else { 128 },
                );
                add_addr(node, &pod.host_if, &format!("{gw}/{len}"))?;
                add_route(node, &format!("{ip}/{len}"), None, Some(&pod.host_if))?;
                add_addr(&pod.ns, "eth0", &format!("{ip}/{len}"))?;
                add_route(&pod.ns, &gw.to_string(), None, Some("eth0"))?;
                add_route(&pod.ns, "default", Some(&gw.to_string()), Some("eth0"))?;
                match f {
                    Family::V4 => pod.ipv4 = Some(ip),
                    Family::V6 => pod.ipv6 = Some(ip),
                }
            }
            pods.push(pod);
        }

        for &f in &families {
            add_route(
                &node1,
                &pod_cidr(2, f),
                Some(&lan_ip(2, f).to_string()),
                Some("eth0"),
            )?;
            add_route(
                &node2,
                &pod_cidr(1, f),
                Some(&lan_ip(1, f).to_string()),
                Some("eth0"),
            )?;
            if opts.client_routes_to_pods {
                add_route(
                    &client,
                    &pod_cidr(1, f),
                    Some(&lan_ip(1, f).to_string()),
                    Some("eth0"),
                )?;
                add_route(
                    &client,
                    &pod_cidr(2, f),
                    Some(&lan_ip(2, f).to_string()),
                    Some("eth0"),
                )?;
            }
        }
        for prefix in &opts.vip_routes {
            let f = if prefix.contains(':') {
                Family::V6
            } else {
                Family::V4
            };
            add_route(
                &client,
                prefix,
                Some(&lan_ip(1, f).to_string()),
                Some("eth0"),
            )?;
        }
        Ok(ClusterTopology {
            opts,
            client,
            node1,
            node2,
            pods,
            lan,
        })
    }

    /// The LAN address of node `n` (1 or 2).
    pub fn node_ip(&self, n: u8, family: Family) -> IpAddr {
        lan_ip(n, family)
    }

    /// The client's LAN address.
    pub fn client_ip(&self, family: Family) -> IpAddr {
        lan_ip(100, family)
    }

    /// The namespace of node `n` (1 or 2).
    pub fn node(&self, n: u8) -> &Netns {
        if n == 1 {
            &self.node1
        } else {
            &self.node2
        }
    }

    /// A pod by name (`pod-a`, `pod-b`, `pod-c`). Panics on an unknown name.
    pub fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }

    /// Names of every namespace of the topology.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.lan, &self.client, &self.node1, &self.node2]
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        out.extend(self.pods.iter().map(|p| p.ns.name().to_string()));
        out
    }
}
