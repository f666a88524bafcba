//! Property: for random sequences of states, applying partial renders one after another gives exactly the
//! tables a full render of the last state gives (on the simulated `iptables-restore --noflush` model).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use kube_proxy_iptables::exec::{chains_in_save, Table};
use kube_proxy_iptables::sim::SimIptables;
use kube_proxy_iptables::{render, LocalDetector, RenderConfig, RenderScope};
use kube_proxy_model::{IpFamily, ProxyState, ServicePortState};
use proptest::prelude::*;

fn cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec!["10.0.0.0/16".parse().unwrap()]),
        node_ips: vec![ip("192.168.0.2")],
        ..RenderConfig::default()
    }
}

fn arb_service(idx: usize) -> impl Strategy<Value = ServicePortState> {
    (
        any::<bool>(),
        proptest::collection::vec((0u8..6, any::<bool>()), 0..4),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            move |(np, eps, (eip, lb, ranges, affinity), (etp, itp, hc))| {
                let mut s = svc(
                    name("ns", &format!("s{idx}"), "p"),
                    &format!("172.30.0.{}", idx + 1),
                    80,
                );
                s.node_port = np.then_some(30000 + idx as u16);
                if eip {
                    s.external_ips = vec![ip(&format!("192.168.99.{}", idx + 1))];
                }
                if lb {
                    s.load_balancer_ips = vec![ip(&format!("1.2.3.{}", idx + 1))];
                }
                if ranges {
                    s.load_balancer_source_ranges = vec!["192.168.0.0/16".parse().unwrap()];
                }
                s.session_affinity_timeout = affinity.then_some(60);
                s.external_policy_local = etp;
                s.internal_policy_local = itp;
                s.health_check_node_port = (etp && hc).then_some(31000 + idx as u16);
                let mut e: Vec<_> = eps
                    .into_iter()
                    .map(|(n, local)| {
                        ep(&format!("10.0.{}.{}", u8::from(local), n + 1), 8080, local)
                    })
                    .collect();
                e.sort();
                e.dedup_by(|a, b| a.ip == b.ip);
                s.endpoints = e;
                finish(s)
            },
        )
}

fn arb_state() -> impl Strategy<Value = ProxyState> {
    proptest::collection::vec(proptest::option::of(any::<u8>()), 5).prop_flat_map(|present| {
        let svcs: Vec<_> = present
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| arb_service(i))
            .collect();
        svcs.prop_map(|v| state(IpFamily::V4, v))
    })
}

fn apply_full(sim: &mut SimIptables, st: &ProxyState, cfg: &RenderConfig) {
    let mut r = render(st, cfg, &RenderScope::Full);
    let save = sim.table(Table::Nat).save();
    r.delete_stale_chains(chains_in_save(&save));
    sim.restore(&r.restore_input(), true).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn partial_renders_equal_full(states in proptest::collection::vec(arb_state(), 2..5)) {
        let cfg = cfg();
        let states: Vec<Arc<ProxyState>> = states.into_iter().map(Arc::new).collect();
        let mut sim = SimIptables::default();
        apply_full(&mut sim, &states[0], &cfg);
        for w in states.windows(2) {
            let scope = RenderScope::Partial { changed: BTreeSet::new(), previous: w[0].clone() };
            let r = render(&w[1], &cfg, &scope);
            sim.restore(&r.restore_input(), true).unwrap();
            let mut fresh = SimIptables::default();
            apply_full(&mut fresh, &w[1], &cfg);
            prop_assert_eq!(&sim, &fresh);
            // Chains a partial render leaves alone are counted, not written: the totals equal a full render's,
            // also when nothing changed and every service's chains are only counted.
            let full = render(&w[1], &cfg, &RenderScope::Full);
            let unchanged = RenderScope::Partial { changed: BTreeSet::new(), previous: w[1].clone() };
            for partial in [&r, &render(&w[1], &cfg, &unchanged)] {
                prop_assert_eq!(partial.nat_rules_total, full.nat_rules_total);
                prop_assert_eq!(partial.filter_rules, full.filter_rules);
                prop_assert_eq!(
                    (partial.no_local_endpoints_internal, partial.no_local_endpoints_external),
                    (full.no_local_endpoints_internal, full.no_local_endpoints_external)
                );
            }
        }
    }
}
