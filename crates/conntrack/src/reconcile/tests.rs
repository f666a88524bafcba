//! Table-driven tests of the stale-flow decision and of the reconcile driver against the fake table.

use std::net::IpAddr;
use std::sync::Arc;

use kube_proxy_model::{
    Endpoint, IpFamily, Protocol, ProxyState, ServicePortName, ServicePortState,
};

use super::*;
use crate::flow::{FlowTuple, IPPROTO_TCP};
use crate::ops::FakeConntrack;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(addr: &str, ready: bool, serving: bool) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port: 5353,
        is_local: false,
        ready,
        serving,
        terminating: !ready,
        hints: None,
    }
}

struct Svc {
    name: &'static str,
    cluster_ip: &'static str,
    port: u16,
    protocol: Protocol,
    node_port: Option<u16>,
    external_ips: &'static [&'static str],
    lb_ips: &'static [&'static str],
    endpoints: Vec<Endpoint>,
}

fn udp(name: &'static str, cluster_ip: &'static str, port: u16, endpoints: Vec<Endpoint>) -> Svc {
    Svc {
        name,
        cluster_ip,
        port,
        protocol: Protocol::Udp,
        node_port: None,
        external_ips: &[],
        lb_ips: &[],
        endpoints,
    }
}

fn state(svcs: Vec<Svc>) -> ProxyState {
    let family = IpFamily::of(&ip(svcs.first().map_or("10.0.0.1", |s| s.cluster_ip)));
    state_in(family, svcs)
}

fn state_in(family: IpFamily, svcs: Vec<Svc>) -> ProxyState {
    let mut st = ProxyState::empty(family, "node1");
    for s in svcs {
        let name = ServicePortName {
            namespace: "ns".into(),
            name: s.name.into(),
            port: s.port.to_string().into(),
            protocol: s.protocol,
        };
        let sps = ServicePortState {
            name: name.clone(),
            family,
            cluster_ip: ip(s.cluster_ip),
            port: s.port,
            protocol: s.protocol,
            node_port: s.node_port,
            external_ips: s.external_ips.iter().map(|a| ip(a)).collect(),
            load_balancer_ips: s.lb_ips.iter().map(|a| ip(a)).collect(),
            load_balancer_source_ranges: vec![],
            external_policy_local: false,
            internal_policy_local: false,
            health_check_node_port: None,
            session_affinity_timeout: None,
            has_any_endpoints: !s.endpoints.is_empty(),
            cluster_endpoints: s.endpoints.clone().into(),
            local_endpoints: Default::default(),
            all_reachable_endpoints: s.endpoints.clone().into(),
            endpoints: s.endpoints,
        };
        st.services.insert(name, Arc::new(sps));
    }
    st
}

/// A flow from `client` to `dst:dport`, answered by `replier` (the DNAT target, or `dst` itself without NAT).
fn flow(proto: u8, client: &str, dst: &str, dport: u16, replier: &str) -> Flow {
    Flow {
        protocol: proto,
        original: FlowTuple::new(ip(client), 40000, ip(dst), dport),
        reply: FlowTuple::new(ip(replier), 5353, ip(client), 40000),
        zone: 0,
    }
}

fn dns_state() -> ProxyState {
    state(vec![
        Svc {
            node_port: Some(30053),
            external_ips: &["192.168.50.1"],
            lb_ips: &["192.168.60.1"],
            ..udp(
                "dns",
                "10.96.0.10",
                53,
                vec![ep("10.244.1.5", true, true), ep("10.244.2.6", false, true)],
            )
        },
        udp("empty", "10.96.0.20", 53, vec![]),
        udp(
            "gone-serving",
            "10.96.0.30",
            53,
            vec![ep("10.244.1.9", false, false)],
        ),
        Svc {
            protocol: Protocol::Tcp,
            ..udp("tcp", "10.96.0.40", 80, vec![ep("10.244.1.5", true, true)])
        },
        udp(
            "multi-a",
            "10.96.0.50",
            53,
            vec![ep("10.244.1.5", true, true)],
        ),
        udp(
            "multi-b",
            "10.96.0.50",
            54,
            vec![ep("10.244.1.6", true, true)],
        ),
    ])
}

