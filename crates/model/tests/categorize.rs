//! Endpoint categorisation (upstream's CategorizeEndpoints): terminating fallback, traffic policies, topology.

mod common;

use common::*;
use kube_proxy_model::{
    categorize, topology_mode, Endpoint, EndpointHints, IpFamily, NodeTopology, TopologyMode,
};
use serde_json::json;

const HERE: NodeTopology<'static> = NodeTopology {
    node_name: NODE,
    zone: "z1",
};

/// An endpoint on port 80; flags: L local, R ready, S serving, T terminating.
fn e(addr: &str, flags: &str, zones: &[&str], nodes: &[&str]) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port: 80,
        is_local: flags.contains('L'),
        ready: flags.contains('R'),
        serving: flags.contains('S'),
        terminating: flags.contains('T'),
        hints: EndpointHints::shared(
            zones.iter().map(|z| z.to_string()),
            nodes.iter().map(|n| n.to_string()),
        ),
    }
}

fn ips_of(eps: &[Endpoint]) -> Vec<String> {
    eps.iter().map(|e| e.ip.to_string()).collect()
}

struct Case {
    name: &'static str,
    eps: Vec<Endpoint>,
    uses_cluster: bool,
    uses_local: bool,
    node: NodeTopology<'static>,
    cluster: Vec<&'static str>,
    local: Vec<&'static str>,
    reachable: Vec<&'static str>,
    has_any: bool,
}

fn cluster_case(
    name: &'static str,
    eps: Vec<Endpoint>,
    cluster: Vec<&'static str>,
    has_any: bool,
) -> Case {
    Case {
        name,
        eps,
        uses_cluster: true,
        uses_local: false,
        node: HERE,
        reachable: cluster.clone(),
        cluster,
        local: vec![],
        has_any,
    }
}

