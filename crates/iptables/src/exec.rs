//! The kernel seam: [`IptablesExec`] (restore / save / chain_exists) and its real implementation, which runs
//! the iptables binaries of one backend (nft or legacy); plus upstream iptables-wrapper's backend choice.
//!
//! This is the only module that starts processes.

use std::io::Write;
use std::process::{Command, Stdio};

use kube_proxy_model::IpFamily;

use crate::IptablesError;

/// The iptables tables kube-proxy touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Filter,
    Nat,
    Mangle,
    Raw,
}

impl Table {
    pub fn as_str(&self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
            Table::Mangle => "mangle",
            Table::Raw => "raw",
        }
    }

    pub fn parse(s: &str) -> Option<Table> {
        match s {
            "filter" => Some(Table::Filter),
            "nat" => Some(Table::Nat),
            "mangle" => Some(Table::Mangle),
            "raw" => Some(Table::Raw),
            _ => None,
        }
    }

    /// The built-in chains of the table.
    pub fn builtin_chains(&self) -> &'static [&'static str] {
        match self {
            Table::Filter => &["INPUT", "FORWARD", "OUTPUT"],
            Table::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            Table::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            Table::Raw => &["PREROUTING", "OUTPUT"],
        }
    }
}

/// Which iptables implementation the binaries drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Nft,
    Legacy,
}

impl Backend {
    fn suffix(&self) -> &'static str {
        match self {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        }
    }

    /// e.g. `ip6tables-legacy-restore` for (V6, "-restore").
    pub fn binary(&self, family: IpFamily, tool: &str) -> String {
        let base = match family {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        };
        format!("{base}-{}{tool}", self.suffix())
    }
}

/// Everything the dataplane needs from iptables. Implemented by [`RealExec`] and by [`crate::sim::FakeExec`].
pub trait IptablesExec: Send + Sync {
    /// Feeds `input` to `iptables-restore` (`--noflush` when `noflush`).
    fn restore(&self, family: IpFamily, input: &str, noflush: bool) -> Result<(), IptablesError>;
    /// `iptables-save -t <table>` output.
    fn save(&self, family: IpFamily, table: Table) -> Result<String, IptablesError>;
    /// `iptables-save` of every table kube-proxy touches (by default one `save` per table, concatenated).
    fn save_all(&self, family: IpFamily) -> Result<String, IptablesError> {
        let mut out = String::new();
        for table in [Table::Mangle, Table::Filter, Table::Nat] {
            out.push_str(&self.save(family, table)?);
        }
        Ok(out)
    }
    /// Whether `chain` exists in `table`.
    fn chain_exists(
        &self,
        family: IpFamily,
        table: Table,
        chain: &str,
    ) -> Result<bool, IptablesError>;
}

/// Runs the real binaries of one backend.
#[derive(Clone, Debug)]
pub struct RealExec {
    pub backend: Backend,
}

impl RealExec {
    pub fn new(backend: Backend) -> RealExec {
        RealExec { backend }
    }

