//! Golden (insta) and targeted tests of the renderer. Regenerate goldens with
//! `INSTA_UPDATE=always cargo test -p kube-proxy-iptables` and review the diff.

mod common;

use common::*;
use kube_proxy_iptables::{chains, probability, render, LocalDetector, NodePortAddresses};
use kube_proxy_iptables::{RenderConfig, RenderScope};
use kube_proxy_model::{IpFamily, ProxyState};

fn cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec!["10.0.0.0/16".parse().unwrap()]),
        node_ips: vec![ip("192.168.0.2")],
        ..RenderConfig::default()
    }
}

fn full(state: &ProxyState, cfg: &RenderConfig) -> String {
    render(state, cfg, &RenderScope::Full).restore_input()
}

fn cluster_ip_state() -> ProxyState {
    let mut s = svc(name("ns1", "svc1", "p80"), "172.30.0.41", 80);
    s.endpoints = vec![ep("10.180.0.1", 80, false), ep("10.180.0.2", 80, true)];
    state(IpFamily::V4, vec![finish(s)])
}

#[test]
fn chain_names_match_upstream_hashes() {
    let n = name("ns1", "svc1", "p80");
    assert_eq!(chains::svc_chain(&n), "KUBE-SVC-XPGD46QRK7WJZT7O");
    assert_eq!(
        chains::ext_chain(&name("ns2", "svc2", "p80")),
        "KUBE-EXT-GNZBNJ2PO5MGZ6GT"
    );
    assert_eq!(
        chains::ext_chain(&name("ns3", "svc3", "p80")),
        "KUBE-EXT-X27LE4BHSL4DOUIK"
    );
    assert_eq!(
        chains::sep_chain(&n, &ep("10.180.0.1", 80, false)),
        "KUBE-SEP-SXIVWICOYRO3J4NJ"
    );
    assert!(chains::is_service_chain("KUBE-SVL-XPGD46QRK7WJZT7O"));
    assert!(!chains::is_service_chain("KUBE-SERVICES"));
}

#[test]
fn probabilities_use_ten_decimals() {
    assert_eq!(probability(2), "0.5000000000");
    assert_eq!(probability(3), "0.3333333333");
    assert_eq!(probability(7), "0.1428571429");
}

#[test]
fn masquerade_mark_is_formatted_like_upstream() {
    assert_eq!(RenderConfig::default().masquerade_mark(), "0x00004000");
    let c = RenderConfig {
        masquerade_bit: 0,
        ..RenderConfig::default()
    };
    assert_eq!(c.masquerade_mark(), "0x00000001");
}

#[test]
fn cluster_ip_with_endpoints() {
    let out = full(&cluster_ip_state(), &cfg());
    assert!(out.contains(
        "-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O\n"
    ));
    // Off-cluster traffic to the ClusterIP is masqueraded.
    assert!(out.contains("-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/16 -j KUBE-MARK-MASQ\n"));
    assert!(out.contains(
        "-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ\n"
    ));
    assert!(out.contains("-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ\n"));
    assert!(out.contains("-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80\n"));
    assert!(out.contains("-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN\n"));
    assert!(out.contains("-j MASQUERADE --random-fully\n"));
    // The nodeports jump is the last KUBE-SERVICES rule.
    let last = lines_with(&out, "-A KUBE-SERVICES ").pop().unwrap();
    assert!(
        last.ends_with("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"),
        "{last}"
    );
    insta::assert_snapshot!("cluster_ip_with_endpoints", out);
}

#[test]
fn no_endpoints_rejects_in_filter() {
    let s = svc(name("ns1", "svc1", "p80"), "172.30.0.41", 80);
    let mut np = svc(name("ns2", "svc2", ""), "172.30.0.42", 80);
    np.node_port = Some(30080);
    np.external_ips = vec![ip("192.168.99.22")];
    let st = state(IpFamily::V4, vec![finish(s), finish(np)]);
    let r = render(&st, &cfg(), &RenderScope::Full);
    assert!(r.filter.contains("-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 has no endpoints\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT\n"));
    assert!(r.filter.contains("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns2/svc2 has no endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT\n"));
    assert!(r.filter.contains("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns2/svc2 has no endpoints\" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j REJECT\n"));
    assert!(
        !r.nat.contains("KUBE-SVC-"),
        "no nat chains without endpoints"
    );
    assert!(!r.nat.contains("KUBE-EXT-"));
    insta::assert_snapshot!("no_endpoints", r.restore_input());
}

