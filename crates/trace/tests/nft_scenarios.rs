//! Traces packets through nftables plans rendered by kube-proxy-nftables from model states: the same Service
//! semantics as the iptables scenarios, read chain by chain and map by map.

mod common;

use common::{dnat, ep, finish, ip, name, only, state, svc, three_endpoints, NODE_IP, POD_CIDR};
use kube_proxy_model::{IpFamily, Protocol, ProxyState};
use kube_proxy_nftables::{render_full, LocalDetector, NodePortAddresses, RenderConfig};
use kube_proxy_trace::nft::{trace_nft, NftTable};
use kube_proxy_trace::{Packet, Trace, TraceOptions, Verdict};

fn cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec![POD_CIDR.parse().unwrap()]),
        node_ips: vec![ip(NODE_IP)],
        node_port_addresses: NodePortAddresses::All,
        service_cidrs: vec!["172.30.0.0/16".parse().unwrap()],
        ..RenderConfig::default()
    }
}

fn table(st: &ProxyState) -> NftTable {
    NftTable::from_transaction(&render_full(st, &cfg()))
}

fn opts() -> TraceOptions {
    TraceOptions::with_local_addrs(vec![ip(NODE_IP)])
}

fn check(t: Trace) -> Trace {
    let sum: f64 = t.outcomes.iter().map(|o| o.probability).sum();
    assert!((sum - 1.0).abs() < 1e-6, "sum {sum}: {}", t.render_text());
    assert!(t.unsupported.is_empty(), "{:?}", t.unsupported);
    t
}

fn trace_in(st: &ProxyState, src: &str, dst: &str, port: u16, iface: &str) -> Trace {
    let pkt = Packet::inbound(ip(src), ip(dst), port, Protocol::Tcp).via(iface);
    check(trace_nft(&table(st), &pkt, &opts()))
}

fn trace_local(st: &ProxyState, src: &str, dst: &str, port: u16) -> Trace {
    let pkt = Packet::local(ip(src), ip(dst), port, Protocol::Tcp);
    check(trace_nft(&table(st), &pkt, &opts()))
}

#[test]
fn cluster_ip_goes_through_the_service_map_and_a_backends_slot() {
    let t = trace_in(&three_endpoints(), "10.0.3.7", "172.30.0.10", 80, "cni0");
    assert_eq!(t.outcomes.len(), 3, "{}", t.render_text());
    let mut got: Vec<Verdict> = Vec::new();
    for o in &t.outcomes {
        assert!((o.probability - 1.0 / 3.0).abs() < 1e-9);
        assert!(o.masquerade.is_none(), "pod traffic is not masqueraded");
        got.push(o.verdict.clone());
        let chains: Vec<&str> = o.path.iter().map(|r| r.chain.as_str()).collect();
        // filter-prerouting jumps to firewall-check, whose map has no element for this address.
        assert_eq!(
            chains[..2],
            ["filter-prerouting", "nat-prerouting"],
            "{chains:?}"
        );
        assert_eq!(chains[2], "services");
        assert_eq!(chains[3], "@service-ips");
        assert!(chains[4].starts_with("service-"), "{chains:?}");
        assert!(chains.iter().any(|c| c.starts_with("@backends-")));
        let d = o.decided_by.as_ref().unwrap();
        assert!(d.rule.contains("numgen random mod 3"), "{d:?}");
        assert_eq!(d.table, "ip kube-proxy");
    }
    got.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(
        got,
        vec![
            dnat("10.0.1.1", 8080),
            dnat("10.0.2.1", 8080),
            dnat("10.0.3.1", 8080)
        ]
    );
    assert!(t.render_text().contains("@service-ips"));
}

#[test]
fn off_cluster_source_is_masqueraded_because_of_the_service_chain_rule() {
    let t = trace_in(&three_endpoints(), "192.168.7.7", "172.30.0.10", 80, "eth0");
    for o in &t.outcomes {
        let m = o.masquerade.as_ref().expect("masqueraded");
        assert!(m.decided_by.chain.starts_with("service-"), "{m:?}");
        assert!(m
            .decided_by
            .rule
            .contains("ip saddr != 10.0.0.0/16 jump mark-for-masquerade"));
        assert_eq!(m.by.chain, "masquerading");
    }
}

