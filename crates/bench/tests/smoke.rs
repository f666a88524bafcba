//! Smoke run of the benchmark in the normal suite: N=20 Services × M=2 endpoints, 2 changes, iptables mode
//! (nft backend), the debug kube-proxy-rs binary. Checks that every step works and cleans up; asserts no
//! timings. Needs root: fails when CI=true and not root, skips with a note otherwise.

use std::path::PathBuf;
use std::process::Command;

use kube_proxy_bench::workload::ChangeKind;
use kube_proxy_bench::{run_once, BenchConfig, Variant};
use kube_proxy_testkit::netns::{leftover_namespaces, require_root};

/// `<target>/debug/kube-proxy-rs`, built with `cargo build -p kube-proxy-rs` when missing.
fn proxy_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("debug/kube-proxy-rs");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "kube-proxy-rs"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p kube-proxy-rs");
        assert!(status.success(), "cargo build -p kube-proxy-rs failed");
    }
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

#[test]
fn small_run_measures_every_step_and_removes_its_namespaces() {
    if !require_root("bench smoke") {
        return;
    }
    let cfg = BenchConfig::small(proxy_binary(), Variant::IptablesNft);
    let r = run_once(&cfg).unwrap_or_else(|e| panic!("benchmark run failed: {e}"));

    assert_eq!(
        (r.services, r.endpoints, r.variant.as_str()),
        (20, 2, "iptables-nft")
    );
    let floor = r
        .kernel_floor
        .as_ref()
        .expect("render supports iptables, so there is a floor");
    assert!(
        floor.bytes > 0 && floor.tool.starts_with("iptables-nft-restore"),
        "{floor:?}"
    );
    assert!(r.initial_sync_floor_ratio.is_some());
    let kinds: Vec<ChangeKind> = r.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::EndpointAdd, ChangeKind::EndpointRemove]);
    assert!(r.change_p50_ms.is_some() && r.change_p99_ms.is_some());
    // Every iptables sync runs iptables-restore, which is part of the sync: the ratio exists and is ≥ 1.
    for ratio in r
        .changes
        .iter()
        .map(|c| c.sync_over_kernel)
        .chain([r.initial_sync_over_kernel])
    {
        assert!(ratio.is_some_and(|x| x >= 1.0), "{ratio:?} in {r:?}");
    }
    assert!(r.peak_rss_mib > 0.0, "VmHWM was read");
    let d = r.dataplane.as_ref().expect("the probe ran");
    assert_eq!(
        d.cluster_ip.connections, 52,
        "every connection via the ClusterIP succeeded: {d:?}"
    );
    assert_eq!(
        d.pod_ip.connections, 52,
        "every connection to the pod succeeded: {d:?}"
    );
    assert!(
        leftover_namespaces().is_empty(),
        "{:?}",
        leftover_namespaces()
    );
}
