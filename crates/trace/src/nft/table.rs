//! The nftables table the tracer walks: chains (with their hooks), rules, sets and maps with their elements,
//! built by applying the operations of a typed plan ([`Transaction`]) — a rendered full sync, or the kernel's
//! table read back into the same types.

use std::collections::BTreeMap;

use kube_proxy_nftables::plan::{BaseChain, Element, Family, Op, Rule, Set, Transaction, Value};

/// One chain and its rules in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftChain {
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

/// A set or map with its elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftSet {
    pub def: Set,
    pub elements: Vec<Element>,
}

impl NftSet {
    /// The element whose key is `key`.
    pub fn get(&self, key: &[Value]) -> Option<&Element> {
        self.elements.iter().find(|e| e.key == key)
    }
}

/// Table `kube-proxy` of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftTable {
    pub family: Family,
    pub chains: BTreeMap<String, NftChain>,
    pub sets: BTreeMap<String, NftSet>,
}

impl NftTable {
    /// An empty table.
    pub fn new(family: Family) -> NftTable {
        NftTable {
            family,
            chains: BTreeMap::new(),
            sets: BTreeMap::new(),
        }
    }

    /// The table a transaction leaves behind when applied to an empty kernel.
    pub fn from_transaction(tx: &Transaction) -> NftTable {
        let mut t = NftTable::new(tx.family);
        for op in &tx.ops {
            t.apply(op);
        }
        t
    }

    /// Applies one operation as the kernel would (adding an existing chain or set keeps it).
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::AddTable { .. } => {}
            Op::DeleteTable => {
                self.chains.clear();
                self.sets.clear();
            }
            Op::AddChain(c) => {
                self.chains.entry(c.name.clone()).or_insert(NftChain {
                    base: c.base,
                    rules: Vec::new(),
                });
            }
            Op::FlushChain(c) => {
                if let Some(c) = self.chains.get_mut(c) {
                    c.rules.clear();
                }
            }
            Op::DeleteChain(c) => {
                self.chains.remove(c);
            }
            Op::AddSet(s) => {
                self.sets.entry(s.name.clone()).or_insert(NftSet {
                    def: s.clone(),
                    elements: Vec::new(),
                });
            }
            Op::FlushSet { name, .. } => {
                if let Some(s) = self.sets.get_mut(name) {
                    s.elements.clear();
                }
            }
            Op::DeleteSet { name, .. } => {
                self.sets.remove(name);
            }
            Op::AddElement(e) => {
                if let Some(s) = self.sets.get_mut(&e.set) {
                    if !s.elements.iter().any(|x| x.key == e.key) {
                        s.elements.push(e.clone());
                    }
                }
            }
            Op::DeleteElement(e) => {
                if let Some(s) = self.sets.get_mut(&e.set) {
                    s.elements.retain(|x| x.key != e.key);
                }
            }
            Op::AddRule(r) => {
                if let Some(c) = self.chains.get_mut(&r.chain) {
                    c.rules.push(r.clone());
                }
            }
        }
    }

    /// Base chains attached to `hook`, in priority order.
    pub fn hook_chains(&self, hook: kube_proxy_nftables::plan::Hook) -> Vec<&str> {
        let mut v: Vec<(i32, &str)> = self
            .chains
            .iter()
            .filter_map(|(n, c)| {
                c.base
                    .filter(|b| b.hook == hook)
                    .map(|b| (b.priority, n.as_str()))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }
}
