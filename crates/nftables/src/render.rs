//! The pure renderer: a full transaction from a state, and an incremental one from two states.
//!
//! A full transaction recreates the table atomically (`add table; delete table; add table; ...`), so it never
//! needs to know what the kernel holds. An incremental transaction holds only what differs between two states:
//! changed elements, the chains of changed service ports whose rules changed (flushed and refilled), new
//! chains and sets, and the removal of stale ones. Its size depends on what changed, never on the number of
//! unchanged services. Replacing an endpoint of a service port without affinity changes only elements of a
//! `backends-K` map and of `@hairpin` (see `slots.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kube_proxy_model::{Protocol, ProxyState, ServicePortName};

use crate::config::RenderConfig;
use crate::names::HAIRPIN_SET;
use crate::plan::*;
use crate::service::{hairpin_ips, render_service, ServiceRender};
use crate::setup::render_setup;
use crate::slots::Slots;

mod elements;
use elements::{claims, element_values, touched_services};

/// The table's comment, as upstream writes it.
pub const TABLE_COMMENT: &str = "rules for kube-proxy";

pub(crate) type ElemKey = (String, Vec<Value>);
pub(crate) type ElemVal = (Option<Verdict>, Option<Vec<Value>>, Option<String>);

fn table_op() -> Op {
    Op::AddTable {
        comment: Some(TABLE_COMMENT.into()),
    }
}

/// Every object for `state`: recreates the table from scratch in one transaction (slots allocated afresh).
pub fn render_full(state: &ProxyState, cfg: &RenderConfig) -> Transaction {
    render_full_with(state, cfg, &Slots::fresh(state))
}

/// [`render_full`] with given slot ranges (they must cover `state`, e.g. `Slots::fresh(state)`).
pub fn render_full_with(state: &ProxyState, cfg: &RenderConfig, slots: &Slots) -> Transaction {
    let family = Family::of(state.family);
    let mut tx = Transaction::new(family);
    tx.ops.push(table_op());
    tx.ops.push(Op::DeleteTable);
    tx.ops.push(table_op());
    let setup = render_setup(family, cfg);
    let renders: Vec<ServiceRender> = state
        .services
        .values()
        .map(|s| render_service(s, cfg, slots))
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
            if values
                .insert(k.clone(), (e.verdict, e.data, e.comment))
                .is_none()
            {
                order.push(k);
            }
        }
    }
    // Elements of one set together, so the encoder packs them into few messages.
    order.sort_by(|a, b| a.0.cmp(&b.0));
    for k in order {
        let (verdict, data, comment) = values.remove(&k).unwrap_or((None, None, None));
        tx.ops.push(Op::AddElement(Element {
            set: k.0,
            key: k.1,
            verdict,
            data,
            comment,
        }));
    }
    tx
}

/// Only what differs between `prev` (the state last applied with `cfg`, by [`render_full`]) and `new`.
pub fn render_incremental(prev: &ProxyState, new: &ProxyState, cfg: &RenderConfig) -> Transaction {
    render_incremental_with(prev, new, cfg, &mut Slots::fresh(prev))
}

