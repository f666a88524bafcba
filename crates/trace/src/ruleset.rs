//! The rules of all tables, parsed from `iptables-save` output or `iptables-restore` input, and the jump rules
//! from built-in chains that kube-proxy ensures outside its restore input (added when missing, so a rendered plan
//! traces like a live node).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::TraceError;
use crate::rule::Rule;
use crate::tokens::split;

/// One chain: its policy (built-in chains only) and rules in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chain {
    /// `ACCEPT`/`DROP` for built-in chains; `None` for user chains.
    pub policy: Option<String>,
    pub rules: Vec<Rule>,
}

/// All chains of one table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub chains: BTreeMap<String, Chain>,
}

/// The tables `filter`, `nat`, `mangle` (and any other present), by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ruleset {
    pub tables: BTreeMap<String, Table>,
}

/// Where a rule sits, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub table: String,
    pub chain: String,
    /// The rule as written (`-A CHAIN ...`), or `-P CHAIN POLICY` for a chain policy.
    pub rule: String,
}

const BUILTIN: &[(&str, &[&str])] = &[
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
    ("raw", &["PREROUTING", "OUTPUT"]),
];

/// Whether `chain` is a built-in chain of `table`.
pub fn is_builtin(table: &str, chain: &str) -> bool {
    BUILTIN
        .iter()
        .any(|(t, cs)| *t == table && cs.contains(&chain))
}

/// kube-proxy's jumps from built-in chains (table, from, extra matches, comment, to), in the order the applier
/// ensures them; each is inserted at position 1, so the last one ends up first.
const KUBE_JUMPS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "filter",
        "INPUT",
        NEW,
        "kubernetes externally-visible service portals",
        "KUBE-EXTERNAL-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        NEW,
        "kubernetes externally-visible service portals",
        "KUBE-EXTERNAL-SERVICES",
    ),
    (
        "filter",
        "INPUT",
        "",
        "kubernetes health check service ports",
        "KUBE-NODEPORTS",
    ),
    (
        "filter",
        "FORWARD",
        NEW,
        "kubernetes service portals",
        "KUBE-SERVICES",
    ),
    (
        "filter",
        "OUTPUT",
        NEW,
        "kubernetes service portals",
        "KUBE-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "",
        "kubernetes forwarding rules",
        "KUBE-FORWARD",
    ),
    (
        "filter",
        "INPUT",
        NEW,
        "kubernetes load balancer firewall",
        "KUBE-PROXY-FIREWALL",
    ),
    (
        "filter",
        "OUTPUT",
        NEW,
        "kubernetes load balancer firewall",
        "KUBE-PROXY-FIREWALL",
    ),
    (
        "filter",
        "FORWARD",
        NEW,
        "kubernetes load balancer firewall",
        "KUBE-PROXY-FIREWALL",
    ),
    (
        "nat",
        "OUTPUT",
        "",
        "kubernetes service portals",
        "KUBE-SERVICES",
    ),
    (
        "nat",
        "PREROUTING",
        "",
        "kubernetes service portals",
        "KUBE-SERVICES",
    ),
    (
        "nat",
        "POSTROUTING",
        "",
        "kubernetes postrouting rules",
        "KUBE-POSTROUTING",
    ),
    ("filter", "INPUT", "", "", "KUBE-FIREWALL"),
    ("filter", "OUTPUT", "", "", "KUBE-FIREWALL"),
];

const NEW: &str = "-m conntrack --ctstate NEW";

