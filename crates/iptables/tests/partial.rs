//! Partial renders must give the same tables as full renders: apply sequences of partial renders to the
//! simulated `iptables-restore --noflush` model and compare with a full render of the final state.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use kube_proxy_iptables::exec::{chains_in_save, Table};
use kube_proxy_iptables::sim::SimIptables;
use kube_proxy_iptables::{chains, render, LocalDetector, RenderConfig, RenderScope};
use kube_proxy_model::{IpFamily, ProxyState, ServicePortState};

fn cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec!["10.0.0.0/16".parse().unwrap()]),
        node_ips: vec![ip("192.168.0.2")],
        ..RenderConfig::default()
    }
}

/// Applies a full render the way the applier does (stale chains from the table's current contents deleted).
fn apply_full(sim: &mut SimIptables, st: &ProxyState, cfg: &RenderConfig) {
    let mut r = render(st, cfg, &RenderScope::Full);
    let save = sim.table(Table::Nat).save();
    r.delete_stale_chains(chains_in_save(&save));
    sim.restore(&r.restore_input(), true)
        .expect("full render applies");
}

fn apply_partial(
    sim: &mut SimIptables,
    prev: &Arc<ProxyState>,
    st: &ProxyState,
    cfg: &RenderConfig,
) {
    let scope = RenderScope::Partial {
        changed: BTreeSet::new(),
        previous: prev.clone(),
    };
    let r = render(st, cfg, &scope);
    assert!(r.partial);
    sim.restore(&r.restore_input(), true)
        .unwrap_or_else(|e| panic!("partial render applies: {e}\n{}", r.restore_input()));
}

fn fresh_full(st: &ProxyState, cfg: &RenderConfig) -> SimIptables {
    let mut sim = SimIptables::default();
    apply_full(&mut sim, st, cfg);
    sim
}

fn with_eps(mut s: ServicePortState, eps: &[(&str, bool)]) -> ServicePortState {
    s.endpoints = eps.iter().map(|(a, l)| ep(a, 80, *l)).collect();
    finish(s)
}

/// A sequence of states exercising adds, removals, endpoint churn, policy and affinity changes.
fn states() -> Vec<ProxyState> {
    let a = || svc(name("ns", "a", "http"), "172.30.0.1", 80);
    let b = || {
        let mut s = svc(name("ns", "b", ""), "172.30.0.2", 80);
        s.node_port = Some(30002);
        s
    };
    let c = || {
        let mut s = svc(name("ns", "c", "https"), "172.30.0.3", 443);
        s.load_balancer_ips = vec![ip("1.2.3.4")];
        s.node_port = Some(30003);
        s
    };
    let d = || {
        let mut s = svc(name("other", "d", "dns"), "172.30.0.4", 53);
        s.external_ips = vec![ip("192.168.9.9")];
        s
    };
    let s0 = state(
        IpFamily::V4,
        vec![
            with_eps(a(), &[("10.0.1.1", true), ("10.0.2.1", false)]),
            with_eps(b(), &[("10.0.1.2", true)]),
        ],
    );
    // Endpoint churn in a, new LB service c, b loses its endpoints (REJECT in filter).
    let s1 = state(
        IpFamily::V4,
        vec![
            with_eps(
                a(),
                &[("10.0.2.1", false), ("10.0.3.1", false), ("10.0.4.1", true)],
            ),
            with_eps(b(), &[]),
            with_eps(c(), &[("10.0.1.3", true), ("10.0.2.3", false)]),
        ],
    );
    // a removed; b back with eTP Local; c gets source ranges and affinity; d added.
    let mut b2 = b();
    b2.external_policy_local = true;
    b2.health_check_node_port = Some(31000);
    let mut c2 = c();
    c2.load_balancer_source_ranges = vec!["192.168.0.0/16".parse().unwrap()];
    c2.session_affinity_timeout = Some(60);
    let s2 = state(
        IpFamily::V4,
        vec![
            with_eps(b2.clone(), &[("10.0.1.2", true), ("10.0.2.2", false)]),
            with_eps(c2.clone(), &[("10.0.1.3", true), ("10.0.2.3", false)]),
            with_eps(d(), &[("10.0.5.5", false)]),
        ],
    );
    // b's local endpoint goes away (DROP external, SVL chain removed); c unchanged; d loses endpoints; a back.
    let s3 = state(
        IpFamily::V4,
        vec![
            with_eps(a(), &[("10.0.1.1", true)]),
            with_eps(b2, &[("10.0.2.2", false)]),
            with_eps(c2, &[("10.0.1.3", true), ("10.0.2.3", false)]),
            with_eps(d(), &[]),
        ],
    );
    let s4 = state(IpFamily::V4, vec![]);
    vec![s0, s1, s2, s3, s4]
}

