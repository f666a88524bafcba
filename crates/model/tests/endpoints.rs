//! EndpointSlice merging: matching to services, families, port lookup, conditions, dedup, rejections.

mod common;

use common::*;
use kube_proxy_model::{IpFamily, Protocol, RejectionKind};
use serde_json::json;

fn http_port() -> serde_json::Value {
    json!([{"name": "", "port": 8080, "protocol": "TCP"}])
}

#[test]
fn slices_match_by_label_namespace_and_family() {
    let svc = service(
        "ns",
        "svc",
        json!({"clusterIPs": ["10.96.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv6"]}),
    );
    let slices = vec![
        slice(
            "ns",
            "svc-v4",
            "svc",
            "IPv4",
            http_port(),
            json!([ep("10.0.0.1", json!({}))]),
        ),
        slice(
            "ns",
            "svc-v6",
            "svc",
            "IPv6",
            http_port(),
            json!([ep("fd00:1::1", json!({}))]),
        ),
        slice(
            "ns",
            "svc-fqdn",
            "svc",
            "FQDN",
            http_port(),
            json!([ep("db.example", json!({}))]),
        ),
        slice(
            "other",
            "svc-x",
            "svc",
            "IPv4",
            http_port(),
            json!([ep("10.0.0.2", json!({}))]),
        ),
        slice(
            "ns",
            "other-x",
            "other",
            "IPv4",
            http_port(),
            json!([ep("10.0.0.3", json!({}))]),
        ),
    ];
    let objs = objects(vec![svc], slices, None);
    let v4 = build(&objs, IpFamily::V4);
    assert_eq!(
        addrs(&port(&v4.state, "ns", "svc").endpoints),
        ["10.0.0.1:8080"]
    );
    let v6 = build(&objs, IpFamily::V6);
    assert_eq!(
        addrs(&port(&v6.state, "ns", "svc").endpoints),
        ["[fd00:1::1]:8080"]
    );
    assert!(v4.rejections.is_empty() && v6.rejections.is_empty());
}

#[test]
fn slice_without_service_label_is_rejected() {
    let mut s = slice(
        "ns",
        "orphan",
        "svc",
        "IPv4",
        http_port(),
        json!([ep("10.0.0.1", json!({}))]),
    );
    s["metadata"]["labels"] = json!({});
    let out = build(
        &objects(vec![service("ns", "svc", json!({}))], vec![s], None),
        IpFamily::V4,
    );
    assert!(port(&out.state, "ns", "svc").endpoints.is_empty());
    assert_eq!(out.rejections.len(), 1);
    assert_eq!(out.rejections[0].object, "EndpointSlice ns/orphan");
}

#[test]
fn endpoint_ports_are_found_by_name_and_protocol() {
    let svc = service(
        "ns",
        "svc",
        json!({"ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": 9153, "protocol": "TCP"}
        ]}),
    );
    let s = slice(
        "ns",
        "svc-1",
        "svc",
        "IPv4",
        json!([
            {"name": "dns", "port": 1053, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 1054, "protocol": "TCP"},
            {"name": "metrics", "port": 9999, "protocol": "UDP"}
        ]),
        json!([ep("10.0.0.1", json!({}))]),
    );
    let out = build(&objects(vec![svc], vec![s], None), IpFamily::V4);
    let st = &out.state;
    assert_eq!(
        addrs(&named_port(st, "ns", "svc", "dns", Protocol::Udp).endpoints),
        ["10.0.0.1:1053"]
    );
    assert_eq!(
        addrs(&named_port(st, "ns", "svc", "dns-tcp", Protocol::Tcp).endpoints),
        ["10.0.0.1:1054"]
    );
    assert!(
        named_port(st, "ns", "svc", "metrics", Protocol::Tcp)
            .endpoints
            .is_empty(),
        "protocol must match too"
    );
}

#[test]
fn condition_defaults_follow_upstream() {
    // (conditions, ready, serving, terminating)
    let cases = [
        (json!(null), true, true, false),
        (json!({}), true, true, false),
        (json!({"ready": false}), false, true, false),
        (
            json!({"ready": false, "serving": true, "terminating": true}),
            false,
            true,
            true,
        ),
        (
            json!({"ready": false, "serving": false, "terminating": true}),
            false,
            false,
            true,
        ),
        (json!({"ready": true, "serving": false}), true, false, false),
    ];
    for (cond, ready, serving, terminating) in cases {
        let mut e = ep("10.0.0.1", json!({}));
        if !cond.is_null() {
            e["conditions"] = cond.clone();
        }
        let s = slice("ns", "svc-1", "svc", "IPv4", http_port(), json!([e]));
        let out = build(
            &objects(vec![service("ns", "svc", json!({}))], vec![s], None),
            IpFamily::V4,
        );
        let got = &port(&out.state, "ns", "svc").endpoints[0];
        assert_eq!(
            (got.ready, got.serving, got.terminating),
            (ready, serving, terminating),
            "conditions {cond}"
        );
    }
}

