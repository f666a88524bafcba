//! The test binary booted inside the guest: IPVS scenarios against a real kernel.
//!
//! Prints one `VMTEST-CASE` line per scenario and exits non-zero when any failed.

#![forbid(unsafe_code)]

mod fixtures;
mod net;
mod scenarios;

fn main() {
    let filter = std::env::args().nth(1);
    let mut ok = true;
    for (name, f) in scenarios::ALL {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ok &= kube_proxy_vmtest::guest::report(name, f());
    }
    std::process::exit(if ok { 0 } else { 1 });
}
