//! The ipsets IPVS mode maintains (names, types and comments as upstream's) and their desired entries in
//! `ipset` syntax. The applier programs them over netlink ([`crate::ipset_kernel::sync_ipsets`]);
//! `render` prints them as `ipset restore -exist` text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use kube_proxy_model::IpFamily;

use crate::ipset_wire::{SetSpec, SetType};

/// Every ipset IPVS mode uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpSetName {
    LoopBack,
    ClusterIp,
    ExternalIp,
    ExternalIpLocal,
    LoadBalancer,
    LoadBalancerFw,
    LoadBalancerLocal,
    LoadBalancerSourceIp,
    LoadBalancerSourceCidr,
    NodePortTcp,
    NodePortLocalTcp,
    NodePortUdp,
    NodePortLocalUdp,
    NodePortSctp,
    NodePortLocalSctp,
    HealthCheckNodePort,
    IpvsIps,
}

impl IpSetName {
    pub const ALL: [IpSetName; 17] = [
        IpSetName::LoopBack,
        IpSetName::ClusterIp,
        IpSetName::ExternalIp,
        IpSetName::ExternalIpLocal,
        IpSetName::LoadBalancer,
        IpSetName::LoadBalancerFw,
        IpSetName::LoadBalancerLocal,
        IpSetName::LoadBalancerSourceIp,
        IpSetName::LoadBalancerSourceCidr,
        IpSetName::NodePortTcp,
        IpSetName::NodePortLocalTcp,
        IpSetName::NodePortUdp,
        IpSetName::NodePortLocalUdp,
        IpSetName::NodePortSctp,
        IpSetName::NodePortLocalSctp,
        IpSetName::HealthCheckNodePort,
        IpSetName::IpvsIps,
    ];

    /// The IPv4 name.
    pub fn base_name(&self) -> &'static str {
        match self {
            IpSetName::LoopBack => "KUBE-LOOP-BACK",
            IpSetName::ClusterIp => "KUBE-CLUSTER-IP",
            IpSetName::ExternalIp => "KUBE-EXTERNAL-IP",
            IpSetName::ExternalIpLocal => "KUBE-EXTERNAL-IP-LOCAL",
            IpSetName::LoadBalancer => "KUBE-LOAD-BALANCER",
            IpSetName::LoadBalancerFw => "KUBE-LOAD-BALANCER-FW",
            IpSetName::LoadBalancerLocal => "KUBE-LOAD-BALANCER-LOCAL",
            IpSetName::LoadBalancerSourceIp => "KUBE-LOAD-BALANCER-SOURCE-IP",
            IpSetName::LoadBalancerSourceCidr => "KUBE-LOAD-BALANCER-SOURCE-CIDR",
            IpSetName::NodePortTcp => "KUBE-NODE-PORT-TCP",
            IpSetName::NodePortLocalTcp => "KUBE-NODE-PORT-LOCAL-TCP",
            IpSetName::NodePortUdp => "KUBE-NODE-PORT-UDP",
            IpSetName::NodePortLocalUdp => "KUBE-NODE-PORT-LOCAL-UDP",
            IpSetName::NodePortSctp => "KUBE-NODE-PORT-SCTP-HASH",
            IpSetName::NodePortLocalSctp => "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
            IpSetName::HealthCheckNodePort => "KUBE-HEALTH-CHECK-NODE-PORT",
            IpSetName::IpvsIps => "KUBE-IPVS-IPS",
        }
    }

    /// The name in `family`: IPv6 sets are `KUBE-6-...`, cut to ipset's 31-character limit.
    pub fn name(&self, family: IpFamily) -> String {
        match family {
            IpFamily::V4 => self.base_name().to_string(),
            IpFamily::V6 => {
                let mut n = format!("KUBE-6-{}", &self.base_name()["KUBE-".len()..]);
                n.truncate(31);
                n
            }
        }
    }

    /// The ipset type.
    pub fn kind(&self) -> SetType {
        match self {
            IpSetName::LoopBack | IpSetName::LoadBalancerSourceIp => SetType::HashIpPortIp,
            IpSetName::LoadBalancerSourceCidr => SetType::HashIpPortNet,
            IpSetName::NodePortTcp
            | IpSetName::NodePortLocalTcp
            | IpSetName::NodePortUdp
            | IpSetName::NodePortLocalUdp
            | IpSetName::HealthCheckNodePort => SetType::BitmapPort,
            IpSetName::IpvsIps => SetType::HashIp,
            _ => SetType::HashIpPort,
        }
    }

    /// The ipset type's name (`hash:ip,port`, ...).
    pub fn set_type(&self) -> &'static str {
        self.kind().name()
    }

    /// What to create for this set in `family`.
    pub fn spec(&self, family: IpFamily) -> SetSpec {
        SetSpec {
            name: self.name(family),
            set_type: self.kind(),
            family,
        }
    }

    /// The comment iptables rules matching this set carry.
    pub fn comment(&self) -> &'static str {
        match self {
            IpSetName::LoopBack => {
                "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"
            }
            IpSetName::ClusterIp => "Kubernetes service cluster ip + port for masquerade purpose",
            IpSetName::ExternalIp => {
                "Kubernetes service external ip + port for masquerade and filter purpose"
            }
            IpSetName::ExternalIpLocal => {
                "Kubernetes service external ip + port with externalTrafficPolicy=local"
            }
            IpSetName::LoadBalancer => "Kubernetes service lb portal",
            IpSetName::LoadBalancerFw => {
                "Kubernetes service load balancer ip + port for load balancer with sourceRange"
            }
            IpSetName::LoadBalancerLocal => {
                "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"
            }
            IpSetName::LoadBalancerSourceIp => {
                "Kubernetes service load balancer ip + port + source IP for packet filter purpose"
            }
            IpSetName::LoadBalancerSourceCidr => {
                "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"
            }
            IpSetName::NodePortTcp => "Kubernetes nodeport TCP port for masquerade purpose",
            IpSetName::NodePortLocalTcp => {
                "Kubernetes nodeport TCP port with externalTrafficPolicy=local"
            }
            IpSetName::NodePortUdp => "Kubernetes nodeport UDP port for masquerade purpose",
            IpSetName::NodePortLocalUdp => {
                "Kubernetes nodeport UDP port with externalTrafficPolicy=local"
            }
            IpSetName::NodePortSctp => {
                "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"
            }
            IpSetName::NodePortLocalSctp => {
                "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"
            }
            IpSetName::HealthCheckNodePort => "Kubernetes health check node port",
            IpSetName::IpvsIps => "IPVS service ip",
        }
    }

    fn create_args(&self, family: IpFamily) -> String {
        match self.set_type() {
            "bitmap:port" => "bitmap:port range 0-65535".to_string(),
            t => format!(
                "{t} family {} hashsize 1024 maxelem 65536",
                match family {
                    IpFamily::V4 => "inet",
                    IpFamily::V6 => "inet6",
                }
            ),
        }
    }
}