#[test]
fn partial_sequence_equals_full_render() {
    let cfg = cfg();
    let states: Vec<Arc<ProxyState>> = states().into_iter().map(Arc::new).collect();
    let mut sim = SimIptables::default();
    apply_full(&mut sim, &states[0], &cfg);
    assert_eq!(sim, fresh_full(&states[0], &cfg));
    for w in states.windows(2) {
        apply_partial(&mut sim, &w[0], &w[1], &cfg);
        assert_eq!(
            sim.table(Table::Nat).save(),
            fresh_full(&w[1], &cfg).table(Table::Nat).save(),
            "nat after partial differs from full"
        );
        assert_eq!(
            sim,
            fresh_full(&w[1], &cfg),
            "tables after partial differ from full"
        );
    }
    // The final (empty) state leaves no per-service chains behind.
    let nat = sim.table(Table::Nat);
    assert!(
        nat.chains.keys().all(|c| !chains::is_service_chain(c)),
        "{:?}",
        nat.chains.keys()
    );
}

#[test]
fn every_pair_of_states_partial_equals_full() {
    // Partial renders from any applied state to any other, not just neighbours.
    let cfg = cfg();
    let states: Vec<Arc<ProxyState>> = states().into_iter().map(Arc::new).collect();
    for from in &states {
        for to in &states {
            let mut sim = fresh_full(from, &cfg);
            apply_partial(&mut sim, from, to, &cfg);
            assert_eq!(sim, fresh_full(to, &cfg));
        }
    }
}

#[test]
fn partial_render_skips_unchanged_service_chains() {
    let cfg = cfg();
    let st = states();
    let prev = Arc::new(st[2].clone());
    let r = render(
        &st[3],
        &cfg,
        &RenderScope::Partial {
            changed: BTreeSet::new(),
            previous: prev,
        },
    );
    // c is unchanged between s2 and s3: its SVC chain is neither declared nor filled.
    let c_svc = chains::svc_chain(&name("ns", "c", "https"));
    assert!(!r.nat.contains(&format!(":{c_svc} ")));
    assert!(!r.nat.contains(&format!("-A {c_svc} ")));
    // but its KUBE-SERVICES captures are always rewritten.
    assert!(r.nat.contains("-j KUBE-FW-"));
    // b's SVL chain is gone and deleted.
    let b_svl = chains::svl_chain(&name("ns", "b", ""));
    assert!(r.deleted_chains.contains(&b_svl), "{:?}", r.deleted_chains);
    assert!(r.nat.contains(&format!("-X {b_svl}\n")));
    assert!(r.nat_rules < r.nat_rules_total);
    insta::assert_snapshot!("partial_sync", r.restore_input());
}

#[test]
fn explicit_changed_set_forces_rewrite() {
    let cfg = cfg();
    let st = Arc::new(states()[2].clone());
    let n = name("ns", "c", "https");
    let r = render(
        &st,
        &cfg,
        &RenderScope::Partial {
            changed: [n.clone()].into(),
            previous: st.clone(),
        },
    );
    assert!(r
        .nat
        .contains(&format!(":{} - [0:0]", chains::svc_chain(&n))));
    // b is neither in `changed` nor different from `previous`: not rewritten.
    let b_svc = chains::svc_chain(&name("ns", "b", ""));
    assert!(!r.nat.contains(&format!(":{b_svc} ")));
}

#[test]
fn comparison_detects_missing_deletions() {
    // Guard against a vacuous equivalence check: dropping the `-X` lines must make the tables differ.
    let cfg = cfg();
    let st = states();
    let prev = Arc::new(st[0].clone());
    let mut sim = fresh_full(&prev, &cfg);
    let r = render(
        &st[2],
        &cfg,
        &RenderScope::Partial {
            changed: BTreeSet::new(),
            previous: prev,
        },
    );
    assert!(!r.deleted_chains.is_empty());
    let without_deletes: String = r
        .restore_input()
        .lines()
        .filter(|l| {
            !l.starts_with("-X ")
                && !r
                    .deleted_chains
                    .iter()
                    .any(|c| *l == format!(":{c} - [0:0]"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    sim.restore(&without_deletes, true).unwrap();
    assert_ne!(sim, fresh_full(&st[2], &cfg));
}