#[test]
fn nodeport_cluster_policy() {
    let mut s = svc(name("ns3", "svc3", "p80"), "172.30.0.43", 80);
    s.node_port = Some(3003);
    s.endpoints = vec![ep("10.180.0.3", 80, false)];
    let out = full(&state(IpFamily::V4, vec![finish(s)]), &cfg());
    assert!(out.contains("-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK\n"));
    assert!(out.contains("-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment \"masquerade traffic for ns3/svc3:p80 external destinations\" -j KUBE-MARK-MASQ\n"));
    assert!(out.contains("-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK\n"));
    // localhost NodePorts are on by default: no `! -d 127.0.0.0/8`, and the martian DROP rule exists.
    assert!(!out.contains("! -d 127.0.0.0/8 -j KUBE-NODEPORTS"));
    assert!(out.contains("-A KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n"));
    insta::assert_snapshot!("nodeport", out);
}

fn lb_state() -> ProxyState {
    let mut s = svc(name("ns5", "svc5", "p80"), "172.30.0.45", 80);
    s.node_port = Some(3002);
    s.load_balancer_ips = vec![ip("1.2.3.4")];
    s.load_balancer_source_ranges = vec![
        "203.0.113.0/25".parse().unwrap(),
        "192.168.0.0/24".parse().unwrap(),
    ];
    s.endpoints = vec![ep("10.180.0.5", 80, false)];
    state(IpFamily::V4, vec![finish(s)])
}

#[test]
fn load_balancer_with_source_ranges() {
    let out = full(&lb_state(), &cfg());
    let fw = chains::fw_chain(&name("ns5", "svc5", "p80"));
    let ext = chains::ext_chain(&name("ns5", "svc5", "p80"));
    assert!(out.contains(&format!("-A KUBE-SERVICES -m comment --comment \"ns5/svc5:p80 loadbalancer IP\" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j {fw}\n")));
    assert!(out.contains(&format!("-A {fw} -m comment --comment \"ns5/svc5:p80 loadbalancer IP\" -s 203.0.113.0/25 -j {ext}\n")));
    // The node IP 192.168.0.2 is inside an allowed range, so traffic from the LB IP itself is allowed.
    assert!(out.contains(&format!(
        "-A {fw} -m comment --comment \"ns5/svc5:p80 loadbalancer IP\" -s 1.2.3.4 -j {ext}\n"
    )));
    assert!(out.contains(&format!("-A {fw} -m comment --comment \"other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL\"\n")));
    assert!(out.contains(&format!("-A KUBE-PROXY-FIREWALL -m comment --comment \"ns5/svc5:p80 traffic not accepted by {fw}\" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP\n")));
    insta::assert_snapshot!("load_balancer_source_ranges", out);
}

#[test]
fn external_ips() {
    let mut s = svc(name("ns2", "svc2", "p80"), "172.30.0.42", 80);
    s.external_ips = vec![ip("192.168.99.22")];
    s.endpoints = vec![ep("10.180.0.2", 80, false)];
    let out = full(&state(IpFamily::V4, vec![finish(s)]), &cfg());
    assert!(out.contains("-A KUBE-SERVICES -m comment --comment \"ns2/svc2:p80 external IP\" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT\n"));
    insta::assert_snapshot!("external_ips", out);
}

fn etp_local(with_local: bool) -> ProxyState {
    let mut s = svc(name("ns4", "svc4", "p80"), "172.30.0.44", 80);
    s.node_port = Some(3004);
    s.load_balancer_ips = vec![ip("5.6.7.8")];
    s.health_check_node_port = Some(30000);
    s.external_policy_local = true;
    s.endpoints = vec![
        ep("10.180.0.4", 80, with_local),
        ep("10.180.1.4", 80, false),
    ];
    state(IpFamily::V4, vec![finish(s)])
}

