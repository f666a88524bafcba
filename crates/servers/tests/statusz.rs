//! Real HTTP requests to `/statusz` on the metrics server bound on 127.0.0.1: JSON and HTML from a StatusBoard.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{get, request, LOOPBACK};
use kube_proxy_model::{
    Endpoint, IpFamily, Protocol, ProxyState, ServicePortName, ServicePortState,
};
use kube_proxy_servers::{serve_metrics, serve_metrics_with_status};
use kube_proxy_telemetry::{FakeClock, Metrics, StatusBoard};

fn endpoint(ip: &str, local: bool) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port: 8443,
        is_local: local,
        ready: true,
        serving: true,
        terminating: false,
        hints: None,
    }
}

/// One eTP=Local LoadBalancer port with a local and a remote endpoint, and one port named with markup.
fn state(family: IpFamily) -> ProxyState {
    let (local, remote, vip) = match family {
        IpFamily::V4 => (
            endpoint("10.244.1.11", true),
            endpoint("10.244.2.10", false),
            "10.96.0.20",
        ),
        IpFamily::V6 => (
            endpoint("fd00:10:244:1::11", true),
            endpoint("fd00:10:244:2::10", false),
            "fd00:96::20",
        ),
    };
    let name = ServicePortName {
        namespace: "store".into(),
        name: "shop".into(),
        port: "https".into(),
        protocol: Protocol::Tcp,
    };
    let svc = ServicePortState {
        name: name.clone(),
        family,
        cluster_ip: vip.parse().unwrap(),
        port: 443,
        protocol: Protocol::Tcp,
        node_port: Some(30443),
        external_ips: vec![],
        load_balancer_ips: if family == IpFamily::V4 {
            vec!["198.51.100.20".parse().unwrap()]
        } else {
            vec![]
        },
        load_balancer_source_ranges: vec![],
        external_policy_local: true,
        internal_policy_local: false,
        health_check_node_port: Some(32100),
        session_affinity_timeout: Some(10800),
        endpoints: vec![local.clone(), remote.clone()],
        cluster_endpoints: vec![local.clone(), remote].into(),
        local_endpoints: vec![local].into(),
        all_reachable_endpoints: Default::default(),
        has_any_endpoints: true,
    };
    let mut odd = svc.clone();
    odd.name = ServicePortName {
        namespace: "x".into(),
        name: "<script>".into(),
        port: "".into(),
        protocol: Protocol::Udp,
    };
    odd.protocol = Protocol::Udp;
    odd.session_affinity_timeout = None;
    odd.cluster_endpoints = Default::default();
    odd.local_endpoints = Default::default();
    let mut services = BTreeMap::new();
    services.insert(name, Arc::new(svc));
    services.insert(odd.name.clone(), Arc::new(odd));
    ProxyState {
        family,
        node_name: "node-1".into(),
        node_pod_cidrs: match family {
            IpFamily::V4 => vec!["10.244.1.0/24".parse().unwrap()],
            IpFamily::V6 => vec![],
        },
        services,
    }
}

