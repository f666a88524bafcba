//! Service → ServicePortState rules: addresses, families, policies, affinity, skipping and rejections.

mod common;

use common::*;
use kube_proxy_model::{IpFamily, Protocol, RejectionKind, ServicePortState};
use serde_json::{json, Value};

/// What a case expects of the single port `ns/svc` (unnamed TCP).
#[derive(Debug, PartialEq)]
struct Summary {
    cluster_ip: &'static str,
    node_port: Option<u16>,
    external_ips: Vec<&'static str>,
    lb_ips: Vec<&'static str>,
    ranges: Vec<&'static str>,
    etp_local: bool,
    itp_local: bool,
    hc_port: Option<u16>,
    affinity: Option<u32>,
}

const BASE: Summary = Summary {
    cluster_ip: "10.96.0.10",
    node_port: None,
    external_ips: Vec::new(),
    lb_ips: Vec::new(),
    ranges: Vec::new(),
    etp_local: false,
    itp_local: false,
    hc_port: None,
    affinity: None,
};

/// A comparable view of the fields a [`Summary`] describes.
type Row = (
    String,
    Option<u16>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    bool,
    bool,
    Option<u16>,
    Option<u32>,
);

fn summarize(p: &ServicePortState) -> Row {
    (
        p.cluster_ip.to_string(),
        p.node_port,
        p.external_ips.iter().map(ToString::to_string).collect(),
        p.load_balancer_ips
            .iter()
            .map(ToString::to_string)
            .collect(),
        p.load_balancer_source_ranges
            .iter()
            .map(ToString::to_string)
            .collect(),
        p.external_policy_local,
        p.internal_policy_local,
        p.health_check_node_port,
        p.session_affinity_timeout,
    )
}

fn expected(s: &Summary) -> Row {
    let strs = |v: &Vec<&str>| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    (
        s.cluster_ip.to_string(),
        s.node_port,
        strs(&s.external_ips),
        strs(&s.lb_ips),
        strs(&s.ranges),
        s.etp_local,
        s.itp_local,
        s.hc_port,
        s.affinity,
    )
}

struct Case {
    name: &'static str,
    spec: Value,
    status: Value,
    family: IpFamily,
    want: Option<Summary>,
    rejections: Vec<RejectionKind>,
}

fn case(name: &'static str, spec: Value, want: Option<Summary>) -> Case {
    Case {
        name,
        spec,
        status: Value::Null,
        family: IpFamily::V4,
        want,
        rejections: vec![],
    }
}

fn run(cases: Vec<Case>) {
    for c in cases {
        let mut svc = service("ns", "svc", c.spec);
        if !c.status.is_null() {
            svc["status"] = c.status;
        }
        let out = build(&objects(vec![svc], vec![], None), c.family);
        let got_rej: Vec<RejectionKind> = out.rejections.iter().map(|r| r.kind.clone()).collect();
        assert_eq!(got_rej, c.rejections, "case {}: rejections", c.name);
        for r in &out.rejections {
            assert_eq!(r.object, "Service ns/svc", "case {}", c.name);
        }
        match c.want {
            None => assert!(
                out.state.services.is_empty(),
                "case {}: expected no ports",
                c.name
            ),
            Some(want) => {
                assert_eq!(out.state.services.len(), 1, "case {}", c.name);
                assert_eq!(
                    summarize(port(&out.state, "ns", "svc")),
                    expected(&want),
                    "case {}",
                    c.name
                );
            }
        }
    }
}

#[test]
fn cluster_ip_selection_and_skipping() {
    run(vec![
        case("plain", json!({}), Some(BASE)),
        case(
            "leading zeros",
            json!({"clusterIP": "010.096.000.010"}),
            Some(BASE),
        ),
        case("headless None", json!({"clusterIP": "None"}), None),
        case("headless empty", json!({"clusterIP": ""}), None),
        case(
            "ExternalName",
            json!({"type": "ExternalName", "externalName": "x.example"}),
            None,
        ),
        case(
            "clusterIPs win over clusterIP",
            json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"]}),
            Some(BASE),
        ),
        Case {
            family: IpFamily::V6,
            ..case(
                "v6 of dual-stack via ipFamilies",
                json!({"clusterIPs": ["10.96.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv6"]}),
                Some(Summary {
                    cluster_ip: "fd00::10",
                    ..BASE
                }),
            )
        },
        Case {
            family: IpFamily::V6,
            ..case("single-stack v4 absent from v6", json!({}), None)
        },
        Case {
            family: IpFamily::V6,
            ..case(
                "v6 without ipFamilies",
                json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "FD00:0::10"]}),
                Some(Summary {
                    cluster_ip: "fd00::10",
                    ..BASE
                }),
            )
        },
        Case {
            rejections: vec![RejectionKind::InvalidClusterIp("10.96.0.300".into())],
            ..case(
                "unparseable clusterIP",
                json!({"clusterIP": "10.96.0.300"}),
                None,
            )
        },
        Case {
            rejections: vec![RejectionKind::InvalidClusterIp("fd00::10".into())],
            ..case(
                "ipFamilies says v4 but address is v6",
                json!({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"], "ipFamilies": ["IPv4"]}),
                None,
            )
        },
    ]);
}

