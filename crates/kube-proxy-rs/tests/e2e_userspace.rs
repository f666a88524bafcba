//! End-to-end: the real binary in `--proxy-mode userspace`, driven through `--master` by the test API server,
//! with real traffic between network namespaces; once behind REDIRECT/DNAT rules and once with bind-VIPs
//! addressing (`--userspace-bind-vips`: listeners on the service addresses, local routes, no NAT), with the
//! per-service counters checked on node1's /metrics. Source-IP preservation is the
//! documented exception of this mode: backends see node1's address. Root only; fails (not skips) when CI=true
//! and not root.

mod common;

use std::net::SocketAddr;

use common::objects::{ep, service, slice};
use common::{privileged, sa, set, tcp, tcp_backends, udp, Cluster, A, B, C, C6, CLIENT, NODE1};
use kube_proxy_testkit::apiserver::Kind;
use kube_proxy_testkit::netns::Family;
use serde_json::json;

/// node2's LAN address: nothing listens on the pods' port there, so connections to it are refused.
const DEAD: &str = "10.100.0.2";

fn load_scenarios(c: &Cluster) {
    c.apply(service("web", "10.96.0.10", 80, "TCP", json!({})));
    c.apply(slice(
        "web",
        "web-1",
        "IPv4",
        "TCP",
        &[ep(A, "node1"), ep(B, "node1"), ep(C, "node2")],
    ));
    c.apply(service(
        "np",
        "10.96.0.12",
        80,
        "TCP",
        json!({"type": "NodePort",
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30080}]}),
    ));
    c.apply(slice("np", "np-1", "IPv4", "TCP", &[ep(C, "node2")]));
    // One live endpoint and one dead address: every connection must still succeed.
    c.apply(service("dead", "10.96.0.30", 80, "TCP", json!({})));
    c.apply(slice(
        "dead",
        "dead-1",
        "IPv4",
        "TCP",
        &[ep(A, "node1"), ep(DEAD, "node2")],
    ));
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
    c.apply(service("dns", "10.96.0.53", 53, "UDP", json!({})));
    c.apply(slice("dns", "dns-1", "IPv4", "UDP", &[ep(C, "node2")]));
    c.apply(service(
        "ext",
        "10.96.0.20",
        80,
        "TCP",
        json!({"externalIPs": ["192.168.100.20"]}),
    ));
    c.apply(slice("ext", "ext-1", "IPv4", "TCP", &[ep(C, "node2")]));
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
}

/// Where the proxy under test serves /metrics and /statusz (the default), for live traces.
const METRICS: &str = "127.0.0.1:10249";

