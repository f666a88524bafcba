//! Property tests: categorisation invariants, sloppy parsing round trips, no panics on arbitrary field values.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use common::*;
use kube_proxy_model::{
    categorize, parse_ip_sloppy, Endpoint, EndpointHints, IpFamily, NodeTopology,
};
use proptest::prelude::*;
use serde_json::json;

fn endpoint_strategy() -> impl Strategy<Value = Endpoint> {
    (0u8..32, any::<[bool; 4]>(), 0usize..3, 0usize..3).prop_map(|(host, [l, r, s, t], z, n)| {
        let zones = ["", "z1", "z2"];
        let nodes = ["", NODE, "node-b"];
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)),
            port: 80,
            is_local: l,
            ready: r,
            serving: s || r,
            terminating: t && !r,
            hints: EndpointHints::shared(
                Some(zones[z]).filter(|z| !z.is_empty()).map(String::from),
                Some(nodes[n]).filter(|n| !n.is_empty()).map(String::from),
            ),
        }
    })
}

fn endpoints_strategy() -> impl Strategy<Value = Vec<Endpoint>> {
    proptest::collection::vec(endpoint_strategy(), 0..12).prop_map(|mut v| {
        v.sort();
        v.dedup_by_key(|e| e.ip);
        v
    })
}

proptest! {
    #[test]
    fn categorize_invariants(eps in endpoints_strategy(), uses_cluster: bool, uses_local: bool, zone_idx in 0usize..3) {
        prop_assume!(uses_cluster || uses_local);
        let zone = ["", "z1", "z2"][zone_idx];
        let got = categorize(&eps, uses_cluster, uses_local, NodeTopology { node_name: NODE, zone });
        let usable = |e: &Endpoint| e.ready || (e.serving && e.terminating);
        prop_assert!(got.cluster.iter().all(|e| eps.contains(e) && usable(e)));
        prop_assert!(got.local.iter().all(|e| e.is_local && usable(e)));
        prop_assert_eq!(got.has_any, eps.iter().any(usable));
        if !uses_cluster { prop_assert!(got.cluster.is_empty()); }
        if !uses_local { prop_assert!(got.local.is_empty()); }
        // Ready endpoints are preferred: the terminating fallback only applies when no ready endpoint exists.
        if uses_cluster && eps.iter().any(|e| e.ready) {
            prop_assert!(!got.cluster.is_empty() && got.cluster.iter().all(|e| e.ready));
        }
        if uses_local && eps.iter().any(|e| e.ready && e.is_local) {
            prop_assert_eq!(got.local.len(), eps.iter().filter(|e| e.ready && e.is_local).count());
        }
        let union: BTreeSet<&Endpoint> = got.cluster.iter().chain(&got.local).collect();
        let reachable: BTreeSet<&Endpoint> = got.all_reachable.iter().collect();
        prop_assert_eq!(reachable, union);
        prop_assert!(got.all_reachable.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    }

    #[test]
    fn leading_zeros_read_as_decimal(octets: [u8; 4], pad in proptest::collection::vec(0usize..3, 4)) {
        let text: Vec<String> = octets.iter().zip(&pad).map(|(o, p)| format!("{}{o}", "0".repeat(*p))).collect();
        prop_assert_eq!(parse_ip_sloppy(&text.join(".")), Some(IpAddr::V4(Ipv4Addr::from(octets))));
    }

    #[test]
    fn arbitrary_field_values_never_panic(
        cluster_ip in "\\PC{0,20}|10\\.96\\.0\\.[0-9]{1,3}",
        addr in "\\PC{0,20}|10\\.0\\.0\\.[0-9]{1,4}",
        port in any::<i32>(),
        ep_port in any::<i32>(),
        proto in "TCP|UDP|SCTP|\\PC{0,5}",
        range in "\\PC{0,20}|10\\.0\\.0\\.0/[0-9]{1,3}",
    ) {
        let svc = service("ns", "svc", json!({
            "clusterIP": cluster_ip, "type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "loadBalancerSourceRanges": [range], "externalIPs": [addr.clone()],
            "ports": [{"port": port, "protocol": proto, "nodePort": port}],
        }));
        let s = slice("ns", "svc-1", "svc", "IPv4", json!([{"name": "", "port": ep_port, "protocol": proto}]),
                      json!([ep(&addr, json!({}))]));
        let objs = objects(vec![svc], vec![s], Some(node_in_zone("z1")));
        for family in [IpFamily::V4, IpFamily::V6] {
            let out = build(&objs, family);
            prop_assert!(out.state.services.len() <= 1);
        }
    }
}
