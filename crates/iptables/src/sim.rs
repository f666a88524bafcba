//! An in-memory model of iptables tables with `iptables-restore` semantics, and [`FakeExec`] built on it.
//!
//! Supports what kube-proxy's restore inputs use: `*table`, `:CHAIN` (create, or flush if it exists),
//! `-A`, `-I CHAIN [n]`, `-D`, `-F`, `-N`, `-X` (only empty, unreferenced user chains), `COMMIT`. Without
//! `--noflush` a table section first empties the table. Jumps to user chains that do not exist are errors.
//! A failed input changes nothing. For tests; never touches the system.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kube_proxy_model::IpFamily;

use crate::exec::{IptablesExec, Table};
use crate::IptablesError;

/// Targets that are not chains.
const TARGETS: &[&str] = &[
    "ACCEPT",
    "DROP",
    "REJECT",
    "RETURN",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "MARK",
    "LOG",
    "REDIRECT",
    "CONNMARK",
    "NOTRACK",
    "CT",
];

/// One table: chain name → rule specs (the text after `-A CHAIN `), built-in chains included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTable {
    pub table: Table,
    pub chains: BTreeMap<String, Vec<String>>,
}

impl SimTable {
    pub fn new(table: Table) -> SimTable {
        let chains = table
            .builtin_chains()
            .iter()
            .map(|c| (c.to_string(), Vec::new()))
            .collect();
        SimTable { table, chains }
    }

    fn is_builtin(&self, chain: &str) -> bool {
        self.table.builtin_chains().contains(&chain)
    }

    /// `iptables-save`-like text.
    pub fn save(&self) -> String {
        let mut s = format!("*{}\n", self.table.as_str());
        for c in self.table.builtin_chains() {
            s.push_str(&format!(":{c} ACCEPT [0:0]\n"));
        }
        for c in self.chains.keys().filter(|c| !self.is_builtin(c)) {
            s.push_str(&format!(":{c} - [0:0]\n"));
        }
        for (c, rules) in &self.chains {
            for r in rules {
                s.push_str(&format!("-A {c} {r}\n"));
            }
        }
        s.push_str("COMMIT\n");
        s
    }

    fn references(&self, chain: &str) -> usize {
        self.chains
            .values()
            .flatten()
            .filter(|r| jump_target(r).as_deref() == Some(chain))
            .count()
    }
}

/// Splits a rule into words, keeping double-quoted strings together (quotes kept).
pub fn tokenize(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in rule.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The `-j`/`-g` target of a rule spec.
pub fn jump_target(rule: &str) -> Option<String> {
    let toks = tokenize(rule);
    toks.windows(2)
        .find(|w| w[0] == "-j" || w[0] == "-g")
        .map(|w| w[1].clone())
}

/// All tables of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimIptables {
    pub tables: BTreeMap<Table, SimTable>,
}

impl Default for SimIptables {
    fn default() -> Self {
        let tables = [Table::Filter, Table::Nat, Table::Mangle, Table::Raw]
            .into_iter()
            .map(|t| (t, SimTable::new(t)))
            .collect();
        SimIptables { tables }
    }
}

impl SimIptables {
    pub fn table(&self, t: Table) -> &SimTable {
        &self.tables[&t]
    }

    /// Applies an `iptables-restore` input atomically.
    pub fn restore(&mut self, input: &str, noflush: bool) -> Result<(), IptablesError> {
        let mut next = self.clone();
        let mut current: Option<Table> = None;
        for (i, raw) in input.lines().enumerate() {
            let err = |reason: String| IptablesError::Simulated {
                line: i + 1,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(t) = line.strip_prefix('*') {
                let t = Table::parse(t).ok_or_else(|| err(format!("unknown table {t}")))?;
                if !noflush {
                    next.tables.insert(t, SimTable::new(t));
                }
                current = Some(t);
                continue;
            }
            if line == "COMMIT" {
                current = None;
                continue;
            }
            let t = current.ok_or_else(|| err("rule outside a table".into()))?;
            let table = next.tables.get_mut(&t).expect("all tables exist");
            if let Some(decl) = line.strip_prefix(':') {
                let name = decl
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if !table.is_builtin(&name) {
                    table.chains.insert(name, Vec::new());
                }
                continue;
            }
            let toks = tokenize(line);
            let (op, chain) = match (toks.first(), toks.get(1)) {
                (Some(o), Some(c)) => (o.as_str(), c.clone()),
                _ => return Err(err(format!("cannot parse {line:?}"))),
            };
            let rest_tokens = &toks[2..];
            let exists = table.chains.contains_key(&chain);
            let check_target = |table: &SimTable, spec: &str| -> Result<(), IptablesError> {
                if let Some(target) = jump_target(spec) {
                    if !TARGETS.contains(&target.as_str()) && !table.chains.contains_key(&target) {
                        return Err(err(format!("jump to missing chain {target}")));
                    }
                }
                Ok(())
            };
            match op {
                "-A" | "-I" | "-D" if !exists => {
                    return Err(err(format!("no chain {chain} in {}", t.as_str())))
                }
                "-A" => {
                    let spec = rest_tokens.join(" ");
                    check_target(table, &spec)?;
                    table.chains.get_mut(&chain).unwrap().push(spec);
                }
                "-I" => {
                    let (pos, spec_toks) = match rest_tokens.first().map(|s| s.parse::<usize>()) {
                        Some(Ok(n)) => (n.max(1) - 1, &rest_tokens[1..]),
                        _ => (0, rest_tokens),
                    };
                    let spec = spec_toks.join(" ");
                    check_target(table, &spec)?;
                    let rules = table.chains.get_mut(&chain).unwrap();
                    if pos > rules.len() {
                        return Err(err("index of insertion too big".into()));
                    }
                    rules.insert(pos, spec);
                }
                "-D" => {
                    let spec = rest_tokens.join(" ");
                    let rules = table.chains.get_mut(&chain).unwrap();
                    let at = rules
                        .iter()
                        .position(|r| *r == spec)
                        .ok_or_else(|| err(format!("no such rule in {chain}: {spec}")))?;
                    rules.remove(at);
                }
                "-F" => {
                    table
                        .chains
                        .get_mut(&chain)
                        .ok_or_else(|| err(format!("no chain {chain}")))?
                        .clear();
                }
                "-N" => {
                    if exists {
                        return Err(err(format!("chain {chain} already exists")));
                    }
                    table.chains.insert(chain, Vec::new());
                }
                "-X" => {
                    if !exists || table.is_builtin(&chain) {
                        return Err(err(format!("cannot delete chain {chain}")));
                    }
                    if !table.chains[&chain].is_empty() {
                        return Err(err(format!("chain {chain} is not empty")));
                    }
                    if table.references(&chain) > 0 {
                        return Err(err(format!("chain {chain} is still referenced")));
                    }
                    table.chains.remove(&chain);
                }
                _ => return Err(err(format!("unsupported command {op}"))),
            }
        }
        if current.is_some() {
            return Err(IptablesError::Simulated {
                line: input.lines().count(),
                reason: "missing COMMIT".into(),
            });
        }
        *self = next;
        Ok(())
    }
}

/// A fake [`IptablesExec`]: one [`SimIptables`] per family, a log of restore inputs, injectable failures.
#[derive(Debug, Default)]
pub struct FakeExec {
    pub v4: Mutex<SimIptables>,
    pub v6: Mutex<SimIptables>,
    /// Every restore input, in order.
    pub restores: Mutex<Vec<(IpFamily, String)>>,
    /// Fail this many upcoming restores.
    pub fail_restores: AtomicUsize,
}

impl FakeExec {
    fn sim(&self, family: IpFamily) -> &Mutex<SimIptables> {
        match family {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        }
    }

