//! The pure renderer: a full transaction from a state, and an incremental one from two states.
//!
//! A full transaction recreates the table atomically (`add table; delete table; add table; ...`), so it never
//! needs to know what the kernel holds. An incremental transaction holds only what differs between two states:
//! changed elements, the chains of changed service ports (flushed and refilled), new chains and sets, and the
//! removal of stale ones. Its size depends on what changed, never on the number of unchanged services.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use kube_proxy_model::{Protocol, ProxyState, ServicePortName, ServicePortState, StateDiff};

use crate::config::RenderConfig;
use crate::plan::*;
use crate::service::{render_service, ServiceRender};
use crate::setup::render_setup;

/// The table's comment, as upstream writes it.
pub const TABLE_COMMENT: &str = "rules for kube-proxy";

type ElemKey = (String, Vec<Value>);
type ElemVal = (Option<Verdict>, Option<String>);

fn table_op() -> Op {
    Op::AddTable {
        comment: Some(TABLE_COMMENT.into()),
    }
}

/// Every object for `state`: recreates the table from scratch in one transaction.
pub fn render_full(state: &ProxyState, cfg: &RenderConfig) -> Transaction {
    let family = Family::of(state.family);
    let mut tx = Transaction::new(family);
    tx.ops.push(table_op());
    tx.ops.push(Op::DeleteTable);
    tx.ops.push(table_op());
    let setup = render_setup(family, cfg);
    let renders: Vec<ServiceRender> = state
        .services
        .values()
        .map(|s| render_service(s, cfg))
        .collect();

    tx.ops.extend(setup.chains.into_iter().map(Op::AddChain));
    for r in &renders {
        tx.ops.extend(
            r.chains
                .iter()
                .map(|c| Op::AddChain(Chain::regular(c.clone()))),
        );
    }
    tx.ops.extend(setup.sets.into_iter().map(Op::AddSet));
    for r in &renders {
        tx.ops.extend(r.sets.iter().cloned().map(Op::AddSet));
    }
    tx.ops.extend(setup.rules.into_iter().map(Op::AddRule));
    for r in &renders {
        tx.ops.extend(r.rules.iter().cloned().map(Op::AddRule));
    }
    tx.ops
        .extend(setup.elements.into_iter().map(Op::AddElement));
    // Keys claimed twice (e.g. one externalIP on two Services): the later service port wins, as upstream.
    let mut order: Vec<ElemKey> = Vec::new();
    let mut values: BTreeMap<ElemKey, ElemVal> = BTreeMap::new();
    for r in renders {
        for e in r.elements {
            let k = (e.set, e.key);
            if values.insert(k.clone(), (e.verdict, e.comment)).is_none() {
                order.push(k);
            }
        }
    }
    for k in order {
        let (verdict, comment) = values.remove(&k).unwrap_or((None, None));
        tx.ops.push(Op::AddElement(Element {
            set: k.0,
            key: k.1,
            verdict,
            comment,
        }));
    }
    tx
}

/// Could `svc` own an element with one of these addresses or node ports?
fn may_claim(
    svc: &ServicePortState,
    ips: &HashSet<IpAddr>,
    ports: &HashSet<(Protocol, u16)>,
) -> bool {
    ips.contains(&svc.cluster_ip)
        || svc.external_ips.iter().any(|ip| ips.contains(ip))
        || svc.load_balancer_ips.iter().any(|ip| ips.contains(ip))
        || svc
            .node_port
            .is_some_and(|p| ports.contains(&(svc.protocol, p)))
}

/// Winning value of each key in `keys`, computed over the services of `state` that may claim them.
fn element_values(
    state: &ProxyState,
    cfg: &RenderConfig,
    keys: &BTreeSet<ElemKey>,
    touched_renders: &BTreeMap<ServicePortName, ServiceRender>,
    ips: &HashSet<IpAddr>,
    ports: &HashSet<(Protocol, u16)>,
) -> BTreeMap<ElemKey, ElemVal> {
    let mut out = BTreeMap::new();
    for (name, svc) in &state.services {
        let owned;
        let render = match touched_renders.get(name) {
            Some(r) => r,
            None => {
                if !may_claim(svc, ips, ports) {
                    continue;
                }
                owned = render_service(svc, cfg);
                &owned
            }
        };
        for e in &render.elements {
            let k = (e.set.clone(), e.key.clone());
            if keys.contains(&k) {
                out.insert(k, (e.verdict.clone(), e.comment.clone()));
            }
        }
    }
    out
}

