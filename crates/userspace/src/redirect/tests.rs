//! Unit tests of the redirect rules (rendered text, applied on the iptables simulator, cleanup) and of the
//! local-route bookkeeping (against a fake seam).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use kube_proxy_iptables::sim::FakeExec;
use kube_proxy_iptables::{IptablesExec, Table};
use kube_proxy_model::{IpFamily, Protocol, ServicePortName};

use super::local_routes::parse_route_list;
use super::*;
use crate::portal::{Portal, PortalKey, PortalKind};

fn portal(
    svc: &str,
    kind: PortalKind,
    vip: &str,
    port: u16,
    proto: Protocol,
    listen: &str,
) -> Portal {
    Portal {
        key: PortalKey {
            service: ServicePortName {
                namespace: "ns".into(),
                name: svc.into(),
                port: "p".into(),
                protocol: proto,
            },
            kind,
            vip: vip.parse().unwrap(),
            port,
            protocol: proto,
        },
        listen: listen.parse::<SocketAddr>().unwrap(),
    }
}

fn sample(listen_ip: &str) -> Vec<Portal> {
    let l = |port: u16| format!("{listen_ip}:{port}");
    vec![
        portal(
            "web",
            PortalKind::ClusterIp,
            "10.96.0.10",
            80,
            Protocol::Tcp,
            &l(40001),
        ),
        portal(
            "dns",
            PortalKind::ClusterIp,
            "10.96.0.53",
            53,
            Protocol::Udp,
            &l(40002),
        ),
        portal(
            "np",
            PortalKind::NodePort,
            "0.0.0.0",
            30080,
            Protocol::Tcp,
            &l(40003),
        ),
        portal(
            "np",
            PortalKind::ExternalIp,
            "192.168.100.20",
            80,
            Protocol::Tcp,
            &l(40004),
        ),
        // Another family: ignored by a V4 renderer.
        portal(
            "web6",
            PortalKind::ClusterIp,
            "fd00:96::25",
            80,
            Protocol::Tcp,
            "[::]:40005",
        ),
    ]
}

fn v4(host_ip: Option<&str>) -> RedirectConfig {
    RedirectConfig {
        family: IpFamily::V4,
        host_ip: host_ip.map(|s| s.parse().unwrap()),
    }
}

#[test]
fn unspecified_listeners_get_redirect_for_pods_and_dnat_to_the_node_ip_for_the_host() {
    let r = render_rules(&sample("0.0.0.0"), &v4(Some("10.100.0.1")));
    let expected = "\
*nat
:KUBE-PORTALS-CONTAINER - [0:0]
:KUBE-PORTALS-HOST - [0:0]
:KUBE-NODEPORT-CONTAINER - [0:0]
:KUBE-NODEPORT-HOST - [0:0]
-A KUBE-PORTALS-CONTAINER -d 10.96.0.53/32 -p udp -m comment --comment \"ns/dns:p\" -m udp --dport 53 -j REDIRECT --to-ports 40002
-A KUBE-PORTALS-HOST -d 10.96.0.53/32 -p udp -m comment --comment \"ns/dns:p\" -m udp --dport 53 -j DNAT --to-destination 10.100.0.1:40002
-A KUBE-PORTALS-CONTAINER -d 192.168.100.20/32 -p tcp -m comment --comment \"ns/np:p\" -m tcp --dport 80 -j REDIRECT --to-ports 40004
-A KUBE-PORTALS-HOST -d 192.168.100.20/32 -p tcp -m comment --comment \"ns/np:p\" -m tcp --dport 80 -j DNAT --to-destination 10.100.0.1:40004
-A KUBE-NODEPORT-CONTAINER -p tcp -m comment --comment \"ns/np:p\" -m tcp --dport 30080 -j REDIRECT --to-ports 40003
-A KUBE-NODEPORT-HOST -p tcp -m comment --comment \"ns/np:p\" -m tcp --dport 30080 -j DNAT --to-destination 10.100.0.1:40003
-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment \"ns/web:p\" -m tcp --dport 80 -j REDIRECT --to-ports 40001
-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p tcp -m comment --comment \"ns/web:p\" -m tcp --dport 80 -j DNAT --to-destination 10.100.0.1:40001
COMMIT
*filter
:KUBE-NODEPORT-NON-LOCAL - [0:0]
-A KUBE-NODEPORT-NON-LOCAL -p tcp -m comment --comment \"ns/np:p\" -m conntrack --ctstate NEW -m tcp --dport 40003 -j ACCEPT
COMMIT
";
    assert_eq!(r.text, expected);
    assert_eq!(r.rules, 9);
}

#[test]
fn specific_listen_address_is_a_dnat_target_everywhere() {
    let r = render_rules(&sample("10.100.0.1"), &v4(Some("10.100.0.9")));
    assert!(r.text.contains(
        "-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment \"ns/web:p\" -m tcp --dport 80 -j DNAT --to-destination 10.100.0.1:40001\n"
    ), "{}", r.text);
    assert!(r.text.contains(
        "-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p tcp -m comment --comment \"ns/web:p\" -m tcp --dport 80 -j DNAT --to-destination 10.100.0.1:40001\n"
    ), "{}", r.text);
    assert!(!r.text.contains("REDIRECT"), "{}", r.text);
    assert!(
        !r.text.contains("10.100.0.9"),
        "host_ip only replaces an unspecified listen address"
    );
}

