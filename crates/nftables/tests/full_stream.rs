//! The full sync's two routes give the same batch: the dataplane's streaming `netlink::encode_full` and
//! `netlink::encode` of the typed `render_full_with` transaction, byte for byte.

mod common;

use common::*;
use kube_proxy_model::{IpFamily, Protocol, ProxyState, ServicePortState};
use kube_proxy_nftables::netlink::{encode, encode_full};
use kube_proxy_nftables::plan::Op;
use kube_proxy_nftables::slots::Slots;
use kube_proxy_nftables::{
    render_full_with, render_service, LocalDetector, NodePortAddresses, RenderConfig,
};
use proptest::prelude::*;

/// `n` service ports mixing every feature: ClientIP affinity, NodePorts, externalIPs and load-balancer IPs
/// (some claimed by several Services), source ranges, Local policies, UDP, no endpoints, shared endpoints.
fn mixed(n: usize, family: IpFamily) -> ProxyState {
    let addr = |prefix: &str, i: usize| match family {
        IpFamily::V4 => format!("{prefix}.{}.{}", i / 250, i % 250 + 1),
        IpFamily::V6 => format!("fd00:{prefix}::{:x}", i + 1),
    };
    let (cip, eip, lbip, epip) = match family {
        IpFamily::V4 => ("172.30", "192.0", "203.0", "10.1"),
        IpFamily::V6 => ("30", "192", "203", "10"),
    };
    let svcs: Vec<ServicePortState> = (0..n)
        .map(|i| {
            let mut nm = name("ns", &format!("s{i}"), if i % 9 == 0 { "dns" } else { "" });
            if i % 9 == 0 {
                nm.protocol = Protocol::Udp;
            }
            let mut s = svc(nm, &addr(cip, i), 80);
            if i % 3 == 0 {
                s.node_port = Some(30000 + (i % 200) as u16);
            }
            if i % 5 == 0 {
                // Ten Services claim each of these externalIPs (same port and protocol): the last one wins.
                s.external_ips = vec![family_ip(&addr(eip, i / 50))];
            }
            if i % 4 == 0 {
                s.load_balancer_ips = vec![family_ip(&addr(lbip, i / 8))];
                if i % 8 == 0 {
                    s.load_balancer_source_ranges = vec![match family {
                        IpFamily::V4 => "198.51.100.0/24".parse().unwrap(),
                        IpFamily::V6 => "2001:db8::/64".parse().unwrap(),
                    }];
                }
            }
            s.external_policy_local = i % 6 == 0;
            s.internal_policy_local = i % 13 == 0;
            if i % 7 == 0 {
                s.session_affinity_timeout = Some(10_800);
            }
            if i % 11 != 0 {
                // Endpoints overlap between neighbours (shared hairpin pairs).
                s.endpoints = (0..(i % 5 + 1))
                    .map(|k| ep(&addr(epip, i + k), 8080, (i + k) % 2 == 0))
                    .collect();
            }
            finish(s)
        })
        .collect();
    state(family, svcs)
}

fn family_ip(s: &str) -> std::net::IpAddr {
    ip(s)
}

fn configs() -> Vec<RenderConfig> {
    vec![
        RenderConfig::default(),
        RenderConfig {
            masquerade_all: true,
            local_detector: LocalDetector::Cidrs(vec![
                "10.0.0.0/8".parse().unwrap(),
                "fd00::/16".parse().unwrap(),
            ]),
            node_port_addresses: NodePortAddresses::Ips(vec![ip("192.168.1.1"), ip("fd00::1")]),
            node_ips: vec![ip("198.51.100.7"), ip("2001:db8::7")],
            service_cidrs: vec!["172.30.0.0/16".parse().unwrap()],
            ..RenderConfig::default()
        },
        RenderConfig {
            local_detector: LocalDetector::InterfaceNamePrefix("veth".into()),
            ..RenderConfig::default()
        },
    ]
}

fn assert_same_batch(st: &ProxyState, cfg: &RenderConfig, first_seq: u32) {
    let slots = Slots::fresh(st);
    let tx = render_full_with(st, cfg, &slots);
    let typed = encode(&tx, first_seq);
    let lean = encode_full(st, cfg, &slots, first_seq);
    assert_eq!(lean.ops, tx.len());
    assert_eq!(lean.counts, tx.counts());
    assert_eq!(lean.batch.first_seq, typed.first_seq);
    assert_eq!(lean.batch.last_seq, typed.last_seq);
    assert_eq!(lean.batch.op_index, typed.op_index);
    assert!(lean.batch.bytes == typed.bytes, "batches differ");
}

#[test]
fn streamed_full_batch_equals_typed_encoding() {
    for family in [IpFamily::V4, IpFamily::V6] {
        let st = mixed(300, family);
        for cfg in configs() {
            assert_same_batch(&st, &cfg, 1);
            assert_same_batch(&st, &cfg, u32::MAX - 5);
        }
    }
}

#[test]
fn the_mixed_state_claims_keys_twice_and_fills_several_element_messages() {
    let st = mixed(300, IpFamily::V4);
    let cfg = RenderConfig::default();
    let slots = Slots::fresh(&st);
    let claims: usize = st
        .services
        .values()
        .map(|s| render_service(s, &cfg, &slots).elements.len())
        .sum();
    let tx = render_full_with(&st, &cfg, &slots);
    let service_ips = tx
        .ops
        .iter()
        .filter(|op| matches!(op, Op::AddElement(e) if e.set == "service-ips"))
        .count();
    let elements = tx.counts().elements_added;
    assert!(
        elements < claims,
        "{elements} elements from {claims} claims"
    );
    assert!(service_ips > 0);
    // Large enough that one set needs more than one message.
    let big = mixed(3000, IpFamily::V4);
    assert_same_batch(&big, &cfg, 7);
}

fn arb_service() -> impl Strategy<Value = ServicePortState> {
    (
        (0usize..6, any::<bool>(), prop::option::of(0u16..3)),
        (
            prop::collection::vec(0u8..3, 0..2),
            prop::collection::vec(0u8..2, 0..2),
            any::<bool>(),
        ),
        (any::<bool>(), any::<bool>(), prop::option::of(Just(300u32))),
        prop::collection::vec((0u8..5, any::<bool>()), 0..4),
    )
        .prop_map(|((i, udp, np), (ext, lb, ranges), (etp, itp, aff), eps)| {
            let mut n = name("ns", &format!("s{i}"), "");
            if udp {
                n.protocol = Protocol::Udp;
            }
            let mut s = svc(n, &format!("172.30.0.{}", 10 + i % 3), 80);
            s.node_port = np.map(|p| 30000 + p);
            s.external_ips = ext.iter().map(|k| ip(&format!("192.0.2.{k}"))).collect();
            s.external_ips.sort();
            s.external_ips.dedup();
            s.load_balancer_ips = lb.iter().map(|k| ip(&format!("203.0.113.{k}"))).collect();
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
                .map(|(a, local)| ep(&format!("10.0.9.{a}"), 8080, *local))
                .collect();
            s.endpoints.sort();
            s.endpoints.dedup_by(|a, b| a.ip == b.ip);
            finish(s)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn streamed_equals_typed_on_colliding_states(
        svcs in prop::collection::vec(arb_service(), 0..8),
        cfg_i in 0usize..3,
    ) {
        let st = state(IpFamily::V4, svcs);
        assert_same_batch(&st, &configs()[cfg_i], 1);
    }
}