#[test]
fn external_addresses() {
    run(vec![
        case(
            "externalIPs of this family, normalised, sorted, dedup",
            json!({"externalIPs": ["192.168.1.2", "fd00::5", "192.168.001.001", "192.168.1.1", ""]}),
            Some(Summary {
                external_ips: vec!["192.168.1.1", "192.168.1.2"],
                ..BASE
            }),
        ),
        Case {
            rejections: vec![RejectionKind::InvalidExternalIp("not-an-ip".into())],
            ..case(
                "bad externalIP skipped, rest kept",
                json!({"externalIPs": ["not-an-ip", "192.168.1.1"]}),
                Some(Summary {
                    external_ips: vec!["192.168.1.1"],
                    ..BASE
                }),
            )
        },
        Case {
            status: json!({"loadBalancer": {"ingress": [
                {"ip": "203.0.113.2"},
                {"ip": "203.0.113.1", "ipMode": "VIP"},
                {"ip": "203.0.113.9", "ipMode": "Proxy"},
                {"ip": "2001:db8::1"},
                {"hostname": "lb.example"},
                {"ip": "bogus"}
            ]}}),
            rejections: vec![RejectionKind::InvalidLoadBalancerIp("bogus".into())],
            ..case(
                "LB ingress: VIP and unset ipMode kept, Proxy and other family dropped",
                json!({"type": "LoadBalancer"}),
                Some(Summary {
                    lb_ips: vec!["203.0.113.1", "203.0.113.2"],
                    ..BASE
                }),
            )
        },
        Case {
            rejections: vec![RejectionKind::InvalidSourceRange("10.0.0.0/40".into())],
            ..case(
                "source ranges: trimmed, masked, family-filtered, bad one dropped",
                json!({"type": "LoadBalancer", "loadBalancerSourceRanges":
                    [" 192.168.1.7/24 ", "10.0.0.0/40", "2001:db8::/64", "010.0.0.0/8"]}),
                Some(Summary {
                    ranges: vec!["10.0.0.0/8", "192.168.1.0/24"],
                    ..BASE
                }),
            )
        },
        Case {
            family: IpFamily::V6,
            ..case(
                "v6 side of a dual-stack service",
                json!({"clusterIPs": ["10.96.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv6"],
                       "externalIPs": ["192.168.1.1", "2001:db8::7"],
                       "loadBalancerSourceRanges": ["10.0.0.0/8", "2001:db8::/32"]}),
                Some(Summary {
                    cluster_ip: "fd00::10",
                    external_ips: vec!["2001:db8::7"],
                    ranges: vec!["2001:db8::/32"],
                    ..BASE
                }),
            )
        },
    ]);
}

