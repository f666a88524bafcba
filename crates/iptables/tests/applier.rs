//! The applier against the fake exec: full vs partial decisions, canary handling, failure fallback,
//! idempotence, jump rules, cleanup and sysctls.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use kube_proxy_iptables::exec::Table;
use kube_proxy_iptables::sim::FakeExec;
use kube_proxy_iptables::sysctl::{MemSysctl, Sysctl, ROUTE_LOCALNET, TCP_BE_LIBERAL};
use kube_proxy_iptables::{
    chains, cleanup, IptablesDataplane, IptablesError, RenderConfig, SyncKind,
};
use kube_proxy_iptables::{detect_backend, Backend, IptablesExec, NodePortAddresses};
use kube_proxy_model::{IpFamily, ProxyState};

fn st(eps: &[&str]) -> Arc<ProxyState> {
    let mut s = svc(name("ns", "web", "http"), "172.30.0.10", 80);
    s.node_port = Some(30080);
    s.endpoints = eps.iter().map(|a| ep(a, 8080, false)).collect();
    let other = svc(name("ns", "idle", ""), "172.30.0.11", 53);
    Arc::new(state(IpFamily::V4, vec![finish(s), finish(other)]))
}

fn dataplane(exec: &Arc<FakeExec>) -> IptablesDataplane {
    IptablesDataplane::new(
        exec.clone(),
        &MemSysctl::default(),
        IpFamily::V4,
        RenderConfig::default(),
    )
    .unwrap()
}

#[test]
fn first_sync_is_full_then_partial() {
    let exec = Arc::new(FakeExec::default());
    let mut dp = dataplane(&exec);
    let r = dp.sync(&st(&["10.0.0.1"]), false).unwrap();
    assert_eq!(r.kind, SyncKind::Full);
    let r = dp.sync(&st(&["10.0.0.1", "10.0.0.2"]), false).unwrap();
    assert_eq!(r.kind, SyncKind::Partial);
    let r = dp.sync(&st(&["10.0.0.2"]), true).unwrap();
    assert_eq!(r.kind, SyncKind::Full, "forced");
    assert!(r.nat_rules > 0 && r.filter_rules > 0);
}

#[test]
fn full_sync_period_forces_full_syncs() {
    let exec = Arc::new(FakeExec::default());
    let mut dp = dataplane(&exec);
    dp.set_full_sync_period(std::time::Duration::ZERO);
    assert_eq!(
        dp.sync(&st(&["10.0.0.1"]), false).unwrap().kind,
        SyncKind::Full
    );
    assert_eq!(
        dp.sync(&st(&["10.0.0.2"]), false).unwrap().kind,
        SyncKind::Full
    );
}

#[test]
fn jump_rules_and_canaries_are_installed_once() {
    let exec = Arc::new(FakeExec::default());
    let mut dp = dataplane(&exec);
    let s = st(&["10.0.0.1"]);
    dp.sync(&s, false).unwrap();
    let after_one = exec.snapshot(IpFamily::V4);
    dp.sync(&s, true).unwrap();
    dp.sync(&s, false).unwrap();
    assert_eq!(
        exec.snapshot(IpFamily::V4),
        after_one,
        "syncing again changes nothing"
    );

    let t = exec.snapshot(IpFamily::V4);
    for table in [Table::Mangle, Table::Nat, Table::Filter] {
        assert!(
            t.table(table)
                .chains
                .contains_key(chains::KUBE_PROXY_CANARY),
            "{table:?}"
        );
    }
    let nat = t.table(Table::Nat);
    assert_eq!(
        nat.chains["PREROUTING"],
        vec!["-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"]
    );
    assert_eq!(
        nat.chains["OUTPUT"],
        vec!["-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"]
    );
    assert_eq!(
        nat.chains["POSTROUTING"],
        vec!["-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"]
    );
    let filter = t.table(Table::Filter);
    // Prepended in upstream's order: the last ensured jump is first.
    assert_eq!(
        filter.chains["INPUT"],
        vec![
            "-j KUBE-FIREWALL",
            "-m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
            "-m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS",
            "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
        ]
    );
    assert_eq!(filter.chains["FORWARD"].len(), 4);
    assert_eq!(filter.chains["OUTPUT"].len(), 3);
}

