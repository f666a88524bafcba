//! Runs a test binary inside a qemu guest (Debian's kernel, TCG) through `scripts/vm/run.sh`, and reads back
//! what it reported.
//!
//! The guest side prints `VMTEST-CASE <name> pass|fail <detail>` per scenario and the init prints
//! `VMTEST-RESULT rc=N`; [`run_in_vm`] parses both. Nothing here runs inside the guest.
#![forbid(unsafe_code)]

pub mod guest;

use std::path::{Path, PathBuf};
use std::process::Command;

/// What went wrong while running the VM itself (not a failing test inside it).
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("starting {script}: {source}")]
    SpawnRunner {
        script: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the VM could not be prepared: {0}")]
    Prepare(String),
}

/// One scenario's result as the guest reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Everything a guest run produced.
#[derive(Clone, Debug)]
pub struct VmOutcome {
    /// The guest binary's exit code, when the guest got far enough to print it.
    pub guest_rc: Option<i32>,
    pub cases: Vec<CaseResult>,
    /// The whole console log (kernel, init and test output).
    pub console: String,
}

impl VmOutcome {
    /// The guest ran to completion, every case passed and at least one ran.
    pub fn passed(&self) -> bool {
        self.guest_rc == Some(0) && !self.cases.is_empty() && self.cases.iter().all(|c| c.passed)
    }
}

/// Parses the console log of a guest run.
pub fn parse_console(console: &str) -> VmOutcome {
    let mut out = VmOutcome {
        guest_rc: None,
        cases: Vec::new(),
        console: console.to_string(),
    };
    for line in console.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rc) = line.strip_prefix("VMTEST-RESULT rc=") {
            out.guest_rc = rc.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("VMTEST-CASE ") {
            let mut parts = rest.splitn(3, ' ');
            let name = parts.next().unwrap_or_default().to_string();
            let passed = parts.next() == Some("pass");
            let detail = parts.next().unwrap_or_default().to_string();
            out.cases.push(CaseResult {
                name,
                passed,
                detail,
            });
        }
    }
    out
}

/// The repository's `scripts/vm/run.sh`.
pub fn runner_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/vm/run.sh")
}

/// Boots a guest that runs `binary args...` and returns what it reported. `Err(VmError::Prepare)` when the
/// runner could not set the VM up at all (missing packages or kernel); a guest that hangs or fails is an `Ok`
/// outcome whose [`VmOutcome::passed`] is false.
pub fn run_in_vm(binary: &Path, args: &[&str]) -> Result<VmOutcome, VmError> {
    let script = runner_script();
    let output = Command::new("bash")
        .arg(&script)
        .arg(binary)
        .args(args)
        .output()
        .map_err(|source| VmError::SpawnRunner {
            script: script.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.code() == Some(2) {
        return Err(VmError::Prepare(format!(
            "{}{}",
            stdout.lines().last().unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(parse_console(&stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cases_and_result() {
        let o = parse_console(
            "boot\nVMTEST-CASE a pass\r\nVMTEST-CASE b fail expected 2 got 3\nVMTEST-RESULT rc=1\n",
        );
        assert_eq!(o.guest_rc, Some(1));
        assert_eq!(o.cases.len(), 2);
        assert!(o.cases[0].passed);
        assert_eq!(o.cases[1].detail, "expected 2 got 3");
        assert!(!o.passed());
    }

    #[test]
    fn no_cases_is_not_a_pass() {
        assert!(!parse_console("VMTEST-RESULT rc=0\n").passed());
        assert!(parse_console("VMTEST-CASE x pass\nVMTEST-RESULT rc=0\n").passed());
    }
}
