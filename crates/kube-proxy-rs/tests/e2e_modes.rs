//! End-to-end: the real binary, driven through `--master` by the test API server, with real traffic between
//! network namespaces. One scenario list runs in every kernel mode (iptables, nftables, ipvs). Root only; fails
//! (not skips) when CI=true and not root.
//!
//! The IPVS tests need a kernel with IPVS, which this host lacks: they are `#[ignore]`d here and run inside the
//! qemu guest, where `kube-proxy-vmtest`'s `e2e_ipvs_in_vm` test boots this very executable with
//! `KPRS_IN_VM=1 --ignored ipvs_` and asserts each of them passed. Where upstream's IPVS mode behaves
//! differently from its iptables mode, the check says so in a comment.

mod common;

use std::net::SocketAddr;

use common::objects::{ep, node, service, slice};
use common::{
    in_vm_guest, privileged, sa, set, tcp, tcp_backends, udp, Cluster, LongConn, Mode, A, B, C, C6,
    CLIENT, NODE1,
};
use kube_proxy_testkit::apiserver::Kind;
use kube_proxy_testkit::netns::Family;
use serde_json::json;

/// Loads every scenario's objects at once; each scenario uses its own service.
fn load_scenarios(c: &Cluster) {
    // ClusterIP with endpoints on both nodes.
    c.apply(service("web", "10.96.0.10", 80, "TCP", json!({})));
    c.apply(slice(
        "web",
        "web-1",
        "IPv4",
        "TCP",
        &[ep(A, "node1"), ep(B, "node1"), ep(C, "node2")],
    ));
    // No endpoints at all: REJECT.
    c.apply(service("empty", "10.96.0.11", 80, "TCP", json!({})));
    // NodePort, eTP Cluster, endpoint only on node2.
    c.apply(service(
        "np",
        "10.96.0.12",
        80,
        "TCP",
        json!({"type": "NodePort",
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30080}]}),
    ));
    c.apply(slice("np", "np-1", "IPv4", "TCP", &[ep(C, "node2")]));
    // NodePort, eTP Local, endpoints on both nodes.
    c.apply(service(
        "np-local",
        "10.96.0.13",
        80,
        "TCP",
        json!({"type": "NodePort",
        "externalTrafficPolicy": "Local",
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30081}]}),
    ));
    c.apply(slice(
        "np-local",
        "np-local-1",
        "IPv4",
        "TCP",
        &[ep(A, "node1"), ep(C, "node2")],
    ));
    // NodePort, eTP Local, endpoints only elsewhere: DROP.
    c.apply(service(
        "np-remote",
        "10.96.0.14",
        80,
        "TCP",
        json!({"type": "NodePort",
        "externalTrafficPolicy": "Local",
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30082}]}),
    ));
    c.apply(slice(
        "np-remote",
        "np-remote-1",
        "IPv4",
        "TCP",
        &[ep(C, "node2")],
    ));
    // iTP Local with a local endpoint, and with only a remote one.
    c.apply(service(
        "itp",
        "10.96.0.15",
        80,
        "TCP",
        json!({"internalTrafficPolicy": "Local"}),
    ));
    c.apply(slice(
        "itp",
        "itp-1",
        "IPv4",
        "TCP",
        &[ep(A, "node1"), ep(C, "node2")],
    ));
    c.apply(service(
        "itp-remote",
        "10.96.0.16",
        80,
        "TCP",
        json!({"internalTrafficPolicy": "Local"}),
    ));
    c.apply(slice(
        "itp-remote",
        "itp-remote-1",
        "IPv4",
        "TCP",
        &[ep(C, "node2")],
    ));
    // LoadBalancer: one source range admitting the client, one that does not.
    c.apply(with_lb(
        service(
            "lb",
            "10.96.0.17",
            80,
            "TCP",
            json!({"type": "LoadBalancer",
        "loadBalancerSourceRanges": [format!("{CLIENT}/32")],
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30083}]}),
        ),
        "192.168.100.10",
        None,
    ));
    c.apply(slice("lb", "lb-1", "IPv4", "TCP", &[ep(C, "node2")]));
    c.apply(with_lb(
        service(
            "lb-denied",
            "10.96.0.18",
            80,
            "TCP",
            json!({"type": "LoadBalancer",
        "loadBalancerSourceRanges": ["10.9.9.0/24"],
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30084}]}),
        ),
        "192.168.100.11",
        None,
    ));
    c.apply(slice(
        "lb-denied",
        "lb-denied-1",
        "IPv4",
        "TCP",
        &[ep(C, "node2")],
    ));
    // LoadBalancer with ipMode Proxy: no rules for the ingress IP.
    c.apply(with_lb(
        service(
            "lb-proxy",
            "10.96.0.19",
            80,
            "TCP",
            json!({"type": "LoadBalancer",
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30085}]}),
        ),
        "192.168.100.12",
        Some("Proxy"),
    ));
    c.apply(slice(
        "lb-proxy",
        "lb-proxy-1",
        "IPv4",
        "TCP",
        &[ep(C, "node2")],
    ));
    // externalIPs.
    c.apply(service(
        "ext",
        "10.96.0.20",
        80,
        "TCP",
        json!({"externalIPs": ["192.168.100.20"]}),
    ));
    c.apply(slice("ext", "ext-1", "IPv4", "TCP", &[ep(C, "node2")]));
    // ClientIP session affinity.
    c.apply(service(
        "sticky",
        "10.96.0.21",
        80,
        "TCP",
        json!({"sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}}}),
    ));
    c.apply(slice(
        "sticky",
        "sticky-1",
        "IPv4",
        "TCP",
        &[ep(A, "node1"), ep(B, "node1"), ep(C, "node2")],
    ));
    // Only terminating endpoints: the serving one is used as a fallback.
    c.apply(service("term", "10.96.0.22", 80, "TCP", json!({})));
    c.apply(slice(
        "term",
        "term-1",
        "IPv4",
        "TCP",
        &[
            ep(B, "node1").terminating(true),
            ep(C, "node2").terminating(false),
        ],
    ));
    // Topology hints: node1 is in zone-a, so only pod-a is used.
    c.apply(service(
        "topo",
        "10.96.0.23",
        80,
        "TCP",
        json!({"trafficDistribution": "PreferClose"}),
    ));
    c.apply(slice(
        "topo",
        "topo-1",
        "IPv4",
        "TCP",
        &[ep(A, "node1").hint("zone-a"), ep(C, "node2").hint("zone-b")],
    ));
    // UDP.
    c.apply(service("dns", "10.96.0.53", 53, "UDP", json!({})));
    c.apply(slice("dns", "dns-1", "IPv4", "UDP", &[ep(C, "node2")]));
    // Hairpin: pod-a reaches itself through its own service.
    c.apply(service("self", "10.96.0.24", 80, "TCP", json!({})));
    c.apply(slice("self", "self-1", "IPv4", "TCP", &[ep(A, "node1")]));
    // Dual-stack service.
    c.apply(service(
        "web6",
        "10.96.0.25",
        80,
        "TCP",
        json!({
        "clusterIPs": ["10.96.0.25", "fd00:96::25"], "ipFamilies": ["IPv4", "IPv6"],
        "ipFamilyPolicy": "RequireDualStack"}),
    ));
    c.apply(slice("web6", "web6-v4", "IPv4", "TCP", &[ep(C, "node2")]));
    c.apply(slice("web6", "web6-v6", "IPv6", "TCP", &[ep(C6, "node2")]));
    // Leading zeros in an endpoint address (written by old clients) are read as decimal.
    c.apply(service("zeros", "10.96.0.26", 80, "TCP", json!({})));
    c.apply(slice(
        "zeros",
        "zeros-1",
        "IPv4",
        "TCP",
        &[ep("010.244.002.010", "node2")],
    ));
    // Malformed services must not disturb the others.
    c.apply(service("bad-ip", "10.96.0.999", 80, "TCP", json!({})));
    c.apply(service("bad-proto", "10.96.0.27", 80, "ICMP", json!({})));
    // Services the proxy must ignore.
    c.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "e2e", "name": "other-proxy",
                     "labels": {"service.kubernetes.io/service-proxy-name": "someone-else"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.28", "clusterIPs": ["10.96.0.28"],
                 "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]}}));
    c.apply(slice(
        "other-proxy",
        "other-proxy-1",
        "IPv4",
        "TCP",
        &[ep(C, "node2")],
    ));
}

/// Adds a load-balancer ingress status to a Service.
fn with_lb(mut svc: serde_json::Value, ip: &str, ip_mode: Option<&str>) -> serde_json::Value {
    let mut ingress = json!({"ip": ip});
    if let Some(m) = ip_mode {
        ingress["ipMode"] = json!(m);
    }
    svc["status"] = json!({"loadBalancer": {"ingress": [ingress]}});
    svc
}

#[test]
fn iptables_service_semantics() {
    if privileged("iptables_service_semantics") {
        service_semantics(Mode::Iptables);
    }
}

#[test]
fn nftables_service_semantics() {
    if privileged("nftables_service_semantics") {
        service_semantics(Mode::Nftables);
    }
}

#[test]
#[ignore = "needs IPVS: runs in the qemu guest (cargo test -p kube-proxy-vmtest --test e2e_ipvs_in_vm)"]
fn ipvs_service_semantics() {
    if in_vm_guest("ipvs_service_semantics") {
        service_semantics(Mode::Ipvs);
    }
}

fn service_semantics(mode: Mode) {
    let c = Cluster::new();
    load_scenarios(&c);
    c.start_proxy(&["--proxy-mode", mode.name()]);
    let pod_a = c.pod("pod-a");
    let pod_b = c.pod("pod-b");
    let client = &c.topo.client;
    let node1 = &c.topo.node1;

    // ClusterIP from a pod: every backend is used.
    c.check("web balances over all three endpoints", || {
        tcp_backends(pod_a, sa("10.96.0.10", 80), 30) == set(&["pod-a", "pod-b", "pod-c"])
    });
    // IPv6 half of a dual-stack service.
    let web6 = SocketAddr::new("fd00:96::25".parse().unwrap(), 80);
    c.check(
        "web6 over IPv6",
        || matches!(tcp(pod_a, web6), Ok(r) if r.backend == "pod-c"),
    );
    c.check(
        "web6 over IPv4",
        || matches!(tcp(pod_a, sa("10.96.0.25", 80)), Ok(r) if r.backend == "pod-c"),
    );
    // ClusterIP from the node itself (OUTPUT chain).
    c.check("web from node1's host network", || {
        tcp(node1, sa("10.96.0.10", 80)).is_ok()
    });
    // No endpoints: REJECT, seen as refused.
    c.check(
        "empty is rejected",
        || matches!(tcp(pod_a, sa("10.96.0.11", 80)), Err(e) if e.is_rejected()),
    );
    // NodePort from outside, eTP Cluster: forwarded to node2 and masqueraded.
    c.check("np via node1's NodePort reaches pod-c, masqueraded", || {
        matches!(tcp(client, sa(NODE1, 30080)), Ok(r) if r.backend == "pod-c" && r.source.to_string() == NODE1)
    });
    // NodePort from localhost on the node (route_localnet): iptables mode only, as upstream. Upstream's IPVS
    // mode never binds NodePorts to loopback (kubernetes#111840), nor does nftables mode.
    if mode == Mode::Iptables {
        c.check("np via 127.0.0.1", || {
            tcp(node1, sa("127.0.0.1", 30080)).is_ok()
        });
    } else {
        c.check("no NodePort on 127.0.0.1", || {
            tcp(node1, sa("127.0.0.1", 30080)).is_err()
        });
    }
    // eTP Local: only the local endpoint, client source preserved.
    c.check("np-local keeps the client's address", || {
        (0..10).all(|_| {
            matches!(tcp(client, sa(NODE1, 30081)), Ok(r) if r.backend == "pod-a" && r.source.to_string() == CLIENT)
        })
    });
    // eTP Local without local endpoints: DROP (a timeout, not a refusal). Upstream's IPVS mode instead sends it
    // to the cluster endpoints with the client's address kept, so pod-c's reply bypasses node1 and the client
    // never completes the handshake: a timeout there too.
    c.check(
        "np-remote drops",
        || matches!(tcp(client, sa(NODE1, 30082)), Err(e) if !e.is_rejected()),
    );
    // iTP Local.
    c.check("itp uses only the local endpoint", || {
        tcp_backends(pod_b, sa("10.96.0.15", 80), 10) == set(&["pod-a"])
    });
    if mode == Mode::Ipvs {
        // Upstream's IPVS mode gives an iTP Local ClusterIP without local endpoints a virtual server with no
        // real servers, and the kernel's IPVS answers such connections with ICMP port unreachable: refused.
        c.check(
            "itp-remote is refused by IPVS",
            || matches!(tcp(pod_a, sa("10.96.0.16", 80)), Err(e) if e.is_rejected()),
        );
    } else {
        c.check(
            "itp-remote drops",
            || matches!(tcp(pod_a, sa("10.96.0.16", 80)), Err(e) if !e.is_rejected()),
        );
    }
    // LoadBalancer ingress with source ranges.
    c.check(
        "lb admits the client",
        || matches!(tcp(client, sa("192.168.100.10", 80)), Ok(r) if r.backend == "pod-c"),
    );
    c.check(
        "lb-denied drops the client",
        || matches!(tcp(client, sa("192.168.100.11", 80)), Err(e) if !e.is_rejected()),
    );
    // externalIPs.
    c.check(
        "ext via externalIP",
        || matches!(tcp(client, sa("192.168.100.20", 80)), Ok(r) if r.backend == "pod-c"),
    );
    // Session affinity: one backend for one client.
    c.check("sticky sticks", || {
        tcp_backends(pod_a, sa("10.96.0.21", 80), 15).len() == 1
    });
    // Terminating fallback.
    c.check(
        "term falls back to the serving terminating endpoint",
        || tcp_backends(pod_a, sa("10.96.0.22", 80), 10) == set(&["pod-b"]),
    );
    // Topology hints.
    c.check("topo uses same-zone endpoints", || {
        tcp_backends(pod_b, sa("10.96.0.23", 80), 10) == set(&["pod-a"])
    });
    // UDP.
    c.check(
        "dns over UDP",
        || matches!(udp(pod_a, sa("10.96.0.53", 53)), Ok(r) if r.backend == "pod-c"),
    );
    // Hairpin.
    c.check(
        "self via its own service",
        || matches!(tcp(pod_a, sa("10.96.0.24", 80)), Ok(r) if r.backend == "pod-a"),
    );
    // Leading zeros.
    c.check(
        "zeros",
        || matches!(tcp(pod_a, sa("10.96.0.26", 80)), Ok(r) if r.backend == "pod-c"),
    );

    // The tracer, reading node1's live rules, predicts what the traffic above did.
    trace_matches_traffic(&c, mode);

    // Negative checks, once everything above is programmed.
    let save = c.rules(mode, Family::V4);
    assert!(
        !save.contains("192.168.100.12"),
        "ipMode Proxy ingress got rules:\n{save}"
    );
    assert!(
        !save.contains("10.96.0.28"),
        "a service of another proxy got rules"
    );
    assert!(
        !save.contains("10.96.0.27"),
        "a port with an unknown protocol got rules"
    );
    assert!(
        save.contains(mode.service_chain_prefix()),
        "{save}\n--- proxy log ---\n{}",
        c.proxy_log()
    );
    if mode == Mode::Ipvs {
        // One virtual server per service address (round robin, masquerading real servers), every VIP bound
        // to kube-ipvs0, and the cluster IPs in upstream's KUBE-CLUSTER-IP set.
        let web: Vec<&str> = save
            .lines()
            .skip_while(|l| !l.starts_with("TCP  10.96.0.10:80 rr"))
            .skip(1)
            .take_while(|l| l.trim_start().starts_with("->"))
            .collect();
        assert_eq!(web.len(), 3, "web's real servers:\n{save}");
        assert!(web.iter().all(|l| l.contains(" Masq 1")), "{save}");
        assert!(
            save.contains("add KUBE-CLUSTER-IP 10.96.0.10,tcp:80"),
            "{save}"
        );
        let bound = node1
            .exec_ok(&["ip", "-o", "addr", "show", "dev", "kube-ipvs0"])
            .unwrap();
        for vip in ["10.96.0.10/32", "192.168.100.10/32", "192.168.100.20/32"] {
            assert!(bound.contains(vip), "{vip} on kube-ipvs0:\n{bound}");
        }
    }
    let log = c.proxy_log();
    assert!(
        log.contains("e2e/bad-ip"),
        "the malformed service is named in the log:\n{log}"
    );
    // Health and metrics.
    let healthz = http_get(node1, sa("127.0.0.1", 10256), "/healthz");
    assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
    assert!(healthz.contains("\"lastUpdated\""), "{healthz}");
    let metrics = http_get(node1, sa("127.0.0.1", 10249), "/metrics");
    assert!(
        metrics.contains("kubeproxy_sync_proxy_rules_duration_seconds"),
        "{metrics}"
    );
    let proxy_mode = http_get(node1, sa("127.0.0.1", 10249), "/proxyMode");
    assert!(proxy_mode.ends_with(mode.name()), "{proxy_mode}");
    c.finish();
}

#[test]
fn iptables_follows_changes_restarts_and_repairs() {
    if privileged("iptables_follows_changes_restarts_and_repairs") {
        follows_changes_restarts_and_repairs(Mode::Iptables);
    }
}

#[test]
fn nftables_follows_changes_restarts_and_repairs() {
    if privileged("nftables_follows_changes_restarts_and_repairs") {
        follows_changes_restarts_and_repairs(Mode::Nftables);
    }
}

#[test]
#[ignore = "needs IPVS: runs in the qemu guest (cargo test -p kube-proxy-vmtest --test e2e_ipvs_in_vm)"]
fn ipvs_follows_changes_restarts_and_repairs() {
    if in_vm_guest("ipvs_follows_changes_restarts_and_repairs") {
        follows_changes_restarts_and_repairs(Mode::Ipvs);
    }
}

fn follows_changes_restarts_and_repairs(mode: Mode) {
    let c = Cluster::new();
    c.apply(service("web", "10.96.0.10", 80, "TCP", json!({})));
    c.apply(slice("web", "web-1", "IPv4", "TCP", &[ep(C, "node2")]));
    c.apply(service("dns", "10.96.0.53", 53, "UDP", json!({})));
    c.apply(slice("dns", "dns-1", "IPv4", "UDP", &[ep(C, "node2")]));
    let flags = [
        "--proxy-mode",
        mode.name(),
        "--iptables-sync-period",
        "2s",
        "--ipvs-sync-period",
        "2s",
    ];
    c.start_proxy(&flags);
    let pod_a = c.pod("pod-a");
    let vip = sa("10.96.0.10", 80);
    c.wait_until("web reaches pod-c", || {
        tcp_backends(pod_a, vip, 5) == set(&["pod-c"])
    });

    // A long connection to pod-c, held across pod-c's removal below.
    let mut long = LongConn::open(pod_a, vip).expect("opening a long connection");
    assert_eq!(long.backend, "pod-c");

    // Endpoint changes are followed.
    c.apply(slice(
        "web",
        "web-1",
        "IPv4",
        "TCP",
        &[ep(C, "node2"), ep(B, "node1")],
    ));
    c.wait_until("pod-b added", || {
        tcp_backends(pod_a, vip, 20) == set(&["pod-b", "pod-c"])
    });
    assert!(
        long.echo(),
        "the long connection works while endpoints are added"
    );
    c.apply(slice("web", "web-1", "IPv4", "TCP", &[ep(B, "node1")]));
    c.wait_until("pod-c removed", || {
        tcp_backends(pod_a, vip, 10) == set(&["pod-b"])
    });
    // The established connection outlives its endpoint's removal: conntrack keeps its NAT in the
    // iptables and nftables modes; in IPVS mode the real server is drained (weight 0, new connections avoid
    // it) instead of deleted while IPVS still counts connections to it (graceful termination).
    assert!(long.echo(), "the long connection survives pod-c's removal");
    if mode == Mode::Ipvs {
        let listing = c.rules(mode, Family::V4);
        assert!(
            listing.contains(&format!("-> {C}:{} Masq 0", common::POD_PORT)),
            "pod-c drained at weight 0:\n{listing}"
        );
    }
    assert!(long.echo(), "the long connection still works");
    drop(long);

    // A UDP flow pinned to a removed endpoint is cleared, so the same 5-tuple reaches the new one.
    let dns = sa("10.96.0.53", 53);
    let from = sa(A, 5353);
    c.wait_until("dns via pod-c", || {
        matches!(kube_proxy_testkit::netns::udp_exchange_from(pod_a, from, dns, common::REQUEST_TIMEOUT), Ok(r) if r.backend == "pod-c")
    });
    c.apply(slice("dns", "dns-1", "IPv4", "UDP", &[ep(B, "node1")]));
    c.wait_until("the same UDP flow now reaches pod-b", || {
        matches!(kube_proxy_testkit::netns::udp_exchange_from(pod_a, from, dns, common::REQUEST_TIMEOUT), Ok(r) if r.backend == "pod-b")
    });

    // Service deletion removes its rules.
    c.apply(service("gone", "10.96.0.30", 80, "TCP", json!({})));
    c.apply(slice("gone", "gone-1", "IPv4", "TCP", &[ep(C, "node2")]));
    c.wait_until("gone works", || tcp(pod_a, sa("10.96.0.30", 80)).is_ok());
    c.delete(Kind::Service, "e2e", "gone");
    c.wait_until("gone's rules are removed", || {
        !c.rules(mode, Family::V4).contains("10.96.0.30")
    });

    // Someone tampers with the rules: repaired within the sync period.
    let tamper: &[&str] = match mode {
        Mode::Iptables => &["iptables-nft", "-t", "nat", "-F", "KUBE-SERVICES"],
        Mode::Nftables => &["nft", "delete", "table", "ip", "kube-proxy"],
        // Every virtual server gone (the VIP stays on kube-ipvs0, so connections are refused).
        Mode::Ipvs => &["ipvsadm", "-C"],
    };
    c.topo.node1.exec_ok(tamper).unwrap();
    assert!(tcp(pod_a, vip).is_err(), "tampering breaks the service");
    c.wait_until("tampered rules repaired", || tcp(pod_a, vip).is_ok());
    if mode == Mode::Ipvs {
        // Smaller tampering, also found by the next sync's diff of the kernel's state: one virtual server
        // deleted, and a VIP taken off kube-ipvs0.
        let node1 = &c.topo.node1;
        node1
            .exec_ok(&["ipvsadm", "-D", "-t", "10.96.0.10:80"])
            .unwrap();
        c.wait_until("deleted virtual server re-added", || {
            c.rules(mode, Family::V4).contains("TCP  10.96.0.10:80 rr") && tcp(pod_a, vip).is_ok()
        });
        node1
            .exec_ok(&["ip", "addr", "del", "10.96.0.10/32", "dev", "kube-ipvs0"])
            .unwrap();
        c.wait_until("VIP bound to kube-ipvs0 again", || {
            node1
                .exec_ok(&["ip", "-o", "addr", "show", "dev", "kube-ipvs0"])
                .is_ok_and(|a| a.contains("10.96.0.10/32"))
                && tcp(pod_a, vip).is_ok()
        });
    }

    // kill -9 and restart: the rules stay during the outage and the restart adds no duplicates.
    let before = normalise(&c.rules(mode, Family::V4));
    c.kill_proxy();
    assert!(tcp(pod_a, vip).is_ok(), "rules survive the proxy's death");
    c.start_proxy(&flags);
    c.wait_until("restarted proxy synced", || {
        c.proxy_log().contains("synced")
    });
    let after = normalise(&c.rules(mode, Family::V4));
    assert_eq!(
        before, after,
        "a restart reprograms the same rules, without duplicates"
    );

    // Watches dropped and history compacted: the proxy relists and still follows changes.
    c.api.compact();
    c.api.drop_watches();
    c.apply(slice("web", "web-1", "IPv4", "TCP", &[ep(A, "node1")]));
    c.wait_until("change after a dropped watch", || {
        tcp_backends(pod_a, vip, 5) == set(&["pod-a"])
    });
}

#[test]
fn iptables_masquerade_all_and_health_check_node_port() {
    if privileged("iptables_masquerade_all_and_health_check_node_port") {
        masquerade_all_and_health_check_node_port(Mode::Iptables);
    }
}

#[test]
#[ignore = "needs IPVS: runs in the qemu guest (cargo test -p kube-proxy-vmtest --test e2e_ipvs_in_vm)"]
fn ipvs_masquerade_all_and_health_check_node_port() {
    if in_vm_guest("ipvs_masquerade_all_and_health_check_node_port") {
        masquerade_all_and_health_check_node_port(Mode::Ipvs);
    }
}

fn masquerade_all_and_health_check_node_port(mode: Mode) {
    let c = Cluster::new();
    c.apply(service("web", "10.96.0.10", 80, "TCP", json!({})));
    c.apply(slice("web", "web-1", "IPv4", "TCP", &[ep(C, "node2")]));
    c.apply(service(
        "shop",
        "10.96.0.40",
        80,
        "TCP",
        json!({"type": "LoadBalancer",
        "externalTrafficPolicy": "Local", "healthCheckNodePort": 32100,
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30090}]}),
    ));
    c.apply(slice(
        "shop",
        "shop-1",
        "IPv4",
        "TCP",
        &[ep(A, "node1"), ep(C, "node2")],
    ));
    c.start_proxy(&["--proxy-mode", mode.name(), "--masquerade-all"]);
    let pod_a = c.pod("pod-a");
    // With masqueradeAll even pod-to-service traffic is masqueraded (pod-c sees node1's address).
    c.wait_until("web masqueraded", || {
        matches!(tcp(pod_a, sa("10.96.0.10", 80)), Ok(r) if r.backend == "pod-c" && r.source.to_string() == NODE1)
    });
    // The health-check node port reports one local endpoint.
    c.wait_until("health-check node port answers 200", || {
        let resp = http_get(&c.topo.client, sa(NODE1, 32100), "/");
        resp.starts_with("HTTP/1.1 200") && resp.contains("\"localEndpoints\": 1")
            || resp.contains("\"localEndpoints\":1")
    });
    c.apply(slice("shop", "shop-1", "IPv4", "TCP", &[ep(C, "node2")]));
    c.wait_until(
        "health-check node port answers 503 without local endpoints",
        || http_get(&c.topo.client, sa(NODE1, 32100), "/").starts_with("HTTP/1.1 503"),
    );
    let _ = node("unused", 3, "zone-c");
}

