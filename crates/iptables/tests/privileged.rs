//! End-to-end test of the applier with the real iptables binaries (nft and legacy backends), inside a network
//! namespace private to a dedicated thread (`unshare(CLONE_NEWNET)`): the namespace disappears with the thread,
//! also when an assertion panics. Needs root: fails when CI=true and not root, skips with a note otherwise.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use kube_proxy_iptables::exec::Table;
use kube_proxy_iptables::sysctl::MemSysctl;
use kube_proxy_iptables::{cleanup, Backend, IptablesDataplane, IptablesExec, LocalDetector};
use kube_proxy_iptables::{RealExec, RenderConfig, SyncKind};
use kube_proxy_model::{IpFamily, ProxyState};

fn can_run() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    if !root {
        assert!(!ci, "privileged iptables test needs root (CI=true)");
        eprintln!("note: skipping privileged iptables test: not root");
        return false;
    }
    true
}

fn binary_available(backend: Backend, family: IpFamily) -> bool {
    let bin = backend.binary(family, "-restore");
    let ok = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
        assert!(!ci, "{bin} missing (CI=true)");
        eprintln!("note: {bin} not available, skipping that backend");
    }
    ok
}

/// Runs `f` on a fresh thread inside a new, private network namespace.
fn in_private_netns<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn v4_state(second_ep: &str) -> Arc<ProxyState> {
    let mut web = svc(name("default", "web", "http"), "172.30.0.10", 80);
    web.node_port = Some(30080);
    web.session_affinity_timeout = Some(300);
    web.endpoints = vec![ep("10.0.1.5", 8080, true), ep(second_ep, 8080, false)];
    let mut lb = svc(name("default", "lb", ""), "172.30.0.11", 443);
    lb.node_port = Some(30443);
    lb.load_balancer_ips = vec![ip("192.0.2.10")];
    lb.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap()];
    lb.external_policy_local = true;
    lb.health_check_node_port = Some(32000);
    lb.endpoints = vec![ep("10.0.1.6", 8443, true)];
    let mut ext = svc(name("kube-system", "dns", "dns"), "172.30.0.12", 53);
    ext.external_ips = vec![ip("192.0.2.53")];
    let none = svc(name("default", "empty", ""), "172.30.0.13", 80);
    Arc::new(state(
        IpFamily::V4,
        vec![finish(web), finish(lb), finish(ext), finish(none)],
    ))
}

fn v6_state() -> Arc<ProxyState> {
    let mut web = svc(name("default", "web6", "http"), "fd00:30::10", 80);
    web.node_port = Some(30081);
    web.endpoints = vec![ep("fd00:1::5", 8080, true)];
    let none = svc(name("default", "empty6", ""), "fd00:30::13", 80);
    Arc::new(state(IpFamily::V6, vec![finish(web), finish(none)]))
}

fn cfg(family: IpFamily) -> RenderConfig {
    let (cidr, node) = match family {
        IpFamily::V4 => ("10.0.0.0/16", "198.51.100.7"),
        IpFamily::V6 => ("fd00:1::/64", "fd00:2::7"),
    };
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec![cidr.parse().unwrap()]),
        node_ips: vec![ip(node)],
        ..RenderConfig::default()
    }
}

fn save_all(exec: &RealExec, family: IpFamily) -> String {
    [Table::Mangle, Table::Filter, Table::Nat]
        .iter()
        .map(|t| exec.save(family, *t).expect("iptables-save"))
        .collect()
}

fn rule_lines(save: &str) -> Vec<String> {
    save.lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect()
}

fn assert_no_duplicates(save: &str) {
    let rules = rule_lines(save);
    let unique: BTreeSet<&String> = rules.iter().collect();
    assert_eq!(unique.len(), rules.len(), "duplicate rules:\n{save}");
}

fn kube_chains(save: &str) -> Vec<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with("KUBE-"))
        .map(str::to_string)
        .collect()
}

fn ip_cmd(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Real traffic inside the namespace: a client connects to the ClusterIP 172.30.0.10:80 and is DNATed to a
/// listener on the endpoint addresses (both put on the namespace's loopback).
fn connect_through_cluster_ip() {
    use std::io::{Read, Write};
    ip_cmd(&["link", "set", "lo", "up"]);
    ip_cmd(&["addr", "add", "10.0.1.5/32", "dev", "lo"]);
    ip_cmd(&["addr", "add", "10.0.2.5/32", "dev", "lo"]);
    ip_cmd(&["route", "add", "172.30.0.0/24", "dev", "lo"]);
    let listener = std::net::TcpListener::bind("0.0.0.0:8080").expect("bind endpoint port");
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let (mut conn, _) = listener.accept().expect("accept");
            let local = conn.local_addr().unwrap();
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).unwrap();
            conn.write_all(&buf).unwrap();
            local
        });
        let addr = "172.30.0.10:80".parse().unwrap();
        let mut c = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10))
            .expect("connect to the ClusterIP");
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(
            c.peer_addr().unwrap(),
            addr,
            "client still sees the ClusterIP"
        );
        let served_on = server.join().unwrap();
        assert!(
            ["10.0.1.5:8080", "10.0.2.5:8080"].contains(&served_on.to_string().as_str()),
            "DNAT target {served_on}"
        );
    });
    ip_cmd(&["route", "del", "172.30.0.0/24", "dev", "lo"]);
}

