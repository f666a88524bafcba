//! Runs a test binary inside a qemu guest (Debian's kernel, TCG) through `scripts/vm/run.sh`, and reads back
//! what it reported.
//!
//! The guest side prints `VMTEST-CASE <name> pass|fail <detail>` per scenario (or, for a cargo test executable,
//! libtest's `test <name> ... ok|FAILED` lines) and the init prints `VMTEST-RESULT rc=N`; [`run_in_vm`] and
//! [`run_in_vm_with`] parse them. [`cargo_build`] finds the host executables a guest run needs. Nothing here
//! runs inside the guest.
#![forbid(unsafe_code)]

pub mod cargo_build;
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
    #[error("building the guest's test executables: {0}")]
    BuildExecutables(String),
}

/// Extra settings of a guest run (see `scripts/vm/run.sh`).
#[derive(Clone, Debug, Default)]
pub struct VmOptions {
    /// Files copied into the guest at their host paths, with their libraries (`VMTEST_EXTRA_FILES`).
    pub extra_files: Vec<PathBuf>,
    /// `NAME=VALUE` pairs exported in the guest before the binary runs (`VMTEST_GUEST_ENV`).
    pub guest_env: Vec<(String, String)>,
    /// Where the initramfs and console log go (`VMTEST_WORKDIR`); the runner's default when `None`.
    pub workdir: Option<PathBuf>,
    /// Seconds before qemu is killed (`VMTEST_TIMEOUT`); the runner's default when `None`.
    pub timeout_secs: Option<u32>,
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
        } else if let Some(case) = parse_libtest_line(line) {
            out.cases.push(case);
        }
    }
    out
}

/// libtest's per-test line, `test NAME ... ok` or `test NAME ... FAILED` (ignored tests are not cases).
fn parse_libtest_line(line: &str) -> Option<CaseResult> {
    let (name, verdict) = line.strip_prefix("test ")?.split_once(" ... ")?;
    let passed = match verdict.trim() {
        "ok" => true,
        "FAILED" => false,
        _ => return None,
    };
    Some(CaseResult {
        name: name.trim().to_string(),
        passed,
        detail: String::new(),
    })
}

/// The repository's `scripts/vm/run.sh`.
pub fn runner_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/vm/run.sh")
}

/// Boots a guest that runs `binary args...` and returns what it reported. `Err(VmError::Prepare)` when the
/// runner could not set the VM up at all (missing packages or kernel); a guest that hangs or fails is an `Ok`
/// outcome whose [`VmOutcome::passed`] is false.
pub fn run_in_vm(binary: &Path, args: &[&str]) -> Result<VmOutcome, VmError> {
    run_in_vm_with(binary, args, &VmOptions::default())
}

/// [`run_in_vm`] with extra files, guest environment and a work directory.
pub fn run_in_vm_with(
    binary: &Path,
    args: &[&str],
    opts: &VmOptions,
) -> Result<VmOutcome, VmError> {
    let script = runner_script();
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(binary).args(args);
    if !opts.extra_files.is_empty() {
        let files: Vec<String> = opts
            .extra_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        cmd.env("VMTEST_EXTRA_FILES", files.join(" "));
    }
    if !opts.guest_env.is_empty() {
        let env: Vec<String> = opts
            .guest_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        cmd.env("VMTEST_GUEST_ENV", env.join(" "));
    }
    if let Some(dir) = &opts.workdir {
        cmd.env("VMTEST_WORKDIR", dir);
    }
    if let Some(t) = opts.timeout_secs {
        cmd.env("VMTEST_TIMEOUT", t.to_string());
    }
    let output = cmd.output().map_err(|source| VmError::SpawnRunner {
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
    fn parses_libtest_lines() {
        let o = parse_console(
            "running 3 tests\ntest ipvs_a ... ok\r\ntest ipvs_b ... FAILED\ntest other ... ignored\n\
             test result: FAILED. 1 passed; 1 failed\nVMTEST-RESULT rc=101\n",
        );
        let names: Vec<(&str, bool)> = o
            .cases
            .iter()
            .map(|c| (c.name.as_str(), c.passed))
            .collect();
        assert_eq!(names, vec![("ipvs_a", true), ("ipvs_b", false)]);
        assert_eq!(o.guest_rc, Some(101));
        assert!(!o.passed());
    }

    #[test]
    fn no_cases_is_not_a_pass() {
        assert!(!parse_console("VMTEST-RESULT rc=0\n").passed());
        assert!(parse_console("VMTEST-CASE x pass\nVMTEST-RESULT rc=0\n").passed());
    }
}
