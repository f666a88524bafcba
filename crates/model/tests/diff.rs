//! StateDiff between successive builds, Arc reuse, dual-stack builds from one snapshot.

mod common;

use std::sync::Arc;

use common::*;
use kube_proxy_model::{build_state, IpFamily, NodeContext, Protocol, StateDiff};
use serde_json::json;

fn svc_slice(name: &str, addrs: &[&str]) -> serde_json::Value {
    let eps: Vec<_> = addrs.iter().map(|a| ep(a, json!({}))).collect();
    slice(
        "ns",
        &format!("{name}-1"),
        name,
        "IPv4",
        json!([{"name": "", "port": 8080}]),
        json!(eps),
    )
}

fn names(set: &std::collections::BTreeSet<kube_proxy_model::ServicePortName>) -> Vec<String> {
    set.iter().map(ToString::to_string).collect()
}

#[test]
fn rebuild_reuses_arcs_and_diffs_only_what_changed() {
    let node = NodeContext {
        node_name: NODE.into(),
    };
    let services = vec![
        service("ns", "a", json!({"clusterIP": "10.96.0.1"})),
        service("ns", "b", json!({"clusterIP": "10.96.0.2"})),
        service("ns", "c", json!({"clusterIP": "10.96.0.3"})),
    ];
    let slices = vec![
        svc_slice("a", &["10.0.0.1"]),
        svc_slice("b", &["10.0.0.2"]),
        svc_slice("c", &["10.0.0.3"]),
    ];
    let first = build(
        &objects(services.clone(), slices.clone(), None),
        IpFamily::V4,
    )
    .state;

    // Same objects: nothing changes and every Arc is shared.
    let same = build_state(
        &objects(services.clone(), slices.clone(), None),
        &node,
        IpFamily::V4,
        Some(&first),
    )
    .state;
    assert!(StateDiff::between(&first, &same).is_empty());
    for (k, v) in &same.services {
        assert!(Arc::ptr_eq(v, &first.services[k]), "{k} should be reused");
    }

    // b gains an endpoint, c is removed, d is added.
    let mut services2 = services[..2].to_vec();
    services2.push(service("ns", "d", json!({"clusterIP": "10.96.0.4"})));
    let slices2 = vec![
        svc_slice("a", &["10.0.0.1"]),
        svc_slice("b", &["10.0.0.2", "10.0.0.22"]),
    ];
    let second = build_state(
        &objects(services2, slices2, None),
        &node,
        IpFamily::V4,
        Some(&same),
    )
    .state;
    let diff = StateDiff::between(&same, &second);
    assert_eq!(names(&diff.added), ["ns/d"]);
    assert_eq!(names(&diff.removed), ["ns/c"]);
    assert_eq!(names(&diff.changed), ["ns/b"]);
    assert_eq!(names(&diff.touched()), ["ns/b", "ns/c", "ns/d"]);
    let a = spn("ns", "a", "", Protocol::Tcp);
    assert!(Arc::ptr_eq(&second.services[&a], &same.services[&a]));
    assert!(!StateDiff::between(&second, &first).is_empty());
}

#[test]
fn without_previous_equal_states_still_diff_empty() {
    let objs = objects(
        vec![service("ns", "a", json!({}))],
        vec![svc_slice("a", &["10.0.0.1"])],
        None,
    );
    let x = build(&objs, IpFamily::V4).state;
    let y = build(&objs, IpFamily::V4).state;
    assert!(
        StateDiff::between(&x, &y).is_empty(),
        "deep equality is enough without shared Arcs"
    );
    assert_eq!(x, y, "builds are deterministic");
}

#[test]
fn node_zone_change_changes_topology_filtered_ports() {
    let svc = service("ns", "a", json!({}));
    let s = slice(
        "ns",
        "a-1",
        "a",
        "IPv4",
        json!([{"name": "", "port": 8080}]),
        json!([
            ep("10.0.0.1", json!({"hints": {"forZones": [{"name": "z1"}]}})),
            ep("10.0.0.2", json!({"hints": {"forZones": [{"name": "z2"}]}})),
        ]),
    );
    let z1 = build(
        &objects(vec![svc.clone()], vec![s.clone()], Some(node_in_zone("z1"))),
        IpFamily::V4,
    )
    .state;
    let z2 = build(
        &objects(vec![svc], vec![s], Some(node_in_zone("z2"))),
        IpFamily::V4,
    )
    .state;
    assert_eq!(
        addrs(&port(&z1, "ns", "a").cluster_endpoints),
        ["10.0.0.1:8080"]
    );
    assert_eq!(
        addrs(&port(&z2, "ns", "a").cluster_endpoints),
        ["10.0.0.2:8080"]
    );
    assert_eq!(names(&StateDiff::between(&z1, &z2).changed), ["ns/a"]);
}

#[test]
fn dual_stack_builds_both_families_from_one_snapshot() {
    let mut svc = service(
        "ns",
        "web",
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv6"],
               "clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
    );
    svc["status"] =
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.1"}, {"ip": "2001:db8::1"}]}});
    let port_json = json!([{"name": "http", "port": 8080, "protocol": "TCP"}]);
    let slices = vec![
        slice(
            "ns",
            "web-v4",
            "web",
            "IPv4",
            port_json.clone(),
            json!([ep("10.0.0.1", json!({"nodeName": NODE}))]),
        ),
        slice(
            "ns",
            "web-v6",
            "web",
            "IPv6",
            port_json,
            json!([ep("fd00:1::1", json!({}))]),
        ),
    ];
    let objs = objects(vec![svc], slices, None);
    let v4 = build(&objs, IpFamily::V4).state;
    let v6 = build(&objs, IpFamily::V6).state;
    let p4 = named_port(&v4, "ns", "web", "http", Protocol::Tcp);
    let p6 = named_port(&v6, "ns", "web", "http", Protocol::Tcp);
    assert_eq!(
        (p4.cluster_ip, p6.cluster_ip),
        (ip("10.96.0.10"), ip("fd00::10"))
    );
    assert_eq!((p4.family, p6.family), (IpFamily::V4, IpFamily::V6));
    assert_eq!(p4.load_balancer_ips, ips(&["203.0.113.1"]));
    assert_eq!(p6.load_balancer_ips, ips(&["2001:db8::1"]));
    assert_eq!((p4.node_port, p6.node_port), (Some(30080), Some(30080)));
    assert_eq!(addrs(&p4.endpoints), ["10.0.0.1:8080"]);
    assert!(p4.endpoints[0].is_local);
    assert_eq!(addrs(&p6.endpoints), ["[fd00:1::1]:8080"]);
    assert_eq!((v4.family, v6.family), (IpFamily::V4, IpFamily::V6));
}