#[tokio::test]
async fn statusz_serves_json_and_html_from_the_board() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let clock = Arc::new(FakeClock::new(start));
    let board = Arc::new(StatusBoard::with_clock("nftables", clock.clone()));
    let server = serve_metrics_with_status(
        (LOOPBACK, 0).into(),
        Arc::new(Metrics::new()),
        "nftables".into(),
        serde_json::json!({}),
        board.clone(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();

    // Before any sync: no families, still a valid page.
    let r = request(addr, "/statusz", "Accept: application/json\r\n")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["mode"], "nftables");
    assert_eq!(j["families"], serde_json::json!([]));
    assert!(get(addr, "/statusz")
        .await
        .body
        .contains("No successful sync yet"));

    board.record_sync(
        IpFamily::V4,
        true,
        &[("rules".into(), 40), ("elements".into(), 7)],
        &std::sync::Arc::new(state(IpFamily::V4)),
    );
    board.record_sync(
        IpFamily::V6,
        true,
        &[("rules".into(), 30)],
        &std::sync::Arc::new(state(IpFamily::V6)),
    );
    clock.advance(Duration::from_secs(3));
    board.record_sync(
        IpFamily::V4,
        false,
        &[("rules".into(), 41), ("elements".into(), 8)],
        &std::sync::Arc::new(state(IpFamily::V4)),
    );

    let r = request(
        addr,
        "/statusz",
        "Accept: application/json, text/plain;q=0.5\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let j = r.json();
    assert_eq!(j["mode"], "nftables");
    assert_eq!(j["currentTime"], "2023-11-14T22:13:23Z");
    let fams = j["families"].as_array().unwrap();
    assert_eq!(fams.len(), 2);
    let v4 = &fams[0];
    assert_eq!(v4["family"], "IPv4");
    assert_eq!(v4["lastFullSync"], "2023-11-14T22:13:20Z");
    assert_eq!(v4["lastPartialSync"], "2023-11-14T22:13:23Z");
    assert_eq!(v4["fullSyncs"], 1);
    assert_eq!(v4["partialSyncs"], 1);
    assert_eq!(v4["counts"]["rules"], 41);
    assert_eq!(v4["counts"]["elements"], 8);
    let shop = v4["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "store/shop:https")
        .expect("shop listed");
    assert_eq!(shop["clusterIP"], "10.96.0.20");
    assert_eq!(shop["nodePort"], 30443);
    assert_eq!(
        shop["loadBalancerIPs"],
        serde_json::json!(["198.51.100.20"])
    );
    assert_eq!(shop["externalTrafficPolicy"], "Local");
    assert_eq!(shop["healthCheckNodePort"], 32100);
    assert_eq!(shop["sessionAffinity"], "ClientIP");
    assert_eq!(shop["sessionAffinityTimeoutSeconds"], 10800);
    let odd = v4["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["protocol"] == "UDP")
        .expect("the UDP port listed");
    assert_eq!(odd["sessionAffinity"], "None");
    assert!(odd["sessionAffinityTimeoutSeconds"].is_null());
    assert_eq!(v4["podCIDRs"], serde_json::json!(["10.244.1.0/24"]));
    assert_eq!(
        shop["clusterEndpoints"],
        serde_json::json!(["10.244.1.11:8443", "10.244.2.10:8443"])
    );
    assert_eq!(
        shop["localEndpoints"],
        serde_json::json!(["10.244.1.11:8443"])
    );
    let v6 = &fams[1];
    assert_eq!(v6["family"], "IPv6");
    assert!(v6["lastPartialSync"].is_null());
    assert_eq!(v6["podCIDRs"], serde_json::json!([]));
    assert_eq!(
        v6["services"][0]["localEndpoints"],
        serde_json::json!(["[fd00:10:244:1::11]:8443"])
    );

    // People get HTML (browsers send text/html), with names escaped.
    let r = request(addr, "/statusz", "Accept: text/html\r\n")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = r.body;
    for needle in [
        "<b>nftables</b>",
        "<h2>IPv4</h2>",
        "<h2>IPv6</h2>",
        "Last full sync: 2023-11-14T22:13:20Z",
        "Last partial sync: 2023-11-14T22:13:23Z",
        "<td>rules</td><td>41</td>",
        "<td>store/shop:https</td>",
        "10.244.1.11:8443, 10.244.2.10:8443",
        "LB 198.51.100.20",
        "<td>ClientIP (10800 s)</td>",
        "Pod CIDRs: 10.244.1.0/24.",
        "Pod CIDRs: <em>none</em>.",
        "x/&lt;script&gt;",
    ] {
        assert!(html.contains(needle), "missing {needle:?} in:\n{html}");
    }
    assert!(!html.contains("<script>"), "unescaped name:\n{html}");
    server.shutdown().await;
}

#[tokio::test]
async fn plain_serve_metrics_also_answers_statusz() {
    let server = serve_metrics(
        (LOOPBACK, 0).into(),
        Arc::new(Metrics::new()),
        "iptables".into(),
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let r = request(
        server.local_addr(),
        "/statusz",
        "Accept: application/json\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["mode"], "iptables");
    // The other routes are still there.
    assert_eq!(
        get(server.local_addr(), "/proxyMode").await.body,
        "iptables"
    );
    server.shutdown().await;
}