#[test]
fn etp_local_with_local_endpoints() {
    let out = full(&etp_local(true), &cfg());
    let n = name("ns4", "svc4", "p80");
    let (ext, svc_c, svl) = (
        chains::ext_chain(&n),
        chains::svc_chain(&n),
        chains::svl_chain(&n),
    );
    assert!(out.contains(&format!("-A {ext} -m comment --comment \"pod traffic for ns4/svc4:p80 external destinations\" -s 10.0.0.0/16 -j {svc_c}\n")));
    assert!(out.contains(&format!("-A {ext} -m comment --comment \"masquerade LOCAL traffic for ns4/svc4:p80 external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ\n")));
    assert!(out.contains(&format!("-A {ext} -m comment --comment \"route LOCAL traffic for ns4/svc4:p80 external destinations\" -m addrtype --src-type LOCAL -j {svc_c}\n")));
    assert!(out.contains(&format!("-A {ext} -j {svl}\n")));
    assert!(out.contains("-A KUBE-NODEPORTS -m comment --comment \"ns4/svc4:p80 health check node port\" -m tcp -p tcp --dport 30000 -j ACCEPT\n"));
    assert!(!out.contains("has no local endpoints"));
    insta::assert_snapshot!("etp_local_with_local_endpoints", out);
}

#[test]
fn etp_local_without_local_endpoints_drops_external() {
    let r = render(&etp_local(false), &cfg(), &RenderScope::Full);
    let out = r.restore_input();
    let n = name("ns4", "svc4", "p80");
    assert!(out.contains("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns4/svc4:p80 has no local endpoints\" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP\n"));
    assert!(out.contains("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns4/svc4:p80 has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3004 -j DROP\n"));
    // Short-circuit rules stay, but there is no jump to the (absent) SVL chain.
    assert!(!out.contains(&chains::svl_chain(&n)));
    assert_eq!(
        (r.no_local_endpoints_internal, r.no_local_endpoints_external),
        (0, 1)
    );
    insta::assert_snapshot!("etp_local_without_local_endpoints", out);
}

#[test]
fn itp_local() {
    let mut s = svc(name("ns6", "svc6", "p80"), "172.30.0.46", 80);
    s.internal_policy_local = true;
    s.endpoints = vec![ep("10.180.0.6", 80, true), ep("10.180.1.6", 80, false)];
    let n = s.name.clone();
    let out = full(&state(IpFamily::V4, vec![finish(s.clone())]), &cfg());
    let svl = chains::svl_chain(&n);
    assert!(out.contains(&format!("--dport 80 -j {svl}\n")));
    assert!(
        !out.contains("10.180.1.6"),
        "remote endpoint unused with iTP Local"
    );
    insta::assert_snapshot!("itp_local", out);

    s.endpoints = vec![ep("10.180.1.6", 80, false)];
    let r = render(
        &state(IpFamily::V4, vec![finish(s)]),
        &cfg(),
        &RenderScope::Full,
    );
    assert!(r.filter.contains("-A KUBE-SERVICES -m comment --comment \"ns6/svc6:p80 has no local endpoints\" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j DROP\n"));
    assert_eq!(r.no_local_endpoints_internal, 1);
}

#[test]
fn session_affinity() {
    let mut s = svc(name("ns7", "svc7", "p80"), "172.30.0.47", 80);
    s.session_affinity_timeout = Some(10800);
    s.endpoints = vec![ep("10.180.0.7", 80, false), ep("10.180.0.8", 80, false)];
    let n = s.name.clone();
    let out = full(&state(IpFamily::V4, vec![finish(s)]), &cfg());
    let sep = chains::sep_chain(&n, &ep("10.180.0.7", 80, false));
    let svc_c = chains::svc_chain(&n);
    assert!(out.contains(&format!("-A {svc_c} -m comment --comment \"ns7/svc7:p80 -> 10.180.0.7:80\" -m recent --name {sep} --rcheck --seconds 10800 --reap -j {sep}\n")));
    assert!(out.contains(&format!("-A {sep} -m comment --comment ns7/svc7:p80 -m recent --name {sep} --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.7:80\n")));
    insta::assert_snapshot!("session_affinity", out);
}

#[test]
fn masquerade_all() {
    let c = RenderConfig {
        masquerade_all: true,
        ..cfg()
    };
    let out = full(&cluster_ip_state(), &c);
    assert!(out.contains("-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ\n"));
    assert!(!out.contains("! -s 10.0.0.0/16"));
    insta::assert_snapshot!("masquerade_all", out);
}

