//! The top-level objects that do not depend on Services: table, base chains at upstream's hooks and
//! priorities, the dispatch/check chains with their jump rules, masquerading, and the shared sets and maps.

use std::net::IpAddr;

use crate::config::{NodePortAddresses, RenderConfig};
use crate::names::*;
use crate::plan::*;

/// `dstnat` priority.
const DSTNAT: i32 = -100;
/// `srcnat` priority.
const SRCNAT: i32 = 100;

/// Base chains as upstream declares them: filter chains run before DNAT (dstnat-10), except
/// `filter-output-post-dnat` (dstnat+10).
pub const BASE_CHAINS: [(&str, ChainType, Hook, i32); 8] = [
    (
        "filter-prerouting",
        ChainType::Filter,
        Hook::Prerouting,
        DSTNAT - 10,
    ),
    ("filter-input", ChainType::Filter, Hook::Input, DSTNAT - 10),
    (
        "filter-forward",
        ChainType::Filter,
        Hook::Forward,
        DSTNAT - 10,
    ),
    (
        "filter-output",
        ChainType::Filter,
        Hook::Output,
        DSTNAT - 10,
    ),
    (
        "filter-output-post-dnat",
        ChainType::Filter,
        Hook::Output,
        DSTNAT + 10,
    ),
    ("nat-prerouting", ChainType::Nat, Hook::Prerouting, DSTNAT),
    ("nat-output", ChainType::Nat, Hook::Output, DSTNAT),
    ("nat-postrouting", ChainType::Nat, Hook::Postrouting, SRCNAT),
];

/// (destination chain, source base chain, only for `ct state new`), in upstream's order.
const JUMPS: [(&str, &str, bool); 11] = [
    (NODEPORT_ENDPOINTS_CHECK_CHAIN, "filter-input", true),
    (SERVICE_ENDPOINTS_CHECK_CHAIN, "filter-input", true),
    (SERVICE_ENDPOINTS_CHECK_CHAIN, "filter-forward", true),
    (SERVICE_ENDPOINTS_CHECK_CHAIN, "filter-output", true),
    (FIREWALL_CHECK_CHAIN, "filter-prerouting", true),
    (FIREWALL_CHECK_CHAIN, "filter-output", true),
    (SERVICES_CHAIN, "nat-output", false),
    (SERVICES_CHAIN, "nat-prerouting", false),
    (MASQUERADING_CHAIN, "nat-postrouting", false),
    (CLUSTER_IPS_CHECK_CHAIN, "filter-forward", true),
    (CLUSTER_IPS_CHECK_CHAIN, "filter-output-post-dnat", true),
];

/// Objects of the top level, grouped so the caller can order a transaction (chains and sets before rules,
/// rules before elements).
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub chains: Vec<Chain>,
    pub sets: Vec<Set>,
    pub rules: Vec<Rule>,
    pub elements: Vec<Element>,
}

fn map(name: &str, key: Vec<DataType>, comment: &str) -> Set {
    Set {
        name: name.into(),
        key,
        verdict_map: true,
        data: Vec::new(),
        timeout_secs: None,
        comment: Some(comment.into()),
    }
}

fn set(name: &str, key: DataType, comment: &str) -> Set {
    Set {
        name: name.into(),
        key: vec![key],
        verdict_map: false,
        data: Vec::new(),
        timeout_secs: None,
        comment: Some(comment.into()),
    }
}

fn concat3(family: Family) -> Vec<KeyField> {
    let _ = family;
    vec![
        KeyField::Addr(AddrField::Daddr),
        KeyField::L4Proto,
        KeyField::ThDport,
    ]
}

fn not_localhost(family: Family) -> Match {
    let net = match family {
        Family::Ip => "127.0.0.0/8".parse().expect("static CIDR"),
        Family::Ip6 => "::1/128".parse().expect("static CIDR"),
    };
    Match::Addr {
        field: AddrField::Daddr,
        op: CmpOp::Neq,
        net,
    }
}

