//! Traces packets through rules rendered by kube-proxy-iptables from model states: the verdicts kube-proxy's
//! documentation describes for each kind of Service.

mod common;

use common::*;
use kube_proxy_trace::Verdict;

#[test]
fn cluster_ip_with_three_endpoints_splits_evenly() {
    let t = trace_in(&three_endpoints(), "10.0.3.7", "172.30.0.10", 80, "cni0");
    assert_eq!(t.outcomes.len(), 3, "{}", t.render_text());
    for (o, backend) in t.outcomes.iter().zip(["10.0.1.1", "10.0.2.1", "10.0.3.1"]) {
        assert!(
            (o.probability - 1.0 / 3.0).abs() < 1e-6,
            "{}",
            t.render_text()
        );
        assert_eq!(o.verdict, dnat(backend, 8080));
        assert!(o.masquerade.is_none(), "pod traffic is not masqueraded");
        assert!(!o.delivered_locally);
        let d = o.decided_by.as_ref().unwrap();
        assert_eq!(d.table, "nat");
        assert!(d.chain.starts_with("KUBE-SEP-"));
        // The path goes PREROUTING -> KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP.
        let chains: Vec<&str> = o.path.iter().map(|r| r.chain.as_str()).collect();
        assert_eq!(chains[0], "PREROUTING");
        assert_eq!(chains[1], "KUBE-SERVICES");
        assert!(chains[2].starts_with("KUBE-SVC-"));
    }
    assert!(t.unsupported.is_empty(), "{:?}", t.unsupported);
}

#[test]
fn off_cluster_source_is_masqueraded_because_of_the_svc_rule() {
    let t = trace_in(&three_endpoints(), "192.168.7.7", "172.30.0.10", 80, "eth0");
    assert_eq!(t.outcomes.len(), 3);
    for o in &t.outcomes {
        let m = o.masquerade.as_ref().expect("masqueraded");
        assert!(m.decided_by.chain.starts_with("KUBE-SVC-"), "{:?}", m);
        assert!(m
            .decided_by
            .rule
            .contains("! -s 10.0.0.0/16 -j KUBE-MARK-MASQ"));
        assert_eq!(m.by.chain, "KUBE-POSTROUTING");
    }
}

#[test]
fn hairpin_traffic_is_masqueraded_by_the_sep_rule() {
    let t = trace_in(&three_endpoints(), "10.0.3.1", "172.30.0.10", 80, "cni0");
    let back = t
        .outcomes
        .iter()
        .find(|o| o.verdict == dnat("10.0.3.1", 8080))
        .unwrap();
    let m = back.masquerade.as_ref().expect("hairpin is masqueraded");
    assert!(m.decided_by.chain.starts_with("KUBE-SEP-"));
    assert!(m.decided_by.rule.contains("-s 10.0.3.1 -j KUBE-MARK-MASQ"));
    // The other backends are not masqueraded.
    assert_eq!(
        t.outcomes.iter().filter(|o| o.masquerade.is_some()).count(),
        1
    );
}

#[test]
fn no_endpoints_rejects() {
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
        let d = o.decided_by.as_ref().unwrap();
        assert_eq!(
            (d.table.as_str(), d.chain.as_str()),
            ("filter", "KUBE-SERVICES")
        );
        assert!(d.rule.contains("has no endpoints"));
    }
    // A different port of the same IP is not rejected.
    let t = trace_in(&st, "10.0.3.7", "172.30.0.11", 81, "cni0");
    assert_eq!(only(&t).verdict, Verdict::Accept);
}

fn etp_local_without_local_endpoints() -> kube_proxy_model::ProxyState {
    let mut s = svc(name("ns1", "lb", ""), "172.30.0.12", 80);
    s.node_port = Some(30080);
    s.load_balancer_ips = vec![ip("5.6.7.8")];
    s.external_policy_local = true;
    s.health_check_node_port = Some(30000);
    s.endpoints = vec![ep("10.0.1.1", 8080, false)];
    state(vec![finish(s)])
}

