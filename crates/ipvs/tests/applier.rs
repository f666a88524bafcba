//! The applier against fakes: only differences are sent, graceful termination, restart reconciliation,
//! stale-service removal, addresses, ipsets and iptables jumps.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ep, ip, state, svc};
use kube_proxy_iptables::sim::FakeExec;
use kube_proxy_iptables::sysctl::MemSysctl;
use kube_proxy_iptables::{IptablesExec, Table};
use kube_proxy_ipvs::{
    render, DummyLink, FakeIpset, FakeIpvs, FakeLink, IpsetHandle, Ipvs, IpvsConfig, IpvsDataplane,
    RealServer, ServiceKey, Timeouts, VirtualServer,
};
use kube_proxy_model::{IpFamily, Protocol, ProxyState};

struct Rig {
    ipvs: Arc<FakeIpvs>,
    link: Arc<FakeLink>,
    ipset: Arc<FakeIpset>,
    ipt: Arc<FakeExec>,
    sysctl: MemSysctl,
    dp: IpvsDataplane,
}

fn config() -> IpvsConfig {
    let mut c = IpvsConfig::new(IpFamily::V4);
    c.exclude_cidrs = vec!["10.250.0.0/16".parse().unwrap()];
    c.graceful_termination_bound = Duration::from_secs(60);
    c.timeouts = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    c
}

fn rig() -> Rig {
    let ipvs = Arc::new(FakeIpvs::new());
    let link = Arc::new(FakeLink::default());
    let ipset = Arc::new(FakeIpset::default());
    let ipt = Arc::new(FakeExec::default());
    let sysctl = MemSysctl::default();
    let dp = IpvsDataplane::new(
        config(),
        ipvs.clone(),
        link.clone(),
        ipset.clone(),
        ipt.clone(),
        &sysctl,
    )
    .unwrap();
    Rig {
        ipvs,
        link,
        ipset,
        ipt,
        sysctl,
        dp,
    }
}

fn key(port: u16) -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        addr: ip("10.96.0.10"),
        port,
    }
}

fn web(eps: &[&str]) -> ProxyState {
    state(
        IpFamily::V4,
        vec![svc(
            "web",
            Protocol::Tcp,
            "10.96.0.10",
            80,
            eps.iter().map(|e| ep(e, 8080, false)).collect(),
        )],
    )
}

impl Rig {
    fn apply(&mut self, st: &ProxyState, now: Instant) -> kube_proxy_ipvs::IpvsSyncReport {
        let plan = render(st, self.dp.config());
        self.dp.apply(&plan, now).unwrap()
    }

    fn weights(&self, k: &ServiceKey) -> Vec<(String, u32)> {
        self.ipvs
            .real_servers(k)
            .unwrap()
            .iter()
            .map(|r| (r.socket_addr().to_string(), r.weight))
            .collect()
    }
}

#[test]
fn construction_sets_sysctls_and_timeouts() {
    let r = rig();
    for name in [
        "net/ipv4/vs/conntrack",
        "net/ipv4/vs/expire_nodest_conn",
        "net/ipv4/vs/expire_quiescent_template",
        "net/ipv4/ip_forward",
    ] {
        assert_eq!(r.sysctl.value(name), Some(1), "{name}");
    }
    assert_eq!(
        r.sysctl.value("net/ipv4/conf/all/arp_ignore"),
        None,
        "strict ARP is off"
    );
    assert_eq!(
        r.ipvs.timeouts(),
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }
    );
}

#[test]
fn second_sync_sends_nothing_to_ipvs() {
    let mut r = rig();
    let now = Instant::now();
    let rep = r.apply(&web(&["10.244.1.1", "10.244.1.2"]), now);
    assert_eq!(
        (rep.services_added, rep.reals_added, rep.addresses_added),
        (1, 2, 1)
    );
    r.ipvs.take_log();
    let rep = r.apply(&web(&["10.244.1.1", "10.244.1.2"]), now);
    assert_eq!(rep, Default::default());
    assert!(r.ipvs.take_log().is_empty());
    // Adding one endpoint adds exactly one real server.
    r.apply(&web(&["10.244.1.1", "10.244.1.2", "10.244.1.3"]), now);
    assert_eq!(
        r.ipvs.take_log(),
        vec!["add-real TCP 10.96.0.10:80 -> 10.244.1.3:8080 w1"]
    );
}

