//! `ipvs_available()` on this host: this kernel has no IPVS, so IPVS mode must fall back to iptables.

use std::path::Path;

use kube_proxy_ipvs::{ipvs_available, ipvs_support};

/// Whether the running kernel could offer IPVS at all: already loaded, or a module for it exists.
fn kernel_could_have_ipvs() -> bool {
    if Path::new("/proc/net/ip_vs").exists() {
        return true;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = Path::new("/lib/modules").join(release.trim());
    ["modules.dep", "modules.builtin"].iter().any(|f| {
        std::fs::read_to_string(dir.join(f))
            .map(|s| s.contains("/ip_vs.ko"))
            .unwrap_or(false)
    })
}

#[test]
fn availability_matches_the_kernel() {
    let expected = kernel_could_have_ipvs();
    if !expected {
        eprintln!("note: this kernel has no IPVS: checking that IPVS mode would fall back");
    }
    assert_eq!(ipvs_available(), expected);
    if !expected {
        let why = ipvs_support(Path::new("/proc")).unwrap_err();
        assert!(why.0.contains("no IPVS"), "{why}");
    }
}

#[test]
fn proc_entry_means_available() {
    let dir = std::env::temp_dir().join(format!("ipvs-detect-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("net")).unwrap();
    std::fs::write(dir.join("net/ip_vs"), "").unwrap();
    let got = ipvs_support(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(got.is_ok());
}