#[test]
fn a_full_sync_is_one_restore_that_puts_back_a_deleted_jump() {
    let exec = Arc::new(FakeExec::default());
    let mut dp = dataplane(&exec);
    let s = st(&["10.0.0.1"]);
    dp.sync(&s, false).unwrap();
    assert_eq!(
        exec.restores.lock().unwrap().len(),
        1,
        "the first sync creates canaries, jumps and rules in one restore"
    );
    let jump = "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
    exec.restore(
        IpFamily::V4,
        &format!("*nat\n-D PREROUTING {jump}\nCOMMIT\n"),
        true,
    )
    .unwrap();
    assert!(exec.snapshot(IpFamily::V4).table(Table::Nat).chains["PREROUTING"].is_empty());

    let before = exec.restores.lock().unwrap().len();
    assert_eq!(dp.sync(&s, true).unwrap().kind, SyncKind::Full);
    let restores = exec.restores.lock().unwrap();
    assert_eq!(restores.len(), before + 1, "one restore per full sync");
    let input = &restores.last().unwrap().1;
    assert!(
        input.contains(&format!("-I PREROUTING 1 {jump}")),
        "{input}"
    );
    assert!(!input.contains("*mangle"), "mangle lacks nothing: {input}");
    assert_eq!(
        exec.snapshot(IpFamily::V4).table(Table::Nat).chains["PREROUTING"],
        vec![jump]
    );
}

#[test]
fn missing_canary_forces_full_sync_once_a_check_is_due() {
    let exec = Arc::new(FakeExec::default());
    let mut dp = dataplane(&exec);
    dp.sync(&st(&["10.0.0.1"]), false).unwrap();
    // Someone flushes the mangle table.
    exec.with_tables(IpFamily::V4, |t| {
        t.restore("*mangle\nCOMMIT\n", false).unwrap();
    });
    assert!(!exec
        .chain_exists(IpFamily::V4, Table::Mangle, chains::KUBE_PROXY_CANARY)
        .unwrap());
    // The full sync just made the canary: the next look is a canary-check period away (upstream's timer).
    let r = dp.sync(&st(&["10.0.0.1"]), false).unwrap();
    assert_eq!(r.kind, SyncKind::Partial);
    dp.set_canary_check_period(std::time::Duration::ZERO);
    let r = dp.sync(&st(&["10.0.0.1"]), false).unwrap();
    assert_eq!(r.kind, SyncKind::Full);
    assert!(exec
        .chain_exists(IpFamily::V4, Table::Mangle, chains::KUBE_PROXY_CANARY)
        .unwrap());
}

#[test]
fn failure_makes_next_sync_full() {
    let exec = Arc::new(FakeExec::default());
    let mut dp = dataplane(&exec);
    dp.sync(&st(&["10.0.0.1"]), false).unwrap();
    exec.fail_restores.store(1, Ordering::SeqCst);
    let err = dp.sync(&st(&["10.0.0.2"]), false).unwrap_err();
    assert!(matches!(err, IptablesError::Simulated { .. }), "{err}");
    let r = dp.sync(&st(&["10.0.0.2"]), false).unwrap();
    assert_eq!(r.kind, SyncKind::Full);
    // The failed partial left nothing behind: the full sync removed the old endpoint chain.
    let nat = exec.snapshot(IpFamily::V4).table(Table::Nat).save();
    assert!(!nat.contains("10.0.0.1"), "{nat}");
    assert!(nat.contains("--to-destination 10.0.0.2:8080"));
}

#[test]
fn full_sync_deletes_stale_chains_left_by_others() {
    let exec = Arc::new(FakeExec::default());
    exec.with_tables(IpFamily::V4, |t| {
        t.restore("*nat\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]\n:CNI-KEEP - [0:0]\n-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-BBBBBBBBBBBBBBBB\nCOMMIT\n", true)
            .unwrap();
    });
    let mut dp = dataplane(&exec);
    let r = dp.sync(&st(&["10.0.0.1"]), false).unwrap();
    assert_eq!(r.deleted_chains, 2);
    let nat = exec.snapshot(IpFamily::V4);
    let nat = nat.table(Table::Nat);
    assert!(!nat.chains.contains_key("KUBE-SVC-AAAAAAAAAAAAAAAA"));
    assert!(
        nat.chains.contains_key("CNI-KEEP"),
        "chains of others are left alone"
    );
}

#[test]
fn cleanup_removes_everything_but_kubelet_chains() {
    let exec = Arc::new(FakeExec::default());
    exec.with_tables(IpFamily::V4, |t| {
        t.restore(
            "*filter\n:CNI-FORWARD - [0:0]\n-A FORWARD -j CNI-FORWARD\nCOMMIT\n",
            true,
        )
        .unwrap();
    });
    let mut dp = dataplane(&exec);
    dp.sync(&st(&["10.0.0.1"]), false).unwrap();
    cleanup(exec.as_ref(), IpFamily::V4).unwrap();
    let t = exec.snapshot(IpFamily::V4);
    for (table, sim) in &t.tables {
        let left: Vec<&String> = sim
            .chains
            .keys()
            .filter(|c| c.starts_with("KUBE-") && *c != "KUBE-FIREWALL")
            .collect();
        assert!(left.is_empty(), "{table:?}: {left:?}");
    }
    let filter = t.table(Table::Filter);
    assert_eq!(filter.chains["FORWARD"], vec!["-j CNI-FORWARD"]);
    assert_eq!(filter.chains["INPUT"], vec!["-j KUBE-FIREWALL"]);
    assert!(t.table(Table::Nat).chains["PREROUTING"].is_empty());
    // Cleanup of a clean host is a no-op.
    cleanup(exec.as_ref(), IpFamily::V4).unwrap();
}