/// Renders the top level for `family` and `cfg`.
pub fn render_setup(family: Family, cfg: &RenderConfig) -> Setup {
    let mut s = Setup::default();
    let addr = family.addr_type();
    let triple = vec![addr, DataType::InetProto, DataType::InetService];
    let pair = vec![DataType::InetProto, DataType::InetService];

    for (name, chain_type, hook, priority) in BASE_CHAINS {
        s.chains.push(Chain {
            name: name.into(),
            base: Some(BaseChain {
                chain_type,
                hook,
                priority,
            }),
            comment: None,
        });
    }
    let mut regular: Vec<&str> = Vec::new();
    for (dst, _, _) in JUMPS {
        if !regular.contains(&dst) {
            regular.push(dst);
        }
    }
    regular.push(MARK_MASQ_CHAIN);
    for name in regular {
        s.chains.push(Chain::regular(name));
    }
    s.chains.push(Chain {
        name: REJECT_CHAIN.into(),
        base: None,
        comment: Some("helper for @no-endpoint-services / @no-endpoint-nodeports".into()),
    });

    for (dst, src, ct_new) in JUMPS {
        let mut stmts = Vec::new();
        if ct_new {
            stmts.push(Stmt::Match(Match::CtStateNew));
        }
        stmts.push(Stmt::Verdict(Verdict::Jump(dst.into())));
        s.rules.push(Rule::new(src, stmts));
    }

    let mark = cfg.masquerade_mark();
    s.rules
        .push(Rule::new(MARK_MASQ_CHAIN, vec![Stmt::MarkOr(mark)]));
    // Endpoints chosen through the backends-K maps have no endpoint chain to mark hairpin traffic in; a packet that
    // was DNATed back to its own source is marked here instead (@hairpin holds `P . P` for those endpoints).
    s.sets.push(Set {
        name: HAIRPIN_SET.into(),
        key: vec![addr, addr],
        verdict_map: false,
        data: Vec::new(),
        timeout_secs: None,
        comment: Some("endpoints that may be chosen by their own traffic".into()),
    });
    s.rules.push(Rule::new(
        MASQUERADING_CHAIN,
        vec![
            Stmt::Match(Match::SaddrDaddrInSet(HAIRPIN_SET.into())),
            Stmt::Match(Match::CtStatusDnat),
            Stmt::MarkOr(mark),
        ],
    ));
    s.rules.push(Rule::new(
        MASQUERADING_CHAIN,
        vec![
            Stmt::Match(Match::MarkMaskZero(mark)),
            Stmt::Verdict(Verdict::Return),
        ],
    ));
    s.rules
        .push(Rule::new(MASQUERADING_CHAIN, vec![Stmt::MarkXor(mark)]));
    s.rules.push(Rule::new(
        MASQUERADING_CHAIN,
        vec![Stmt::Masquerade { fully_random: true }],
    ));

    s.sets.push(set(CLUSTER_IPS_SET, addr, "Active ClusterIPs"));
    s.rules.push(
        Rule::new(
            CLUSTER_IPS_CHECK_CHAIN,
            vec![
                Stmt::Match(Match::AddrInSet {
                    field: AddrField::Daddr,
                    set: CLUSTER_IPS_SET.into(),
                }),
                Stmt::Reject,
            ],
        )
        .with_comment("Reject traffic to invalid ports of ClusterIPs"),
    );
    // Upstream writes one rule with an anonymous set of CIDRs; one rule per CIDR behaves the same and
    // creates no kernel set.
    let fam = match family {
        Family::Ip => kube_proxy_model::IpFamily::V4,
        Family::Ip6 => kube_proxy_model::IpFamily::V6,
    };
    for cidr in cfg.service_cidrs.iter().filter(|c| fam.contains(&c.addr())) {
        s.rules.push(
            Rule::new(
                CLUSTER_IPS_CHECK_CHAIN,
                vec![
                    Stmt::Match(Match::Addr {
                        field: AddrField::Daddr,
                        op: CmpOp::Eq,
                        net: cidr.trunc(),
                    }),
                    Stmt::Verdict(Verdict::Drop),
                ],
            )
            .with_comment("Drop traffic to unallocated ClusterIPs"),
        );
    }

    let nodeport_ips: Option<Vec<IpAddr>> = match &cfg.node_port_addresses {
        NodePortAddresses::All => None,
        NodePortAddresses::Ips(ips) => Some(
            ips.iter()
                .filter(|ip| fam.contains(ip) && !ip.is_loopback())
                .copied()
                .collect(),
        ),
    };
    if let Some(ips) = &nodeport_ips {
        s.sets.push(set(
            NODEPORT_IPS_SET,
            addr,
            "IPs that accept NodePort traffic",
        ));
        for ip in ips {
            s.elements.push(Element {
                set: NODEPORT_IPS_SET.into(),
                key: vec![Value::Addr(*ip)],
                verdict: None,
                data: None,
                comment: None,
            });
        }
    }
    let nodeport_dst = |family: Family| -> Vec<Stmt> {
        match &nodeport_ips {
            None => vec![Stmt::Match(not_localhost(family))],
            Some(_) => vec![Stmt::Match(Match::AddrInSet {
                field: AddrField::Daddr,
                set: NODEPORT_IPS_SET.into(),
            })],
        }
    };
    let port_key = vec![KeyField::L4Proto, KeyField::ThDport];

    s.sets.push(map(
        NO_ENDPOINT_SERVICES_MAP,
        triple.clone(),
        "vmap to drop or reject packets to services with no endpoints",
    ));
    s.sets.push(map(
        NO_ENDPOINT_NODEPORTS_MAP,
        pair.clone(),
        "vmap to drop or reject packets to service nodeports with no endpoints",
    ));
    s.rules.push(Rule::new(REJECT_CHAIN, vec![Stmt::Reject]));
    s.rules.push(Rule::new(
        SERVICE_ENDPOINTS_CHECK_CHAIN,
        vec![Stmt::Vmap {
            key: concat3(family),
            map: NO_ENDPOINT_SERVICES_MAP.into(),
        }],
    ));
    let mut np = nodeport_dst(family);
    np.push(Stmt::Vmap {
        key: port_key.clone(),
        map: NO_ENDPOINT_NODEPORTS_MAP.into(),
    });
    s.rules.push(Rule::new(NODEPORT_ENDPOINTS_CHECK_CHAIN, np));

    s.sets.push(map(
        FIREWALL_IPS_MAP,
        triple.clone(),
        "destinations that are subject to LoadBalancerSourceRanges",
    ));
    s.rules.push(Rule::new(
        FIREWALL_CHECK_CHAIN,
        vec![Stmt::Vmap {
            key: concat3(family),
            map: FIREWALL_IPS_MAP.into(),
        }],
    ));

    for k in 0..crate::slots::BACKEND_MAPS {
        s.sets.push(Set {
            name: crate::slots::backends_map(k),
            key: vec![DataType::Slot],
            verdict_map: false,
            data: vec![addr, DataType::InetService],
            timeout_secs: None,
            comment: None,
        });
    }
    s.sets.push(map(
        SERVICE_IPS_MAP,
        triple,
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
    ));
    s.sets
        .push(map(SERVICE_NODEPORTS_MAP, pair, "NodePort traffic"));
    s.rules.push(Rule::new(
        SERVICES_CHAIN,
        vec![Stmt::Vmap {
            key: concat3(family),
            map: SERVICE_IPS_MAP.into(),
        }],
    ));
    let mut np = Vec::new();
    if nodeport_ips.is_none() {
        np.push(Stmt::Match(Match::FibDaddrLocal));
    }
    np.extend(nodeport_dst(family));
    np.push(Stmt::Vmap {
        key: port_key,
        map: SERVICE_NODEPORTS_MAP.into(),
    });
    s.rules.push(Rule::new(SERVICES_CHAIN, np));
    s
}