#[test]
fn without_a_host_ip_node_traffic_is_redirected_too() {
    let r = render_rules(&sample("0.0.0.0"), &v4(None));
    assert!(!r.text.contains("DNAT"), "{}", r.text);
    assert_eq!(r.text.matches("-j REDIRECT").count(), 8);
}

#[test]
fn ipv6_rules_use_host_prefixes_and_bracketed_targets() {
    let portals = vec![
        portal(
            "web6",
            PortalKind::ClusterIp,
            "fd00:96::25",
            80,
            Protocol::Tcp,
            "[fd00:100::1]:40005",
        ),
        portal(
            "sctp",
            PortalKind::ClusterIp,
            "fd00:96::26",
            80,
            Protocol::Sctp,
            "[::]:40006",
        ),
        portal(
            "web",
            PortalKind::ClusterIp,
            "10.96.0.10",
            80,
            Protocol::Tcp,
            "0.0.0.0:40001",
        ),
    ];
    let cfg = RedirectConfig {
        family: IpFamily::V6,
        host_ip: Some("10.100.0.1".parse().unwrap()),
    };
    let r = render_rules(&portals, &cfg);
    assert!(r.text.contains(
        "-A KUBE-PORTALS-CONTAINER -d fd00:96::25/128 -p tcp -m comment --comment \"ns/web6:p\" -m tcp --dport 80 -j DNAT --to-destination [fd00:100::1]:40005\n"
    ), "{}", r.text);
    assert!(!r.text.contains("10.96.0.10"), "other family skipped");
    assert!(!r.text.contains("sctp"), "SCTP is not proxied");
    assert_eq!(r.rules, 2);
}

#[test]
fn empty_portal_list_still_declares_the_chains() {
    let r = render_rules(&[], &v4(None));
    assert_eq!(r.rules, 0);
    for c in [
        KUBE_PORTALS_CONTAINER,
        KUBE_PORTALS_HOST,
        KUBE_NODEPORT_CONTAINER,
        KUBE_NODEPORT_HOST,
        KUBE_NODEPORT_NON_LOCAL,
    ] {
        assert!(r.text.contains(&format!(":{c} - [0:0]\n")), "{c}");
    }
}

fn rules_of(exec: &FakeExec, table: Table, chain: &str) -> Vec<String> {
    exec.snapshot(IpFamily::V4)
        .table(table)
        .chains
        .get(chain)
        .cloned()
        .unwrap_or_default()
}

#[test]
fn sync_applies_rules_and_jumps_once_and_replaces_stale_rules() {
    let exec = Arc::new(FakeExec::default());
    // Someone else's rules in the built-in chains stay where they are.
    exec.restore(
        IpFamily::V4,
        "*nat\n-A PREROUTING -j ACCEPT\n-A OUTPUT -d 1.2.3.4/32 -j ACCEPT\nCOMMIT\n",
        true,
    )
    .unwrap();
    let writer = RedirectRules::new(exec.clone(), v4(Some("10.100.0.1")));
    assert_eq!(writer.sync(&sample("0.0.0.0")).unwrap(), 9);
    writer.sync(&sample("0.0.0.0")).unwrap();

    let pre = rules_of(&exec, Table::Nat, "PREROUTING");
    assert_eq!(pre.len(), 3, "{pre:?}");
    assert!(pre[0].ends_with("-j KUBE-PORTALS-CONTAINER"), "{pre:?}");
    assert_eq!(pre[1], "-j ACCEPT");
    assert!(
        pre[2].starts_with("-m addrtype --dst-type LOCAL"),
        "{pre:?}"
    );
    assert!(pre[2].ends_with("-j KUBE-NODEPORT-CONTAINER"), "{pre:?}");
    let out = rules_of(&exec, Table::Nat, "OUTPUT");
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out[0].ends_with("-j KUBE-PORTALS-HOST"));
    assert!(out[2].ends_with("-j KUBE-NODEPORT-HOST"));
    let input = rules_of(&exec, Table::Filter, "INPUT");
    assert_eq!(input.len(), 1);
    assert_eq!(rules_of(&exec, Table::Nat, KUBE_PORTALS_CONTAINER).len(), 3);

    // A portal goes away: its rules go with it.
    let fewer: Vec<Portal> = sample("0.0.0.0")
        .into_iter()
        .filter(|p| p.key.kind != PortalKind::NodePort)
        .collect();
    assert_eq!(writer.sync(&fewer).unwrap(), 6);
    assert!(rules_of(&exec, Table::Nat, KUBE_NODEPORT_CONTAINER).is_empty());
    assert!(rules_of(&exec, Table::Filter, KUBE_NODEPORT_NON_LOCAL).is_empty());
    assert_eq!(rules_of(&exec, Table::Nat, "PREROUTING").len(), 3);
}

