//! Upstream IPVS mode's small set of iptables chains, rendered as `iptables-restore --noflush` text, and the
//! jump rules that hook them into the built-in chains. Pure.

use std::fmt::Write;

use kube_proxy_model::IpFamily;

use crate::config::IpvsConfig;
use crate::ipsets::{IpSetName, IpSets};

/// nat chains owned by IPVS mode.
pub const NAT_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-POSTROUTING",
    "KUBE-NODE-PORT",
    "KUBE-LOAD-BALANCER",
    "KUBE-MARK-MASQ",
];
/// filter chains owned by IPVS mode.
pub const FILTER_CHAINS: [&str; 6] = [
    "KUBE-FORWARD",
    "KUBE-NODE-PORT",
    "KUBE-PROXY-FIREWALL",
    "KUBE-SOURCE-RANGES-FIREWALL",
    "KUBE-IPVS-FILTER",
    "KUBE-IPVS-OUT-FILTER",
];

/// A jump from a built-in chain: (table, from, to, comment).
pub type Jump = (&'static str, &'static str, &'static str, &'static str);

/// The jumps IPVS mode installs (each inserted at position 1 when missing).
pub const JUMPS: [Jump; 9] = [
    (
        "nat",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ),
    (
        "nat",
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ),
    (
        "nat",
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "kubernetes postrouting rules",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
    ),
    (
        "filter",
        "INPUT",
        "KUBE-NODE-PORT",
        "kubernetes health check rules",
    ),
    (
        "filter",
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        "kube-proxy firewall rules",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        "kube-proxy firewall rules",
    ),
    (
        "filter",
        "INPUT",
        "KUBE-IPVS-FILTER",
        "kubernetes ipvs access filter",
    ),
    (
        "filter",
        "OUTPUT",
        "KUBE-IPVS-OUT-FILTER",
        "kubernetes ipvs access filter",
    ),
];

/// The rule text of a jump as `iptables-save` prints it (without `-A CHAIN`).
pub fn jump_rule(j: &Jump) -> String {
    format!("-m comment --comment \"{}\" -j {}", j.3, j.2)
}

/// (set, table, from chain, target, match type, protocol): rules written only when the set is non-empty.
const SET_RULES: [(IpSetName, &str, &str, &str, &str, &str); 12] = [
    (
        IpSetName::LoopBack,
        "nat",
        "KUBE-POSTROUTING",
        "MASQUERADE",
        "dst,dst,src",
        "",
    ),
    (
        IpSetName::LoadBalancer,
        "nat",
        "KUBE-SERVICES",
        "KUBE-LOAD-BALANCER",
        "dst,dst",
        "",
    ),
    (
        IpSetName::LoadBalancerLocal,
        "nat",
        "KUBE-LOAD-BALANCER",
        "RETURN",
        "dst,dst",
        "",
    ),
    (
        IpSetName::NodePortLocalTcp,
        "nat",
        "KUBE-NODE-PORT",
        "RETURN",
        "dst",
        "tcp",
    ),
    (
        IpSetName::NodePortTcp,
        "nat",
        "KUBE-NODE-PORT",
        "KUBE-MARK-MASQ",
        "dst",
        "tcp",
    ),
    (
        IpSetName::NodePortLocalUdp,
        "nat",
        "KUBE-NODE-PORT",
        "RETURN",
        "dst",
        "udp",
    ),
    (
        IpSetName::NodePortUdp,
        "nat",
        "KUBE-NODE-PORT",
        "KUBE-MARK-MASQ",
        "dst",
        "udp",
    ),
    (
        IpSetName::NodePortLocalSctp,
        "nat",
        "KUBE-NODE-PORT",
        "RETURN",
        "dst,dst",
        "sctp",
    ),
    (
        IpSetName::NodePortSctp,
        "nat",
        "KUBE-NODE-PORT",
        "KUBE-MARK-MASQ",
        "dst,dst",
        "sctp",
    ),
    (
        IpSetName::LoadBalancerFw,
        "filter",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "dst,dst",
        "",
    ),
    (
        IpSetName::LoadBalancerSourceCidr,
        "filter",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "RETURN",
        "dst,dst,src",
        "",
    ),
    (
        IpSetName::LoadBalancerSourceIp,
        "filter",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "RETURN",
        "dst,dst,src",
        "",
    ),
];

fn set_match(sets: &IpSets, set: IpSetName, match_type: &str) -> String {
    format!(
        "-m comment --comment \"{}\" -m set --match-set {} {match_type}",
        set.comment(),
        set.name(sets.family)
    )
}