#[test]
fn etp_local_without_local_endpoints_drops_external_traffic() {
    let st = etp_local_without_local_endpoints();
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
        assert_eq!(d.chain, "KUBE-EXTERNAL-SERVICES");
        assert!(d.rule.contains("has no local endpoints"));
    }
    // ClusterIP traffic still reaches the remote endpoint.
    let t = trace_in(&st, "10.0.3.7", "172.30.0.12", 80, "cni0");
    assert_eq!(only(&t).verdict, dnat("10.0.1.1", 8080));
    // Pods on this node going to the LB IP are short-circuited to the cluster endpoints.
    let t = trace_in(&st, "10.0.3.7", "5.6.7.8", 80, "cni0");
    assert_eq!(
        only(&t).verdict,
        dnat("10.0.1.1", 8080),
        "{}",
        t.render_text()
    );
    // The health-check node port is accepted by the filter table.
    let t = trace_in(&st, "203.0.113.9", NODE_IP, 30000, "eth0");
    let o = only(&t);
    assert_eq!(o.verdict, Verdict::Accept);
    assert!(o.delivered_locally);
    assert!(o
        .path
        .iter()
        .any(|r| r.rule.contains("health check node port")));
}

#[test]
fn etp_local_with_a_local_endpoint_keeps_the_source() {
    let mut s = svc(name("ns1", "lb", ""), "172.30.0.12", 80);
    s.node_port = Some(30080);
    s.external_policy_local = true;
    s.endpoints = vec![ep("10.0.1.1", 8080, false), ep("10.0.3.1", 8080, true)];
    let st = state(vec![finish(s)]);
    let t = trace_in(&st, "203.0.113.9", NODE_IP, 30080, "eth0");
    let o = only(&t);
    assert_eq!(o.verdict, dnat("10.0.3.1", 8080));
    assert!(o.masquerade.is_none(), "{}", t.render_text());
}

fn source_ranges() -> kube_proxy_model::ProxyState {
    let mut s = svc(name("ns1", "fw", ""), "172.30.0.13", 80);
    s.node_port = Some(30081);
    s.load_balancer_ips = vec![ip("1.2.3.4")];
    s.load_balancer_source_ranges = vec!["203.0.113.0/25".parse().unwrap()];
    s.endpoints = vec![ep("10.0.1.1", 8080, false)];
    state(vec![finish(s)])
}

#[test]
fn source_ranges_drop_disallowed_sources() {
    let st = source_ranges();
    let t = trace_in(&st, "198.51.100.1", "1.2.3.4", 80, "eth0");
    let o = only(&t);
    assert_eq!(o.verdict, Verdict::Drop, "{}", t.render_text());
    let d = o.decided_by.as_ref().unwrap();
    assert_eq!(
        (d.table.as_str(), d.chain.as_str()),
        ("filter", "KUBE-PROXY-FIREWALL")
    );
    // The comment-only rule in KUBE-FW is on the path.
    assert!(o
        .path
        .iter()
        .any(|r| r.rule.contains("will be dropped by KUBE-PROXY-FIREWALL")));

    let t = trace_in(&st, "203.0.113.9", "1.2.3.4", 80, "eth0");
    let o = only(&t);
    assert_eq!(o.verdict, dnat("10.0.1.1", 8080), "{}", t.render_text());
    assert!(o.masquerade.is_some());
}