/// `kube-proxy-rs trace --proxy-mode userspace` side by side with the traffic checks of [`service_semantics`],
/// twice for every packet: from the cluster's objects as manifests, and live inside node1 (listener from the
/// kernel's redirect rules or bound sockets, backends from the running proxy's /statusz). Both must predict
/// what the traffic did: the proxy accepts the connection and connects to each endpoint with probability 1/N;
/// a port nobody listens on is refused.
fn trace_matches_traffic(c: &Cluster, bind_vips: bool) {
    let bind = format!("--userspace-bind-vips={bind_vips}");
    let flags = ["--proxy-mode", "userspace", bind.as_str()];
    let live_flags = [&flags[..], &["--metrics-bind-address", METRICS]].concat();
    let both = |src: &str, dst: &str, extra: &[&str]| {
        let mut planned = c.trace_manifests(&[&flags[..], extra].concat(), src, dst);
        planned.sort();
        let mut live = c.trace_live(&[&live_flags[..], extra].concat(), src, dst);
        live.sort();
        assert_eq!(
            live, planned,
            "live and manifest traces of {src} -> {dst} {extra:?}"
        );
        live
    };
    let t = |src: &str, dst: &str| both(src, dst, &[]);
    let proxy = |ip: &str| (format!("proxy {ip}:{}", common::POD_PORT), false);
    // web: every endpoint (the traffic saw pod-a, pod-b and pod-c).
    assert_eq!(t(A, "10.96.0.10:80"), vec![proxy(A), proxy(B), proxy(C)]);
    // np via node1's NodePort and ext via its externalIP: pod-c.
    assert_eq!(t(CLIENT, &format!("{NODE1}:30080")), vec![proxy(C)]);
    assert_eq!(t(CLIENT, "192.168.100.20:80"), vec![proxy(C)]);
    // dns over UDP.
    assert_eq!(t(A, "10.96.0.53:53/udp"), vec![proxy(C)]);
    // web6 over IPv6.
    let a6 = c.pod_ip("pod-a", Family::V6).to_string();
    assert_eq!(t(&a6, "[fd00:96::25]:80"), vec![proxy(&format!("[{C6}]"))]);
    // dead: both endpoints are candidates; the proxy moves on from the dead one, so every connection succeeded.
    assert_eq!(t(B, "10.96.0.30:80"), vec![proxy(DEAD), proxy(A)]);
    // From node1's own host network (nat OUTPUT, the host portal chain): every endpoint too.
    assert_eq!(
        both(NODE1, "10.96.0.10:80", &["--from", "node"]),
        vec![proxy(A), proxy(B), proxy(C)]
    );
    // sticky: every endpoint is a candidate for a new client, then it sticks (ClientIP affinity, 300 s).
    assert_eq!(t(A, "10.96.0.21:80"), vec![proxy(A), proxy(B), proxy(C)]);
    let sticky = c.trace_json(&[&live_flags[..], &["--src", A, "--dst", "10.96.0.21:80"]].concat());
    assert_eq!(sticky["outcomes"][0]["affinity"][0]["seconds"], 300);
    // No listener on a node port: refused, as the traffic sees it.
    assert_eq!(
        t(CLIENT, &format!("{NODE1}:30099")),
        vec![("reject".to_string(), false)]
    );
    assert!(
        matches!(tcp(&c.topo.client, sa(NODE1, 30099)), Err(e) if e.is_rejected()),
        "nothing listens on node1:30099"
    );

    // The listener the live trace names is the one the kernel delivers web's packets to: the service address
    // itself with bind-VIPs; otherwise the redirect rule's target, and a connection straight to it reaches
    // web's backends.
    let web = c.trace_json(&[&live_flags[..], &["--src", A, "--dst", "10.96.0.10:80"]].concat());
    let listener = &web["outcomes"][0]["listener"];
    assert_eq!(listener["service"], "e2e/web:p");
    assert_eq!(listener["portal"], "cluster_ip");
    assert_eq!(listener["backends"], 3);
    let listen: SocketAddr = listener["listen"]
        .as_str()
        .expect("a live trace knows the listener")
        .parse()
        .unwrap();
    if bind_vips {
        assert_eq!(listen, sa("10.96.0.10", 80));
    } else {
        let save = c.save(Family::V4);
        let rule = save
            .lines()
            .find(|l| l.starts_with("-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32"))
            .expect("web's redirect rule");
        let target = if listen.ip().is_unspecified() {
            format!("--to-ports {}", listen.port())
        } else {
            format!("--to-destination {listen}")
        };
        assert!(rule.ends_with(&target), "{rule} vs {listen}");
        let direct = if listen.ip().is_unspecified() {
            sa(NODE1, listen.port())
        } else {
            listen
        };
        assert_eq!(
            tcp_backends(c.pod("pod-a"), direct, 30),
            set(&["pod-a", "pod-b", "pod-c"]),
            "straight to web's listener {direct}"
        );
    }
}

/// Starts the proxy in node1 in userspace mode, with bind-VIPs addressing when asked.
fn start_userspace(c: &Cluster, bind_vips: bool) {
    let bind = format!("--userspace-bind-vips={bind_vips}");
    c.start_proxy(&["--proxy-mode", "userspace", &bind]);
}

