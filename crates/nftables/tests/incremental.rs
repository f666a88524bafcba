//! Incremental transactions: applied after a full one they reach exactly the table a full render of the new
//! state describes (checked on a strict in-memory table model), and their size does not depend on the
//! number of unchanged services.

mod common;

use std::sync::Arc;

use common::sim::Sim;
use common::*;
use kube_proxy_model::{
    build_state, synthetic_cluster, IpFamily, NodeContext, Protocol, ProxyState,
};
use kube_proxy_nftables::slots::Slots;
use kube_proxy_nftables::{
    render_full, render_incremental, render_incremental_with, LocalDetector, NodePortAddresses,
    RenderConfig,
};
use proptest::prelude::*;

fn cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec!["10.0.0.0/16".parse().unwrap()]),
        node_port_addresses: NodePortAddresses::Ips(vec![ip("192.168.1.10")]),
        node_ips: vec![ip("198.51.100.7")],
        service_cidrs: vec!["172.30.0.0/16".parse().unwrap()],
        ..RenderConfig::default()
    }
}

/// Full(old) then incremental(old → new) must equal full(new), and must be accepted by the strict model.
fn check_transition(old: &ProxyState, new: &ProxyState, cfg: &RenderConfig) {
    let mut via_inc = Sim::default();
    via_inc
        .apply(&render_full(old, cfg))
        .expect("full(old) applies");
    via_inc
        .apply(&render_incremental(old, new, cfg))
        .expect("incremental applies");
    let mut via_full = Sim::default();
    via_full
        .apply(&render_full(new, cfg))
        .expect("full(new) applies");
    assert_eq!(via_inc.canonical(), via_full.canonical());
}

#[test]
fn endpoint_change_service_removal_and_addition() {
    let a = v4_state("10.0.1.7");
    let b = v4_state("10.0.1.8");
    check_transition(&a, &b, &cfg());
    check_transition(&b, &a, &cfg());
    let empty = Arc::new(ProxyState::empty(IpFamily::V4, "node1"));
    check_transition(&a, &empty, &cfg());
    check_transition(&empty, &a, &cfg());
}

#[test]
fn multi_port_service_keeps_shared_cluster_ip() {
    let mut p1 = svc(name("ns", "multi", "p1"), "172.30.0.20", 80);
    p1.endpoints = vec![ep("10.0.5.1", 80, false)];
    let mut p2 = svc(name("ns", "multi", "p2"), "172.30.0.20", 443);
    p2.endpoints = vec![ep("10.0.5.1", 443, false)];
    let both = state(IpFamily::V4, vec![finish(p1.clone()), finish(p2)]);
    let one = state(IpFamily::V4, vec![finish(p1)]);
    check_transition(&both, &one, &cfg());
    let inc = render_incremental(&both, &one, &cfg());
    let text = kube_proxy_nftables::text::to_nft_script(&inc);
    assert!(
        !text.contains("delete element ip kube-proxy cluster-ips"),
        "the remaining port still uses the ClusterIP:\n{text}"
    );
}

#[test]
fn shared_external_ip_goes_to_the_last_claimant() {
    let mut a = svc(name("ns", "a", ""), "172.30.0.30", 80);
    a.external_ips = vec![ip("192.0.2.99")];
    a.endpoints = vec![ep("10.0.6.1", 80, false)];
    let mut b = svc(name("ns", "b", ""), "172.30.0.31", 80);
    b.external_ips = vec![ip("192.0.2.99")];
    b.endpoints = vec![ep("10.0.6.2", 80, false)];
    let both = state(IpFamily::V4, vec![finish(a.clone()), finish(b)]);
    let only_a = state(IpFamily::V4, vec![finish(a)]);
    check_transition(&both, &only_a, &cfg());
    check_transition(&only_a, &both, &cfg());
}

fn synthetic(n: usize) -> ProxyState {
    let objs = synthetic_cluster(n, 10, "node1");
    let node = NodeContext {
        node_name: "node1".into(),
    };
    build_state(&objs, &node, IpFamily::V4, None).state
}

/// `state` with the first endpoint of service `bench/svc-N` moved to another address.
fn with_one_endpoint_changed(state: &ProxyState, index: usize) -> ProxyState {
    let mut next = state.clone();
    let (name, svc) = next
        .services
        .iter()
        .find(|(n, _)| *n.name == *format!("svc-{index}"))
        .map(|(n, s)| (n.clone(), s.clone()))
        .unwrap();
    let mut s = (*svc).clone();
    if let Some(e) = s.endpoints.first_mut() {
        e.ip = ip("10.250.0.1");
    }
    s.endpoints.sort();
    // Every synthetic endpoint is ready: the cluster and all-reachable views are all of them.
    s.cluster_endpoints = s.endpoints.clone().into();
    s.all_reachable_endpoints = s.cluster_endpoints.clone();
    next.services.insert(name, Arc::new(s));
    next
}