#[test]
fn node_port_is_dnatted_and_masqueraded() {
    let mut s = svc(name("ns1", "np", ""), "172.30.0.14", 80);
    s.node_port = Some(30082);
    s.endpoints = vec![ep("10.0.1.1", 8080, false), ep("10.0.2.1", 8080, false)];
    let st = state(vec![finish(s)]);
    let t = trace_in(&st, "203.0.113.9", NODE_IP, 30082, "eth0");
    assert_eq!(t.outcomes.len(), 2, "{}", t.render_text());
    for o in &t.outcomes {
        assert!((o.probability - 0.5).abs() < 1e-9);
        assert!(matches!(o.verdict, Verdict::Dnat { port: 8080, .. }));
        let m = o.masquerade.as_ref().expect("masqueraded");
        assert!(m.decided_by.chain.starts_with("KUBE-EXT-"), "{m:?}");
        assert!(m
            .decided_by
            .rule
            .contains("masquerade traffic for ns1/np external destinations"));
    }
    // Not a node address: the NodePort does not apply.
    let t = trace_in(&st, "203.0.113.9", "192.168.0.99", 30082, "eth0");
    assert_eq!(only(&t).verdict, Verdict::Accept);
    // Off-node traffic to 127.0.0.1 that no NodePort captures is blocked by KUBE-FIREWALL.
    let t = trace_in(&st, "203.0.113.9", "127.0.0.1", 22, "eth0");
    let o = only(&t);
    assert_eq!(o.verdict, Verdict::Drop, "{}", t.render_text());
    assert!(o
        .decided_by
        .as_ref()
        .unwrap()
        .rule
        .contains("block incoming localnet connections"));
    // localhost NodePort from the node itself: DNATed, masqueraded, not dropped by KUBE-FIREWALL.
    let t = trace_local(&st, "127.0.0.1", "127.0.0.1", 30082);
    for o in &t.outcomes {
        assert!(
            matches!(o.verdict, Verdict::Dnat { port: 8080, .. }),
            "{}",
            t.render_text()
        );
        assert!(o.masquerade.is_some());
    }
}

#[test]
fn internal_traffic_policy_local_without_local_endpoints_drops() {
    let mut s = svc(name("ns1", "itp", ""), "172.30.0.15", 80);
    s.internal_policy_local = true;
    s.endpoints = vec![ep("10.0.1.1", 8080, false)];
    let st = state(vec![finish(s)]);
    let t = trace_in(&st, "10.0.3.7", "172.30.0.15", 80, "cni0");
    let o = only(&t);
    assert_eq!(o.verdict, Verdict::Drop, "{}", t.render_text());
    assert_eq!(o.decided_by.as_ref().unwrap().chain, "KUBE-SERVICES");
}

#[test]
fn session_affinity_is_reported_and_the_unseen_path_followed() {
    let mut s = svc(name("ns1", "sticky", ""), "172.30.0.16", 80);
    s.session_affinity_timeout = Some(10800);
    s.endpoints = vec![ep("10.0.1.1", 8080, false), ep("10.0.2.1", 8080, false)];
    let st = state(vec![finish(s)]);
    let t = trace_in(&st, "10.0.3.7", "172.30.0.16", 80, "cni0");
    assert_eq!(t.outcomes.len(), 2, "{}", t.render_text());
    for o in &t.outcomes {
        assert_eq!(
            o.affinity.len(),
            2,
            "both recent checks are passed: {:?}",
            o.affinity
        );
        assert_eq!(o.affinity[0].seconds, Some(10800));
        assert!(o.affinity[0]
            .target
            .as_deref()
            .unwrap()
            .starts_with("KUBE-SEP-"));
    }
    assert!(t.render_text().contains("affinity: sticks to KUBE-SEP-"));

    // A source already in the first endpoint's list sticks to it.
    let first = t.outcomes[0].affinity[0].name.clone();
    let mut o = opts();
    o.recent_seen.insert(first);
    let pkt = kube_proxy_trace::Packet::inbound(
        ip("10.0.3.7"),
        ip("172.30.0.16"),
        80,
        kube_proxy_model::Protocol::Tcp,
    );
    let t = kube_proxy_trace::trace_text(&rules(&st), &pkt, &o).unwrap();
    assert_eq!(only(&t).verdict, dnat("10.0.1.1", 8080));
}

#[test]
fn external_ip_from_outside_is_masqueraded() {
    let mut s = svc(name("ns1", "ext", ""), "172.30.0.17", 80);
    s.external_ips = vec![ip("192.168.99.22")];
    s.endpoints = vec![ep("10.0.1.1", 8080, false)];
    let st = state(vec![finish(s)]);
    let t = trace_in(&st, "203.0.113.9", "192.168.99.22", 80, "eth0");
    let o = only(&t);
    assert_eq!(o.verdict, dnat("10.0.1.1", 8080));
    assert!(o.masquerade.is_some());
}