/// `kube-proxy-rs trace --proxy-mode MODE` against the live kernel, side by side with what the traffic checks
/// above observed.
fn trace_matches_traffic(c: &Cluster, mode: Mode) {
    let dnat = |ip: &str| format!("dnat {ip}:{}", common::POD_PORT);
    let t = |src: &str, dst: &str, iface: &str| c.trace(mode, src, dst, iface);
    // NodePort, eTP Cluster: reached pod-c, masqueraded.
    assert_eq!(
        t(CLIENT, &format!("{NODE1}:30080"), "eth0"),
        vec![(dnat(C), true)]
    );
    // eTP Local: the local endpoint, source preserved.
    assert_eq!(
        t(CLIENT, &format!("{NODE1}:30081"), "eth0"),
        vec![(dnat(A), false)]
    );
    // eTP Local without local endpoints: dropped. IPVS sends it to the cluster endpoint with the client's
    // address kept; pod-c's reply bypasses node1, so the client times out as with a drop.
    let remote = if mode == Mode::Ipvs {
        vec![(dnat(C), false)]
    } else {
        vec![("drop".into(), false)]
    };
    assert_eq!(t(CLIENT, &format!("{NODE1}:30082"), "eth0"), remote);
    // No endpoints: rejected.
    assert_eq!(
        t(A, "10.96.0.11:80", "veth-pod-a"),
        vec![("reject".into(), false)]
    );
    // iTP Local without local endpoints: dropped (IPVS: a virtual server without real servers, refused).
    let itp_remote = if mode == Mode::Ipvs { "reject" } else { "drop" };
    assert_eq!(
        t(A, "10.96.0.16:80", "veth-pod-a"),
        vec![(itp_remote.into(), false)]
    );
    // Source range not admitted: dropped; admitted: DNAT.
    assert_eq!(
        t(CLIENT, "192.168.100.11:80", "eth0"),
        vec![("drop".into(), false)]
    );
    assert_eq!(
        t(CLIENT, "192.168.100.10:80", "eth0"),
        vec![(dnat(C), true)]
    );
    // Three endpoints, one outcome each; only the hairpin (pod-a to itself) is masqueraded.
    let mut web = t(A, "10.96.0.10:80", "veth-pod-a");
    web.sort();
    assert_eq!(
        web,
        vec![(dnat(A), true), (dnat(B), false), (dnat(C), false)]
    );
    // iTP Local: only the local endpoint.
    assert_eq!(t(B, "10.96.0.15:80", "veth-pod-b"), vec![(dnat(A), false)]);
    // UDP ClusterIP.
    assert_eq!(
        t(A, "10.96.0.53:53/udp", "veth-pod-a"),
        vec![(format!("dnat {C}:{}", common::POD_PORT), false)]
    );
}

/// Rules without counters, sorted, so two saves compare by content.
fn normalise(save: &str) -> Vec<String> {
    let mut lines: Vec<String> = save
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.starts_with(':') {
                l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            } else {
                l.to_string()
            }
        })
        .collect();
    lines.sort();
    lines
}

/// A bare HTTP/1.1 GET from inside `ns`; returns the whole response (or an empty string on failure).
fn http_get(ns: &kube_proxy_testkit::netns::Netns, addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    ns.run_in(|| {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, common::REQUEST_TIMEOUT) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(common::REQUEST_TIMEOUT));
        let _ = write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .unwrap_or_default()
}