#[test]
fn removed_real_server_drains_then_is_deleted() {
    let mut r = rig();
    let t0 = Instant::now();
    r.apply(&web(&["10.244.1.1", "10.244.1.2"]), t0);
    r.ipvs.set_conns(&key(80), ip("10.244.1.2"), 8080, 3, 0);
    let rep = r.apply(&web(&["10.244.1.1"]), t0);
    assert_eq!(
        (rep.reals_draining, rep.reals_deleted, rep.pending_graceful),
        (1, 0, 1)
    );
    assert_eq!(
        r.weights(&key(80)),
        vec![("10.244.1.1:8080".into(), 1), ("10.244.1.2:8080".into(), 0)]
    );
    // Still busy: a later sync keeps it.
    let rep = r.apply(&web(&["10.244.1.1"]), t0 + Duration::from_secs(5));
    assert_eq!(rep.pending_graceful, 1);
    assert_eq!(r.weights(&key(80)).len(), 2);
    // Only inactive connections left (closing or half-closed): still draining, as upstream.
    r.ipvs.set_conns(&key(80), ip("10.244.1.2"), 8080, 0, 2);
    assert_eq!(
        r.dp.process_graceful(t0 + Duration::from_secs(6)).unwrap(),
        1
    );
    assert_eq!(r.weights(&key(80)).len(), 2);
    r.ipvs.set_conns(&key(80), ip("10.244.1.2"), 8080, 0, 0);
    assert_eq!(
        r.dp.process_graceful(t0 + Duration::from_secs(7)).unwrap(),
        0
    );
    assert_eq!(r.weights(&key(80)), vec![("10.244.1.1:8080".into(), 1)]);
}

#[test]
fn real_server_with_only_inactive_connections_drains() {
    let mut r = rig();
    let t0 = Instant::now();
    r.apply(&web(&["10.244.1.1", "10.244.1.2"]), t0);
    // A half-closed connection: IPVS counts it as inactive. Deleting the real server now would cut it off.
    r.ipvs.set_conns(&key(80), ip("10.244.1.2"), 8080, 0, 1);
    let rep = r.apply(&web(&["10.244.1.1"]), t0);
    assert_eq!(
        (rep.reals_draining, rep.reals_deleted, rep.pending_graceful),
        (1, 0, 1)
    );
    assert_eq!(
        r.weights(&key(80)),
        vec![("10.244.1.1:8080".into(), 1), ("10.244.1.2:8080".into(), 0)]
    );
}

#[test]
fn draining_real_server_is_deleted_when_the_bound_passes() {
    let mut r = rig();
    let t0 = Instant::now();
    r.apply(&web(&["10.244.1.1", "10.244.1.2"]), t0);
    r.ipvs.set_conns(&key(80), ip("10.244.1.2"), 8080, 1, 0);
    r.apply(&web(&["10.244.1.1"]), t0);
    assert_eq!(
        r.dp.process_graceful(t0 + Duration::from_secs(59)).unwrap(),
        1
    );
    assert_eq!(
        r.dp.process_graceful(t0 + Duration::from_secs(60)).unwrap(),
        0
    );
    assert_eq!(r.weights(&key(80)).len(), 1);
}

#[test]
fn idle_or_udp_real_servers_are_deleted_at_once() {
    let mut r = rig();
    let now = Instant::now();
    r.apply(&web(&["10.244.1.1", "10.244.1.2"]), now);
    let rep = r.apply(&web(&["10.244.1.1"]), now);
    assert_eq!((rep.reals_deleted, rep.pending_graceful), (1, 0));

    let udp = |eps: &[&str]| {
        state(
            IpFamily::V4,
            vec![svc(
                "dns",
                Protocol::Udp,
                "10.96.0.53",
                53,
                eps.iter().map(|e| ep(e, 53, false)).collect(),
            )],
        )
    };
    r.apply(&udp(&["10.244.1.1", "10.244.1.2"]), now);
    let k = ServiceKey {
        protocol: Protocol::Udp,
        addr: ip("10.96.0.53"),
        port: 53,
    };
    r.ipvs.set_conns(&k, ip("10.244.1.2"), 53, 4, 0);
    let rep = r.apply(&udp(&["10.244.1.1"]), now);
    assert_eq!((rep.reals_deleted, rep.pending_graceful), (1, 0));
}

#[test]
fn re_added_endpoint_leaves_the_drain_with_its_weight_back() {
    let mut r = rig();
    let now = Instant::now();
    r.apply(&web(&["10.244.1.1", "10.244.1.2"]), now);
    r.ipvs.set_conns(&key(80), ip("10.244.1.2"), 8080, 1, 0);
    r.apply(&web(&["10.244.1.1"]), now);
    let rep = r.apply(&web(&["10.244.1.1", "10.244.1.2"]), now);
    assert_eq!((rep.reals_updated, rep.pending_graceful), (1, 0));
    assert_eq!(
        r.weights(&key(80)),
        vec![("10.244.1.1:8080".into(), 1), ("10.244.1.2:8080".into(), 1)]
    );
}

