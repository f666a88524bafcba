//! IPVS mode: the rendered plan (virtual servers, ipsets, helper iptables rules and the jumps into them), or
//! the kernel's: virtual servers over generic netlink, `ipset save`, `iptables-save`.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::Context;
use kube_proxy_iptables::Table;
use kube_proxy_ipvs::rules::{jump_rule, JUMPS};
use kube_proxy_ipvs::{GenlIpvs, Ipvs, IpvsPlan, SVC_F_PERSISTENT};
use kube_proxy_trace::ipvs::{trace_ipvs, IpvsReal, IpvsService, IpvsTable};
use kube_proxy_trace::{Ruleset, Trace, TraceOptions};

use super::{save, Ctx};
use crate::setup::ipvs_config;

/// The tracer's input: helper rules, the IPVS table and the ipsets' contents.
pub(crate) struct IpvsInput {
    pub rules: Ruleset,
    pub table: IpvsTable,
    pub ipsets: BTreeMap<String, Vec<String>>,
}

pub(super) fn trace(ctx: &Ctx) -> anyhow::Result<Trace> {
    let (input, extra) = match ctx.manifests()? {
        Some(m) => {
            let icfg = ipvs_config(&ctx.cfg, &m.rcfg, ctx.family, &ctx.local)?;
            let plan = kube_proxy_ipvs::render(&m.state, &icfg);
            let mut extra = m.node_ips.clone();
            extra.extend(plan.bound_addresses.iter().copied());
            (from_plan(&plan)?, extra)
        }
        None => (live(ctx)?, Vec::new()),
    };
    let opts = options(ctx.options(&extra), input.ipsets);
    Ok(trace_ipvs(&input.rules, &input.table, &ctx.packet, &opts))
}

fn options(mut opts: TraceOptions, ipsets: BTreeMap<String, Vec<String>>) -> TraceOptions {
    // The rules carry IPVS mode's own jumps (iptables mode's are not added).
    opts.ensure_kube_proxy_jumps = false;
    opts.ipsets = ipsets;
    opts
}

/// The rendered plan as the tracer's input; the jumps from the built-in chains are added as the applier
/// inserts them.
pub(crate) fn from_plan(plan: &IpvsPlan) -> anyhow::Result<IpvsInput> {
    let mut text = plan.iptables.clone();
    for table in ["filter", "nat"] {
        text.push_str(&format!("*{table}\n"));
        for j in JUMPS.iter().filter(|j| j.0 == table) {
            text.push_str(&format!("-I {} 1 {}\n", j.1, jump_rule(j)));
        }
        text.push_str("COMMIT\n");
    }
    let services = plan
        .services
        .values()
        .map(|d| IpvsService {
            protocol: d.vs.key.protocol,
            addr: d.vs.key.addr,
            port: d.vs.key.port,
            scheduler: d.vs.scheduler.clone(),
            persistence_seconds: (d.vs.flags & SVC_F_PERSISTENT != 0).then_some(d.vs.timeout),
            reals: d
                .reals
                .iter()
                .map(|((addr, port), weight)| IpvsReal {
                    addr: *addr,
                    port: *port,
                    weight: *weight,
                })
                .collect(),
        })
        .collect();
    let ipsets = plan
        .ipsets
        .entries
        .iter()
        .map(|(set, entries)| {
            (
                set.name(plan.ipsets.family),
                entries.iter().cloned().collect(),
            )
        })
        .collect();
    Ok(IpvsInput {
        rules: Ruleset::parse(&text)?,
        table: IpvsTable { services },
        ipsets,
    })
}

