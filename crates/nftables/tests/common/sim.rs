//! An in-memory model of one nf_tables table, strict like the kernel about references: chains and sets in
//! use cannot be deleted, rules and elements cannot refer to missing objects, an element key cannot be added
//! twice with different data. Used to check that incremental transactions reach the same table as full ones.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kube_proxy_nftables::plan::{Match, Op, Rule, Set, Stmt, Transaction, Value, Verdict};

/// Elements of a set: key to (verdict, comment).
/// Data of an element: verdict, data-map value, comment.
pub type SimElem = (Option<Verdict>, Option<Vec<Value>>, Option<String>);
pub type SimElements = BTreeMap<Vec<Value>, SimElem>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimTable {
    pub chains: BTreeMap<String, Vec<Rule>>,
    pub sets: BTreeMap<String, (Set, SimElements)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sim {
    pub table: Option<SimTable>,
}

fn verdict_chain(v: &Verdict) -> Option<&str> {
    match v {
        Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
        _ => None,
    }
}

fn rule_refs(r: &Rule) -> (Vec<&str>, Vec<&str>) {
    let mut chains = Vec::new();
    let mut sets = Vec::new();
    for s in &r.stmts {
        match s {
            Stmt::Verdict(v) => chains.extend(verdict_chain(v)),
            Stmt::Vmap { map, .. } => sets.push(map.as_str()),
            Stmt::UpdateSaddr { set } => sets.push(set.as_str()),
            Stmt::DnatNumgenMap { map, .. } => sets.push(map.as_str()),
            Stmt::Match(Match::AddrInSet { set, .. }) => sets.push(set.as_str()),
            Stmt::Match(Match::SaddrDaddrInSet(set)) => sets.push(set.as_str()),
            _ => {}
        }
    }
    (chains, sets)
}

impl SimTable {
    fn chain_referenced(&self, name: &str) -> bool {
        self.chains
            .values()
            .flatten()
            .any(|r| rule_refs(r).0.contains(&name))
            || self
                .sets
                .values()
                .flat_map(|(_, e)| e.values())
                .any(|(v, _, _)| v.as_ref().and_then(verdict_chain) == Some(name))
    }

    fn set_referenced(&self, name: &str) -> bool {
        self.chains
            .values()
            .flatten()
            .any(|r| rule_refs(r).1.contains(&name))
    }
}

impl Sim {
    /// Applies `tx` atomically: on error the table is unchanged.
    pub fn apply(&mut self, tx: &Transaction) -> Result<(), String> {
        let mut next = self.table.clone();
        for (i, op) in tx.ops.iter().enumerate() {
            apply_op(&mut next, op).map_err(|e| format!("op {i} {op:?}: {e}"))?;
        }
        self.table = next;
        Ok(())
    }
}

fn apply_op(table: &mut Option<SimTable>, op: &Op) -> Result<(), String> {
    if let Op::AddTable { .. } = op {
        table.get_or_insert_with(SimTable::default);
        return Ok(());
    }
    if let Op::DeleteTable = op {
        return table.take().map(|_| ()).ok_or_else(|| "no table".into());
    }
    let t = table.as_mut().ok_or("no table")?;
    match op {
        Op::AddTable { .. } | Op::DeleteTable => unreachable!(),
        Op::AddChain(c) => {
            t.chains.entry(c.name.clone()).or_default();
        }
        Op::FlushChain(c) => t.chains.get_mut(c).ok_or("flush of missing chain")?.clear(),
        Op::DeleteChain(c) => {
            let rules = t.chains.get(c).ok_or("delete of missing chain")?;
            if !rules.is_empty() {
                return Err("delete of non-empty chain".into());
            }
            if t.chain_referenced(c) {
                return Err("delete of referenced chain".into());
            }
            t.chains.remove(c);
        }
        Op::AddSet(s) => match t.sets.get(&s.name) {
            Some((old, _)) if old != s => return Err("set redefined".into()),
            Some(_) => {}
            None => {
                t.sets.insert(s.name.clone(), (s.clone(), BTreeMap::new()));
            }
        },
        Op::FlushSet { name, .. } => t
            .sets
            .get_mut(name)
            .ok_or("flush of missing set")?
            .1
            .clear(),
        Op::DeleteSet { name, .. } => {
            if !t.sets.contains_key(name) {
                return Err("delete of missing set".into());
            }
            if t.set_referenced(name) {
                return Err("delete of referenced set".into());
            }
            t.sets.remove(name);
        }
        Op::AddElement(e) => {
            if let Some(c) = e.verdict.as_ref().and_then(verdict_chain) {
                if !t.chains.contains_key(c) {
                    return Err(format!("element refers to missing chain {c}"));
                }
            }
            let (_, elems) = t.sets.get_mut(&e.set).ok_or("element of missing set")?;
            let v = (e.verdict.clone(), e.data.clone(), e.comment.clone());
            match elems.get(&e.key) {
                Some(old) if old.0 != v.0 || old.1 != v.1 => {
                    return Err("element exists with other data".into())
                }
                Some(_) => {}
                None => {
                    elems.insert(e.key.clone(), v);
                }
            }
        }
        Op::DeleteElement(e) => {
            let (_, elems) = t.sets.get_mut(&e.set).ok_or("element of missing set")?;
            elems.remove(&e.key).ok_or("delete of missing element")?;
        }
        Op::AddRule(r) => {
            let (chains, sets) = rule_refs(r);
            for c in chains {
                if !t.chains.contains_key(c) {
                    return Err(format!("rule refers to missing chain {c}"));
                }
            }
            for s in sets {
                if !t.sets.contains_key(s) {
                    return Err(format!("rule refers to missing set {s}"));
                }
            }
            t.chains
                .get_mut(&r.chain)
                .ok_or("rule in missing chain")?
                .push(r.clone());
        }
    }
    Ok(())
}

impl Sim {
    /// The table with `@backends` slots renamed to (chain, index) through the `dnat … offset BASE` rule that
    /// reads them, and offsets zeroed: two tables that differ only in where slot ranges were allocated are
    /// equal in this form. Slots no rule reads are kept as they are (a leak shows up as a difference).
    pub fn canonical(&self) -> Option<CanonicalTable> {
        let t = self.table.as_ref()?;
        let mut t = t.clone();
        let mut owner: BTreeMap<(String, u32), (String, u32)> = BTreeMap::new();
        for (chain, rules) in t.chains.iter_mut() {
            for r in rules.iter_mut() {
                for s in r.stmts.iter_mut() {
                    if let Stmt::DnatNumgenMap {
                        modulus,
                        offset,
                        map,
                    } = s
                    {
                        for i in 0..*modulus {
                            owner.insert((map.clone(), *offset + i), (chain.clone(), i));
                        }
                        *offset = 0;
                    }
                }
            }
        }
        let mut slots = BTreeMap::new();
        let mut orphans = BTreeMap::new();
        for (name, (_, elems)) in t.sets.iter_mut() {
            if !name.starts_with("backends-") {
                continue;
            }
            for (k, v) in std::mem::take(elems) {
                match k.as_slice() {
                    [Value::Slot(s)] if owner.contains_key(&(name.clone(), *s)) => {
                        slots.insert(owner[&(name.clone(), *s)].clone(), v);
                    }
                    _ => {
                        orphans.insert((name.clone(), k), v);
                    }
                }
            }
        }
        Some(CanonicalTable {
            table: t,
            slots,
            orphans,
        })
    }
}

/// See [`Sim::canonical`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalTable {
    pub table: SimTable,
    pub slots: BTreeMap<(String, u32), SimElem>,
    pub orphans: BTreeMap<(String, Vec<Value>), SimElem>,
}