#[test]
fn restart_restores_weights_and_drains_leftovers() {
    let ipvs = Arc::new(FakeIpvs::new());
    let vs = VirtualServer {
        key: key(80),
        scheduler: "rr".into(),
        flags: 0,
        timeout: 0,
    };
    ipvs.add_service(&vs).unwrap();
    // A previous run left the wanted endpoint at weight 0 and an unwanted one with a connection.
    ipvs.add_real_server(&key(80), &RealServer::masq(ip("10.244.1.1"), 8080, 0))
        .unwrap();
    ipvs.add_real_server(&key(80), &RealServer::masq(ip("10.244.1.9"), 8080, 1))
        .unwrap();
    ipvs.set_conns(&key(80), ip("10.244.1.9"), 8080, 1, 0);
    let mut dp = IpvsDataplane::new(
        config(),
        ipvs.clone(),
        Arc::new(FakeLink::default()),
        Arc::new(FakeIpset::default()),
        Arc::new(FakeExec::default()),
        &MemSysctl::default(),
    )
    .unwrap();
    let rep = dp
        .apply(&render(&web(&["10.244.1.1"]), dp.config()), Instant::now())
        .unwrap();
    assert_eq!(
        (rep.reals_updated, rep.reals_draining, rep.pending_graceful),
        (1, 1, 1)
    );
    let w: Vec<u32> = ipvs
        .real_servers(&key(80))
        .unwrap()
        .iter()
        .map(|r| r.weight)
        .collect();
    assert_eq!(w, vec![1, 0]);
}

#[test]
fn changed_settings_update_the_service_in_place() {
    let mut r = rig();
    let now = Instant::now();
    r.apply(&web(&["10.244.1.1"]), now);
    r.ipvs.take_log();
    let mut s = svc(
        "web",
        Protocol::Tcp,
        "10.96.0.10",
        80,
        vec![ep("10.244.1.1", 8080, false)],
    );
    s.session_affinity_timeout = Some(30);
    let rep = r.apply(&state(IpFamily::V4, vec![s]), now);
    assert_eq!(
        (
            rep.services_updated,
            rep.services_added,
            rep.services_deleted
        ),
        (1, 0, 0)
    );
    assert_eq!(r.ipvs.take_log(), vec!["update-service TCP 10.96.0.10:80"]);
}

#[test]
fn unknown_services_are_removed_unless_excluded_or_other_family() {
    let mut r = rig();
    for a in ["10.96.9.9", "10.250.0.1", "fd00::9"] {
        r.ipvs
            .add_service(&VirtualServer {
                key: ServiceKey {
                    protocol: Protocol::Tcp,
                    addr: ip(a),
                    port: 1,
                },
                scheduler: "rr".into(),
                flags: 0,
                timeout: 0,
            })
            .unwrap();
    }
    let rep = r.apply(&web(&[]), Instant::now());
    assert_eq!(rep.services_deleted, 1);
    let left: Vec<String> = r
        .ipvs
        .services()
        .unwrap()
        .iter()
        .map(|v| v.key.addr.to_string())
        .collect();
    assert_eq!(left, vec!["10.96.0.10", "10.250.0.1", "fd00::9"]);
}

#[test]
fn addresses_ipsets_and_jumps() {
    let mut r = rig();
    r.link.add_address(ip("10.96.7.7")).unwrap();
    let rep = r.apply(&web(&["10.244.1.1"]), Instant::now());
    assert_eq!((rep.addresses_added, rep.addresses_deleted), (1, 1));
    assert_eq!(
        r.link
            .addresses(IpFamily::V4)
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        vec![ip("10.96.0.10")]
    );
    assert_eq!(
        r.ipset.members("KUBE-CLUSTER-IP"),
        vec!["10.96.0.10,tcp:80"]
    );
    assert_eq!(r.ipset.members("KUBE-IPVS-IPS"), vec!["10.96.0.10"]);
    assert_eq!((rep.ipset_entries_added, rep.ipset_entries_deleted), (2, 0));
    let nat = r.ipt.save(IpFamily::V4, Table::Nat).unwrap();
    assert!(
        nat.contains(
            "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
        ),
        "{nat}"
    );
    let filter = r.ipt.save(IpFamily::V4, Table::Filter).unwrap();
    assert!(
        filter.contains(
            "-A INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER"
        ),
        "{filter}"
    );
    // Jumps are inserted once.
    let before = r.ipt.restores.lock().unwrap().len();
    r.apply(&web(&["10.244.1.1"]), Instant::now());
    assert_eq!(
        r.ipt.restores.lock().unwrap().len(),
        before + 1,
        "only the chain restore, no jump inserts"
    );
    let nat = r.ipt.save(IpFamily::V4, Table::Nat).unwrap();
    assert_eq!(nat.matches("-j KUBE-SERVICES").count(), 2, "{nat}");
}

