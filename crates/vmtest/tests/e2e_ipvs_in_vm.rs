//! Runs the shared end-to-end scenarios (kube-proxy-rs's `tests/e2e_modes.rs`) in IPVS mode inside the guest:
//! builds that test executable and the `kube-proxy-rs` binary with cargo, boots the guest with both (plus `ip`,
//! `iptables*`, `ipset`, `nft`, `ipvsadm`, `conntrack`, which the runner copies in), runs the `ipvs_*` tests there
//! with `KPRS_IN_VM=1`, and asserts that each of them ran and passed.
//!
//! Fails (never skips) when CI=true and the VM cannot run; skips with a note otherwise when not root or when
//! qemu/the kernel package are missing.

use kube_proxy_vmtest::cargo_build::build_integration_test;
use kube_proxy_vmtest::{run_in_vm_with, VmError, VmOptions};

/// The IPVS tests of `e2e_modes.rs` that must run and pass in the guest.
const EXPECTED: [&str; 3] = [
    "ipvs_service_semantics",
    "ipvs_follows_changes_restarts_and_repairs",
    "ipvs_masquerade_all_and_health_check_node_port",
];

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[test]
fn e2e_scenarios_pass_in_ipvs_mode_in_guest() {
    if !nix::unistd::geteuid().is_root() {
        assert!(!in_ci(), "the IPVS e2e VM test needs root when CI=true");
        eprintln!("note: skipping the IPVS e2e VM test: needs root");
        return;
    }
    let build = build_integration_test("e2e_modes").expect("building e2e_modes");
    let opts = VmOptions {
        extra_files: build.binaries.clone(),
        guest_env: vec![
            ("KPRS_IN_VM".into(), "1".into()),
            ("CI".into(), "true".into()),
            ("RUST_BACKTRACE".into(), "1".into()),
        ],
        workdir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vmtest-e2e-ipvs")),
        timeout_secs: Some(900),
    };
    let args = ["--ignored", "--test-threads=1", "ipvs_"];
    let outcome = match run_in_vm_with(&build.test_executable, &args, &opts) {
        Ok(o) => o,
        Err(VmError::Prepare(why)) if !in_ci() => {
            eprintln!("note: skipping the IPVS e2e VM test, the VM cannot be prepared here: {why}");
            return;
        }
        Err(e) => panic!("the IPVS e2e VM could not run: {e}"),
    };
    for c in &outcome.cases {
        eprintln!(
            "guest test {}: {}",
            c.name,
            if c.passed { "ok" } else { "FAILED" }
        );
    }
    let ran: Vec<&str> = outcome.cases.iter().map(|c| c.name.as_str()).collect();
    for name in EXPECTED {
        assert!(
            ran.contains(&name),
            "{name} did not run in the guest (ran: {ran:?}); console:\n{}",
            outcome.console
        );
    }
    assert!(
        outcome.passed(),
        "IPVS e2e tests failed in the guest (rc {:?}); console:\n{}",
        outcome.guest_rc,
        outcome.console
    );
}
