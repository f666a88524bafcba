//! Objects of one service port: its chains (`service-`, `local-`, `external-`, `firewall-`, `endpoint-`),
//! its affinity sets, their rules, and its elements in the shared maps.
//!
//! Inside a service this mode departs from upstream's anonymous `numgen ... vmap { ... }` (one kernel set per
//! service), see docs/adr/0001-nftables-layout.md:
//! * without ClientIP affinity, the policy chain holds one rule `dnat to numgen random mod N offset BASE map
//!   @backends-K`; the service port's endpoints fill slots BASE.. of that shared data map and hairpin traffic
//!   is marked by the global `@hairpin` set. No endpoint chains: replacing an endpoint only changes elements.
//! * with ClientIP affinity, upstream's endpoint chains and affinity sets, chosen by a probability cascade
//!   (rule i of n: `numgen random mod (n-i) == 0 goto endpoint-i`, uniform, no set).

use ipnet::IpNet;
use kube_proxy_model::{Endpoint, ServicePortState};

use crate::config::RenderConfig;
use crate::names::*;
use crate::plan::*;
use crate::slots::{backends_map, Selector, Slots};

mod selection;
pub use selection::hairpin_ips;
use selection::{backend_selection, endpoint_selection};

/// Everything one service port contributes to the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRender {
    /// Regular chains owned by this service port.
    pub chains: Vec<String>,
    /// Affinity sets owned by this service port.
    pub sets: Vec<Set>,
    pub rules: Vec<Rule>,
    /// Elements in the shared sets and maps.
    pub elements: Vec<Element>,
}

