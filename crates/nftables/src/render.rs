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
    let mut sink = TxSink {
        tx: Transaction::new(Family::of(state.family)),
        values: BTreeMap::new(),
    };
    render_full_into(state, cfg, slots, &mut sink);
    sink.tx
}

/// Receives a full transaction from [`render_full_into`]: operations in their final order, except the
/// service ports' elements, which the sink places last.
pub(crate) trait FullSink {
    /// The next operation.
    fn op(&mut self, op: Op);
    /// An element claimed by a service port (service ports in name order). A key (set and key) claimed
    /// several times (e.g. one externalIP on two Services) takes the value of the last claim, as upstream,
    /// at the place of the first.
    fn claim(&mut self, e: Element);
    /// Appends the claimed elements, one per key, grouped by set name (ascending) so the encoder packs them
    /// into few messages, in order of first claim within a set.
    fn finish_claims(&mut self);
}

/// The typed route: the whole [`Transaction`].
struct TxSink {
    tx: Transaction,
    /// Key -> (first claim, value of the last claim).
    values: BTreeMap<ElemKey, (usize, ElemVal)>,
}

impl FullSink for TxSink {
    fn op(&mut self, op: Op) {
        self.tx.ops.push(op);
    }

    fn claim(&mut self, e: Element) {
        let n = self.values.len();
        let v = (e.verdict, e.data, e.comment);
        match self.values.entry((e.set, e.key)) {
            std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().1 = v,
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert((n, v));
            }
        }
    }

    fn finish_claims(&mut self) {
        // The map is ordered by set, then key: each set's elements are put in order of first claim.
        let mut set: Vec<(usize, Element)> = Vec::new();
        let mut values = std::mem::take(&mut self.values).into_iter().peekable();
        while let Some(((name, key), (first, (verdict, data, comment)))) = values.next() {
            let last_of_set = values.peek().is_none_or(|((next, _), _)| *next != name);
            set.push((
                first,
                Element {
                    set: name,
                    key,
                    verdict,
                    data,
                    comment,
                },
            ));
            if last_of_set {
                set.sort_by_key(|(first, _)| *first);
                self.tx
                    .ops
                    .extend(set.drain(..).map(|(_, e)| Op::AddElement(e)));
            }
        }
    }
}

/// The full transaction of `state`, in the order both routes (typed and streaming) send it: `add table;
/// delete table; add table`, chains (top level, then service ports in name order), sets, rules, top-level
/// elements, then the service ports' elements (see [`FullSink::finish_claims`]). Each service port is
/// rendered once; its parts are moved on (chains and elements at once, sets and rules kept until every
/// chain is out) and its render dropped.
pub(crate) fn render_full_into(
    state: &ProxyState,
    cfg: &RenderConfig,
    slots: &Slots,
    sink: &mut impl FullSink,
) {
    let family = Family::of(state.family);
    sink.op(table_op());
    sink.op(Op::DeleteTable);
    sink.op(table_op());
    let setup = render_setup(family, cfg);
    for c in setup.chains {
        sink.op(Op::AddChain(c));
    }
    let mut sets: Vec<Set> = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    for svc in state.services.values() {
        let r = render_service(svc, cfg, slots);
        for c in r.chains {
            sink.op(Op::AddChain(Chain::regular(c)));
        }
        sets.extend(r.sets);
        rules.extend(r.rules);
        for e in r.elements {
            sink.claim(e);
        }
    }
    for s in setup.sets.into_iter().chain(sets) {
        sink.op(Op::AddSet(s));
    }
    for r in setup.rules.into_iter().chain(rules) {
        sink.op(Op::AddRule(r));
    }
    for e in setup.elements {
        sink.op(Op::AddElement(e));
    }
    sink.finish_claims();
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