#[test]
fn hairpin_is_masqueraded_by_the_hairpin_set_element() {
    let t = trace_in(&three_endpoints(), "10.0.3.1", "172.30.0.10", 80, "cni0");
    for o in &t.outcomes {
        let back = o.verdict == dnat("10.0.3.1", 8080);
        assert_eq!(o.masquerade.is_some(), back, "{}", t.render_text());
        if back {
            let d = &o.masquerade.as_ref().unwrap().decided_by;
            assert_eq!(d.chain, "masquerading");
            assert!(d.rule.contains("@hairpin { 10.0.3.1 . 10.0.3.1 }"), "{d:?}");
        }
    }
}

#[test]
fn no_endpoints_rejects_through_the_no_endpoint_map() {
    let st = state(vec![finish(svc(
        name("ns1", "empty", ""),
        "172.30.0.11",
        80,
    ))]);
    for t in [
        trace_in(&st, "10.0.3.7", "172.30.0.11", 80, "cni0"),
        trace_local(&st, NODE_IP, "172.30.0.11", 80),
    ] {
        let o = only(&t);
        assert_eq!(o.verdict, Verdict::Reject, "{}", t.render_text());
        assert_eq!(o.decided_by.as_ref().unwrap().chain, "reject-chain");
        assert!(o.path.iter().any(|r| r.chain == "@no-endpoint-services"
            && r.rule
                .contains("172.30.0.11 . tcp . 80 : goto reject-chain")));
    }
    // Another port of a ClusterIP: rejected by cluster-ips-check; an unallocated ClusterIP: dropped.
    let o = only(&trace_in(&st, "10.0.3.7", "172.30.0.11", 81, "cni0")).clone();
    assert_eq!(o.verdict, Verdict::Reject);
    assert_eq!(o.decided_by.unwrap().chain, "cluster-ips-check");
    let o = only(&trace_in(&st, "10.0.3.7", "172.30.9.9", 80, "cni0")).clone();
    assert_eq!(o.verdict, Verdict::Drop);
    assert!(o.decided_by.unwrap().rule.contains("172.30.0.0/16 drop"));
}

#[test]
fn etp_local_without_local_endpoints_drops_external_traffic() {
    let mut s = svc(name("ns1", "lb", ""), "172.30.0.12", 80);
    s.node_port = Some(30080);
    s.load_balancer_ips = vec![ip("5.6.7.8")];
    s.external_policy_local = true;
    s.endpoints = vec![ep("10.0.1.1", 8080, false)];
    let st = state(vec![finish(s)]);
    for (dst, port) in [(NODE_IP, 30080), ("5.6.7.8", 80)] {
        let t = trace_in(&st, "203.0.113.9", dst, port, "eth0");
        let o = only(&t);
        assert_eq!(
            o.verdict,
            Verdict::Drop,
            "{dst}:{port}\n{}",
            t.render_text()
        );
        let d = o.decided_by.as_ref().unwrap();
        assert!(d.chain.starts_with("@no-endpoint-"), "{d:?}");
        assert!(d.rule.ends_with(": drop"));
    }
    // ClusterIP traffic still reaches the remote endpoint.
    let t = trace_in(&st, "10.0.3.7", "172.30.0.12", 80, "cni0");
    assert_eq!(only(&t).verdict, dnat("10.0.1.1", 8080));
}

#[test]
fn node_port_is_dnatted_and_masqueraded_by_the_external_chain() {
    let mut s = svc(name("ns1", "np", ""), "172.30.0.14", 80);
    s.node_port = Some(30082);
    s.endpoints = vec![ep("10.0.1.1", 8080, false), ep("10.0.2.1", 8080, false)];
    let st = state(vec![finish(s)]);
    let t = trace_in(&st, "203.0.113.9", NODE_IP, 30082, "eth0");
    assert_eq!(t.outcomes.len(), 2, "{}", t.render_text());
    for o in &t.outcomes {
        assert!((o.probability - 0.5).abs() < 1e-9);
        let m = o.masquerade.as_ref().expect("masqueraded");
        assert!(m.decided_by.chain.starts_with("external-"), "{m:?}");
        assert!(o.path.iter().any(|r| r.chain == "@service-nodeports"));
    }
    // Not a node address: no NodePort.
    let t = trace_in(&st, "203.0.113.9", "192.168.0.99", 30082, "eth0");
    assert_eq!(only(&t).verdict, Verdict::Accept);
}