#[test]
fn sysctls() {
    let sysctl = MemSysctl::default();
    let exec: Arc<FakeExec> = Arc::new(FakeExec::default());
    IptablesDataplane::new(exec.clone(), &sysctl, IpFamily::V4, RenderConfig::default()).unwrap();
    assert_eq!(sysctl.value(ROUTE_LOCALNET), Some(1));

    let sysctl = MemSysctl::default();
    let cfg = RenderConfig {
        node_port_addresses: NodePortAddresses::Ips(vec![ip("192.168.0.2")]),
        ..RenderConfig::default()
    };
    IptablesDataplane::new(exec.clone(), &sysctl, IpFamily::V4, cfg).unwrap();
    assert_eq!(
        sysctl.value(ROUTE_LOCALNET),
        None,
        "no loopback NodePorts, no route_localnet"
    );
    IptablesDataplane::new(exec.clone(), &sysctl, IpFamily::V6, RenderConfig::default()).unwrap();
    assert_eq!(
        sysctl.value(ROUTE_LOCALNET),
        None,
        "IPv6 never sets route_localnet"
    );

    sysctl.set(TCP_BE_LIBERAL, 1).unwrap();
    let dp = IptablesDataplane::new(exec.clone(), &sysctl, IpFamily::V4, RenderConfig::default())
        .unwrap();
    assert!(dp.config().conntrack_tcp_be_liberal);
}

#[test]
fn rejects_state_of_other_family() {
    let exec = Arc::new(FakeExec::default());
    let mut dp = IptablesDataplane::new(
        exec.clone(),
        &MemSysctl::default(),
        IpFamily::V6,
        RenderConfig::default(),
    )
    .unwrap();
    assert!(matches!(
        dp.sync(&st(&[]), false),
        Err(IptablesError::FamilyMismatch { .. })
    ));
}

#[test]
fn backend_detection() {
    let with_hint = |chain: &str| {
        let e = FakeExec::default();
        e.with_tables(IpFamily::V4, |t| {
            t.restore(&format!("*mangle\n:{chain} - [0:0]\nCOMMIT\n"), true)
                .unwrap()
        });
        e
    };
    let rules = |n: usize| {
        let e = FakeExec::default();
        let mut input = String::from("*filter\n");
        for i in 0..n {
            input.push_str(&format!("-A INPUT -s 10.0.0.{i} -j ACCEPT\n"));
        }
        input.push_str("COMMIT\n");
        e.with_tables(IpFamily::V4, |t| t.restore(&input, true).unwrap());
        e
    };
    let empty = FakeExec::default();
    assert_eq!(
        detect_backend(&empty, &empty),
        Backend::Nft,
        "default is nft"
    );
    assert_eq!(
        detect_backend(&with_hint("KUBE-IPTABLES-HINT"), &empty),
        Backend::Legacy
    );
    assert_eq!(
        detect_backend(&with_hint("KUBE-KUBELET-CANARY"), &empty),
        Backend::Legacy
    );
    assert_eq!(
        detect_backend(
            &with_hint("KUBE-IPTABLES-HINT"),
            &with_hint("KUBE-IPTABLES-HINT")
        ),
        Backend::Nft
    );
    assert_eq!(detect_backend(&rules(5), &rules(2)), Backend::Legacy);
    assert_eq!(detect_backend(&rules(2), &rules(2)), Backend::Nft);
    assert_eq!(
        Backend::Legacy.binary(IpFamily::V6, "-restore"),
        "ip6tables-legacy-restore"
    );
    assert_eq!(
        Backend::Nft.binary(IpFamily::V4, "-save"),
        "iptables-nft-save"
    );
}

#[test]
fn restore_errors_show_the_failing_line() {
    let input = "*nat\n:A - [0:0]\n-A A -j B\n-A A -j RETURN\nCOMMIT\n";
    let ctx =
        kube_proxy_iptables::exec::failed_line_context(input, "iptables-restore: line 3 failed");
    assert!(ctx.contains(">    3: -A A -j B"), "{ctx}");
    assert!(ctx.contains("     2: :A - [0:0]"), "{ctx}");
    let ctx = kube_proxy_iptables::exec::failed_line_context(
        input,
        "Chain 'B' does not exist\nError occurred at line: 4\n",
    );
    assert!(
        ctx.contains(">    4: -A A -j RETURN") && ctx.contains("     3: -A A -j B"),
        "{ctx}"
    );
    assert_eq!(
        kube_proxy_iptables::exec::failed_line_context(
            input,
            "Another app is currently holding the xtables lock"
        ),
        ""
    );
}