/// [`render_incremental`] with the slot ranges `prev` was applied with; updates them to `new`.
pub fn render_incremental_with(
    prev: &ProxyState,
    new: &ProxyState,
    cfg: &RenderConfig,
    slots: &mut Slots,
) -> Transaction {
    let family = Family::of(new.family);
    let mut tx = Transaction::new(family);
    let touched = touched_services(prev, new);
    if touched.is_empty() {
        return tx;
    }
    // Only the touched service ports' ranges change; untouched ones read `slots` before and after.
    let old_slots = slots.subset(&touched);
    let mut hairpin_before: BTreeMap<IpAddr, bool> = BTreeMap::new();
    for n in &touched {
        for (state, delta) in [(prev, -1), (new, 1)] {
            if let Some(svc) = state.services.get(n) {
                for ip in hairpin_ips(svc) {
                    hairpin_before
                        .entry(ip)
                        .or_insert_with(|| slots.hairpin_used(&ip));
                }
                slots.count_hairpin(svc, delta);
            }
        }
        slots.update(n, new.services.get(n).map(|s| s.as_ref()));
    }
    let new_slots: &Slots = slots;
    let render_of =
        |state: &ProxyState, slots: &Slots| -> BTreeMap<ServicePortName, ServiceRender> {
            touched
                .iter()
                .filter_map(|n| {
                    state
                        .services
                        .get(n)
                        .map(|s| (n.clone(), render_service(s, cfg, slots)))
                })
                .collect()
        };
    let old_r = render_of(prev, &old_slots);
    let new_r = render_of(new, new_slots);

    // Elements. A key whose claims by the touched service ports are the same before and after keeps its
    // value (the other claimants did not change); a `backends-K` slot has exactly one claimant. Only the
    // remaining keys need a look at the other service ports.
    let old_claims = claims(&old_r);
    let new_claims = claims(&new_r);
    let mut keys: BTreeSet<ElemKey> = BTreeSet::new();
    let mut slot_vals: [BTreeMap<ElemKey, ElemVal>; 2] = Default::default();
    for (i, (mine, theirs)) in [(&old_claims, &new_claims), (&new_claims, &old_claims)]
        .into_iter()
        .enumerate()
    {
        for (k, c) in mine {
            if theirs.get(k) == Some(c) {
                continue;
            }
            if matches!(k.1.as_slice(), [Value::Slot(_)]) {
                if let Some((_, v)) = c.last() {
                    slot_vals[i].insert(k.clone(), v.clone());
                }
            } else {
                keys.insert(k.clone());
            }
        }
    }
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for k in &keys {
        {
            match k.1.as_slice() {
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
    let ips: Vec<IpAddr> = ips.into_iter().collect();
    let ports: Vec<(Protocol, u16)> = ports.into_iter().collect();
    let [old_slot_vals, new_slot_vals] = slot_vals;
    let mut old_vals = BTreeMap::new();
    let mut new_vals = BTreeMap::new();
    if !keys.is_empty() {
        old_vals = element_values(prev, cfg, new_slots, &keys, &old_r, &ips, &ports);
        new_vals = element_values(new, cfg, new_slots, &keys, &new_r, &ips, &ports);
    }
    old_vals.extend(old_slot_vals);
    new_vals.extend(new_slot_vals);
    keys.extend(old_vals.keys().cloned());
    keys.extend(new_vals.keys().cloned());
    let mut del_elems = Vec::new();
    let mut add_elems = Vec::new();
    for k in &keys {
        let (o, n) = (old_vals.get(k), new_vals.get(k));
        if o == n {
            continue;
        }
        for (v, out) in [(o, &mut del_elems), (n, &mut add_elems)] {
            if let Some((verdict, data, comment)) = v {
                out.push(Element {
                    set: k.0.clone(),
                    key: k.1.clone(),
                    verdict: verdict.clone(),
                    data: data.clone(),
                    comment: comment.clone(),
                });
            }
        }
    }

    for (ip, before) in hairpin_before {
        let after = new_slots.hairpin_used(&ip);
        if before != after {
            let e = Element {
                set: HAIRPIN_SET.into(),
                key: vec![Value::Addr(ip), Value::Addr(ip)],
                verdict: None,
                data: None,
                comment: None,
            };
            if before {
                del_elems.push(e);
            } else {
                add_elems.push(e);
            }
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

    // Rules by chain: a chain whose rules did not change is left alone (rewriting a rule makes the kernel
    // re-validate the whole table).
    let rules_by_chain = |r: &BTreeMap<ServicePortName, ServiceRender>| {
        let mut m: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
        for rule in r.values().flat_map(|r| &r.rules) {
            m.entry(rule.chain.clone()).or_default().push(rule.clone());
        }
        m
    };
    let old_rules = rules_by_chain(&old_r);
    let new_rules = rules_by_chain(&new_r);
    // Chains whose rules read an affinity set that is deleted or redefined are rewritten (a referenced set
    // cannot be deleted).
    let mut forced: BTreeSet<&String> = BTreeSet::new();
    for rule in old_r.values().flat_map(|r| &r.rules) {
        let reads_stale_set = rule.stmts.iter().any(|st| {
            let set = match st {
                Stmt::UpdateSaddr { set } | Stmt::Match(Match::AddrInSet { set, .. }) => set,
                _ => return false,
            };
            old_sets
                .get(set)
                .is_some_and(|o| new_sets.get(set) != Some(o))
        });
        if reads_stale_set {
            forced.insert(&rule.chain);
        }
    }
    let changed = |c: &String| {
        !new_chains.contains(c) || forced.contains(c) || old_rules.get(c) != new_rules.get(c)
    };

    tx.ops.extend(del_elems.into_iter().map(Op::DeleteElement));
    for r in old_r.values() {
        tx.ops.extend(
            r.chains
                .iter()
                .filter(|c| changed(c))
                .map(|c| Op::FlushChain(c.clone())),
        );
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
        tx.ops.extend(
            r.rules
                .iter()
                .filter(|rule| !old_chains.contains(&rule.chain) || changed(&rule.chain))
                .cloned()
                .map(Op::AddRule),
        );
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