/// What is programmed on this node.
fn live(ctx: &Ctx) -> anyhow::Result<IpvsInput> {
    let ipvs = GenlIpvs::new().context("opening the IPVS generic netlink family")?;
    let mut services = Vec::new();
    for vs in ipvs.services()? {
        if !ctx.family.contains(&vs.key.addr) {
            continue;
        }
        let reals = ipvs
            .real_servers(&vs.key)?
            .into_iter()
            .map(|r| IpvsReal {
                addr: r.addr,
                port: r.port,
                weight: r.weight,
            })
            .collect();
        services.push(IpvsService {
            protocol: vs.key.protocol,
            addr: vs.key.addr,
            port: vs.key.port,
            scheduler: vs.scheduler.clone(),
            persistence_seconds: (vs.flags & SVC_F_PERSISTENT != 0).then_some(vs.timeout),
            reals,
        });
    }
    let out = Command::new("ipset")
        .arg("save")
        .output()
        .context("running ipset save")?;
    if !out.status.success() {
        anyhow::bail!(
            "ipset save: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let rules = Ruleset::parse(&save(ctx, &[Table::Nat, Table::Filter])?)?;
    Ok(IpvsInput {
        rules,
        table: IpvsTable { services },
        ipsets: parse_ipset_save(&String::from_utf8_lossy(&out.stdout)),
    })
}

/// `add NAME ENTRY [options]` lines of `ipset save`, by set (sets without entries are listed empty).
pub(crate) fn parse_ipset_save(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("create"), Some(name), _) => {
                out.entry(name.to_string()).or_default();
            }
            (Some("add"), Some(name), Some(entry)) => {
                out.entry(name.to_string())
                    .or_default()
                    .push(entry.to_string());
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_ipvs::{IpvsConfig, LocalDetector};
    use kube_proxy_model::fixtures::{ep, finish, ip, name, svc};
    use kube_proxy_model::{IpFamily, Protocol, ProxyState, ServicePortState};
    use kube_proxy_trace::{Outcome, Packet, Verdict};

    const NODE_IP: &str = "192.168.0.2";

    fn state(svcs: Vec<ServicePortState>) -> ProxyState {
        kube_proxy_model::fixtures::state(IpFamily::V4, svcs.into_iter().map(finish).collect())
    }

    /// Traces a TCP packet through the IPVS plan of `st`, as the binary does from manifests.
    fn trace(st: &ProxyState, pkt: Packet) -> Trace {
        let mut cfg = IpvsConfig::new(IpFamily::V4);
        cfg.node_port_ips = vec![ip(NODE_IP)];
        cfg.local_detector = LocalDetector::Cidrs(vec!["10.0.0.0/16".parse().unwrap()]);
        let plan = kube_proxy_ipvs::render(st, &cfg);
        let input = from_plan(&plan).unwrap();
        let mut local = vec![ip(NODE_IP)];
        local.extend(plan.bound_addresses.iter().copied());
        let opts = options(TraceOptions::with_local_addrs(local), input.ipsets);
        let t = trace_ipvs(&input.rules, &input.table, &pkt, &opts);
        let sum: f64 = t.outcomes.iter().map(|o| o.probability).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{}", t.render_text());
        assert!(t.unsupported.is_empty(), "{:?}", t.unsupported);
        t
    }

    fn from_pod(src: &str, dst: &str, port: u16) -> Packet {
        Packet::inbound(ip(src), ip(dst), port, Protocol::Tcp).via("cni0")
    }

    fn from_outside(dst: &str, port: u16) -> Packet {
        Packet::inbound(ip("203.0.113.9"), ip(dst), port, Protocol::Tcp)
    }

    fn dnat(ip_: &str) -> Verdict {
        Verdict::Dnat {
            ip: ip(ip_),
            port: 8080,
        }
    }

    fn only(t: &Trace) -> &Outcome {
        assert_eq!(t.outcomes.len(), 1, "{}", t.render_text());
        &t.outcomes[0]
    }

    fn web() -> ServicePortState {
        let mut s = svc(name("ns1", "web", "http"), "172.30.0.10", 80);
        s.endpoints = vec![
            ep("10.0.1.1", 8080, false),
            ep("10.0.2.1", 8080, false),
            ep("10.0.3.1", 8080, true),
        ];
        s
    }

    #[test]
    fn cluster_ip_is_scheduled_over_the_real_servers_and_hairpin_is_masqueraded() {
        let t = trace(&state(vec![web()]), from_pod("10.0.3.1", "172.30.0.10", 80));
        assert_eq!(t.outcomes.len(), 3, "{}", t.render_text());
        for o in &t.outcomes {
            assert!((o.probability - 1.0 / 3.0).abs() < 1e-9);
            let vs = o.virtual_server.as_ref().expect("virtual server");
            assert_eq!(vs.service, "TCP 172.30.0.10:80");
            assert_eq!(
                (vs.scheduler.as_str(), vs.weight, vs.total_weight),
                ("rr", 1, 3)
            );
            assert_eq!(o.decided_by.as_ref().unwrap().table, "ipvs");
            assert!(!o.delivered_locally);
            // Only the pod reaching itself is masqueraded, by KUBE-LOOP-BACK.
            let hairpin = o.verdict == dnat("10.0.3.1");
            assert_eq!(o.masquerade.is_some(), hairpin, "{}", t.render_text());
            if let Some(m) = &o.masquerade {
                assert!(m.by.rule.contains("KUBE-LOOP-BACK"), "{m:?}");
            }
        }
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["outcomes"][0]["verdict"]["kind"], "dnat");
        assert_eq!(json["outcomes"][0]["virtual_server"]["scheduler"], "rr");
    }

    #[test]
    fn off_cluster_sources_are_masqueraded_by_the_cluster_ip_set_rule() {
        let t = trace(&state(vec![web()]), from_outside("172.30.0.10", 80));
        for o in &t.outcomes {
            let m = o.masquerade.as_ref().expect("masqueraded");
            assert_eq!(m.decided_by.chain, "KUBE-SERVICES");
            assert!(m.decided_by.rule.contains("KUBE-CLUSTER-IP"), "{m:?}");
        }
    }

    #[test]
    fn without_endpoints_ipvs_rejects_and_a_wrong_port_is_rejected_by_the_filter() {
        let st = state(vec![svc(name("ns1", "empty", ""), "172.30.0.11", 80)]);
        let o = only(&trace(&st, from_pod("10.0.3.7", "172.30.0.11", 80))).clone();
        assert_eq!(o.verdict, Verdict::Reject);
        assert_eq!(o.decided_by.unwrap().table, "ipvs");
        let o = only(&trace(&st, from_pod("10.0.3.7", "172.30.0.11", 81))).clone();
        assert_eq!(o.verdict, Verdict::Reject);
        assert_eq!(o.decided_by.unwrap().chain, "KUBE-IPVS-FILTER");
    }

    #[test]
    fn node_ports_follow_the_external_traffic_policy() {
        let mut np = svc(name("ns1", "np", ""), "172.30.0.12", 80);
        np.node_port = Some(30080);
        np.endpoints = vec![ep("10.0.2.1", 8080, false)];
        let mut local = svc(name("ns1", "np-local", ""), "172.30.0.13", 80);
        local.node_port = Some(30081);
        local.external_policy_local = true;
        local.endpoints = vec![ep("10.0.1.1", 8080, true), ep("10.0.2.1", 8080, false)];
        let mut remote = svc(name("ns1", "np-remote", ""), "172.30.0.14", 80);
        remote.node_port = Some(30082);
        remote.external_policy_local = true;
        remote.endpoints = vec![ep("10.0.2.1", 8080, false)];
        let st = state(vec![np, local, remote]);
        let o = only(&trace(&st, from_outside(NODE_IP, 30080))).clone();
        assert_eq!(o.verdict, dnat("10.0.2.1"));
        assert_eq!(o.masquerade.unwrap().decided_by.chain, "KUBE-NODE-PORT");
        let o = only(&trace(&st, from_outside(NODE_IP, 30081))).clone();
        assert_eq!(o.verdict, dnat("10.0.1.1"));
        assert!(o.masquerade.is_none(), "eTP Local keeps the client address");
        // Upstream's IPVS mode falls back to the cluster endpoints, unmasqueraded.
        let o = only(&trace(&st, from_outside(NODE_IP, 30082))).clone();
        assert_eq!(o.verdict, dnat("10.0.2.1"));
        assert!(o.masquerade.is_none());
    }

    #[test]
    fn load_balancer_source_ranges_drop_other_sources() {
        let mut lb = svc(name("ns1", "lb", ""), "172.30.0.17", 80);
        lb.load_balancer_ips = vec![ip("192.0.2.10")];
        lb.load_balancer_source_ranges = vec!["203.0.113.0/25".parse().unwrap()];
        lb.endpoints = vec![ep("10.0.2.1", 8080, false)];
        let st = state(vec![lb]);
        let o = only(&trace(&st, from_outside("192.0.2.10", 80))).clone();
        assert_eq!(o.verdict, dnat("10.0.2.1"));
        assert!(o.masquerade.is_some());
        let pkt = Packet::inbound(ip("198.51.100.1"), ip("192.0.2.10"), 80, Protocol::Tcp);
        let o = only(&trace(&st, pkt)).clone();
        assert_eq!(o.verdict, Verdict::Drop);
        assert_eq!(o.decided_by.unwrap().chain, "KUBE-SOURCE-RANGES-FIREWALL");
    }

    #[test]
    fn persistence_is_reported_as_affinity() {
        let mut s = web();
        s.session_affinity_timeout = Some(10800);
        let t = trace(&state(vec![s]), from_pod("10.0.3.7", "172.30.0.10", 80));
        for o in &t.outcomes {
            assert_eq!(
                o.virtual_server.as_ref().unwrap().persistence_seconds,
                Some(10800)
            );
            assert_eq!(o.affinity.len(), 1);
            assert_eq!(o.affinity[0].seconds, Some(10800));
        }
        assert!(t.render_text().contains("persistent 10800 s"));
    }

    #[test]
    fn node_traffic_is_scheduled_at_output_and_masqueraded() {
        let pkt = Packet::local(ip(NODE_IP), ip("172.30.0.10"), 80, Protocol::Tcp);
        let t = trace(&state(vec![web()]), pkt);
        assert_eq!(t.outcomes.len(), 3, "{}", t.render_text());
        for o in &t.outcomes {
            assert!(o.virtual_server.is_some());
            assert!(o.masquerade.is_some(), "{}", t.render_text());
        }
    }

    #[test]
    fn ipset_save_is_read_by_set() {
        let text = "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\n\
                    add KUBE-CLUSTER-IP 10.96.0.10,tcp:80\nadd KUBE-CLUSTER-IP 10.96.0.53,udp:53\n\
                    create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\n\
                    create KUBE-EMPTY hash:ip\n";
        let sets = parse_ipset_save(text);
        assert_eq!(
            sets["KUBE-CLUSTER-IP"],
            ["10.96.0.10,tcp:80", "10.96.0.53,udp:53"]
        );
        assert!(sets["KUBE-EMPTY"].is_empty());
        assert_eq!(sets.len(), 3);
    }
}
