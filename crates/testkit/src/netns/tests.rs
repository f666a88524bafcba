//! Tests of the netns kit itself (root): namespace lifecycle and cleanup (also on panic), `run_in`, `spawn`, and
//! a full topology with traffic between pods across nodes and from the client to node IPs.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use super::topology::Family;
use super::*;

const T: Duration = Duration::from_secs(5);

fn all_namespaces() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

fn sa(ip: std::net::IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

#[test]
fn namespace_lifecycle_and_run_in() {
    if !require_root("namespace_lifecycle_and_run_in") {
        return;
    }
    let ns = Netns::new("life").unwrap();
    let name = ns.name().to_string();
    assert!(name.starts_with(&format!("kprs-{}-", std::process::id())) && name.ends_with("-life"));
    assert!(all_namespaces().contains(&name));

    // Only loopback exists inside, seen both by a command and by a closure.
    let links = ns.exec_ok(&["ip", "-o", "link"]).unwrap();
    assert_eq!(links.lines().count(), 1, "{links}");
    let ifaces: Vec<String> = ns
        .run_in(|| {
            nix::ifaddrs::getifaddrs()
                .unwrap()
                .map(|i| i.interface_name)
                .collect()
        })
        .unwrap();
    assert!(ifaces.iter().all(|i| i == "lo"), "{ifaces:?}");
    assert_eq!(ns.get_sysctl("net.ipv6.conf.all.accept_dad").unwrap(), "0");

    // A socket bound inside the namespace is served there and unreachable from another namespace.
    let server = tcp_echo_server(&ns, "127.0.0.1:0".parse().unwrap()).unwrap();
    let reply = tcp_exchange(&ns, server.addr(), T).unwrap();
    assert_eq!(
        reply,
        Reply {
            backend: "life".into(),
            source: "127.0.0.1".parse().unwrap()
        }
    );
    let other = Netns::new("other").unwrap();
    let err = tcp_request(&other, server.addr(), T).unwrap_err();
    assert!(matches!(err, RequestError::Refused), "{err}");

    let mut child = ns.spawn(Command::new("sleep").arg("1000")).unwrap();
    assert!(child.try_wait().unwrap().is_none());
    drop(server);
    drop(ns);
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the process started in the namespace was killed"
    );
    assert!(!all_namespaces().contains(&name));
}

#[test]
fn namespaces_are_removed_when_a_test_panics() {
    if !require_root("namespaces_are_removed_when_a_test_panics") {
        return;
    }
    let name = std::panic::catch_unwind(|| {
        let ns = Netns::new("panicky").unwrap();
        let name = ns.name().to_string();
        ns.run_in(|| panic!("boom in {name}")).unwrap();
    })
    .unwrap_err();
    let msg = name.downcast_ref::<String>().cloned().unwrap_or_default();
    let ns_name = msg.trim_start_matches("boom in ").to_string();
    assert!(ns_name.ends_with("-panicky"), "{msg}");
    assert!(!all_namespaces().contains(&ns_name));
}