fn run_v4(backend: Backend) {
    let exec = Arc::new(RealExec::new(backend));
    let family = IpFamily::V4;
    assert!(
        kube_chains(&save_all(&exec, family)).is_empty(),
        "namespace starts empty"
    );
    let mut dp =
        IptablesDataplane::new(exec.clone(), &MemSysctl::default(), family, cfg(family)).unwrap();
    dp.set_canary_check_period(std::time::Duration::ZERO);

    let s1 = v4_state("10.0.2.5");
    let r = dp.sync(&s1, false).expect("full sync");
    assert_eq!(r.kind, SyncKind::Full);
    let save = save_all(&exec, family);
    for chain in [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-PROXY-FIREWALL",
        "KUBE-FIREWALL",
        "KUBE-PROXY-CANARY",
    ] {
        assert!(
            save.contains(&format!(":{chain} ")),
            "{backend:?}: missing {chain}\n{save}"
        );
    }
    let web_svc = kube_proxy_iptables::chains::svc_chain(&name("default", "web", "http"));
    let old_sep = kube_proxy_iptables::chains::sep_chain(
        &name("default", "web", "http"),
        &ep("10.0.2.5", 8080, false),
    );
    assert!(save.contains(&format!(":{web_svc} ")), "{save}");
    assert!(save.contains(&format!(":{old_sep} ")), "{save}");
    assert!(save.contains("--to-destination 10.0.2.5:8080"), "{save}");
    assert!(
        save.contains("-j REJECT"),
        "no-endpoint service is rejected:\n{save}"
    );
    assert!(
        save.contains(
            "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
        ),
        "{save}"
    );
    assert!(save.contains("--rcheck --seconds 300 --reap"), "{save}");
    assert!(save.contains("0x4000/0x4000"), "{save}");
    assert_no_duplicates(&save);
    connect_through_cluster_ip();

    // Partial sync: one endpoint moves.
    let s2 = v4_state("10.0.3.5");
    let r = dp.sync(&s2, false).expect("partial sync");
    assert_eq!(r.kind, SyncKind::Partial);
    assert_eq!(r.deleted_chains, 1);
    let save2 = save_all(&exec, family);
    assert!(save2.contains("--to-destination 10.0.3.5:8080"), "{save2}");
    assert!(
        !save2.contains(&old_sep),
        "stale SEP chain deleted:\n{save2}"
    );
    assert_no_duplicates(&save2);

    // Idempotent: the same state again, partially and fully, changes nothing.
    assert_eq!(dp.sync(&s2, false).unwrap().kind, SyncKind::Partial);
    assert_eq!(rule_lines(&save_all(&exec, family)), rule_lines(&save2));
    assert_eq!(dp.sync(&s2, true).unwrap().kind, SyncKind::Full);
    assert_eq!(rule_lines(&save_all(&exec, family)), rule_lines(&save2));

    // Losing the canary (someone flushed) makes the next sync full.
    exec.restore(family, "*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n", true)
        .unwrap();
    assert!(!exec
        .chain_exists(family, Table::Mangle, "KUBE-PROXY-CANARY")
        .unwrap());
    assert_eq!(dp.sync(&s2, false).unwrap().kind, SyncKind::Full);
    assert!(exec
        .chain_exists(family, Table::Mangle, "KUBE-PROXY-CANARY")
        .unwrap());
    assert_eq!(rule_lines(&save_all(&exec, family)), rule_lines(&save2));

    // A rejected input is reported with the failing line, and changes nothing.
    let before = rule_lines(&save_all(&exec, family));
    let err = exec
        .restore(
            family,
            "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j KUBE-NO-SUCH-CHAIN\nCOMMIT\n",
            true,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("-A KUBE-SERVICES -j KUBE-NO-SUCH-CHAIN"),
        "{err}"
    );
    assert_eq!(rule_lines(&save_all(&exec, family)), before);

    // Cleanup leaves only kubelet's KUBE-FIREWALL (as upstream's CleanupLeftovers).
    cleanup(exec.as_ref(), family).expect("cleanup");
    let after = save_all(&exec, family);
    assert_eq!(
        kube_chains(&after),
        vec!["KUBE-FIREWALL".to_string()],
        "{after}"
    );
    for l in rule_lines(&after) {
        assert!(
            l.starts_with("-A KUBE-FIREWALL ") || l.ends_with("-j KUBE-FIREWALL"),
            "left behind: {l}"
        );
    }
    cleanup(exec.as_ref(), family).expect("cleanup twice");
}

fn run_v6(backend: Backend) {
    let exec = Arc::new(RealExec::new(backend));
    let family = IpFamily::V6;
    let mut dp =
        IptablesDataplane::new(exec.clone(), &MemSysctl::default(), family, cfg(family)).unwrap();
    assert_eq!(
        dp.sync(&v6_state(), false)
            .expect("ip6tables accepts the render")
            .kind,
        SyncKind::Full
    );
    let save = save_all(&exec, family);
    assert!(save.contains("--to-destination [fd00:1::5]:8080"), "{save}");
    assert!(save.contains("-d fd00:30::13/128"), "{save}");
    assert!(
        save.contains("-j REJECT --reject-with icmp6-port-unreachable"),
        "{save}"
    );
    assert!(save.contains("! -d ::1/128"), "{save}");
    assert_eq!(dp.sync(&v6_state(), false).unwrap().kind, SyncKind::Partial);
    assert_no_duplicates(&save_all(&exec, family));
    cleanup(exec.as_ref(), family).expect("cleanup");
    let after = save_all(&exec, family);
    assert!(
        kube_chains(&after).iter().all(|c| c == "KUBE-FIREWALL"),
        "{after}"
    );
}

#[test]
fn real_iptables_nft_and_legacy_in_private_netns() {
    if !can_run() {
        return;
    }
    for backend in [Backend::Nft, Backend::Legacy] {
        if binary_available(backend, IpFamily::V4) {
            in_private_netns(|| run_v4(backend));
        }
        if binary_available(backend, IpFamily::V6) {
            in_private_netns(|| run_v6(backend));
        }
    }
}