/// node1's /metrics as seen from inside node1 (empty when not reachable).
fn scrape(node1: &kube_proxy_testkit::netns::Netns) -> String {
    use std::io::{Read, Write};
    let addr = sa("127.0.0.1", 10249);
    node1
        .run_in(|| {
            let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, common::REQUEST_TIMEOUT)
            else {
                return String::new();
            };
            let _ = s.set_read_timeout(Some(common::REQUEST_TIMEOUT));
            let _ = write!(
                s,
                "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .unwrap_or_default()
}

/// The value of the sample `series` (name and label set, exactly as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The userspace counters of service port `e2e/dead:p`: accepted, bytes in, bytes out, active, dial failures.
fn dead_counters(text: &str) -> Option<[f64; 5]> {
    let l = r#"ip_family="IPv4",service="e2e/dead:p",protocol="TCP""#;
    Some([
        sample(
            text,
            &format!("kubeproxy_rs_userspace_accepted_connections_total{{{l}}}"),
        )?,
        sample(
            text,
            &format!("kubeproxy_rs_userspace_bytes_total{{{l},direction=\"in\"}}"),
        )?,
        sample(
            text,
            &format!("kubeproxy_rs_userspace_bytes_total{{{l},direction=\"out\"}}"),
        )?,
        sample(
            text,
            &format!("kubeproxy_rs_userspace_active_connections{{{l}}}"),
        )?,
        sample(
            text,
            &format!("kubeproxy_rs_userspace_dial_failures_total{{{l}}}"),
        )?,
    ])
}

#[test]
fn userspace_redirect_service_semantics() {
    if privileged("userspace_redirect_service_semantics") {
        service_semantics(false);
    }
}

#[test]
fn userspace_bind_vips_service_semantics() {
    if privileged("userspace_bind_vips_service_semantics") {
        service_semantics(true);
    }
}

fn service_semantics(bind_vips: bool) {
    let c = Cluster::new();
    load_scenarios(&c);
    start_userspace(&c, bind_vips);
    let pod_a = c.pod("pod-a");
    let pod_b = c.pod("pod-b");
    let client = &c.topo.client;
    let node1 = &c.topo.node1;

    c.check("web balances over all three endpoints", || {
        tcp_backends(pod_a, sa("10.96.0.10", 80), 30) == set(&["pod-a", "pod-b", "pod-c"])
    });
    c.check(
        "web from node1's host network balances over all three",
        || tcp_backends(node1, sa("10.96.0.10", 80), 30) == set(&["pod-a", "pod-b", "pod-c"]),
    );
    // The proxy connects to backends itself: the backend sees node1, not the client (documented exception).
    c.check("np via node1's NodePort reaches pod-c", || {
        matches!(tcp(client, sa(NODE1, 30080)), Ok(r) if r.backend == "pod-c" && r.source.to_string() == NODE1)
    });
    c.check(
        "ext via externalIP",
        || matches!(tcp(client, sa("192.168.100.20", 80)), Ok(r) if r.backend == "pod-c"),
    );
    c.check("dead endpoint: every connection succeeds", || {
        (0..12).all(|_| matches!(tcp(pod_b, sa("10.96.0.30", 80)), Ok(r) if r.backend == "pod-a"))
    });
    // The dead endpoint's failures and the relayed traffic show on /metrics, read at scrape time.
    c.check("dead: dial failures and the failed endpoint on /metrics", || {
        let text = scrape(node1);
        let failed = format!(
            r#"kubeproxy_rs_userspace_endpoint_dial_failures_total{{ip_family="IPv4",service="e2e/dead:p",protocol="TCP",endpoint="{DEAD}:8080"}}"#
        );
        matches!(dead_counters(&text), Some([accepted, .., dials]) if accepted >= 12.0 && dials >= 1.0)
            && sample(&text, &failed).is_some_and(|v| v >= 1.0)
    });
    let before = dead_counters(&scrape(node1));
    assert!(
        before.is_some(),
        "e2e/dead:p counters on /metrics:\n{}",
        scrape(node1)
    );
    let [accepted, bytes_in, bytes_out, _, _] = before.unwrap();
    assert!(
        (0..3).all(|_| tcp(pod_b, sa("10.96.0.30", 80)).is_ok()),
        "three more connections to dead"
    );
    c.check("dead: counters moved with three more connections", || {
        matches!(dead_counters(&scrape(node1)), Some([a, i, o, active, _])
            if a >= accepted + 3.0 && i > bytes_in && o > bytes_out && active == 0.0)
    });
    c.check("sticky sticks for each client", || {
        tcp_backends(pod_a, sa("10.96.0.21", 80), 15).len() == 1
            && tcp_backends(pod_b, sa("10.96.0.21", 80), 15).len() == 1
    });
    c.check(
        "dns over UDP from a pod",
        || matches!(udp(pod_a, sa("10.96.0.53", 53)), Ok(r) if r.backend == "pod-c"),
    );
    c.check(
        "dns over UDP from the node",
        || matches!(udp(node1, sa("10.96.0.53", 53)), Ok(r) if r.backend == "pod-c"),
    );
    let web6 = SocketAddr::new("fd00:96::25".parse().unwrap(), 80);
    c.check(
        "web6 over IPv6",
        || matches!(tcp(pod_a, web6), Ok(r) if r.backend == "pod-c"),
    );

    // The tracer, from the same objects as manifests, predicts the listener and backends the traffic used.
    trace_matches_traffic(&c, bind_vips);

    // The dead endpoint was tried, and reported.
    let log = c.proxy_log();
    assert!(
        log.contains("backend connection failed") && log.contains(&format!("{DEAD}:8080")),
        "the failed endpoint is named in the log:\n{log}"
    );

    // How traffic is delivered: NAT rules, or local routes and no NAT rules.
    let save = c.save(Family::V4);
    let routes = node1
        .exec_ok(&["ip", "route", "show", "table", "local", "proto", "106"])
        .unwrap();
    if bind_vips {
        assert!(!save.contains("KUBE-PORTALS"), "no NAT rules:\n{save}");
        assert!(routes.contains("10.96.0.10"), "{routes}");
        assert!(routes.contains("192.168.100.20"), "{routes}");
    } else {
        assert!(
            save.contains("-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32"),
            "{save}"
        );
        assert!(
            save.contains("-A KUBE-NODEPORT-CONTAINER") && save.contains("--dport 30080"),
            "{save}"
        );
        assert!(routes.trim().is_empty(), "no local routes: {routes}");
    }

    // A deleted service loses its listener and its rules or route; the others keep working.
    c.delete(Kind::Service, "e2e", "ext");
    c.check("ext's delivery is removed", || {
        let save = c.save(Family::V4);
        let routes = node1
            .exec_ok(&["ip", "route", "show", "table", "local", "proto", "106"])
            .unwrap();
        !save.contains("192.168.100.20") && !routes.contains("192.168.100.20")
    });
    c.check("ext no longer answers", || {
        tcp(client, sa("192.168.100.20", 80)).is_err()
    });
    c.check("web still works", || {
        tcp(pod_a, sa("10.96.0.10", 80)).is_ok()
    });

    // kill -9 and restart: service again, without duplicate jumps or routes, and a UDP client that keeps its
    // source port (so its conntrack entry) reaches the new listener.
    let dns = sa("10.96.0.53", 53);
    let from = sa(A, 5353);
    let udp_from = || matches!(kube_proxy_testkit::netns::udp_exchange_from(pod_a, from, dns, common::REQUEST_TIMEOUT), Ok(r) if r.backend == "pod-c");
    c.check("dns from a fixed source port", udp_from);
    c.kill_proxy();
    start_userspace(&c, bind_vips);
    c.check("web works after a restart", || {
        tcp_backends(pod_a, sa("10.96.0.10", 80), 10) == set(&["pod-a", "pod-b", "pod-c"])
    });
    c.check("np works after a restart", || {
        tcp(client, sa(NODE1, 30080)).is_ok()
    });
    c.check("the same UDP flow works after a restart", udp_from);
    let save = c.save(Family::V4);
    for jump in ["-j KUBE-PORTALS-CONTAINER", "-j KUBE-NODEPORT-HOST"] {
        let n = save.lines().filter(|l| l.ends_with(jump)).count();
        assert_eq!(n, usize::from(!bind_vips), "{jump} jumps:\n{save}");
    }
    c.finish();
}
