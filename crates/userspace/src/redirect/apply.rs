//! Applying the redirect rules through the iptables seam ([`IptablesExec`]): one `iptables-restore --noflush`
//! per sync that rewrites our chains and adds any missing jump from the built-in chains, and the removal of
//! all of it.

use std::fmt::Write as _;
use std::sync::Arc;

use kube_proxy_iptables::exec::chains_in_save;
use kube_proxy_iptables::{IptablesExec, Table};
use kube_proxy_model::IpFamily;

use super::rules::{render_rules, Jump, RedirectConfig, FILTER_CHAINS, JUMPS, NAT_CHAINS};
use super::RedirectError;
use crate::portal::Portal;

/// Writes the redirect rules of one family.
pub struct RedirectRules {
    exec: Arc<dyn IptablesExec>,
    config: RedirectConfig,
}

impl RedirectRules {
    pub fn new(exec: Arc<dyn IptablesExec>, config: RedirectConfig) -> RedirectRules {
        RedirectRules { exec, config }
    }

    pub fn config(&self) -> &RedirectConfig {
        &self.config
    }

    /// Makes our chains hold exactly the rules for `portals` (one atomic restore per call) and ensures the jumps
    /// into them exist. Returns the number of rules in our chains.
    pub fn sync(&self, portals: &[Portal]) -> Result<usize, RedirectError> {
        let family = self.config.family;
        let rendered = render_rules(portals, &self.config);
        let nat = self.save(Table::Nat)?;
        let filter = self.save(Table::Filter)?;
        let input = with_missing_jumps(&rendered.text, &nat, &filter);
        self.exec
            .restore(family, &input, true)
            .map_err(|source| RedirectError::WriteRules { family, source })?;
        Ok(rendered.rules)
    }

    fn save(&self, table: Table) -> Result<String, RedirectError> {
        let family = self.config.family;
        self.exec
            .save(family, table)
            .map_err(|source| RedirectError::ReadRules { family, source })
    }
}

/// Adds, before each table's COMMIT in `rendered`, the jumps that `nat_save` / `filter_save` lack.
pub(crate) fn with_missing_jumps(rendered: &str, nat_save: &str, filter_save: &str) -> String {
    let missing = |table: Table, save: &str| -> String {
        let mut out = String::new();
        for j in JUMPS.iter().filter(|j| j.table == table) {
            if save.lines().any(|l| j.matches_line(l)) {
                continue;
            }
            if j.first {
                let _ = writeln!(out, "-I {} 1 {}", j.from, j.spec());
            } else {
                let _ = writeln!(out, "-A {} {}", j.from, j.spec());
            }
        }
        out
    };
    let mut out = String::with_capacity(rendered.len() + 512);
    let mut table = None;
    for line in rendered.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = Table::parse(t);
        }
        if line == "COMMIT" {
            match table {
                Some(Table::Nat) => out.push_str(&missing(Table::Nat, nat_save)),
                Some(Table::Filter) => out.push_str(&missing(Table::Filter, filter_save)),
                _ => {}
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Removes the jumps and the chains of the redirect rules of `family`, whatever wrote them. A no-op when none
/// exist.
pub fn cleanup(exec: &dyn IptablesExec, family: IpFamily) -> Result<(), RedirectError> {
    let mut input = String::new();
    for (table, chains) in [(Table::Nat, NAT_CHAINS), (Table::Filter, FILTER_CHAINS)] {
        let save = exec
            .save(family, table)
            .map_err(|source| RedirectError::ReadRules { family, source })?;
        if let Some(text) = cleanup_text(table, chains, &save) {
            input.push_str(&text);
        }
    }
    if input.is_empty() {
        return Ok(());
    }
    exec.restore(family, &input, true)
        .map_err(|source| RedirectError::Cleanup { family, source })
}

/// The restore input removing our jumps and chains from one table, given its save; `None` if nothing is there.
pub(crate) fn cleanup_text(table: Table, chains: &[&str], save: &str) -> Option<String> {
    let existing = chains_in_save(save);
    let ours: Vec<&str> = chains
        .iter()
        .copied()
        .filter(|c| existing.contains(c))
        .collect();
    let jumps: Vec<&Jump> = JUMPS.iter().filter(|j| j.table == table).collect();
    let unjumps: Vec<String> = save
        .lines()
        .filter(|l| jumps.iter().any(|j| j.matches_line(l)))
        .map(|l| format!("-D{}", &l[2..]))
        .collect();
    if ours.is_empty() && unjumps.is_empty() {
        return None;
    }
    let mut s = format!("*{}\n", table.as_str());
    for c in &ours {
        let _ = writeln!(s, ":{c} - [0:0]");
    }
    for l in &unjumps {
        s.push_str(l);
        s.push('\n');
    }
    for c in &ours {
        let _ = writeln!(s, "-X {c}");
    }
    s.push_str("COMMIT\n");
    Some(s)
}