/// Only what differs between `prev` (the state last applied with `cfg`) and `new`.
pub fn render_incremental(prev: &ProxyState, new: &ProxyState, cfg: &RenderConfig) -> Transaction {
    let family = Family::of(new.family);
    let mut tx = Transaction::new(family);
    let diff = StateDiff::between(prev, new);
    if diff.is_empty() {
        return tx;
    }
    let touched = diff.touched();
    let render_of = |state: &ProxyState| -> BTreeMap<ServicePortName, ServiceRender> {
        touched
            .iter()
            .filter_map(|n| {
                state
                    .services
                    .get(n)
                    .map(|s| (n.clone(), render_service(s, cfg)))
            })
            .collect()
    };
    let old_r = render_of(prev);
    let new_r = render_of(new);

    // Elements.
    let mut keys: BTreeSet<ElemKey> = BTreeSet::new();
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for r in old_r.values().chain(new_r.values()) {
        for e in &r.elements {
            keys.insert((e.set.clone(), e.key.clone()));
            match e.key.as_slice() {
                [Value::Addr(ip), ..] => {
                    ips.insert(*ip);
                }
                [Value::Proto(p), Value::Port(port)] => {
                    ports.insert((*p, *port));
                }
                _ => {}
            }
        }
    }
    let old_vals = element_values(prev, cfg, &keys, &old_r, &ips, &ports);
    let new_vals = element_values(new, cfg, &keys, &new_r, &ips, &ports);
    let mut del_elems = Vec::new();
    let mut add_elems = Vec::new();
    for k in &keys {
        let (o, n) = (old_vals.get(k), new_vals.get(k));
        if o == n {
            continue;
        }
        if let Some((verdict, comment)) = o {
            del_elems.push(Element {
                set: k.0.clone(),
                key: k.1.clone(),
                verdict: verdict.clone(),
                comment: comment.clone(),
            });
        }
        if let Some((verdict, comment)) = n {
            add_elems.push(Element {
                set: k.0.clone(),
                key: k.1.clone(),
                verdict: verdict.clone(),
                comment: comment.clone(),
            });
        }
    }

    // Chains and affinity sets.
    let old_chains: BTreeSet<&String> = old_r.values().flat_map(|r| &r.chains).collect();
    let new_chains: BTreeSet<&String> = new_r.values().flat_map(|r| &r.chains).collect();
    let old_sets: BTreeMap<&String, &Set> = old_r
        .values()
        .flat_map(|r| &r.sets)
        .map(|s| (&s.name, s))
        .collect();
    let new_sets: BTreeMap<&String, &Set> = new_r
        .values()
        .flat_map(|r| &r.sets)
        .map(|s| (&s.name, s))
        .collect();

    tx.ops.extend(del_elems.into_iter().map(Op::DeleteElement));
    for r in old_r.values() {
        tx.ops
            .extend(r.chains.iter().map(|c| Op::FlushChain(c.clone())));
    }
    for r in old_r.values() {
        for c in &r.chains {
            if !new_chains.contains(c) {
                tx.ops.push(Op::DeleteChain(c.clone()));
            }
        }
    }
    for (name, set) in &old_sets {
        if new_sets.get(name) != Some(set) {
            tx.ops.push(Op::DeleteSet {
                name: (*name).clone(),
                verdict_map: false,
            });
        }
    }
    for r in new_r.values() {
        for c in &r.chains {
            if !old_chains.contains(c) {
                tx.ops.push(Op::AddChain(Chain::regular(c.clone())));
            }
        }
    }
    for (name, set) in &new_sets {
        if old_sets.get(name) != Some(set) {
            tx.ops.push(Op::AddSet((*set).clone()));
        }
    }
    for r in new_r.values() {
        tx.ops.extend(r.rules.iter().cloned().map(Op::AddRule));
    }
    tx.ops.extend(add_elems.into_iter().map(Op::AddElement));
    tx
}

/// Service ports whose Local traffic policy has no local endpoint while endpoints exist elsewhere:
/// (internal, external), for `kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy}`.
pub fn no_local_endpoints(state: &ProxyState) -> (usize, usize) {
    let mut internal = 0;
    let mut external = 0;
    for svc in state.services.values() {
        if !svc.has_any_endpoints || !svc.local_endpoints.is_empty() {
            continue;
        }
        if svc.internal_policy_local {
            internal += 1;
        }
        if svc.external_policy_local && svc.externally_accessible() {
            external += 1;
        }
    }
    (internal, external)
}