#[test]
fn categorize_table() {
    let cases = vec![
        cluster_case("no endpoints", vec![], vec![], false),
        cluster_case(
            "ready only",
            vec![
                e("10.0.0.1", "RS", &[], &[]),
                e("10.0.0.2", "", &[], &[]),
                e("10.0.0.3", "RS", &[], &[]),
            ],
            vec!["10.0.0.1", "10.0.0.3"],
            true,
        ),
        cluster_case(
            "terminating fallback when nothing is ready",
            vec![
                e("10.0.0.1", "ST", &[], &[]),
                e("10.0.0.2", "T", &[], &[]),
                e("10.0.0.3", "", &[], &[]),
            ],
            vec!["10.0.0.1"],
            true,
        ),
        cluster_case(
            "no fallback while something is ready",
            vec![e("10.0.0.1", "ST", &[], &[]), e("10.0.0.2", "RS", &[], &[])],
            vec!["10.0.0.2"],
            true,
        ),
        cluster_case(
            "nothing usable",
            vec![e("10.0.0.1", "T", &[], &[]), e("10.0.0.2", "S", &[], &[])],
            vec![],
            false,
        ),
        Case {
            name: "local only: local ready",
            eps: vec![
                e("10.0.0.1", "LRS", &[], &[]),
                e("10.0.0.2", "RS", &[], &[]),
            ],
            uses_cluster: false,
            uses_local: true,
            node: HERE,
            cluster: vec![],
            local: vec!["10.0.0.1"],
            reachable: vec!["10.0.0.1"],
            has_any: true,
        },
        Case {
            name: "local only: endpoints only elsewhere (DROP, not REJECT)",
            eps: vec![e("10.0.0.2", "RS", &[], &[])],
            uses_cluster: false,
            uses_local: true,
            node: HERE,
            cluster: vec![],
            local: vec![],
            reachable: vec![],
            has_any: true,
        },
        Case {
            name: "local only: local terminating used although remote ready exists",
            eps: vec![
                e("10.0.0.1", "LST", &[], &[]),
                e("10.0.0.2", "RS", &[], &[]),
            ],
            uses_cluster: false,
            uses_local: true,
            node: HERE,
            cluster: vec![],
            local: vec!["10.0.0.1"],
            reachable: vec!["10.0.0.1"],
            has_any: true,
        },
        Case {
            name: "both: cluster ready remote, local falls back to terminating; reachable merged",
            eps: vec![
                e("10.0.0.1", "LST", &[], &[]),
                e("10.0.0.2", "RS", &[], &[]),
                e("10.0.0.3", "LT", &[], &[]),
            ],
            uses_cluster: true,
            uses_local: true,
            node: HERE,
            cluster: vec!["10.0.0.2"],
            local: vec!["10.0.0.1"],
            reachable: vec!["10.0.0.1", "10.0.0.2"],
            has_any: true,
        },
        Case {
            name: "both: local ready, reachable is the cluster set",
            eps: vec![
                e("10.0.0.1", "LRS", &[], &[]),
                e("10.0.0.2", "RS", &[], &[]),
                e("10.0.0.3", "LST", &[], &[]),
            ],
            uses_cluster: true,
            uses_local: true,
            node: HERE,
            cluster: vec!["10.0.0.1", "10.0.0.2"],
            local: vec!["10.0.0.1"],
            reachable: vec!["10.0.0.1", "10.0.0.2"],
            has_any: true,
        },
        cluster_case(
            "zone hints: this zone only",
            vec![
                e("10.0.0.1", "RS", &["z1"], &[]),
                e("10.0.0.2", "RS", &["z2"], &[]),
                e("10.0.0.3", "RS", &["z1", "z2"], &[]),
            ],
            vec!["10.0.0.1", "10.0.0.3"],
            true,
        ),
        cluster_case(
            "zone hints: a ready endpoint without hints disables topology",
            vec![
                e("10.0.0.1", "RS", &["z1"], &[]),
                e("10.0.0.2", "RS", &[], &[]),
            ],
            vec!["10.0.0.1", "10.0.0.2"],
            true,
        ),
        cluster_case(
            "zone hints: a not-ready endpoint without hints does not matter",
            vec![
                e("10.0.0.1", "RS", &["z1"], &[]),
                e("10.0.0.2", "RS", &["z2"], &[]),
                e("10.0.0.3", "", &[], &[]),
            ],
            vec!["10.0.0.1"],
            true,
        ),
        cluster_case(
            "zone hints: none for this zone disables topology",
            vec![
                e("10.0.0.1", "RS", &["z2"], &[]),
                e("10.0.0.2", "RS", &["z3"], &[]),
            ],
            vec!["10.0.0.1", "10.0.0.2"],
            true,
        ),
        Case {
            node: NodeTopology {
                node_name: NODE,
                zone: "",
            },
            ..cluster_case(
                "zone hints: node without zone label ignores them",
                vec![
                    e("10.0.0.1", "RS", &["z1"], &[]),
                    e("10.0.0.2", "RS", &["z2"], &[]),
                ],
                vec!["10.0.0.1", "10.0.0.2"],
                true,
            )
        },
        cluster_case(
            "node hints: this node only",
            vec![
                e("10.0.0.1", "RS", &["z1"], &[NODE]),
                e("10.0.0.2", "RS", &["z1"], &["node-b"]),
            ],
            vec!["10.0.0.1"],
            true,
        ),
        cluster_case(
            "node hints: none for this node falls back to zone hints",
            vec![
                e("10.0.0.1", "RS", &["z1"], &["node-c"]),
                e("10.0.0.2", "RS", &["z2"], &["node-b"]),
            ],
            vec!["10.0.0.1"],
            true,
        ),
        cluster_case(
            "node hints: one missing falls back to zone hints",
            vec![
                e("10.0.0.1", "RS", &["z2"], &[NODE]),
                e("10.0.0.2", "RS", &["z1"], &[]),
            ],
            vec!["10.0.0.2"],
            true,
        ),
        cluster_case(
            "terminating fallback ignores topology",
            vec![
                e("10.0.0.1", "ST", &["z2"], &[]),
                e("10.0.0.2", "ST", &["z3"], &[]),
            ],
            vec!["10.0.0.1", "10.0.0.2"],
            true,
        ),
        Case {
            name: "topology on cluster set only; local keeps its own endpoints; reachable merged",
            eps: vec![
                e("10.0.0.1", "LRS", &["z2"], &[]),
                e("10.0.0.2", "RS", &["z1"], &[]),
                e("10.0.0.3", "RS", &["z2"], &[]),
            ],
            uses_cluster: true,
            uses_local: true,
            node: HERE,
            cluster: vec!["10.0.0.2"],
            local: vec!["10.0.0.1"],
            reachable: vec!["10.0.0.1", "10.0.0.2"],
            has_any: true,
        },
    ];
    for c in cases {
        let got = categorize(&c.eps, c.uses_cluster, c.uses_local, c.node);
        assert_eq!(ips_of(&got.cluster), c.cluster, "{}: cluster", c.name);
        assert_eq!(ips_of(&got.local), c.local, "{}: local", c.name);
        assert_eq!(
            ips_of(&got.all_reachable),
            c.reachable,
            "{}: reachable",
            c.name
        );
        assert_eq!(got.has_any, c.has_any, "{}: has_any", c.name);
    }
}

