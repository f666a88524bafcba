//! Unit tests of the userspace mode: settings, a sync against fake iptables and conntrack, errors.

use super::*;
use kube_proxy_conntrack::{FakeConntrack, Flow, FlowTuple};
use kube_proxy_iptables::sim::FakeExec;
use kube_proxy_iptables::Table;
use kube_proxy_model::{Protocol, ServicePortName, ServicePortState};
use std::collections::BTreeSet;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn settings_follow_addressing_and_local_node_ips() {
    let local = [ip("127.0.0.1"), ip("10.100.0.1")];
    let s = settings(
        IpFamily::V4,
        false,
        &[ip("10.100.0.1"), ip("fd00::1")],
        &local,
        &NodePortSelection::All,
    );
    assert_eq!(
        s.proxy.addressing,
        Addressing::Redirect {
            listen_ip: Some(ip("10.100.0.1"))
        }
    );
    assert_eq!(s.proxy.node_port_addresses, vec![ip("0.0.0.0")]);
    assert_eq!(s.redirect.unwrap().host_ip, Some(ip("10.100.0.1")));

    // A node IP that is not on this host is not a listen address.
    let s = settings(
        IpFamily::V4,
        false,
        &[ip("10.100.0.9")],
        &local,
        &NodePortSelection::Ips(vec![ip("10.100.0.1"), ip("fd00::1")]),
    );
    assert_eq!(s.proxy.addressing, Addressing::Redirect { listen_ip: None });
    assert_eq!(s.proxy.node_port_addresses, vec![ip("10.100.0.1")]);
    assert_eq!(s.redirect.unwrap().host_ip, None);

    let s = settings(IpFamily::V6, true, &[], &local, &NodePortSelection::All);
    assert_eq!(s.proxy.addressing, Addressing::BindVips);
    assert_eq!(s.proxy.node_port_addresses, vec![ip("::")]);
    assert!(s.redirect.is_none());
}

struct NoRoutes;
impl LocalRouteExec for NoRoutes {
    fn list(&self, _: IpFamily) -> Result<BTreeSet<IpAddr>, redirect::RedirectError> {
        Ok(BTreeSet::new())
    }
    fn add(&self, _: IpAddr) -> Result<(), redirect::RedirectError> {
        panic!("redirect mode adds no routes")
    }
    fn delete(&self, _: IpAddr) -> Result<(), redirect::RedirectError> {
        Ok(())
    }
}

fn state(services: &[(&str, &str, Protocol)]) -> Arc<ProxyState> {
    let mut st = ProxyState::empty(IpFamily::V4, "node1");
    for (name, vip, protocol) in services {
        let n = ServicePortName {
            namespace: "ns".into(),
            name: (*name).into(),
            port: "p".into(),
            protocol: *protocol,
        };
        st.services.insert(
            n.clone(),
            Arc::new(ServicePortState {
                name: n,
                family: IpFamily::V4,
                cluster_ip: ip(vip),
                port: 80,
                protocol: *protocol,
                node_port: None,
                external_ips: vec![],
                load_balancer_ips: vec![],
                load_balancer_source_ranges: vec![],
                external_policy_local: false,
                internal_policy_local: false,
                health_check_node_port: None,
                session_affinity_timeout: None,
                endpoints: vec![],
                cluster_endpoints: Default::default(),
                local_endpoints: Default::default(),
                all_reachable_endpoints: Default::default(),
                has_any_endpoints: false,
            }),
        );
    }
    Arc::new(st)
}

