//! Builds a cargo integration test of this workspace with `cargo test --no-run --message-format=json` and
//! returns the paths of the test executable and of the binaries it runs (`CARGO_BIN_EXE_*`), so that a host
//! test can copy them into the guest. Runs cargo; never runs the built executables.

use std::path::PathBuf;
use std::process::Command;

use crate::VmError;

/// What `cargo test --no-run` produced for one integration test.
#[derive(Clone, Debug)]
pub struct TestBuild {
    /// The integration test's executable (`target/debug/deps/NAME-HASH`).
    pub test_executable: PathBuf,
    /// Every binary target built alongside it (the ones `CARGO_BIN_EXE_*` points at).
    pub binaries: Vec<PathBuf>,
}

/// The workspace root (two levels above this crate).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds integration test `test` of the workspace. `--workspace` keeps the feature set that
/// `cargo test --workspace` resolves, so a run from inside that command reuses its artifacts.
pub fn build_integration_test(test: &str) -> Result<TestBuild, VmError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["test", "--workspace", "--test", test, "--no-run"])
        .args(["--message-format=json-render-diagnostics"])
        .output()
        .map_err(|e| VmError::BuildExecutables(format!("running cargo: {e}")))?;
    if !out.status.success() {
        return Err(VmError::BuildExecutables(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    parse_build_messages(&String::from_utf8_lossy(&out.stdout), test)
}

/// Picks the test executable and the binaries out of cargo's JSON messages.
pub fn parse_build_messages(stdout: &str, test: &str) -> Result<TestBuild, VmError> {
    let mut test_executable = None;
    let mut binaries = Vec::new();
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let kinds = &msg["target"]["kind"];
        let is = |k: &str| kinds.as_array().is_some_and(|a| a.iter().any(|v| v == k));
        if is("test") && msg["target"]["name"] == test {
            test_executable = Some(PathBuf::from(exe));
        } else if is("bin") {
            binaries.push(PathBuf::from(exe));
        }
    }
    let test_executable = test_executable.ok_or_else(|| {
        VmError::BuildExecutables(format!("cargo reported no executable for test {test}"))
    })?;
    Ok(TestBuild {
        test_executable,
        binaries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_test_and_binaries() {
        let msgs = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"x"},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"kube-proxy-rs"},"executable":"/t/debug/kube-proxy-rs"}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"e2e_modes"},"executable":"/t/debug/deps/e2e_modes-1"}
{"reason":"build-finished","success":true}"#;
        let b = parse_build_messages(msgs, "e2e_modes").unwrap();
        assert_eq!(
            b.test_executable,
            PathBuf::from("/t/debug/deps/e2e_modes-1")
        );
        assert_eq!(b.binaries, vec![PathBuf::from("/t/debug/kube-proxy-rs")]);
        assert!(parse_build_messages(msgs, "other").is_err());
    }
}
