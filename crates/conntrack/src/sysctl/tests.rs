//! Tests of conntrack tuning against a temporary /proc + /sys tree.

use std::fs;

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    root: SysRoot,
}

const NAMES: &[&str] = &[
    "nf_conntrack_max",
    "nf_conntrack_tcp_timeout_established",
    "nf_conntrack_tcp_timeout_close_wait",
    "nf_conntrack_tcp_be_liberal",
    "nf_conntrack_udp_timeout",
    "nf_conntrack_udp_timeout_stream",
];

fn fixture(hashsize: i64, sysfs_opts: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = SysRoot::at(dir.path());
    fs::create_dir_all(root.netfilter_sysctl("x").parent().unwrap()).unwrap();
    for n in NAMES {
        fs::write(root.netfilter_sysctl(n), "7\n").unwrap();
    }
    fs::create_dir_all(root.hashsize().parent().unwrap()).unwrap();
    fs::write(root.hashsize(), format!("{hashsize}\n")).unwrap();
    fs::write(
        root.mounts(),
        format!("proc /proc proc rw,nosuid 0 0\nsysfs /sys sysfs {sysfs_opts},nosuid,nodev 0 0\n"),
    )
    .unwrap();
    Fixture { dir, root }
}

impl Fixture {
    fn get(&self, name: &str) -> String {
        fs::read_to_string(self.root.netfilter_sysctl(name))
            .unwrap()
            .trim()
            .to_string()
    }
    fn hashsize(&self) -> String {
        let _ = &self.dir;
        fs::read_to_string(self.root.hashsize())
            .unwrap()
            .trim()
            .to_string()
    }
}

#[test]
fn conntrack_max_table() {
    let t = |per_core, min| ConntrackTuning {
        max_per_core: per_core,
        min,
        ..ConntrackTuning::default()
    };
    #[rustfmt::skip]
    let cases = [
        (t(Some(32768), Some(131072)), 2, 131072),  // floor wins
        (t(Some(32768), Some(131072)), 8, 262144),  // scaled wins
        (t(Some(32768), None), 3, 98304),
        (t(Some(0), Some(131072)), 8, 0),           // 0 per core: leave alone
        (t(None, Some(131072)), 8, 0),
    ];
    for (tuning, cpus, want) in cases {
        assert_eq!(conntrack_max(&tuning, cpus), want, "{tuning:?} cpus={cpus}");
    }
}

#[test]
fn defaults_set_max_hashsize_and_tcp_timeouts_only() {
    let f = fixture(1024, "rw");
    let out = apply_conntrack_tuning(&f.root, &ConntrackTuning::default(), 8).unwrap();
    assert_eq!(f.get("nf_conntrack_max"), "262144");
    assert_eq!(f.hashsize(), "65536");
    assert_eq!(f.get("nf_conntrack_tcp_timeout_established"), "86400");
    assert_eq!(f.get("nf_conntrack_tcp_timeout_close_wait"), "3600");
    for untouched in [
        "nf_conntrack_tcp_be_liberal",
        "nf_conntrack_udp_timeout",
        "nf_conntrack_udp_timeout_stream",
    ] {
        assert_eq!(f.get(untouched), "7", "{untouched}");
    }
    assert_eq!(out.hashsize, Some(65536));
    assert!(!out.sysfs_read_only);
    assert_eq!(out.written.len(), 3);
}

#[test]
fn everything_set_when_configured() {
    let f = fixture(1024, "rw");
    let tuning = ConntrackTuning {
        tcp_be_liberal: true,
        udp_timeout: Some(Duration::from_secs(30)),
        udp_stream_timeout: Some(Duration::from_secs(120)),
        ..ConntrackTuning::default()
    };
    apply_conntrack_tuning(&f.root, &tuning, 1).unwrap();
    assert_eq!(f.get("nf_conntrack_tcp_be_liberal"), "1");
    assert_eq!(f.get("nf_conntrack_udp_timeout"), "30");
    assert_eq!(f.get("nf_conntrack_udp_timeout_stream"), "120");
}

#[test]
fn zero_values_are_skipped() {
    let f = fixture(1024, "rw");
    let tuning = ConntrackTuning {
        max_per_core: Some(0),
        min: Some(0),
        tcp_established_timeout: Some(Duration::ZERO),
        tcp_close_wait_timeout: None,
        tcp_be_liberal: false,
        udp_timeout: Some(Duration::ZERO),
        udp_stream_timeout: Some(Duration::ZERO),
    };
    let out = apply_conntrack_tuning(&f.root, &tuning, 4).unwrap();
    assert_eq!(out, TuningOutcome::default());
    for n in NAMES {
        assert_eq!(f.get(n), "7", "{n}");
    }
    assert_eq!(f.hashsize(), "1024");
}

#[test]
fn large_enough_hashsize_is_left_alone() {
    let f = fixture(1 << 20, "ro");
    let out = apply_conntrack_tuning(&f.root, &ConntrackTuning::default(), 2).unwrap();
    assert_eq!(f.hashsize(), (1 << 20).to_string());
    assert_eq!(out.hashsize, None);
    assert!(
        !out.sysfs_read_only,
        "a read-only /sys does not matter when no write is needed"
    );
}

#[test]
fn read_only_sysfs_warns_and_continues() {
    let f = fixture(1024, "ro");
    let out = apply_conntrack_tuning(&f.root, &ConntrackTuning::default(), 2).unwrap();
    assert!(out.sysfs_read_only);
    assert_eq!(f.hashsize(), "1024");
    assert_eq!(f.get("nf_conntrack_max"), "131072");
    assert_eq!(
        f.get("nf_conntrack_tcp_timeout_established"),
        "86400",
        "later sysctls are still applied"
    );
}

#[test]
fn equal_values_are_not_rewritten() {
    let f = fixture(1 << 20, "rw");
    fs::write(f.root.netfilter_sysctl("nf_conntrack_max"), "131072\n").unwrap();
    let out = apply_conntrack_tuning(&f.root, &ConntrackTuning::default(), 2).unwrap();
    assert!(
        !out.written.iter().any(|(n, _)| n == "nf_conntrack_max"),
        "{out:?}"
    );
}

#[test]
fn missing_hashsize_is_an_error() {
    let f = fixture(1024, "rw");
    fs::remove_file(f.root.hashsize()).unwrap();
    let err = apply_conntrack_tuning(&f.root, &ConntrackTuning::default(), 2).unwrap_err();
    assert!(matches!(err, ConntrackError::ReadSysctl { .. }), "{err}");
}