#[test]
fn local_detectors() {
    let cases = [
        ("none", LocalDetector::None, None),
        (
            "cidr",
            LocalDetector::Cidrs(vec![
                "fd00::/64".parse().unwrap(),
                "10.0.0.0/16".parse().unwrap(),
            ]),
            Some("! -s 10.0.0.0/16"),
        ),
        (
            "bridge",
            LocalDetector::BridgeInterface("cbr0".into()),
            Some("! -i cbr0"),
        ),
        (
            "prefix",
            LocalDetector::InterfaceNamePrefix("veth".into()),
            Some("! -i veth+"),
        ),
    ];
    for (label, det, expect) in cases {
        let c = RenderConfig {
            local_detector: det,
            ..cfg()
        };
        let out = full(&etp_local(true), &c);
        let masq = lines_with(&out, "-A KUBE-SVC-")
            .into_iter()
            .filter(|l| l.ends_with("-j KUBE-MARK-MASQ"))
            .collect::<Vec<_>>();
        match expect {
            None => {
                assert!(masq.is_empty(), "{label}: {masq:?}");
                assert!(!out.contains("pod traffic for"), "{label}");
            }
            Some(m) => {
                assert_eq!(masq.len(), 1, "{label}");
                assert!(masq[0].contains(m), "{label}: {}", masq[0]);
                assert!(
                    out.contains(&format!(
                        "pod traffic for ns4/svc4:p80 external destinations\" {} -j",
                        &m[2..]
                    )),
                    "{label}"
                );
            }
        }
        insta::assert_snapshot!(format!("local_detector_{label}"), out);
    }
}

#[test]
fn ipv6() {
    let mut s = svc(name("ns1", "svc1", "p80"), "fd00:10:96::1", 80);
    s.node_port = Some(3001);
    s.endpoints = vec![ep("fd00:10:244::5", 8080, false)];
    let mut none = svc(name("ns1", "svc2", "p80"), "fd00:10:96::2", 80);
    none.node_port = Some(3005);
    let st = state(IpFamily::V6, vec![finish(s), finish(none)]);
    let c = RenderConfig {
        local_detector: LocalDetector::Cidrs(vec![
            "10.0.0.0/16".parse().unwrap(),
            "fd00:10:244::/56".parse().unwrap(),
        ]),
        node_ips: vec![ip("fd00::2")],
        ..RenderConfig::default()
    };
    let out = full(&st, &c);
    assert!(out.contains("-j DNAT --to-destination [fd00:10:244::5]:8080\n"));
    assert!(out.contains("-s fd00:10:244::5 -j KUBE-MARK-MASQ\n"));
    assert!(out.contains("! -s fd00:10:244::/56 -j KUBE-MARK-MASQ\n"));
    assert!(out.contains("-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS\n"));
    assert!(
        !out.contains("127.0.0.0/8"),
        "no IPv4 localhost rules in IPv6"
    );
    assert!(!out.contains("KUBE-FIREWALL"));
    insta::assert_snapshot!("ipv6", out);
}

#[test]
fn nodeport_addresses_and_localhost() {
    let mut s = svc(name("ns3", "svc3", "p80"), "172.30.0.43", 80);
    s.node_port = Some(3003);
    s.endpoints = vec![ep("10.180.0.3", 80, false)];
    let st = state(IpFamily::V4, vec![finish(s)]);

    let off = RenderConfig {
        localhost_nodeports: false,
        ..cfg()
    };
    let out = full(&st, &off);
    assert!(out.contains("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS\n"));
    assert!(!out.contains("KUBE-FIREWALL"));

    let ips = RenderConfig {
        node_port_addresses: NodePortAddresses::Ips(vec![
            ip("192.168.0.2"),
            ip("127.0.0.1"),
            ip("fd00::1"),
        ]),
        nfacct: true,
        ..cfg()
    };
    let out = full(&st, &ips);
    let tail = lines_with(
        &out,
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports",
    );
    assert_eq!(tail.len(), 2, "{tail:?}");
    assert!(tail[0].contains("-d 192.168.0.2 -j KUBE-NODEPORTS"));
    assert!(tail[1].contains("-d 127.0.0.1 -j KUBE-NODEPORTS"));
    assert!(out.contains("-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK\n"));
    assert!(out.contains("-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP\n"));
    insta::assert_snapshot!("nodeport_addresses_ips", out);

    let no_loop = RenderConfig {
        node_port_addresses: NodePortAddresses::Ips(vec![ip("192.168.0.2")]),
        ..cfg()
    };
    let out = full(&st, &no_loop);
    assert!(
        !out.contains("KUBE-FIREWALL"),
        "localhost nodeports impossible without loopback"
    );
}