#[test]
fn traffic_policies_health_check_and_affinity() {
    let lb_local = json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30999,
                          "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]});
    run(vec![
        case(
            "LB eTP Local with health check port",
            lb_local.clone(),
            Some(Summary {
                node_port: Some(30080),
                etp_local: true,
                hc_port: Some(30999),
                ..BASE
            }),
        ),
        case(
            "NodePort eTP Local: no health check port",
            json!({"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30999,
                   "ports": [{"port": 80, "nodePort": 30080}]}),
            Some(Summary {
                node_port: Some(30080),
                etp_local: true,
                ..BASE
            }),
        ),
        case(
            "ClusterIP eTP Local without externalIPs: not Local",
            json!({"externalTrafficPolicy": "Local"}),
            Some(BASE),
        ),
        case(
            "ClusterIP eTP Local with externalIPs: Local",
            json!({"externalTrafficPolicy": "Local", "externalIPs": ["192.168.1.1"]}),
            Some(Summary {
                external_ips: vec!["192.168.1.1"],
                etp_local: true,
                ..BASE
            }),
        ),
        case(
            "eTP Cluster",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster", "healthCheckNodePort": 30999}),
            Some(BASE),
        ),
        case(
            "iTP Local",
            json!({"internalTrafficPolicy": "Local"}),
            Some(Summary {
                itp_local: true,
                ..BASE
            }),
        ),
        case(
            "nodePort 0 is none",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 0}]}),
            Some(BASE),
        ),
        case(
            "ClientIP default timeout",
            json!({"sessionAffinity": "ClientIP"}),
            Some(Summary {
                affinity: Some(10800),
                ..BASE
            }),
        ),
        case(
            "ClientIP explicit timeout",
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
            Some(Summary {
                affinity: Some(60),
                ..BASE
            }),
        ),
        case(
            "None affinity",
            json!({"sessionAffinity": "None"}),
            Some(BASE),
        ),
    ]);
}

#[test]
fn ports_are_validated_one_by_one() {
    let svc = service(
        "ns",
        "svc",
        json!({"ports": [
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "sctp", "port": 9, "protocol": "SCTP"},
            {"name": "default-proto", "port": 81},
            {"name": "zero", "port": 0},
            {"name": "big", "port": 70000},
            {"name": "weird", "port": 82, "protocol": "tcp"}
        ]}),
    );
    let out = build(&objects(vec![svc], vec![], None), IpFamily::V4);
    let names: Vec<String> = out.state.services.keys().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "ns/svc:default-proto",
            "ns/svc:dns",
            "ns/svc:http",
            "ns/svc:sctp"
        ]
    );
    assert_eq!(
        named_port(&out.state, "ns", "svc", "dns", Protocol::Udp).port,
        53
    );
    assert_eq!(
        named_port(&out.state, "ns", "svc", "default-proto", Protocol::Tcp).protocol,
        Protocol::Tcp
    );
    let kinds: Vec<RejectionKind> = out.rejections.into_iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RejectionKind::InvalidPort(0),
            RejectionKind::InvalidPort(70000),
            RejectionKind::UnknownProtocol("tcp".into())
        ]
    );
}

#[test]
fn label_filtered_services_are_skipped() {
    for label in [
        "service.kubernetes.io/service-proxy-name",
        "service.kubernetes.io/headless",
    ] {
        let mut svc = service("ns", "svc", json!({}));
        svc["metadata"]["labels"] = json!({ label: "" });
        let out = build(&objects(vec![svc], vec![], None), IpFamily::V4);
        assert!(out.state.services.is_empty(), "{label}");
        assert!(out.rejections.is_empty(), "{label}");
    }
}

#[test]
fn invalid_service_does_not_affect_others() {
    let good = service("ns", "good", json!({"clusterIP": "10.96.0.1"}));
    let bad = service("ns", "bad", json!({"clusterIP": "10.96.0.x"}));
    let partly = service(
        "ns",
        "partly",
        json!({"clusterIP": "10.96.0.2", "externalIPs": ["1.2.3"],
                                               "ports": [{"name": "a", "port": 80}, {"name": "b", "port": -1}]}),
    );
    let out = build(
        &objects(vec![good, bad, partly], vec![], None),
        IpFamily::V4,
    );
    let names: Vec<String> = out.state.services.keys().map(ToString::to_string).collect();
    assert_eq!(names, ["ns/good", "ns/partly:a"]);
    let rej: Vec<String> = out
        .rejections
        .iter()
        .map(|r| format!("{} {:?}", r.object, r.kind))
        .collect();
    assert_eq!(
        rej,
        [
            "Service ns/bad InvalidClusterIp(\"10.96.0.x\")",
            "Service ns/partly InvalidExternalIp(\"1.2.3\")",
            "Service ns/partly InvalidPort(-1)",
        ]
    );
}

#[test]
fn source_range_annotation_is_not_read() {
    // Upstream kube-proxy reads only spec.loadBalancerSourceRanges; the annotation is for cloud providers.
    let mut svc = service("ns", "svc", json!({"type": "LoadBalancer"}));
    svc["metadata"]["annotations"] =
        json!({"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8"});
    let out = build(&objects(vec![svc], vec![], None), IpFamily::V4);
    assert!(port(&out.state, "ns", "svc")
        .load_balancer_source_ranges
        .is_empty());
}