#[test]
fn locality_hints_and_order() {
    let s = slice(
        "ns",
        "svc-1",
        "svc",
        "IPv4",
        http_port(),
        json!([
            ep("10.0.0.10", json!({"nodeName": "node-b"})),
            ep(
                "010.000.000.002",
                json!({"nodeName": NODE,
                "hints": {"forZones": [{"name": "z2"}, {"name": "z1"}], "forNodes": [{"name": "n2"}, {"name": "n1"}]}})
            ),
            ep("10.0.0.3", json!({})),
        ]),
    );
    let out = build(
        &objects(vec![service("ns", "svc", json!({}))], vec![s], None),
        IpFamily::V4,
    );
    let eps = &port(&out.state, "ns", "svc").endpoints;
    assert_eq!(
        addrs(eps),
        ["10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.10:8080"]
    );
    assert_eq!(
        eps.iter().map(|e| e.is_local).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(eps[0].zone_hints(), ["z1", "z2"]);
    assert_eq!(eps[0].node_hints(), ["n1", "n2"]);
    assert!(eps[1].zone_hints().is_empty() && eps[1].hints.is_none());
}

#[test]
fn duplicates_first_wins_unless_a_later_one_is_local() {
    let a = slice(
        "ns",
        "svc-a",
        "svc",
        "IPv4",
        http_port(),
        json!([
            ep(
                "10.0.0.1",
                json!({"nodeName": "node-b", "conditions": {"ready": true}})
            ),
            ep(
                "10.0.0.2",
                json!({"nodeName": "node-b", "conditions": {"ready": true}})
            ),
        ]),
    );
    let b = slice(
        "ns",
        "svc-b",
        "svc",
        "IPv4",
        http_port(),
        json!([
            ep(
                "10.0.0.1",
                json!({"nodeName": "node-c", "conditions": {"ready": false}})
            ),
            ep(
                "10.0.0.2",
                json!({"nodeName": NODE, "conditions": {"ready": false}})
            ),
        ]),
    );
    let out = build(
        &objects(vec![service("ns", "svc", json!({}))], vec![a, b], None),
        IpFamily::V4,
    );
    let eps = &port(&out.state, "ns", "svc").endpoints;
    assert_eq!(addrs(eps), ["10.0.0.1:8080", "10.0.0.2:8080"]);
    assert!(
        eps[0].ready && !eps[0].is_local,
        "first occurrence (slice svc-a) wins"
    );
    assert!(
        !eps[1].ready && eps[1].is_local,
        "later local occurrence replaces"
    );
}

#[test]
fn same_ip_on_different_port_numbers_is_kept() {
    let a = slice(
        "ns",
        "svc-a",
        "svc",
        "IPv4",
        json!([{"name": "", "port": 8080}]),
        json!([ep("10.0.0.1", json!({}))]),
    );
    let b = slice(
        "ns",
        "svc-b",
        "svc",
        "IPv4",
        json!([{"name": "", "port": 8081}]),
        json!([ep("10.0.0.1", json!({}))]),
    );
    let out = build(
        &objects(vec![service("ns", "svc", json!({}))], vec![a, b], None),
        IpFamily::V4,
    );
    assert_eq!(
        addrs(&port(&out.state, "ns", "svc").endpoints),
        ["10.0.0.1:8080", "10.0.0.1:8081"]
    );
}

#[test]
fn bad_endpoints_and_ports_are_rejected_individually() {
    let s = slice(
        "ns",
        "svc-1",
        "svc",
        "IPv4",
        json!([{"name": "", "port": 8080}, {"port": 9090}, {"name": "zero", "port": 0}]),
        json!([
            ep("10.0.0.1", json!({})),
            ep("10.0.0.999", json!({})),
            ep("fd00::1", json!({})),
            {"addresses": []},
        ]),
    );
    let other = slice(
        "ns",
        "ok-1",
        "ok",
        "IPv4",
        http_port(),
        json!([ep("10.0.1.1", json!({}))]),
    );
    let svcs = vec![
        service("ns", "svc", json!({})),
        service("ns", "ok", json!({"clusterIP": "10.96.0.11"})),
    ];
    let out = build(&objects(svcs, vec![s, other], None), IpFamily::V4);
    assert_eq!(
        addrs(&port(&out.state, "ns", "svc").endpoints),
        ["10.0.0.1:8080"]
    );
    assert_eq!(
        addrs(&port(&out.state, "ns", "ok").endpoints),
        ["10.0.1.1:8080"]
    );
    let kinds: Vec<RejectionKind> = out.rejections.iter().map(|r| r.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            RejectionKind::InvalidEndpointAddress("10.0.0.999".into()),
            RejectionKind::InvalidEndpointAddress("fd00::1".into()),
            RejectionKind::InvalidEndpointAddress(String::new()),
            RejectionKind::Other("port without a name (use \"\" for an unnamed port)".into()),
            RejectionKind::InvalidPort(0),
        ]
    );
    assert!(out
        .rejections
        .iter()
        .all(|r| r.object == "EndpointSlice ns/svc-1"));
}

#[test]
fn node_pod_cidrs_of_the_family() {
    let node = json!({"metadata": {"name": NODE},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:244:1::/64", "oops"]}});
    let objs = objects(vec![], vec![], Some(node));
    let v4 = build(&objs, IpFamily::V4);
    assert_eq!(v4.state.node_pod_cidrs, ["10.244.1.0/24".parse().unwrap()]);
    assert_eq!(v4.rejections.len(), 1);
    assert_eq!(v4.rejections[0].object, format!("Node {NODE}"));
    let v6 = build(&objs, IpFamily::V6);
    assert_eq!(
        v6.state.node_pod_cidrs,
        ["fd00:244:1::/64".parse().unwrap()]
    );

    let legacy = objects(
        vec![],
        vec![],
        Some(json!({"metadata": {"name": NODE}, "spec": {"podCIDR": "10.244.2.0/24"}})),
    );
    assert_eq!(
        build(&legacy, IpFamily::V4).state.node_pod_cidrs,
        ["10.244.2.0/24".parse().unwrap()]
    );
    assert!(build(&legacy, IpFamily::V6).state.node_pod_cidrs.is_empty());
}