    fn run_save(&self, family: IpFamily, args: &[&str]) -> Result<String, IptablesError> {
        let binary = self.backend.binary(family, "-save");
        let out = Command::new(&binary)
            .args(args)
            .output()
            .map_err(|source| IptablesError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(IptablesError::Save {
                binary,
                status: status_string(out.status),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn status_string(status: std::process::ExitStatus) -> String {
    status.to_string()
}

impl IptablesExec for RealExec {
    fn restore(&self, family: IpFamily, input: &str, noflush: bool) -> Result<(), IptablesError> {
        let binary = self.backend.binary(family, "-restore");
        let mut cmd = Command::new(&binary);
        cmd.args(["-w", "5"]);
        if noflush {
            cmd.arg("--noflush");
        }
        cmd.arg("--counters");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| IptablesError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        let write_result = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes());
        let out = child
            .wait_with_output()
            .map_err(|source| IptablesError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        if !out.status.success() || write_result.is_err() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let context = failed_line_context(input, &stderr);
            return Err(IptablesError::Restore {
                binary,
                status: status_string(out.status),
                stderr: format!("{stderr}{context}"),
            });
        }
        Ok(())
    }

    fn save(&self, family: IpFamily, table: Table) -> Result<String, IptablesError> {
        self.run_save(family, &["-t", table.as_str()])
    }

    /// One process for every table.
    fn save_all(&self, family: IpFamily) -> Result<String, IptablesError> {
        self.run_save(family, &[])
    }

    fn chain_exists(
        &self,
        family: IpFamily,
        table: Table,
        chain: &str,
    ) -> Result<bool, IptablesError> {
        let binary = self.backend.binary(family, "");
        let out = Command::new(&binary)
            .args(["-w", "5", "-t", table.as_str(), "-n", "-L", chain])
            .output()
            .map_err(|source| IptablesError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        if out.status.success() {
            return Ok(true);
        }
        // iptables exits 1 for "No chain/target/match by that name"; anything else is a real failure.
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(1) {
            return Ok(false);
        }
        Err(IptablesError::ChainCheck {
            table: table.as_str().to_string(),
            chain: chain.to_string(),
            detail: format!("{binary}: {} {}", out.status, stderr.trim()),
        })
    }
}

/// When `iptables-restore` names a failing line (legacy: "line N failed", nft: "Error occurred at line: N"),
/// the input lines around it.
pub fn failed_line_context(input: &str, stderr: &str) -> String {
    let Some(n) = stderr.split("line").skip(1).find_map(|rest| {
        rest.trim_start_matches([':', ' '])
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse::<usize>()
            .ok()
    }) else {
        return String::new();
    };
    let lines: Vec<&str> = input.lines().collect();
    let from = n.saturating_sub(3).max(1);
    let to = (n + 2).min(lines.len());
    let mut s = String::from("\ninput around the failing line:");
    for i in from..=to {
        let mark = if i == n { ">" } else { " " };
        s.push_str(&format!("\n{mark}{i:5}: {}", lines[i - 1]));
    }
    s
}

/// Chain names from `iptables-save` output (`:NAME POLICY [p:b]` lines).
pub fn chains_in_save(save: &str) -> Vec<&str> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

fn has_kubelet_hint(exec: &dyn IptablesExec) -> bool {
    [IpFamily::V4, IpFamily::V6].iter().any(|f| {
        exec.save(*f, Table::Mangle)
            .map(|s| {
                chains_in_save(&s)
                    .iter()
                    .any(|c| *c == "KUBE-IPTABLES-HINT" || *c == "KUBE-KUBELET-CANARY")
            })
            .unwrap_or(false)
    })
}

fn rule_count(exec: &dyn IptablesExec) -> usize {
    let mut n = 0;
    for f in [IpFamily::V4, IpFamily::V6] {
        for t in [Table::Filter, Table::Nat, Table::Mangle, Table::Raw] {
            if let Ok(s) = exec.save(f, t) {
                n += s.lines().filter(|l| l.starts_with('-')).count();
            }
        }
    }
    n
}

/// Picks the backend the host (kubelet) uses, as upstream's iptables-wrapper does: kubelet's hint chains in
/// nft mean nft; in legacy (and not nft) mean legacy; otherwise legacy only when it holds more rules than nft.
pub fn detect_backend(legacy: &dyn IptablesExec, nft: &dyn IptablesExec) -> Backend {
    if has_kubelet_hint(nft) {
        return Backend::Nft;
    }
    if has_kubelet_hint(legacy) {
        return Backend::Legacy;
    }
    if rule_count(legacy) > rule_count(nft) {
        Backend::Legacy
    } else {
        Backend::Nft
    }
}

/// The explicit choice if given, else [`detect_backend`] with the real binaries.
pub fn choose_backend(explicit: Option<Backend>) -> Backend {
    explicit.unwrap_or_else(|| {
        detect_backend(
            &RealExec::new(Backend::Legacy),
            &RealExec::new(Backend::Nft),
        )
    })
}
