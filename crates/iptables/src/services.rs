//! Rules for one service port: its captures in the top-level chains and its own SVC/SVL/EXT/FW/SEP chains.
//!
//! Mirrors the per-service part of upstream's `syncProxyRules` (k8s 1.33–1.35). Pure: writes lines into
//! a [`ServiceRules`] value. The caller says whether the service's own chains are written or only counted
//! (a partial sync leaves unchanged services' chains alone, yet upstream's rule-count metric counts them).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use kube_proxy_model::{Endpoint, IpFamily, ServicePortState};

use crate::chains::{self, KUBE_EXTERNAL_SERVICES, KUBE_MARK_MASQ, KUBE_NODEPORTS};
use crate::chains::{KUBE_PROXY_FIREWALL, KUBE_SERVICES, NFACCT_LOCALHOST_NODEPORTS};
use crate::config::RenderConfig;

/// Per-render facts shared by every service.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a RenderConfig,
    pub family: IpFamily,
    /// More than 1000 endpoints in total: comments are left out of SVC/SEP rules (upstream's large cluster mode).
    pub large_cluster: bool,
}

/// The rules of a service port's own nat chains: written out (one line each, in one buffer), or only counted.
pub(crate) enum ChainRules {
    Lines { text: String, rules: usize },
    Counted(usize),
}

impl ChainRules {
    fn writing(&self) -> bool {
        matches!(self, ChainRules::Lines { .. })
    }

    /// Adds one rule; `rule` writes it (without the newline) only when rules are written.
    fn push_with(&mut self, rule: impl FnOnce(&mut String) -> std::fmt::Result) {
        match self {
            ChainRules::Lines { text, rules } => {
                rule(text).expect("writing to a String cannot fail");
                text.push('\n');
                *rules += 1;
            }
            ChainRules::Counted(n) => *n += 1,
        }
    }

    fn count(&mut self, rules: usize) {
        if let ChainRules::Counted(n) = self {
            *n += rules;
        }
    }
}

/// The lines one service port contributes.
pub(crate) struct ServiceRules {
    /// Rules in filter (KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL).
    pub filter_rules: Vec<String>,
    /// Rules in nat's top-level chains (KUBE-SERVICES, KUBE-NODEPORTS): always written.
    pub top_nat_rules: Vec<String>,
    /// `:CHAIN - [0:0]` lines of the service's own nat chains.
    pub chain_lines: Vec<String>,
    /// Rules of the service's own nat chains (only counted by partial renders when the service is unchanged).
    pub chain_rules: ChainRules,
    /// Names of the service's own nat chains (when its chains are written).
    pub chains: BTreeSet<String>,
    /// Local policy without local endpoints (internal / external), for upstream's no-local-endpoints gauge.
    pub no_local_internal: bool,
    pub no_local_external: bool,
}

impl ServiceRules {
    fn new(write_chains: bool) -> ServiceRules {
        ServiceRules {
            filter_rules: Vec::new(),
            top_nat_rules: Vec::new(),
            chain_lines: Vec::new(),
            chain_rules: if write_chains {
                ChainRules::Lines {
                    text: String::new(),
                    rules: 0,
                }
            } else {
                ChainRules::Counted(0)
            },
            chains: BTreeSet::new(),
            no_local_internal: false,
            no_local_external: false,
        }
    }

    fn declare(&mut self, chain: &str) {
        if self.chain_rules.writing() {
            self.chain_lines.push(format!(":{chain} - [0:0]"));
            self.chains.insert(chain.to_string());
        }
    }
}

fn q(s: &str) -> String {
    format!("\"{s}\"")
}