/// Renders the nat and filter tables' IPVS-mode chains.
pub fn render_iptables(sets: &IpSets, cfg: &IpvsConfig) -> String {
    let f = sets.family;
    let n = |s: IpSetName| s.name(f);
    let mark = cfg.masquerade_mark();
    let mut nat = String::from("*nat\n");
    let mut filter = String::from("*filter\n");
    for c in NAT_CHAINS {
        let _ = writeln!(nat, ":{c} - [0:0]");
    }
    for c in FILTER_CHAINS {
        let _ = writeln!(filter, ":{c} - [0:0]");
    }
    let lo = match f {
        IpFamily::V4 => "127.0.0.0/8",
        IpFamily::V6 => "::1/128",
    };
    let _ = writeln!(nat, "-A KUBE-SERVICES -s {lo} -j RETURN");
    for (set, table, from, to, mt, proto) in SET_RULES {
        if sets.is_empty(set) {
            continue;
        }
        let p = if proto.is_empty() {
            String::new()
        } else {
            format!("-p {proto} ")
        };
        let line = format!("-A {from} {p}{} -j {to}\n", set_match(sets, set, mt));
        if table == "nat" {
            nat.push_str(&line);
        } else {
            filter.push_str(&line);
        }
    }
    if !sets.is_empty(IpSetName::ClusterIp) {
        let base = set_match(sets, IpSetName::ClusterIp, "");
        let base = base.trim_end();
        if cfg.masquerade_all {
            let _ = writeln!(nat, "-A KUBE-SERVICES {base} dst,dst -j KUBE-MARK-MASQ");
        } else if let Some(not_local) = cfg.local_detector.if_not_local(f) {
            let _ = writeln!(
                nat,
                "-A KUBE-SERVICES {base} dst,dst {} -j KUBE-MARK-MASQ",
                not_local.join(" ")
            );
        } else {
            // Node-originated traffic picks a VIP on kube-ipvs0 as its source: masquerade it.
            let _ = writeln!(nat, "-A KUBE-SERVICES {base} src,dst -j KUBE-MARK-MASQ");
        }
    }
    for (set, masq) in [
        (IpSetName::ExternalIp, true),
        (IpSetName::ExternalIpLocal, false),
    ] {
        if sets.is_empty(set) {
            continue;
        }
        let m = set_match(sets, set, "dst,dst");
        if masq {
            let _ = writeln!(nat, "-A KUBE-SERVICES {m} -j KUBE-MARK-MASQ");
        }
        let _ = writeln!(
            nat,
            "-A KUBE-SERVICES {m} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT"
        );
        let _ = writeln!(
            nat,
            "-A KUBE-SERVICES {m} -m addrtype --dst-type LOCAL -j ACCEPT"
        );
    }
    nat.push_str("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT\n");
    nat.push_str("-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ\n");
    filter.push_str("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP\n");
    for set in [IpSetName::ClusterIp, IpSetName::LoadBalancer] {
        if !sets.is_empty(set) {
            let _ = writeln!(
                nat,
                "-A KUBE-SERVICES -m set --match-set {} dst,dst -j ACCEPT",
                n(set)
            );
        }
    }
    let _ = writeln!(
        filter,
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {mark}/{mark} -j ACCEPT"
    );
    filter.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    let _ = writeln!(
        filter,
        "-A KUBE-NODE-PORT {} -j ACCEPT",
        set_match(sets, IpSetName::HealthCheckNodePort, "dst")
    );
    for (set, mt) in [
        (IpSetName::LoadBalancer, "dst,dst"),
        (IpSetName::ClusterIp, "dst,dst"),
        (IpSetName::ExternalIp, "dst,dst"),
        (IpSetName::ExternalIpLocal, "dst,dst"),
        (IpSetName::HealthCheckNodePort, "dst"),
    ] {
        let _ = writeln!(
            filter,
            "-A KUBE-IPVS-FILTER -m set --match-set {} {mt} -j RETURN",
            n(set)
        );
    }
    let _ = writeln!(
        filter,
        "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set {} dst -j REJECT",
        n(IpSetName::IpvsIps)
    );
    let _ = writeln!(
        nat,
        "-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN"
    );
    let _ = writeln!(nat, "-A KUBE-POSTROUTING -j MARK --xor-mark {mark}");
    nat.push_str("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE\n");
    let _ = writeln!(nat, "-A KUBE-MARK-MASQ -j MARK --or-mark {mark}");
    nat.push_str("COMMIT\n");
    filter.push_str("COMMIT\n");
    filter + &nat
}