    /// A copy of the current tables of `family`.
    pub fn snapshot(&self, family: IpFamily) -> SimIptables {
        self.sim(family).lock().unwrap().clone()
    }

    /// Runs `f` on the tables of `family` (to simulate outside changes such as a flush).
    pub fn with_tables<R>(&self, family: IpFamily, f: impl FnOnce(&mut SimIptables) -> R) -> R {
        f(&mut self.sim(family).lock().unwrap())
    }
}

impl IptablesExec for FakeExec {
    fn restore(&self, family: IpFamily, input: &str, noflush: bool) -> Result<(), IptablesError> {
        self.restores
            .lock()
            .unwrap()
            .push((family, input.to_string()));
        if self
            .fail_restores
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(IptablesError::Simulated {
                line: 0,
                reason: "injected failure".into(),
            });
        }
        self.sim(family).lock().unwrap().restore(input, noflush)
    }

    fn save(&self, family: IpFamily, table: Table) -> Result<String, IptablesError> {
        Ok(self.sim(family).lock().unwrap().table(table).save())
    }

    fn chain_exists(
        &self,
        family: IpFamily,
        table: Table,
        chain: &str,
    ) -> Result<bool, IptablesError> {
        Ok(self
            .sim(family)
            .lock()
            .unwrap()
            .table(table)
            .chains
            .contains_key(chain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_keeps_quoted_comments() {
        let t = tokenize("-m comment --comment \"a b c\" -j X");
        assert_eq!(
            t,
            vec!["-m", "comment", "--comment", "\"a b c\"", "-j", "X"]
        );
        assert_eq!(
            jump_target("-m comment --comment \"-j Y\" -j X").as_deref(),
            Some("X")
        );
    }

    #[test]
    fn restore_semantics() {
        let mut s = SimIptables::default();
        s.restore(
            "*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j RETURN\nCOMMIT\n",
            true,
        )
        .unwrap();
        // Deleting a referenced chain fails and changes nothing.
        let before = s.clone();
        assert!(s.restore("*nat\n:B - [0:0]\n-X B\nCOMMIT\n", true).is_err());
        assert_eq!(s, before);
        // Non-empty chains cannot be deleted; a `:` line flushes first.
        assert!(s.restore("*nat\n-X B\nCOMMIT\n", true).is_err());
        s.restore("*nat\n:A - [0:0]\n:B - [0:0]\n-X B\nCOMMIT\n", true)
            .unwrap();
        assert!(!s.table(Table::Nat).chains.contains_key("B"));
        assert!(s.table(Table::Nat).chains["A"].is_empty());
        // Jumps to missing chains and unknown chains are rejected; a missing COMMIT aborts.
        assert!(s.restore("*nat\n-A A -j NOPE\nCOMMIT\n", true).is_err());
        assert!(s
            .restore("*nat\n-A NOPE -j RETURN\nCOMMIT\n", true)
            .is_err());
        assert!(s.restore("*nat\n-A A -j RETURN\n", true).is_err());
        // Without --noflush the table is replaced.
        s.restore("*nat\nCOMMIT\n", false).unwrap();
        assert_eq!(s.table(Table::Nat), &SimTable::new(Table::Nat));
        // -I position and -D.
        s.restore(
            "*filter\n-A INPUT -j ACCEPT\n-I INPUT 1 -j DROP\n-D INPUT -j ACCEPT\nCOMMIT\n",
            true,
        )
        .unwrap();
        assert_eq!(s.table(Table::Filter).chains["INPUT"], vec!["-j DROP"]);
    }
}
