//! Boots the guest with the `ipvs-guest` binary and asserts every IPVS scenario passed inside it.
//!
//! Fails (never skips) when CI=true and the VM cannot run; skips with a note otherwise when not root or when
//! qemu/the kernel package are missing.

use std::path::Path;

use kube_proxy_vmtest::{run_in_vm, VmError};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[test]
fn ipvs_scenarios_pass_in_guest() {
    let bin = Path::new(env!("CARGO_BIN_EXE_ipvs-guest"));
    let outcome = match run_in_vm(bin, &[]) {
        Ok(o) => o,
        Err(VmError::Prepare(why)) if !in_ci() => {
            eprintln!("note: skipping the IPVS VM test, the VM cannot be prepared here: {why}");
            return;
        }
        Err(e) => panic!("the IPVS VM could not run: {e}"),
    };
    for c in &outcome.cases {
        eprintln!(
            "guest case {}: {} {}",
            c.name,
            if c.passed { "pass" } else { "FAIL" },
            c.detail
        );
    }
    assert!(
        outcome.passed(),
        "guest run failed (rc {:?}); console:\n{}",
        outcome.guest_rc,
        outcome.console
    );
}