fn host(ip: std::net::IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn elem(set: &str, key: Vec<Value>, verdict: Option<Verdict>, comment: Option<&str>) -> Element {
    Element {
        set: set.into(),
        key,
        verdict,
        data: None,
        comment: comment.map(str::to_string),
    }
}

/// Renders one service port; `slots` gives its ranges in `backends-K` maps.
pub fn render_service(svc: &ServicePortState, cfg: &RenderConfig, slots: &Slots) -> ServiceRender {
    let mut out = ServiceRender::default();
    let names = ServiceNames::of(&svc.name);
    let proto = svc.protocol;
    // nft limits comments to 128 bytes including the NUL; names are ASCII.
    let mut name_string = svc.name.to_string();
    name_string.truncate(127);
    let comment = Some(name_string.as_str());
    let triple = |ip| vec![Value::Addr(ip), Value::Proto(proto), Value::Port(svc.port)];

    let has_endpoints = svc.has_any_endpoints;
    let uses_cluster_chain = !svc.cluster_endpoints.is_empty() && svc.uses_cluster_endpoints();
    let uses_local_chain = !svc.local_endpoints.is_empty() && svc.uses_local_endpoints();

    let internal_chain = if svc.internal_policy_local {
        &names.local
    } else {
        &names.cluster
    };
    let has_internal =
        has_endpoints && !(svc.internal_policy_local && svc.local_endpoints.is_empty());
    let external_policy_chain = if svc.external_policy_local {
        &names.local
    } else {
        &names.cluster
    };
    let has_external =
        has_endpoints && !(svc.external_policy_local && svc.local_endpoints.is_empty());
    let uses_external_chain = has_endpoints && svc.externally_accessible();
    let uses_fw_chain =
        !svc.load_balancer_ips.is_empty() && !svc.load_balancer_source_ranges.is_empty();

    let (internal_filter, external_filter) = if !has_endpoints {
        (
            Some(Verdict::Goto(REJECT_CHAIN.into())),
            Some(Verdict::Goto(REJECT_CHAIN.into())),
        )
    } else {
        (
            (!has_internal).then_some(Verdict::Drop),
            (!has_external).then_some(Verdict::Drop),
        )
    };

    // Chains, in a stable order: endpoints, policy chains, external, firewall.
    let affinity = svc.session_affinity_timeout;
    let endpoint_chains: Vec<(&Endpoint, String)> = if affinity.is_some() {
        svc.all_reachable_endpoints
            .iter()
            .map(|ep| (ep, endpoint_chain(&svc.name, ep)))
            .collect()
    } else {
        Vec::new()
    };
    for (_, c) in &endpoint_chains {
        out.chains.push(c.clone());
    }
    if uses_cluster_chain {
        out.chains.push(names.cluster.clone());
    }
    if uses_local_chain {
        out.chains.push(names.local.clone());
    }
    if uses_external_chain {
        out.chains.push(names.external.clone());
    }
    if uses_fw_chain {
        out.chains.push(names.firewall.clone());
    }

    // Elements.
    out.elements.push(elem(
        CLUSTER_IPS_SET,
        vec![Value::Addr(svc.cluster_ip)],
        None,
        None,
    ));
    if has_internal {
        out.elements.push(elem(
            SERVICE_IPS_MAP,
            triple(svc.cluster_ip),
            Some(Verdict::Goto(internal_chain.clone())),
            None,
        ));
    } else {
        out.elements.push(elem(
            NO_ENDPOINT_SERVICES_MAP,
            triple(svc.cluster_ip),
            internal_filter.clone(),
            comment,
        ));
    }
    for ip in &svc.external_ips {
        if has_endpoints {
            out.elements.push(elem(
                SERVICE_IPS_MAP,
                triple(*ip),
                Some(Verdict::Goto(names.external.clone())),
                None,
            ));
        }
        if !has_external {
            out.elements.push(elem(
                NO_ENDPOINT_SERVICES_MAP,
                triple(*ip),
                external_filter.clone(),
                comment,
            ));
        }
    }
    for ip in &svc.load_balancer_ips {
        if has_endpoints {
            out.elements.push(elem(
                SERVICE_IPS_MAP,
                triple(*ip),
                Some(Verdict::Goto(names.external.clone())),
                None,
            ));
        }
        if uses_fw_chain {
            out.elements.push(elem(
                FIREWALL_IPS_MAP,
                triple(*ip),
                Some(Verdict::Goto(names.firewall.clone())),
                None,
            ));
        }
    }
    if !has_external {
        for ip in &svc.load_balancer_ips {
            out.elements.push(elem(
                NO_ENDPOINT_SERVICES_MAP,
                triple(*ip),
                external_filter.clone(),
                comment,
            ));
        }
    }
    if let Some(np) = svc.node_port {
        let key = vec![Value::Proto(proto), Value::Port(np)];
        if has_endpoints {
            out.elements.push(elem(
                SERVICE_NODEPORTS_MAP,
                key.clone(),
                Some(Verdict::Goto(names.external.clone())),
                None,
            ));
        }
        if !has_external {
            out.elements.push(elem(
                NO_ENDPOINT_NODEPORTS_MAP,
                key,
                external_filter.clone(),
                comment,
            ));
        }
    }

    // Internal traffic: masquerade (all, or off-cluster sources).
    if has_internal {
        let dst = vec![
            Stmt::Match(Match::Addr {
                field: AddrField::Daddr,
                op: CmpOp::Eq,
                net: host(svc.cluster_ip),
            }),
            Stmt::Match(Match::Dport(proto, svc.port)),
        ];
        let not_local = cfg.local_detector.if_not_local(svc.family);
        if cfg.masquerade_all || not_local.is_some() {
            let mut stmts = dst;
            if !cfg.masquerade_all {
                stmts.extend(not_local.map(Stmt::Match));
            }
            stmts.push(Stmt::Verdict(Verdict::Jump(MARK_MASQ_CHAIN.into())));
            out.rules.push(Rule::new(internal_chain.clone(), stmts));
        }
    }

    // External traffic.
    if uses_external_chain {
        let ext = &names.external;
        if !svc.external_policy_local {
            out.rules.push(Rule::new(
                ext.clone(),
                vec![Stmt::Verdict(Verdict::Jump(MARK_MASQ_CHAIN.into()))],
            ));
        } else {
            if let Some(local) = cfg.local_detector.if_local(svc.family) {
                out.rules.push(
                    Rule::new(
                        ext.clone(),
                        vec![
                            Stmt::Match(local),
                            Stmt::Verdict(Verdict::Goto(names.cluster.clone())),
                        ],
                    )
                    .with_comment("short-circuit pod traffic"),
                );
            }
            out.rules.push(
                Rule::new(
                    ext.clone(),
                    vec![
                        Stmt::Match(Match::FibSaddrLocal),
                        Stmt::Verdict(Verdict::Jump(MARK_MASQ_CHAIN.into())),
                    ],
                )
                .with_comment("masquerade local traffic"),
            );
            out.rules.push(
                Rule::new(
                    ext.clone(),
                    vec![
                        Stmt::Match(Match::FibSaddrLocal),
                        Stmt::Verdict(Verdict::Goto(names.cluster.clone())),
                    ],
                )
                .with_comment("short-circuit local traffic"),
            );
        }
        if has_external {
            out.rules.push(Rule::new(
                ext.clone(),
                vec![Stmt::Verdict(Verdict::Goto(external_policy_chain.clone()))],
            ));
        }
    }

    // loadBalancerSourceRanges: allowed sources return, the rest is dropped (upstream: `saddr != { .. } drop`).
    if uses_fw_chain {
        let mut sources: Vec<IpNet> = svc.load_balancer_source_ranges.clone();
        let node_ip = cfg.node_ips.first();
        if node_ip.is_some_and(|n| sources.iter().any(|c| c.contains(n))) {
            sources.extend(svc.load_balancer_ips.iter().map(|ip| host(*ip)));
        }
        for src in sources {
            out.rules.push(Rule::new(
                names.firewall.clone(),
                vec![
                    Stmt::Match(Match::Addr {
                        field: AddrField::Saddr,
                        op: CmpOp::Eq,
                        net: src.trunc(),
                    }),
                    Stmt::Verdict(Verdict::Return),
                ],
            ));
        }
        out.rules.push(Rule::new(
            names.firewall.clone(),
            vec![Stmt::Verdict(Verdict::Drop)],
        ));
    }

    if let Some(timeout) = affinity {
        for ep in &svc.all_reachable_endpoints {
            out.sets.push(Set {
                name: affinity_set(&svc.name, ep),
                key: vec![crate::plan::Family::of(svc.family).addr_type()],
                verdict_map: false,
                data: Vec::new(),
                timeout_secs: Some(timeout),
                comment: None,
            });
        }
    }

    if affinity.is_none() {
        for (sel, chain, eps) in [
            (Selector::Cluster, &names.cluster, &svc.cluster_endpoints),
            (Selector::Local, &names.local, &svc.local_endpoints),
        ] {
            if let Some((map, base)) = slots.base(&svc.name, sel) {
                backend_selection(&mut out, svc, chain, eps, &backends_map(map), base);
            }
        }
        for ip in hairpin_ips(svc) {
            out.elements.push(elem(
                HAIRPIN_SET,
                vec![Value::Addr(ip), Value::Addr(ip)],
                None,
                None,
            ));
        }
    } else {
        if uses_cluster_chain {
            endpoint_selection(&mut out, svc, &names.cluster, &svc.cluster_endpoints);
        }
        if uses_local_chain {
            endpoint_selection(&mut out, svc, &names.local, &svc.local_endpoints);
        }
    }

    for (ep, chain) in &endpoint_chains {
        out.rules.push(Rule::new(
            chain.clone(),
            vec![
                Stmt::Match(Match::Addr {
                    field: AddrField::Saddr,
                    op: CmpOp::Eq,
                    net: host(ep.ip),
                }),
                Stmt::Verdict(Verdict::Jump(MARK_MASQ_CHAIN.into())),
            ],
        ));
        if affinity.is_some() {
            out.rules.push(Rule::new(
                chain.clone(),
                vec![Stmt::UpdateSaddr {
                    set: affinity_set(&svc.name, ep),
                }],
            ));
        }
        out.rules.push(Rule::new(
            chain.clone(),
            vec![
                Stmt::Match(Match::L4Proto(proto)),
                Stmt::Dnat {
                    addr: ep.ip,
                    port: ep.port,
                },
            ],
        ));
    }
    out
}