/// Renders everything one service port needs; its own chains only when `write_chains` (else they are counted).
pub(crate) fn render_service(
    svc: &ServicePortState,
    ctx: &Ctx<'_>,
    write_chains: bool,
) -> ServiceRules {
    let mut out = ServiceRules::new(write_chains);
    let name = &svc.name;
    let name_str = name.to_string();
    let proto = svc.protocol.as_lower();
    let port = svc.port.to_string();
    let cluster_ip = svc.cluster_ip.to_string();

    let cluster_eps = &svc.cluster_endpoints;
    let local_eps = &svc.local_endpoints;
    // The four chain names share one hash (as `chains::svc_chain` etc. compute it).
    let hash = chains::port_proto_hash(name);
    let svc_chain = format!("{}{hash}", chains::SVC_PREFIX);
    let svl_chain = format!("{}{hash}", chains::SVL_PREFIX);
    let ext_chain = format!("{}{hash}", chains::EXT_PREFIX);
    let fw_chain = format!("{}{hash}", chains::FW_PREFIX);

    let uses_cluster_chain = !cluster_eps.is_empty() && svc.uses_cluster_endpoints();
    let uses_local_chain = !local_eps.is_empty() && svc.uses_local_endpoints();
    let has_endpoints = svc.has_any_endpoints;

    let (internal_chain, has_internal) = if svc.internal_policy_local {
        (&svl_chain, has_endpoints && !local_eps.is_empty())
    } else {
        (&svc_chain, has_endpoints)
    };
    let (external_policy_chain, has_external) = if svc.external_policy_local {
        (&svl_chain, has_endpoints && !local_eps.is_empty())
    } else {
        (&svc_chain, has_endpoints)
    };
    let uses_ext_chain = has_endpoints && svc.externally_accessible();
    let lb_ips: Vec<String> = svc
        .load_balancer_ips
        .iter()
        .map(|i| i.to_string())
        .collect();
    let uses_fw_chain =
        has_endpoints && !lb_ips.is_empty() && !svc.load_balancer_source_ranges.is_empty();
    let lb_chain = if uses_fw_chain { &fw_chain } else { &ext_chain };

    let (int_target, int_comment, ext_target, ext_comment);
    if !has_endpoints {
        int_target = "REJECT";
        int_comment = q(&format!("{name_str} has no endpoints"));
        ext_target = "REJECT";
        ext_comment = int_comment.clone();
    } else {
        int_target = "DROP";
        int_comment = q(&format!("{name_str} has no local endpoints"));
        ext_target = "DROP";
        ext_comment = int_comment.clone();
        out.no_local_internal = !has_internal;
        out.no_local_external = !has_external;
    }

    // ClusterIP capture.
    let cip_comment = q(&format!("{name_str} cluster IP"));
    if has_internal {
        out.top_nat_rules.push(format!("-A {KUBE_SERVICES} -m comment --comment {cip_comment} -m {proto} -p {proto} -d {cluster_ip} --dport {port} -j {internal_chain}"));
    } else {
        out.filter_rules.push(format!("-A {KUBE_SERVICES} -m comment --comment {int_comment} -m {proto} -p {proto} -d {cluster_ip} --dport {port} -j {int_target}"));
    }

    // externalIPs.
    let eip_comment = q(&format!("{name_str} external IP"));
    for eip in &svc.external_ips {
        let eip = eip.to_string();
        if has_endpoints {
            out.top_nat_rules.push(format!("-A {KUBE_SERVICES} -m comment --comment {eip_comment} -m {proto} -p {proto} -d {eip} --dport {port} -j {ext_chain}"));
        }
        if !has_external {
            out.filter_rules.push(format!("-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} -m {proto} -p {proto} -d {eip} --dport {port} -j {ext_target}"));
        }
    }

    // Load-balancer ingress IPs.
    let lb_comment = q(&format!("{name_str} loadbalancer IP"));
    let fw_drop_comment = q(&format!("{name_str} traffic not accepted by {fw_chain}"));
    for lbip in &lb_ips {
        if has_endpoints {
            out.top_nat_rules.push(format!("-A {KUBE_SERVICES} -m comment --comment {lb_comment} -m {proto} -p {proto} -d {lbip} --dport {port} -j {lb_chain}"));
        }
        if uses_fw_chain {
            out.filter_rules.push(format!("-A {KUBE_PROXY_FIREWALL} -m comment --comment {fw_drop_comment} -m {proto} -p {proto} -d {lbip} --dport {port} -j DROP"));
        }
    }
    if !has_external {
        for lbip in &lb_ips {
            out.filter_rules.push(format!("-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} -m {proto} -p {proto} -d {lbip} --dport {port} -j {ext_target}"));
        }
    }

    // NodePort.
    if let Some(np) = svc.node_port {
        let np = np.to_string();
        if has_endpoints {
            if ctx.cfg.localhost_nodeports_effective(ctx.family) && ctx.cfg.nfacct {
                out.top_nat_rules.push(format!("-A {KUBE_NODEPORTS} -m comment --comment {name_str} -m {proto} -p {proto} -d 127.0.0.0/8 --dport {np} -m nfacct --nfacct-name {NFACCT_LOCALHOST_NODEPORTS} -j {ext_chain}"));
            }
            out.top_nat_rules.push(format!("-A {KUBE_NODEPORTS} -m comment --comment {name_str} -m {proto} -p {proto} --dport {np} -j {ext_chain}"));
        }
        if !has_external {
            out.filter_rules.push(format!("-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} -m addrtype --dst-type LOCAL -m {proto} -p {proto} --dport {np} -j {ext_target}"));
        }
    }

    // Health-check NodePort.
    if let Some(hc) = svc.health_check_node_port {
        let hc_comment = q(&format!("{name_str} health check node port"));
        out.filter_rules.push(format!(
            "-A {KUBE_NODEPORTS} -m comment --comment {hc_comment} -m tcp -p tcp --dport {hc} -j ACCEPT"
        ));
    }

    // Internal traffic: masquerade rules at the top of the internal policy chain.
    if has_internal {
        let head = || {
            format!(
                "-A {internal_chain} -m comment --comment {cip_comment} -m {proto} -p {proto} -d {cluster_ip} --dport {port}"
            )
        };
        if ctx.cfg.masquerade_all {
            out.chain_rules
                .push_with(|w| write!(w, "{} -j {KUBE_MARK_MASQ}", head()));
        } else if let Some(not_local) = ctx.cfg.local_detector.if_not_local(ctx.family) {
            out.chain_rules
                .push_with(|w| write!(w, "{} {} -j {KUBE_MARK_MASQ}", head(), not_local.join(" ")));
        }
    }

    // External traffic chain.
    if uses_ext_chain {
        out.declare(&ext_chain);
        if !svc.external_policy_local {
            let c = q(&format!(
                "masquerade traffic for {name_str} external destinations"
            ));
            out.chain_rules.push_with(|w| {
                write!(
                    w,
                    "-A {ext_chain} -m comment --comment {c} -j {KUBE_MARK_MASQ}"
                )
            });
        } else {
            if let Some(local) = ctx.cfg.local_detector.if_local(ctx.family) {
                let c = q(&format!("pod traffic for {name_str} external destinations"));
                let local = local.join(" ");
                out.chain_rules.push_with(|w| {
                    write!(
                        w,
                        "-A {ext_chain} -m comment --comment {c} {local} -j {svc_chain}"
                    )
                });
            }
            let c = q(&format!(
                "masquerade LOCAL traffic for {name_str} external destinations"
            ));
            out.chain_rules.push_with(|w| write!(w, "-A {ext_chain} -m comment --comment {c} -m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}"));
            let c = q(&format!(
                "route LOCAL traffic for {name_str} external destinations"
            ));
            out.chain_rules.push_with(|w| write!(w, "-A {ext_chain} -m comment --comment {c} -m addrtype --src-type LOCAL -j {svc_chain}"));
        }
        if has_external {
            out.chain_rules
                .push_with(|w| write!(w, "-A {ext_chain} -j {external_policy_chain}"));
        }
    }

    // Firewall chain (loadBalancerSourceRanges).
    if uses_fw_chain {
        out.declare(&fw_chain);
        let mut allow_from_node = false;
        for cidr in &svc.load_balancer_source_ranges {
            let cidr = cidr.trunc();
            out.chain_rules.push_with(|w| {
                write!(
                    w,
                    "-A {fw_chain} -m comment --comment {lb_comment} -s {cidr} -j {ext_chain}"
                )
            });
            if ctx.cfg.node_ips.iter().any(|ip| cidr.contains(ip)) {
                allow_from_node = true;
            }
        }
        if allow_from_node {
            for lbip in &lb_ips {
                out.chain_rules.push_with(|w| {
                    write!(
                        w,
                        "-A {fw_chain} -m comment --comment {lb_comment} -s {lbip} -j {ext_chain}"
                    )
                });
            }
        }
        let c = q(&format!(
            "other traffic to {name_str} will be dropped by KUBE-PROXY-FIREWALL"
        ));
        out.chain_rules
            .push_with(|w| write!(w, "-A {fw_chain} -m comment --comment {c}"));
    }

    if uses_cluster_chain {
        out.declare(&svc_chain);
        write_dispatch(&mut out, svc, ctx, &svc_chain, cluster_eps);
    }
    if uses_local_chain {
        out.declare(&svl_chain);
        write_dispatch(&mut out, svc, ctx, &svl_chain, local_eps);
    }

    // Per-endpoint chains: a hairpin and a DNAT rule each.
    if !out.chain_rules.writing() {
        out.chain_rules.count(2 * svc.all_reachable_endpoints.len());
        return out;
    }
    let seps = SepNames::of(svc);
    let comment = if ctx.large_cluster {
        String::new()
    } else {
        format!(" -m comment --comment {name_str}")
    };
    for ep in &svc.all_reachable_endpoints {
        let sep = seps.get(svc, ep);
        out.declare(&sep);
        let ip = ep.ip;
        out.chain_rules
            .push_with(|w| write!(w, "-A {sep}{comment} -s {ip} -j {KUBE_MARK_MASQ}"));
        let recent = if svc.session_affinity_timeout.is_some() {
            format!(" -m recent --name {sep} --set")
        } else {
            String::new()
        };
        let to = ep.addr_string();
        out.chain_rules.push_with(|w| {
            write!(
                w,
                "-A {sep}{comment}{recent} -m {proto} -p {proto} -j DNAT --to-destination {to}"
            )
        });
    }
    out
}

