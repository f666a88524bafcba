//! Privileged end-to-end test with real UDP traffic through DNAT rules in a namespace topology (the testkit's
//! two-node cluster): shows that a stale conntrack entry keeps sending a client to an old backend (or to no
//! backend at all) after the rules changed, and that [`reconcile`] through [`NetlinkConntrack`] fixes exactly
//! that. Needs root; fails (does not skip) when CI=true.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kube_proxy_conntrack::{reconcile, NetlinkConntrack};
use kube_proxy_model::{fixtures, IpFamily, Protocol, ProxyState};
use kube_proxy_testkit::netns::{
    require_root, udp_echo_server, udp_exchange_from, ClusterTopology, Family, TopologyOpts,
};

const T: Duration = Duration::from_secs(3);

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A UDP service `10.96.0.10:53` with NodePort 30053 whose only endpoint is `endpoint`.
fn state(endpoint: IpAddr) -> ProxyState {
    let mut port = fixtures::name("ns", "dns", "");
    port.protocol = Protocol::Udp;
    let mut svc = fixtures::svc(port, "10.96.0.10", 53);
    svc.node_port = Some(30053);
    svc.endpoints = vec![fixtures::ep(&endpoint.to_string(), 8053, true)];
    fixtures::state(IpFamily::V4, vec![fixtures::finish(svc)])
}

#[test]
fn stale_udp_flows_are_cleared_for_real_traffic() {
    if !require_root("stale_udp_flows_are_cleared_for_real_traffic") {
        return;
    }
    let topo = ClusterTopology::build(TopologyOpts {
        ipv6: false,
        vip_routes: vec!["10.96.0.0/16".into()],
        ..TopologyOpts::default()
    })
    .unwrap();
    let (a, b) = (topo.pod("pod-a"), topo.pod("pod-b"));
    let (a_ip, b_ip) = (a.ip(Family::V4), b.ip(Family::V4));
    let _sa = udp_echo_server(&a.ns, SocketAddr::new(a_ip, 8053)).unwrap();
    let _sb = udp_echo_server(&b.ns, SocketAddr::new(b_ip, 8053)).unwrap();
    let node_ip = topo.node_ip(1, Family::V4);
    // Runs `iptables -w -t nat <rule>` on node1.
    let nat = |rule: &str| {
        let mut args = vec!["iptables", "-w", "-t", "nat"];
        args.extend(rule.split_whitespace());
        topo.node1.exec_ok(&args).unwrap();
    };
    let client = &topo.client;
    let from = |port: u16| SocketAddr::new(topo.client_ip(Family::V4), port);
    let node_port = SocketAddr::new(node_ip, 30053);

    // Conntrack only tracks every flow of a namespace once a rule needs it (kube-proxy's ctstate rules do).
    topo.node1
        .exec_ok(&[
            "iptables",
            "-w",
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "ACCEPT",
        ])
        .unwrap();

    // 1. Before the NodePort existed, the port was served on the node itself; that un-NATed entry stays cached
    //    after the DNAT rule appears, so the client keeps talking to the node.
    let on_node = udp_echo_server(&topo.node1, node_port).unwrap();
    assert_eq!(
        udp_exchange_from(client, from(41000), node_port, T)
            .unwrap()
            .backend,
        "node1"
    );
    nat(&format!(
        "-A PREROUTING -p udp --dport 30053 -j DNAT --to-destination {a_ip}:8053"
    ));
    assert_eq!(
        udp_exchange_from(client, from(41000), node_port, T)
            .unwrap()
            .backend,
        "node1",
        "the cached entry bypasses the new DNAT rule"
    );
    drop(on_node);

    // 2. A cluster IP flow sticks to its old backend after the rule moved to pod-b.
    nat(&format!(
        "-A PREROUTING -p udp -d 10.96.0.10 --dport 53 -j DNAT --to-destination {a_ip}:8053"
    ));
    assert_eq!(
        udp_exchange_from(client, from(42000), sa("10.96.0.10:53"), T)
            .unwrap()
            .backend,
        "pod-a"
    );
    // Rule 1 is the NodePort rule; the cluster IP rule is rule 2: replace it.
    nat(&format!(
        "-R PREROUTING 2 -p udp -d 10.96.0.10 --dport 53 -j DNAT --to-destination {b_ip}:8053"
    ));
    assert_eq!(
        udp_exchange_from(client, from(42000), sa("10.96.0.10:53"), T)
            .unwrap()
            .backend,
        "pod-a",
        "the cached entry still points at the old backend"
    );
    // The NodePort must also move to pod-b to match the state below.
    nat(&format!(
        "-R PREROUTING 1 -p udp --dport 30053 -j DNAT --to-destination {b_ip}:8053"
    ));

    // Reconcile on node1 against a state whose only endpoint is pod-b.
    let out = topo
        .node1
        .run_in(|| reconcile(&NetlinkConntrack::new(), &state(b_ip)))
        .unwrap()
        .unwrap();
    assert_eq!((out.stale, out.deleted), (2, 2), "{out:?}");

    // Both clients now reach pod-b, from the very same source ports.
    assert_eq!(
        udp_exchange_from(client, from(41000), node_port, T)
            .unwrap()
            .backend,
        "pod-b"
    );
    assert_eq!(
        udp_exchange_from(client, from(42000), sa("10.96.0.10:53"), T)
            .unwrap()
            .backend,
        "pod-b"
    );

    // Flows to the current endpoint are left alone by a second pass.
    let out = topo
        .node1
        .run_in(|| reconcile(&NetlinkConntrack::new(), &state(b_ip)))
        .unwrap()
        .unwrap();
    assert_eq!((out.listed, out.stale), (2, 0), "{out:?}");
}