#[test]
fn topology_mode_table() {
    let cases = [
        (
            "no ready endpoints",
            vec![e("10.0.0.1", "", &["z1"], &[NODE])],
            TopologyMode::None,
        ),
        (
            "node",
            vec![e("10.0.0.1", "R", &["z1"], &[NODE])],
            TopologyMode::PreferSameNode,
        ),
        (
            "zone",
            vec![e("10.0.0.1", "R", &["z1"], &[])],
            TopologyMode::PreferSameZone,
        ),
        (
            "none",
            vec![e("10.0.0.1", "R", &[], &[])],
            TopologyMode::None,
        ),
    ];
    for (name, eps, want) in cases {
        assert_eq!(topology_mode(&eps, HERE), want, "{name}");
    }
}

fn hinted_slice(svc: &str) -> serde_json::Value {
    slice(
        "ns",
        &format!("{svc}-1"),
        svc,
        "IPv4",
        json!([{"name": "", "port": 8080, "protocol": "TCP"}]),
        json!([
            ep(
                "10.0.0.1",
                json!({"nodeName": NODE, "hints": {"forZones": [{"name": "z2"}]}})
            ),
            ep(
                "10.0.0.2",
                json!({"nodeName": "node-b", "hints": {"forZones": [{"name": "z1"}]}})
            ),
            ep(
                "10.0.0.3",
                json!({"nodeName": "node-c", "hints": {"forZones": [{"name": "z2"}]}})
            ),
        ]),
    )
}