/// The desired content of every set of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpSets {
    pub family: IpFamily,
    pub entries: BTreeMap<IpSetName, BTreeSet<String>>,
}

impl IpSets {
    /// All sets, empty.
    pub fn new(family: IpFamily) -> IpSets {
        IpSets {
            family,
            entries: IpSetName::ALL
                .into_iter()
                .map(|n| (n, BTreeSet::new()))
                .collect(),
        }
    }

    pub fn add(&mut self, set: IpSetName, entry: String) {
        self.entries.entry(set).or_default().insert(entry);
    }

    pub fn is_empty(&self, set: IpSetName) -> bool {
        self.entries.get(&set).is_none_or(|e| e.is_empty())
    }

    pub fn get(&self, set: IpSetName) -> impl Iterator<Item = &String> {
        self.entries.get(&set).into_iter().flatten()
    }

    /// The sets as `ipset restore -exist` input (for `render`): every set is created if missing and its
    /// content replaced atomically (a temporary set is filled, swapped in, and destroyed).
    pub fn restore_text(&self) -> String {
        let mut out = String::new();
        let tag = match self.family {
            IpFamily::V4 => "4",
            IpFamily::V6 => "6",
        };
        for (i, (set, entries)) in self.entries.iter().enumerate() {
            let name = set.name(self.family);
            let tmp = format!("KUBE-TMP{tag}-{i}");
            let args = set.create_args(self.family);
            let _ = writeln!(out, "create {name} {args}");
            let _ = writeln!(out, "create {tmp} {args}");
            let _ = writeln!(out, "flush {tmp}");
            for e in entries {
                let _ = writeln!(out, "add {tmp} {e}");
            }
            let _ = writeln!(out, "swap {tmp} {name}");
            let _ = writeln!(out, "destroy {tmp}");
        }
        out
    }

    /// A human-readable listing for `render` (set name, type, entries).
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for (set, entries) in &self.entries {
            let _ = writeln!(out, "{} ({})", set.name(self.family), set.set_type());
            for e in entries {
                let _ = writeln!(out, "  {e}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_names_are_prefixed_and_fit_ipset_limit() {
        for s in IpSetName::ALL {
            let n = s.name(IpFamily::V6);
            assert!(n.starts_with("KUBE-6-"), "{n}");
            assert!(n.len() <= 31, "{n}");
        }
        assert_eq!(IpSetName::ClusterIp.name(IpFamily::V6), "KUBE-6-CLUSTER-IP");
    }

    #[test]
    fn restore_text_swaps_filled_temporary_sets() {
        let mut s = IpSets::new(IpFamily::V4);
        s.add(IpSetName::ClusterIp, "10.96.0.10,tcp:80".into());
        let t = s.restore_text();
        let i = IpSetName::ALL
            .iter()
            .position(|n| *n == IpSetName::ClusterIp)
            .unwrap();
        let tmp = format!("KUBE-TMP4-{i}");
        assert!(t.contains(
            "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\n"
        ));
        assert!(t.contains(&format!(
            "add {tmp} 10.96.0.10,tcp:80\nswap {tmp} KUBE-CLUSTER-IP\ndestroy {tmp}\n"
        )));
        assert!(t.contains("create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\n"));
    }
}