#[test]
fn unrelated_traffic_is_accepted_unchanged() {
    let t = trace_in(&three_endpoints(), "10.0.3.7", "8.8.8.8", 53, "cni0");
    let o = only(&t);
    assert_eq!(o.verdict, Verdict::Accept);
    assert!(o.decided_by.is_none() && o.masquerade.is_none());
}

#[test]
fn ipv6_cluster_ip() {
    let mut s = svc(name("ns1", "v6", ""), "fd00:30::10", 80);
    s.endpoints = vec![ep("fd00:10::1", 8080, false)];
    let st = state(vec![finish(s)]);
    let mut c = cfg();
    c.local_detector =
        kube_proxy_iptables::LocalDetector::Cidrs(vec!["fd00:10::/64".parse().unwrap()]);
    c.node_ips = vec![ip("fd00:1::2")];
    let text = kube_proxy_iptables::render(&st, &c, &kube_proxy_iptables::RenderScope::Full)
        .restore_input();
    let pkt = kube_proxy_trace::Packet::inbound(
        ip("fd00:10::7"),
        ip("fd00:30::10"),
        80,
        kube_proxy_model::Protocol::Tcp,
    );
    let t = kube_proxy_trace::trace_text(
        &text,
        &pkt,
        &kube_proxy_trace::TraceOptions::with_local_addrs(vec![ip("fd00:1::2")]),
    )
    .unwrap();
    assert_eq!(
        only(&t).verdict,
        dnat("fd00:10::1", 8080),
        "{}",
        t.render_text()
    );
}

#[test]
fn json_output_has_verdicts_and_paths() {
    let t = trace_in(&three_endpoints(), "192.168.7.7", "172.30.0.10", 80, "eth0");
    let v = serde_json::to_value(&t).unwrap();
    let outcomes = v["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0]["verdict"]["kind"], "dnat");
    assert_eq!(outcomes[0]["verdict"]["ip"], "10.0.1.1");
    assert_eq!(outcomes[0]["verdict"]["port"], 8080);
    assert_eq!(outcomes[0]["masquerade"]["by"]["chain"], "KUBE-POSTROUTING");
    assert_eq!(outcomes[0]["path"][0]["table"], "nat");
    assert_eq!(v["packet"]["origin"], "inbound");
}

#[test]
fn interface_prefix_detector_tells_pods_apart_by_ingress_interface() {
    let st = three_endpoints();
    let c = kube_proxy_iptables::RenderConfig {
        local_detector: kube_proxy_iptables::LocalDetector::InterfaceNamePrefix("cali".into()),
        ..cfg()
    };
    let text = kube_proxy_iptables::render(&st, &c, &kube_proxy_iptables::RenderScope::Full)
        .restore_input();
    let trace = |src: &str, iface: &str| {
        let pkt = kube_proxy_trace::Packet::inbound(
            ip(src),
            ip("172.30.0.10"),
            80,
            kube_proxy_model::Protocol::Tcp,
        )
        .via(iface);
        kube_proxy_trace::trace_text(&text, &pkt, &opts()).unwrap()
    };
    // Same source address; only the interface differs.
    let from_pod = trace("10.0.3.7", "cali1234");
    assert!(
        from_pod.outcomes.iter().all(|o| o.masquerade.is_none()),
        "{}",
        from_pod.render_text()
    );
    let from_outside = trace("10.0.3.7", "eth0");
    assert!(
        from_outside.outcomes.iter().all(|o| o.masquerade.is_some()),
        "{}",
        from_outside.render_text()
    );
    // Host-network processes have no ingress interface: masqueraded too.
    let pkt = kube_proxy_trace::Packet::local(
        ip(NODE_IP),
        ip("172.30.0.10"),
        80,
        kube_proxy_model::Protocol::Tcp,
    );
    let local = kube_proxy_trace::trace_text(&text, &pkt, &opts()).unwrap();
    assert_eq!(local.outcomes.len(), 3);
    assert!(
        local.outcomes.iter().all(|o| o.masquerade.is_some()),
        "{}",
        local.render_text()
    );
}