#[test]
fn cleanup_removes_everything_and_is_idempotent() {
    let mut r = rig();
    r.apply(&web(&["10.244.1.1"]), Instant::now());
    kube_proxy_ipvs::cleanup(Some(&*r.ipvs), &*r.link, &*r.ipt, &*r.ipset).unwrap();
    assert!(r.ipvs.services().unwrap().is_empty());
    assert!(r.link.state.lock().unwrap().is_none(), "kube-ipvs0 deleted");
    for t in [Table::Nat, Table::Filter] {
        let save = r.ipt.save(IpFamily::V4, t).unwrap();
        assert!(!save.contains("KUBE-"), "{save}");
    }
    let destroyed = r.ipset.destroyed.lock().unwrap().clone();
    assert_eq!(destroyed.len(), 34);
    assert!(destroyed.contains(&"KUBE-CLUSTER-IP".to_string()));
    assert!(destroyed.contains(&"KUBE-6-CLUSTER-IP".to_string()));
    let restores = r.ipt.restores.lock().unwrap().len();
    kube_proxy_ipvs::cleanup(Some(&*r.ipvs), &*r.link, &*r.ipt, &*r.ipset).unwrap();
    assert_eq!(
        r.ipt.restores.lock().unwrap().len(),
        restores,
        "nothing left to remove"
    );
}

#[test]
fn counts_describe_the_last_plan() {
    let mut r = rig();
    r.apply(&web(&["10.244.1.1", "10.244.1.2"]), Instant::now());
    let c = r.dp.counts();
    assert_eq!(c[0], ("virtual_servers".to_string(), 1));
    assert_eq!(c[1], ("real_servers".to_string(), 2));
    assert_eq!(c[2], ("draining".to_string(), 0));
}

#[test]
fn ipsets_are_diffed_against_the_kernel() {
    let mut r = rig();
    r.apply(&web(&["10.244.1.1"]), Instant::now());
    let sets = r.ipset.sets.lock().unwrap().len();
    assert_eq!(sets, 17, "every IPv4 set is created");
    assert_eq!(r.ipset.batches.lock().unwrap().len(), 1);

    // Nothing changed: nothing is sent.
    let rep = r.apply(&web(&["10.244.1.1"]), Instant::now());
    assert_eq!((rep.ipset_entries_added, rep.ipset_entries_deleted), (0, 0));
    assert_eq!(r.ipset.batches.lock().unwrap().len(), 1, "no update batch");

    // A stray element (someone else's, or left by an earlier run) is deleted; a new service port adds its
    // entries only; deletions come first.
    r.ipset
        .update(&[kube_proxy_ipvs::ipset_kernel::Change {
            add: true,
            set: "KUBE-CLUSTER-IP".into(),
            member: kube_proxy_ipvs::ipset_wire::Member::parse(
                kube_proxy_ipvs::ipset_wire::SetType::HashIpPort,
                "10.96.9.9,udp:53",
            )
            .unwrap(),
        }])
        .unwrap();
    let two = state(
        IpFamily::V4,
        vec![
            svc(
                "web",
                Protocol::Tcp,
                "10.96.0.10",
                80,
                vec![ep("10.244.1.1", 8080, false)],
            ),
            svc(
                "api",
                Protocol::Tcp,
                "10.96.0.11",
                443,
                vec![ep("10.244.1.2", 8443, false)],
            ),
        ],
    );
    let rep = r.apply(&two, Instant::now());
    assert_eq!((rep.ipset_entries_added, rep.ipset_entries_deleted), (2, 1));
    let last: Vec<String> = r
        .ipset
        .batches
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                if c.add { "add" } else { "del" },
                c.set,
                c.member
            )
        })
        .collect();
    assert_eq!(
        last,
        vec![
            "del KUBE-CLUSTER-IP 10.96.9.9,udp:53",
            "add KUBE-CLUSTER-IP 10.96.0.11,tcp:443",
            "add KUBE-IPVS-IPS 10.96.0.11",
        ]
    );
    assert_eq!(
        r.ipset.members("KUBE-CLUSTER-IP"),
        vec!["10.96.0.10,tcp:80", "10.96.0.11,tcp:443"]
    );
}

#[test]
fn a_set_of_another_type_is_an_error() {
    let mut r = rig();
    r.ipset
        .ensure_sets(&[kube_proxy_ipvs::ipset_wire::SetSpec {
            name: "KUBE-CLUSTER-IP".into(),
            set_type: kube_proxy_ipvs::ipset_wire::SetType::HashIp,
            family: IpFamily::V4,
        }])
        .unwrap();
    let plan = render(&web(&["10.244.1.1"]), r.dp.config());
    let err = r.dp.apply(&plan, Instant::now()).unwrap_err().to_string();
    assert!(err.contains("KUBE-CLUSTER-IP"), "{err}");
    assert!(err.contains("another type"), "{err}");
}