#[test]
fn one_endpoint_change_at_10000_services_is_as_small_as_at_100() {
    let cfg = cfg();
    let mut sizes = Vec::new();
    for n in [100, 10_000] {
        let old = synthetic(n);
        assert_eq!(old.services.len(), n);
        let new = with_one_endpoint_changed(&old, 42);
        let tx = render_incremental(&old, &new, &cfg);
        let batch = kube_proxy_nftables::netlink::encode(&tx, 1);
        sizes.push((tx.ops.len(), batch.messages(), batch.bytes.len()));
    }
    assert!(sizes[0].0 > 0, "the change is programmed");
    // Same change, same batch: the 9,900 extra unchanged services add nothing.
    assert_eq!(sizes[0].0, sizes[1].0, "ops: {sizes:?}");
    assert_eq!(sizes[0].1, sizes[1].1, "messages: {sizes:?}");
    assert_eq!(sizes[0].2, sizes[1].2, "bytes: {sizes:?}");
    // Data only: the service's slots (endpoints stay sorted, so later slots shift) and the old and new
    // hairpin pair; no rule, chain or set.
    let old = synthetic(10_000);
    let tx = render_incremental(&old, &with_one_endpoint_changed(&old, 42), &cfg);
    let c = tx.counts();
    assert!(c.elements_added >= 2 && c.elements_added <= 11, "{tx:?}");
    assert_eq!(c.elements_added, c.elements_deleted, "{tx:?}");
    assert_eq!(
        c.rules_added + c.chains_added + c.chains_deleted + c.sets_added + c.other,
        0,
        "{tx:?}"
    );
    assert_eq!(sizes[1].1, 4, "one message per set and kind: {sizes:?}");
}

#[test]
fn synthetic_transition_matches_full() {
    let old = synthetic(50);
    let new = with_one_endpoint_changed(&old, 7);
    check_transition(&old, &new, &cfg());
}

// Random states over small pools, so that services share names, IPs and node ports across states.
fn arb_service() -> impl Strategy<Value = kube_proxy_model::ServicePortState> {
    (
        (0usize..4, 0usize..2, any::<bool>()),
        (
            prop::option::of(0u16..3),
            prop::collection::vec(0u8..3, 0..2),
            prop::collection::vec(0u8..2, 0..2),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(prop_oneof![Just(60u32), Just(300u32)]),
        ),
        prop::collection::vec((0u8..5, any::<bool>(), any::<bool>()), 0..4),
    )
        .prop_map(
            |((svc_i, port_i, udp), (np, ext, lb), (etp, itp, ranges, aff), eps)| {
                let port_name = ["p1", "p2"][port_i];
                let mut n = name("ns", &format!("s{svc_i}"), port_name);
                if udp {
                    n.protocol = Protocol::Udp;
                }
                let mut s = svc(n, &format!("172.30.0.{}", 10 + svc_i), 80 + port_i as u16);
                s.node_port = np.map(|p| 30000 + p);
                s.external_ips = ext.iter().map(|i| ip(&format!("192.0.2.{i}"))).collect();
                s.external_ips.sort();
                s.external_ips.dedup();
                s.load_balancer_ips = lb.iter().map(|i| ip(&format!("203.0.113.{i}"))).collect();
                s.load_balancer_ips.sort();
                s.load_balancer_ips.dedup();
                if ranges {
                    s.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
                }
                s.external_policy_local = etp;
                s.internal_policy_local = itp;
                s.session_affinity_timeout = aff;
                s.endpoints = eps
                    .iter()
                    .map(|(a, local, ready)| {
                        let mut e = ep(&format!("10.0.9.{a}"), 8080, *local);
                        e.ready = *ready;
                        e
                    })
                    .collect();
                s.endpoints.sort();
                s.endpoints.dedup_by(|a, b| a.ip == b.ip);
                finish(s)
            },
        )
}

fn arb_state() -> impl Strategy<Value = ProxyState> {
    prop::collection::vec(arb_service(), 0..6).prop_map(|svcs| state(IpFamily::V4, svcs))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn incremental_equals_full(old in arb_state(), new in arb_state(), masq_all in any::<bool>()) {
        let mut cfg = cfg();
        cfg.masquerade_all = masq_all;
        let mut via_inc = Sim::default();
        via_inc.apply(&render_full(&old, &cfg)).map_err(TestCaseError::fail)?;
        via_inc.apply(&render_incremental(&old, &new, &cfg)).map_err(TestCaseError::fail)?;
        let mut via_full = Sim::default();
        via_full.apply(&render_full(&new, &cfg)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(via_inc.canonical(), via_full.canonical());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// Slot ranges carried over several incremental syncs (as the dataplane does) still reach the table a
    /// full render describes, up to where the ranges lie.
    #[test]
    fn chained_incrementals_equal_full(states in prop::collection::vec(arb_state(), 2..5)) {
        let cfg = cfg();
        let mut sim = Sim::default();
        sim.apply(&render_full(&states[0], &cfg)).map_err(TestCaseError::fail)?;
        let mut slots = Slots::fresh(&states[0]);
        for pair in states.windows(2) {
            let tx = render_incremental_with(&pair[0], &pair[1], &cfg, &mut slots);
            sim.apply(&tx).map_err(TestCaseError::fail)?;
        }
        let mut via_full = Sim::default();
        via_full.apply(&render_full(states.last().unwrap(), &cfg)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(sim.canonical(), via_full.canonical());
    }
}