#[test]
fn large_cluster_mode_drops_endpoint_comments() {
    let mut s = svc(name("ns1", "big", "p80"), "172.30.0.99", 80);
    s.endpoints = (0..1001u32)
        .map(|i| {
            ep(
                &format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256),
                80,
                false,
            )
        })
        .collect();
    let out = full(&state(IpFamily::V4, vec![finish(s)]), &cfg());
    let sep_rules = lines_with(&out, "-A KUBE-SEP-");
    assert_eq!(sep_rules.len(), 2002);
    assert!(sep_rules.iter().all(|l| !l.contains("--comment")));
    assert!(
        lines_with(&out, "-A KUBE-SVC-")
            .iter()
            .filter(|l| l.contains("-> "))
            .count()
            == 0
    );
}

#[test]
fn counts_rules_per_table() {
    let r = render(&cluster_ip_state(), &cfg(), &RenderScope::Full);
    assert_eq!(r.filter_rules, lines_with(&r.filter, "-A ").len());
    assert_eq!(r.nat_rules, lines_with(&r.nat, "-A ").len());
    assert_eq!(r.nat_rules_total, r.nat_rules);
    assert!(r.filter.starts_with("*filter\n") && r.filter.ends_with("COMMIT\n"));
    assert!(r.nat.starts_with("*nat\n") && r.nat.ends_with("COMMIT\n"));
}

/// A mixed scenario (ClusterIP, eTP=Local LB without local endpoints, NodePort, externalIP with a local and a
/// remote endpoint, LB with source ranges and affinity, no-endpoint ClusterIP) with nfacct counters present and
/// without `--random-fully`.
fn mixed_state() -> ProxyState {
    let mut s1 = svc(name("ns1", "svc1", "p80"), "172.30.0.41", 80);
    s1.endpoints = vec![ep("10.180.0.1", 80, false)];
    let mut s2 = svc(name("ns2", "svc2", "p80"), "172.30.0.42", 80);
    s2.node_port = Some(3001);
    s2.load_balancer_ips = vec![ip("1.2.3.4")];
    s2.external_ips = vec![ip("192.168.99.22")];
    s2.external_policy_local = true;
    s2.health_check_node_port = Some(30000);
    s2.endpoints = vec![ep("10.180.0.2", 80, false)];
    let mut s3 = svc(name("ns3", "svc3", "p80"), "172.30.0.43", 80);
    s3.node_port = Some(3003);
    s3.endpoints = vec![ep("10.180.0.3", 80, false)];
    let mut s4 = svc(name("ns4", "svc4", "p80"), "172.30.0.44", 80);
    s4.external_ips = vec![ip("192.168.99.33")];
    s4.endpoints = vec![ep("10.180.0.4", 80, false), ep("10.180.0.5", 80, true)];
    let mut s5 = svc(name("ns5", "svc5", "p80"), "172.30.0.45", 80);
    s5.node_port = Some(3002);
    s5.load_balancer_ips = vec![ip("5.6.7.8")];
    s5.load_balancer_source_ranges = vec!["203.0.113.0/25".parse().unwrap()];
    s5.session_affinity_timeout = Some(10800);
    s5.endpoints = vec![ep("10.180.0.3", 80, false)];
    let s6 = svc(name("ns6", "svc6", "p80"), "172.30.0.46", 80);
    state(
        IpFamily::V4,
        [s1, s2, s3, s4, s5, s6].into_iter().map(finish).collect(),
    )
}

#[test]
fn mixed_scenario() {
    let c = RenderConfig {
        local_detector: LocalDetector::Cidrs(vec!["10.0.0.0/8".parse().unwrap()]),
        nfacct: true,
        random_fully: false,
        ..cfg()
    };
    let r = render(&mixed_state(), &c, &RenderScope::Full);
    let out = r.restore_input();
    assert!(out.contains("-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT\n"));
    assert!(out.contains("-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment \"ns5/svc5:p80 -> 10.180.0.3:80\" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN\n"));
    assert!(out.contains("-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80\n"));
    assert!(
        out.contains("-j MASQUERADE\n"),
        "no --random-fully when disabled"
    );
    assert_eq!(r.no_local_endpoints_external, 1);
    insta::assert_snapshot!("mixed_scenario", out);
}