#[test]
fn topology_routes_pods_across_nodes_and_client_to_nodes() {
    if !require_root("topology_routes_pods_across_nodes_and_client_to_nodes") {
        return;
    }
    let topo = ClusterTopology::build(TopologyOpts {
        vip_routes: vec!["192.168.100.0/24".into(), "fd00:100:1::/64".into()],
        ..TopologyOpts::default()
    })
    .unwrap();
    let names = topo.namespace_names();
    assert_eq!(names.len(), 7);
    let listing = all_namespaces();
    assert!(names.iter().all(|n| listing.contains(n.as_str())));

    for family in [Family::V4, Family::V6] {
        let (a, b, c) = (topo.pod("pod-a"), topo.pod("pod-b"), topo.pod("pod-c"));
        // pod-a -> pod-c (other node) and pod-b (same node), TCP and UDP, source address preserved.
        let c_tcp = tcp_echo_server(&c.ns, sa(c.ip(family), 8080)).unwrap();
        let c_udp = udp_echo_server(&c.ns, sa(c.ip(family), 8053)).unwrap();
        let b_tcp = tcp_echo_server(&b.ns, sa(b.ip(family), 8080)).unwrap();
        let want = Reply {
            backend: "pod-c".into(),
            source: a.ip(family),
        };
        assert_eq!(tcp_exchange(&a.ns, c_tcp.addr(), T).unwrap(), want);
        assert_eq!(udp_exchange(&a.ns, c_udp.addr(), T).unwrap(), want);
        assert_eq!(tcp_request(&a.ns, b_tcp.addr(), T).unwrap(), "pod-b");
        // pod-c -> pod-a on the way back too.
        let a_tcp = tcp_echo_server(&a.ns, sa(a.ip(family), 8080)).unwrap();
        assert_eq!(
            tcp_exchange(&c.ns, a_tcp.addr(), T).unwrap().source,
            c.ip(family)
        );

        // Client -> node IPs.
        let n1 = tcp_echo_server(&topo.node1, sa(topo.node_ip(1, family), 8080)).unwrap();
        let n2 = udp_echo_server(&topo.node2, sa(topo.node_ip(2, family), 8053)).unwrap();
        assert_eq!(
            tcp_exchange(&topo.client, n1.addr(), T).unwrap(),
            Reply {
                backend: "node1".into(),
                source: topo.client_ip(family)
            }
        );
        assert_eq!(udp_request(&topo.client, n2.addr(), T).unwrap(), "node2");

        // Nothing listening: refused (TCP RST / ICMP port unreachable), not a timeout.
        let closed = sa(topo.node_ip(1, family), 9);
        assert!(matches!(
            tcp_request(&topo.client, closed, T),
            Err(RequestError::Refused)
        ));
        assert!(matches!(
            udp_request(&topo.client, closed, T),
            Err(RequestError::Refused)
        ));

        // The client has no route to pods unless asked for.
        let err = tcp_request(&topo.client, c_tcp.addr(), T).unwrap_err();
        assert!(err.is_rejected(), "{err}");
    }

    // A DROP rule on node1 shows up as a timeout, distinct from a reject.
    topo.node1
        .exec_ok(&[
            "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8081", "-j", "DROP",
        ])
        .unwrap();
    let _srv = tcp_echo_server(&topo.node1, sa(topo.node_ip(1, Family::V4), 8081)).unwrap();
    let err = tcp_request(
        &topo.client,
        sa(topo.node_ip(1, Family::V4), 8081),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(err, RequestError::Timeout), "{err}");

    // VIP routes point at node1.
    let route = topo.client.ip(&["route", "get", "192.168.100.7"]).unwrap();
    assert!(route.contains("via 10.100.0.1"), "{route}");
    let route = topo
        .client
        .ip(&["-6", "route", "get", "fd00:100:1::7"])
        .unwrap();
    assert!(route.contains("via fd00:100::1"), "{route}");

    drop(_srv);
    drop(topo);
    let listing = all_namespaces();
    for n in names {
        assert!(!listing.contains(&n), "{n} left behind:\n{listing}");
    }
}

#[test]
fn single_stack_topology_configures_only_that_family() {
    if !require_root("single_stack_topology_configures_only_that_family") {
        return;
    }
    let topo = ClusterTopology::build(TopologyOpts {
        ipv4: false,
        ..TopologyOpts::default()
    })
    .unwrap();
    let (a, c) = (topo.pod("pod-a"), topo.pod("pod-c"));
    assert_eq!(a.ipv4, None);
    let addrs =
        a.ns.ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
            .unwrap();
    assert!(addrs.trim().is_empty(), "{addrs}");
    let srv = udp_echo_server(&c.ns, sa(c.ip(Family::V6), 8053)).unwrap();
    let reply = eventually(T, || {
        udp_exchange(&a.ns, srv.addr(), Duration::from_secs(1)).ok()
    })
    .unwrap();
    assert_eq!(
        reply,
        Reply {
            backend: "pod-c".into(),
            source: a.ip(Family::V6)
        }
    );
}