#[test]
fn sync_serves_portals_and_points_the_rules_at_the_listeners() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let exec = Arc::new(FakeExec::default());
    let flow = |client_port: u16, to: &str, port: u16| {
        Flow::udp(
            FlowTuple::new(ip("10.244.1.10"), client_port, ip("10.96.0.53"), 80),
            FlowTuple::new(ip(to), port, ip("10.244.1.10"), client_port),
        )
    };
    // Translated to a listener port that is not (or no longer) served; and one not translated at all.
    let (stale, untranslated) = (flow(5353, "127.0.0.1", 1), flow(5354, "10.96.0.53", 80));
    let conntrack = Arc::new(FakeConntrack::new(vec![stale, untranslated]));
    let s = settings(
        IpFamily::V4,
        false,
        &[ip("127.0.0.1")],
        &[ip("127.0.0.1")],
        &NodePortSelection::Ips(vec![]),
    );
    let metrics = Arc::new(Metrics::new());
    let mut mode = {
        let _guard = rt.enter();
        UserspaceMode::new(
            IpFamily::V4,
            "node1",
            s,
            &Seams {
                iptables: exec.clone(),
                routes: Arc::new(NoRoutes),
                conntrack: Some(conntrack.clone()),
            },
            metrics.clone(),
        )
    };
    register_service_metrics(&metrics, vec![(IpFamily::V4, mode.proxy().clone())]);
    let userspace_series = || {
        let text = metrics.encode_openmetrics().unwrap();
        text.lines()
            .filter(|l| l.starts_with("kubeproxy_rs_userspace_active_connections{"))
            .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    assert!(userspace_series().is_empty());
    let services = [
        ("web", "10.96.0.10", Protocol::Tcp),
        ("dns", "10.96.0.53", Protocol::Udp),
    ];
    let report = mode.sync(&state(&services), true).unwrap();
    assert_eq!(report.counts[0], ("listeners".to_string(), 2));
    assert_eq!(conntrack.deleted(), vec![stale]);
    // Every served port shows on /metrics.
    assert_eq!(
        userspace_series(),
        vec![
            r#"kubeproxy_rs_userspace_active_connections{ip_family="IPv4",service="ns/dns:p",protocol="UDP"}"#,
            r#"kubeproxy_rs_userspace_active_connections{ip_family="IPv4",service="ns/web:p",protocol="TCP"}"#,
        ]
    );
    let portals = mode.proxy().portals();
    let listen = portals
        .iter()
        .find(|p| p.key.protocol == Protocol::Tcp)
        .unwrap()
        .listen;
    assert_eq!(listen.ip(), ip("127.0.0.1"));
    let chain = |c: &str| {
        exec.snapshot(IpFamily::V4)
            .table(Table::Nat)
            .chains
            .get(c)
            .cloned()
            .unwrap_or_default()
    };
    let container = chain(redirect::KUBE_PORTALS_CONTAINER);
    assert_eq!(container.len(), 2);
    assert!(
        container.iter().any(|r| r.contains("-d 10.96.0.10/32")
            && r.ends_with(&format!("-j DNAT --to-destination {listen}"))),
        "{container:?}"
    );
    // The listener really accepts connections.
    assert!(std::net::TcpStream::connect(listen).is_ok());

    // The wrong family is refused; removing the service removes listener and rules.
    let mut v6 = (*state(&[])).clone();
    v6.family = IpFamily::V6;
    assert!(mode.sync(&Arc::new(v6), false).is_err());
    mode.sync(&state(&[]), false).unwrap();
    assert!(mode.proxy().portals().is_empty());
    assert!(userspace_series().is_empty());
    assert!(chain(redirect::KUBE_PORTALS_CONTAINER).is_empty());
    assert!(std::net::TcpStream::connect(listen).is_err());
}

#[test]
fn failed_rule_writes_are_sync_errors() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let exec = Arc::new(FakeExec::default());
    exec.fail_restores
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let s = settings(
        IpFamily::V4,
        false,
        &[],
        &[],
        &NodePortSelection::Ips(vec![]),
    );
    let mut mode = {
        let _guard = rt.enter();
        UserspaceMode::new(
            IpFamily::V4,
            "node1",
            s,
            &Seams {
                iptables: exec,
                routes: Arc::new(NoRoutes),
                conntrack: None,
            },
            Arc::new(Metrics::new()),
        )
    };
    let err = mode.sync(&state(&[]), true).unwrap_err();
    assert!(err.to_string().contains("delivering"), "{err}");
    assert!(mode.sync(&state(&[]), true).is_ok());
}