#[test]
fn stale_flow_table() {
    let st = dns_state();
    let c = "10.0.0.100";
    #[rustfmt::skip]
    let cases: &[(&str, Flow, bool)] = &[
        ("cluster IP to serving endpoint", flow(17, c, "10.96.0.10", 53, "10.244.1.5"), false),
        ("cluster IP to terminating but serving endpoint", flow(17, c, "10.96.0.10", 53, "10.244.2.6"), false),
        ("cluster IP to removed endpoint", flow(17, c, "10.96.0.10", 53, "10.244.1.77"), true),
        ("cluster IP never NATed (had no endpoints)", flow(17, c, "10.96.0.10", 53, "10.96.0.10"), true),
        ("service still without endpoints", flow(17, c, "10.96.0.20", 53, "10.96.0.20"), true),
        ("endpoint no longer serving", flow(17, c, "10.96.0.30", 53, "10.244.1.9"), true),
        ("external IP to endpoint", flow(17, c, "192.168.50.1", 53, "10.244.1.5"), false),
        ("external IP to removed endpoint", flow(17, c, "192.168.50.1", 53, "10.244.3.3"), true),
        ("LB IP to endpoint", flow(17, c, "192.168.60.1", 53, "10.244.2.6"), false),
        ("LB IP not NATed", flow(17, c, "192.168.60.1", 53, "192.168.60.1"), true),
        ("NodePort on any node IP to endpoint", flow(17, c, "10.100.0.1", 30053, "10.244.1.5"), false),
        ("NodePort to removed endpoint", flow(17, c, "10.100.0.1", 30053, "10.244.9.9"), true),
        ("NodePort never NATed", flow(17, c, "10.100.0.2", 30053, "10.100.0.2"), true),
        ("UDP to a TCP service's IP is not ours", flow(17, c, "10.96.0.40", 80, "10.96.0.40"), false),
        ("TCP entries are never touched", flow(IPPROTO_TCP, c, "10.96.0.10", 53, "10.244.1.77"), false),
        ("unrelated destination", flow(17, c, "8.8.8.8", 53, "8.8.8.8"), false),
        ("port A flow answered by port B's endpoint", flow(17, c, "10.96.0.50", 53, "10.244.1.6"), true),
        ("port B flow answered by port B's endpoint", flow(17, c, "10.96.0.50", 54, "10.244.1.6"), false),
        ("unknown port on shared IP, endpoint of some port", flow(17, c, "10.96.0.50", 99, "10.244.1.6"), false),
        ("unknown port on shared IP, no endpoint", flow(17, c, "10.96.0.50", 99, "10.96.0.50"), true),
    ];
    for (what, f, want_deleted) in cases {
        let got = flows_to_delete(std::slice::from_ref(f), &st);
        assert_eq!(!got.is_empty(), *want_deleted, "{what}: {f}");
    }
}

#[test]
fn other_family_flows_are_ignored() {
    let st = dns_state();
    let v6 = flow(17, "fd00::1", "fd00:96::10", 53, "fd00:96::10");
    assert!(flows_to_delete(&[v6], &st).is_empty());
}

#[test]
fn ipv6_state() {
    let st = state(vec![Svc {
        node_port: Some(30053),
        ..udp(
            "dns6",
            "fd00:96::10",
            53,
            vec![ep("fd00:10:244:1::5", true, true)],
        )
    }]);
    let keep = flow(17, "fd00::1", "fd00:96::10", 53, "fd00:10:244:1::5");
    let stale = flow(17, "fd00::1", "fd00:96::10", 53, "fd00:10:244:1::6");
    let stale_np = flow(17, "fd00::1", "fd00:100::1", 30053, "fd00:100::1");
    assert_eq!(
        flows_to_delete(&[keep, stale, stale_np], &st),
        vec![stale, stale_np]
    );
}