#[test]
fn build_applies_policies_and_node_zone() {
    let services = vec![
        service("ns", "plain", json!({"clusterIP": "10.96.0.1"})),
        service(
            "ns",
            "itp",
            json!({"clusterIP": "10.96.0.2", "internalTrafficPolicy": "Local"}),
        ),
        service(
            "ns",
            "etp",
            json!({"clusterIP": "10.96.0.3", "type": "NodePort", "externalTrafficPolicy": "Local",
                                     "internalTrafficPolicy": "Local", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
    ];
    let slices = vec![
        hinted_slice("plain"),
        hinted_slice("itp"),
        hinted_slice("etp"),
    ];

    // Node in z1: zone hints pick 10.0.0.2 for cluster traffic.
    let out = build(
        &objects(services.clone(), slices.clone(), Some(node_in_zone("z1"))),
        IpFamily::V4,
    );
    let plain = port(&out.state, "ns", "plain");
    assert_eq!(addrs(&plain.cluster_endpoints), ["10.0.0.2:8080"]);
    assert!(plain.local_endpoints.is_empty());
    let itp = port(&out.state, "ns", "itp");
    assert!(
        itp.cluster_endpoints.is_empty(),
        "iTP Local, not externally accessible: no cluster set"
    );
    assert_eq!(addrs(&itp.local_endpoints), ["10.0.0.1:8080"]);
    assert_eq!(addrs(itp.internal_endpoints()), ["10.0.0.1:8080"]);
    let etp = port(&out.state, "ns", "etp");
    assert!(
        etp.uses_cluster_endpoints(),
        "externally accessible ports keep the cluster set (short circuit)"
    );
    assert_eq!(addrs(&etp.cluster_endpoints), ["10.0.0.2:8080"]);
    assert_eq!(addrs(&etp.local_endpoints), ["10.0.0.1:8080"]);
    assert_eq!(
        addrs(&etp.all_reachable_endpoints),
        ["10.0.0.1:8080", "10.0.0.2:8080"]
    );
    assert_eq!(etp.local_ready_endpoint_count(), 1);

    // Node in z3 (no hints for it) and no Node at all: topology ignored.
    for node in [Some(node_in_zone("z3")), Some(node_in_zone("")), None] {
        let out = build(
            &objects(services.clone(), slices.clone(), node.clone()),
            IpFamily::V4,
        );
        let plain = port(&out.state, "ns", "plain");
        assert_eq!(plain.cluster_endpoints.len(), 3, "node {node:?}");
    }
}

#[test]
fn hints_decide_not_service_fields() {
    // Upstream kube-proxy (1.33+) trusts the hints: the EndpointSlice controller only writes them when
    // trafficDistribution or the topology annotation asks for them.
    let hinted = |svc: &str, node_hints: bool| {
        let hint = |zone: &str, node: &str| {
            if node_hints {
                json!({"forZones": [{"name": zone}], "forNodes": [{"name": node}]})
            } else {
                json!({"forZones": [{"name": zone}]})
            }
        };
        slice(
            "ns",
            &format!("{svc}-1"),
            svc,
            "IPv4",
            json!([{"name": "", "port": 8080}]),
            json!([
                ep(
                    "10.0.0.1",
                    json!({"nodeName": NODE, "hints": hint("z2", NODE)})
                ),
                ep(
                    "10.0.0.2",
                    json!({"nodeName": "node-b", "hints": hint("z1", "node-b")})
                ),
            ]),
        )
    };
    let services = vec![
        service(
            "ns",
            "same-node",
            json!({"clusterIP": "10.96.0.1", "trafficDistribution": "PreferSameNode"}),
        ),
        service(
            "ns",
            "same-node-zone-only",
            json!({"clusterIP": "10.96.0.2", "trafficDistribution": "PreferSameNode"}),
        ),
        service("ns", "no-field", json!({"clusterIP": "10.96.0.3"})),
        service(
            "ns",
            "no-hints",
            json!({"clusterIP": "10.96.0.4", "trafficDistribution": "PreferSameZone"}),
        ),
    ];
    let slices = vec![
        hinted("same-node", true),
        hinted("same-node-zone-only", false),
        hinted("no-field", false),
        slice(
            "ns",
            "no-hints-1",
            "no-hints",
            "IPv4",
            json!([{"name": "", "port": 8080}]),
            json!([ep("10.0.0.1", json!({})), ep("10.0.0.2", json!({}))]),
        ),
    ];
    let out = build(
        &objects(services, slices, Some(node_in_zone("z1"))),
        IpFamily::V4,
    );
    let cluster = |name: &str| addrs(&port(&out.state, "ns", name).cluster_endpoints);
    assert_eq!(
        cluster("same-node"),
        ["10.0.0.1:8080"],
        "node hints for this node win"
    );
    assert_eq!(
        cluster("same-node-zone-only"),
        ["10.0.0.2:8080"],
        "no node hints: zone hints"
    );
    assert_eq!(
        cluster("no-field"),
        ["10.0.0.2:8080"],
        "hints apply without a service field"
    );
    assert_eq!(
        cluster("no-hints"),
        ["10.0.0.1:8080", "10.0.0.2:8080"],
        "a field without hints does nothing"
    );
}