/// The `KUBE-SEP-…` names of one service port's endpoints, each hashed once per render.
struct SepNames(Vec<((std::net::IpAddr, u16), String)>);

impl SepNames {
    fn of(svc: &ServicePortState) -> SepNames {
        let mut v: Vec<_> = svc
            .all_reachable_endpoints
            .iter()
            .map(|ep| ((ep.ip, ep.port), chains::sep_chain(&svc.name, ep)))
            .collect();
        v.sort_unstable_by_key(|a| a.0);
        SepNames(v)
    }

    fn get(&self, svc: &ServicePortState, ep: &Endpoint) -> std::borrow::Cow<'_, str> {
        match self.0.binary_search_by(|(k, _)| k.cmp(&(ep.ip, ep.port))) {
            Ok(i) => std::borrow::Cow::Borrowed(&self.0[i].1),
            Err(_) => std::borrow::Cow::Owned(chains::sep_chain(&svc.name, ep)),
        }
    }
}

/// Upstream's probability string: `1/n` with 10 decimals.
pub fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

fn write_dispatch(
    out: &mut ServiceRules,
    svc: &ServicePortState,
    ctx: &Ctx<'_>,
    chain: &str,
    eps: &[Endpoint],
) {
    if !out.chain_rules.writing() {
        // One rule per endpoint, and one more each with ClientIP affinity.
        let per_endpoint = 1 + usize::from(svc.session_affinity_timeout.is_some());
        out.chain_rules.count(per_endpoint * eps.len());
        return;
    }
    let name_str = svc.name.to_string();
    let seps = SepNames::of(svc);
    let comment = |ep: &Endpoint| {
        if ctx.large_cluster {
            String::new()
        } else {
            format!(
                " -m comment --comment \"{name_str} -> {}\"",
                ep.addr_string()
            )
        }
    };
    if let Some(timeout) = svc.session_affinity_timeout {
        for ep in eps {
            let sep = seps.get(svc, ep);
            let c = comment(ep);
            out.chain_rules.push_with(|w| {
                write!(w, "-A {chain}{c} -m recent --name {sep} --rcheck --seconds {timeout} --reap -j {sep}")
            });
        }
    }
    let n = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        let sep = seps.get(svc, ep);
        let c = comment(ep);
        let statistic = if i + 1 < n {
            format!(
                " -m statistic --mode random --probability {}",
                probability(n - i)
            )
        } else {
            String::new()
        };
        out.chain_rules
            .push_with(|w| write!(w, "-A {chain}{c}{statistic} -j {sep}"));
    }
}