#[test]
fn a_failed_restore_is_an_error() {
    let exec = Arc::new(FakeExec::default());
    exec.fail_restores
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let writer = RedirectRules::new(exec.clone(), v4(None));
    let err = writer.sync(&sample("0.0.0.0")).unwrap_err();
    assert!(matches!(err, RedirectError::WriteRules { .. }), "{err}");
    assert!(
        writer.sync(&sample("0.0.0.0")).is_ok(),
        "the next sync retries"
    );
}

#[test]
fn cleanup_removes_jumps_and_chains_and_nothing_else() {
    let exec = Arc::new(FakeExec::default());
    exec.restore(
        IpFamily::V4,
        "*nat\n-A PREROUTING -j ACCEPT\nCOMMIT\n",
        true,
    )
    .unwrap();
    let before = exec.snapshot(IpFamily::V4);
    RedirectRules::new(exec.clone(), v4(Some("10.100.0.1")))
        .sync(&sample("0.0.0.0"))
        .unwrap();
    assert_ne!(exec.snapshot(IpFamily::V4), before);
    cleanup(exec.as_ref(), IpFamily::V4).unwrap();
    assert_eq!(exec.snapshot(IpFamily::V4), before);
    // Nothing left: no restore at all.
    let n = exec.restores.lock().unwrap().len();
    cleanup(exec.as_ref(), IpFamily::V4).unwrap();
    assert_eq!(exec.restores.lock().unwrap().len(), n);
}

#[test]
fn route_listing_is_parsed_for_one_family() {
    let out =
        "local 10.96.0.10 dev lo scope host\n10.96.0.11 dev lo scope host\nlocal fd00::1 dev lo\n";
    let got = parse_route_list(out, IpFamily::V4);
    let want: BTreeSet<IpAddr> = ["10.96.0.10", "10.96.0.11"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn route_targets_are_service_addresses_but_not_node_ports() {
    let got = local_route_targets(&sample("0.0.0.0"), IpFamily::V4);
    let want: BTreeSet<IpAddr> = ["10.96.0.10", "10.96.0.53", "192.168.100.20"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(got, want);
}

#[derive(Default)]
struct FakeRoutes {
    routes: Mutex<BTreeSet<IpAddr>>,
    log: Mutex<Vec<String>>,
    fail_add: Option<IpAddr>,
}

impl LocalRouteExec for FakeRoutes {
    fn list(&self, family: IpFamily) -> Result<BTreeSet<IpAddr>, RedirectError> {
        let r = self.routes.lock().unwrap();
        Ok(r.iter().copied().filter(|ip| family.contains(ip)).collect())
    }
    fn add(&self, ip: IpAddr) -> Result<(), RedirectError> {
        if self.fail_add == Some(ip) {
            return Err(RedirectError::ChangeRoute {
                action: "adding",
                target: ip.to_string(),
                detail: "refused".into(),
            });
        }
        self.log.lock().unwrap().push(format!("add {ip}"));
        self.routes.lock().unwrap().insert(ip);
        Ok(())
    }
    fn delete(&self, ip: IpAddr) -> Result<(), RedirectError> {
        self.log.lock().unwrap().push(format!("del {ip}"));
        self.routes.lock().unwrap().remove(&ip);
        Ok(())
    }
}

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn local_routes_follow_the_wanted_set_and_leave_the_other_family_alone() {
    let fake = Arc::new(FakeRoutes::default());
    fake.routes
        .lock()
        .unwrap()
        .extend(ips(&["fd00::1", "10.96.0.99"]));
    let routes = LocalRoutes::new(fake.clone(), IpFamily::V4);
    assert_eq!(
        routes
            .sync(&ips(&["10.96.0.10", "10.96.0.11", "fd00::2"]))
            .unwrap(),
        2
    );
    assert_eq!(
        *fake.routes.lock().unwrap(),
        ips(&["10.96.0.10", "10.96.0.11", "fd00::1"])
    );
    fake.log.lock().unwrap().clear();
    routes.sync(&ips(&["10.96.0.10", "10.96.0.11"])).unwrap();
    assert!(fake.log.lock().unwrap().is_empty(), "no change, no calls");
    routes.cleanup().unwrap();
    assert_eq!(*fake.routes.lock().unwrap(), ips(&["fd00::1"]));
}

#[test]
fn one_failed_route_does_not_stop_the_others() {
    let fake = Arc::new(FakeRoutes {
        fail_add: Some("10.96.0.10".parse().unwrap()),
        ..FakeRoutes::default()
    });
    fake.routes
        .lock()
        .unwrap()
        .insert("10.96.0.99".parse().unwrap());
    let routes = LocalRoutes::new(fake.clone(), IpFamily::V4);
    let err = routes
        .sync(&ips(&["10.96.0.10", "10.96.0.11"]))
        .unwrap_err();
    assert!(matches!(err, RedirectError::ChangeRoute { .. }), "{err}");
    assert_eq!(*fake.routes.lock().unwrap(), ips(&["10.96.0.11"]));
}