#[test]
fn source_ranges_drop_disallowed_sources_in_the_firewall_chain() {
    let mut s = svc(name("ns1", "fw", ""), "172.30.0.13", 80);
    s.load_balancer_ips = vec![ip("1.2.3.4")];
    s.load_balancer_source_ranges = vec!["203.0.113.0/25".parse().unwrap()];
    s.endpoints = vec![ep("10.0.1.1", 8080, false)];
    let st = state(vec![finish(s)]);
    let t = trace_in(&st, "198.51.100.1", "1.2.3.4", 80, "eth0");
    let o = only(&t);
    assert_eq!(o.verdict, Verdict::Drop, "{}", t.render_text());
    let d = o.decided_by.as_ref().unwrap();
    assert!(d.chain.starts_with("firewall-"), "{d:?}");
    assert_eq!(o.path[0].chain, "filter-prerouting");
    let t = trace_in(&st, "203.0.113.9", "1.2.3.4", 80, "eth0");
    let o = only(&t);
    assert_eq!(o.verdict, dnat("10.0.1.1", 8080), "{}", t.render_text());
    assert!(o.masquerade.is_some());
}

#[test]
fn session_affinity_reports_the_affinity_sets_and_splits_evenly() {
    let mut s = svc(name("ns1", "sticky", ""), "172.30.0.16", 80);
    s.session_affinity_timeout = Some(10800);
    s.endpoints = vec![
        ep("10.0.1.1", 8080, false),
        ep("10.0.2.1", 8080, false),
        ep("10.0.3.1", 8080, false),
    ];
    let st = state(vec![finish(s)]);
    let t = trace_in(&st, "10.0.3.7", "172.30.0.16", 80, "cni0");
    assert_eq!(t.outcomes.len(), 3, "{}", t.render_text());
    for o in &t.outcomes {
        assert!(
            (o.probability - 1.0 / 3.0).abs() < 1e-9,
            "{}",
            t.render_text()
        );
        assert_eq!(o.affinity.len(), 3);
        assert_eq!(o.affinity[0].seconds, Some(10800));
        assert!(o.affinity[0].name.starts_with("affinity-"));
        assert!(o.affinity[0]
            .target
            .as_deref()
            .unwrap()
            .starts_with("endpoint-"));
    }
    // A source already in the second endpoint's set sticks to it.
    let mut o = opts();
    o.recent_seen.insert(t.outcomes[0].affinity[1].name.clone());
    let pkt = Packet::inbound(ip("10.0.3.7"), ip("172.30.0.16"), 80, Protocol::Tcp).via("cni0");
    let t = trace_nft(&table(&st), &pkt, &o);
    assert_eq!(only(&t).verdict, dnat("10.0.2.1", 8080));
}

#[test]
fn node_traffic_to_a_cluster_ip_is_masqueraded_and_dnatted_in_output() {
    let t = trace_local(&three_endpoints(), NODE_IP, "172.30.0.10", 80);
    assert_eq!(t.outcomes.len(), 3);
    for o in &t.outcomes {
        assert!(
            o.path.iter().any(|r| r.chain == "nat-output"),
            "{}",
            t.render_text()
        );
        assert!(o.masquerade.is_some(), "{}", t.render_text());
    }
}

#[test]
fn ipv6_cluster_ip() {
    let mut s = svc(name("ns1", "web6", ""), "fd00:30::10", 80);
    s.family = IpFamily::V6;
    s.endpoints = vec![ep("fd00:1::1", 8080, false)];
    let st = state(vec![finish(s)]);
    let mut c = cfg();
    c.local_detector = LocalDetector::Cidrs(vec!["fd00:1::/64".parse().unwrap()]);
    c.node_ips = vec![ip("fd00::2")];
    c.service_cidrs = vec!["fd00:30::/112".parse().unwrap()];
    let tbl = NftTable::from_transaction(&render_full(&st, &c));
    let pkt = Packet::inbound(ip("fd00:1::7"), ip("fd00:30::10"), 80, Protocol::Tcp).via("cni0");
    let t = check(trace_nft(&tbl, &pkt, &TraceOptions::default()));
    assert_eq!(only(&t).verdict, dnat("fd00:1::1", 8080));
    assert_eq!(only(&t).path[0].table, "ip6 kube-proxy");
}

#[test]
fn json_has_the_iptables_shape() {
    let t = trace_in(&three_endpoints(), "10.0.3.7", "172.30.0.10", 80, "cni0");
    let v = serde_json::to_value(&t).unwrap();
    let o = &v["outcomes"][0];
    assert_eq!(o["verdict"]["kind"], "dnat");
    assert!(o["path"][0]["chain"].is_string());
    assert!(o["masquerade"].is_null());
    assert!(o.get("virtual_server").is_none() && o.get("listener").is_none());
}