#[test]
fn a_flow_matching_both_ip_and_node_port_is_reported_once() {
    // The service's cluster IP port equals another service's NodePort.
    let st = state(vec![
        udp("a", "10.96.0.10", 30053, vec![ep("10.244.1.5", true, true)]),
        Svc {
            node_port: Some(30053),
            ..udp("b", "10.96.0.11", 53, vec![ep("10.244.1.6", true, true)])
        },
    ]);
    let f = flow(17, "10.0.0.1", "10.96.0.10", 30053, "10.244.9.9");
    assert_eq!(flows_to_delete(&[f, f], &st), vec![f]);
}

#[test]
fn empty_state_deletes_nothing() {
    let st = ProxyState::empty(IpFamily::V4, "node1");
    let f = flow(17, "10.0.0.1", "10.96.0.10", 53, "10.96.0.10");
    assert!(flows_to_delete(&[f], &st).is_empty());
}

#[test]
fn reconcile_deletes_exactly_the_stale_flows_through_the_seam() {
    let st = dns_state();
    let keep = flow(17, "10.0.0.100", "10.96.0.10", 53, "10.244.1.5");
    let stale1 = flow(17, "10.0.0.102", "10.96.0.10", 53, "10.244.1.77");
    let stale2 = flow(17, "10.0.0.101", "10.1.2.3", 30053, "10.1.2.3");
    let tcp = flow(IPPROTO_TCP, "10.0.0.100", "10.96.0.10", 53, "10.244.1.77");
    let v6 = flow(17, "fd00::1", "fd00:96::10", 53, "fd00:96::10");
    let fake = FakeConntrack::new(vec![keep, stale1, tcp, stale2, v6]);
    let out = reconcile(&fake, &st).unwrap();
    assert_eq!(
        out,
        ReconcileOutcome {
            listed: 3,
            stale: 2,
            deleted: 2
        }
    );
    assert_eq!(fake.deleted(), vec![stale1, stale2]);
    assert_eq!(fake.flows(), vec![keep, tcp, v6]);
    // A second pass finds nothing more to do.
    assert_eq!(
        reconcile(&fake, &st).unwrap(),
        ReconcileOutcome {
            listed: 1,
            stale: 0,
            deleted: 0
        }
    );
}

#[test]
fn cleanup_required_table() {
    let base = || {
        vec![udp(
            "dns",
            "10.96.0.10",
            53,
            vec![ep("10.244.1.5", true, true)],
        )]
    };
    let tcp = |eps| Svc {
        protocol: Protocol::Tcp,
        ..udp("web", "10.96.0.40", 80, eps)
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<Svc>, Vec<Svc>, bool)> = vec![
        ("no change", base(), base(), false),
        ("first sync with UDP endpoints", vec![], base(), true),
        ("UDP endpoint removed", base(), vec![udp("dns", "10.96.0.10", 53, vec![])], true),
        ("UDP endpoint added", vec![udp("dns", "10.96.0.10", 53, vec![])], base(), true),
        ("UDP endpoint stops being ready", base(), vec![udp("dns", "10.96.0.10", 53, vec![ep("10.244.1.5", false, true)])], true),
        ("UDP service without endpoints appears", vec![], vec![udp("dns", "10.96.0.10", 53, vec![])], false),
        ("UDP service address change only", base(), vec![udp("dns", "10.96.0.11", 53, vec![ep("10.244.1.5", true, true)])], false),
        ("UDP service with endpoints deleted", base(), vec![], true),
        ("TCP endpoints change", vec![tcp(vec![])], vec![tcp(vec![ep("10.244.1.5", true, true)])], false),
    ];
    for (what, old, new, want) in cases {
        let (old, new) = (state_in(IpFamily::V4, old), state_in(IpFamily::V4, new));
        assert_eq!(cleanup_required(&old, &new), want, "{what}");
    }
}