impl Ruleset {
    /// Parses `iptables-save` output or `iptables-restore [--noflush]` input (`*table`, `:CHAIN POLICY [c]`,
    /// `-A`, `-I`, `-N`, `-F`, `-X`, `COMMIT`, `#` comments, `[p:b]` counter prefixes).
    pub fn parse(text: &str) -> Result<Ruleset, TraceError> {
        let mut rs = Ruleset::default();
        let mut table: Option<String> = None;
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let err = |message: String| TraceError::ParseRules {
                line: line_no,
                message,
            };
            let mut line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line == "COMMIT" {
                if line == "COMMIT" {
                    table = None;
                }
                continue;
            }
            if let Some(t) = line.strip_prefix('*') {
                let t = t.trim().to_string();
                rs.tables.entry(t.clone()).or_default();
                table = Some(t);
                continue;
            }
            let Some(tname) = table.clone() else {
                return Err(err(format!("`{line}` outside a *table section")));
            };
            let tbl = rs.tables.entry(tname.clone()).or_default();
            if let Some(decl) = line.strip_prefix(':') {
                let mut parts = decl.split_whitespace();
                let name = parts
                    .next()
                    .ok_or_else(|| err("chain declaration without a name".into()))?;
                let policy = parts.next().filter(|p| *p != "-").map(str::to_string);
                // A declaration flushes the chain (iptables-restore semantics).
                tbl.chains.insert(
                    name.to_string(),
                    Chain {
                        policy,
                        rules: vec![],
                    },
                );
                continue;
            }
            if line.starts_with('[') {
                if let Some(end) = line.find(']') {
                    line = line[end + 1..].trim_start();
                }
            }
            let words = split(line).map_err(err)?;
            let (cmd, chain) = match (words.first(), words.get(1)) {
                (Some(c), Some(ch)) => (c.as_str(), ch.clone()),
                _ => return Err(err(format!("cannot understand `{line}`"))),
            };
            match cmd {
                "-A" | "--append" => {
                    let rule = Rule::parse(&chain, line, &words[2..]);
                    tbl.chains.entry(chain).or_default().rules.push(rule);
                }
                "-I" | "--insert" => {
                    let (pos, rest) = match words.get(2).and_then(|w| w.parse::<usize>().ok()) {
                        Some(n) => (n.max(1) - 1, &words[3..]),
                        None => (0, &words[2..]),
                    };
                    let rule = Rule::parse(&chain, line, rest);
                    let c = tbl.chains.entry(chain).or_default();
                    let pos = pos.min(c.rules.len());
                    c.rules.insert(pos, rule);
                }
                "-N" | "--new-chain" => {
                    tbl.chains.entry(chain).or_default();
                }
                "-F" | "--flush" => {
                    if let Some(c) = tbl.chains.get_mut(&chain) {
                        c.rules.clear();
                    }
                }
                "-X" | "--delete-chain" => {
                    tbl.chains.remove(&chain);
                }
                "-P" | "--policy" => {
                    let policy = words.get(2).cloned();
                    tbl.chains.entry(chain).or_default().policy = policy;
                }
                other => return Err(err(format!("unsupported command `{other}`"))),
            }
        }
        Ok(rs)
    }

    /// Adds kube-proxy's jumps from built-in chains that are missing (a rule in the same built-in chain already
    /// jumping to the same target counts as present), as kube-proxy's applier does before every sync. Also
    /// creates empty built-in chains (policy ACCEPT) of the filter and nat tables.
    pub fn ensure_kube_proxy_jumps(&mut self) {
        for (t, chains) in BUILTIN {
            if *t != "filter" && *t != "nat" {
                continue;
            }
            let tbl = self.tables.entry(t.to_string()).or_default();
            for c in chains.iter() {
                let chain = tbl.chains.entry(c.to_string()).or_default();
                if chain.policy.is_none() {
                    chain.policy = Some("ACCEPT".into());
                }
            }
        }
        for (t, from, extra, comment, to) in KUBE_JUMPS {
            let tbl = self.tables.entry(t.to_string()).or_default();
            if !tbl.chains.contains_key(*to) {
                continue;
            }
            let chain = tbl.chains.entry(from.to_string()).or_default();
            let present = chain
                .rules
                .iter()
                .any(|r| matches!(&r.target, Some(crate::rule::Target::Jump(j)) if j == to));
            if present {
                continue;
            }
            let mut spec = String::new();
            if !extra.is_empty() {
                spec.push_str(extra);
                spec.push(' ');
            }
            if !comment.is_empty() {
                spec.push_str(&format!("-m comment --comment \"{comment}\" "));
            }
            spec.push_str(&format!("-j {to}"));
            let text = format!("-A {from} {spec}");
            let words = split(&spec).unwrap_or_default();
            chain.rules.insert(0, Rule::parse(from, &text, &words));
        }
    }

    /// The chain `name` of `table`, if any.
    pub fn chain(&self, table: &str, name: &str) -> Option<&Chain> {
        self.tables.get(table)?.chains.get(name)
    }
}
