//! Real HTTP requests against the proxy health and metrics servers bound on 127.0.0.1.

mod common;

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use common::{fake_health, get, request, sample, LOOPBACK};
use kube_proxy_model::IpFamily::{V4, V6};
use kube_proxy_servers::{serve_healthz, serve_metrics, ServersError};
use kube_proxy_telemetry::{Metrics, NodeInfo};
use tokio::net::TcpStream;

#[tokio::test]
async fn healthz_and_livez_follow_health_and_count_responses() {
    let (health, clock) = fake_health();
    let metrics = Arc::new(Metrics::new());
    let server = serve_healthz((LOOPBACK, 0).into(), health.clone(), metrics.clone())
        .await
        .unwrap();
    let addr = server.local_addr();

    health.updated(V4);
    let r = get(addr, "/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let j = r.json();
    assert_eq!(j["nodeEligible"], true);
    assert_eq!(j["healthy"], true);
    assert_eq!(j["lastUpdated"], "2023-11-14T22:13:20Z");
    assert_eq!(j["currentTime"], "2023-11-14T22:13:20Z");
    assert_eq!(j["status"]["IPv4"]["healthy"], true);

    // A queued change not synced within 2 × syncPeriod: both probes fail.
    health.updated(V6);
    health.queued_update(V6);
    clock.advance(Duration::from_secs(60));
    for path in ["/healthz", "/livez"] {
        let r = get(addr, path).await;
        assert_eq!(r.status, 503, "{path}");
        let j = r.json();
        assert_eq!(j["healthy"], false, "{path}");
        assert_eq!(j["status"]["IPv6"]["healthy"], false, "{path}");
        assert_eq!(j["status"]["IPv4"]["healthy"], true, "{path}");
        assert_eq!(
            j["lastUpdated"], "2023-11-14T22:13:20Z",
            "{path}: last real update when failing"
        );
    }

    // Synced again, but the node is being deleted: /healthz fails, /livez passes.
    health.updated(V6);
    health.sync_node(&NodeInfo {
        deleting: true,
        taint_keys: vec![],
    });
    let r = get(addr, "/healthz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["nodeEligible"], false);
    let r = get(addr, "/livez").await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("nodeEligible").is_none());
    assert_eq!(r.json()["lastUpdated"], "2023-11-14T22:14:20Z");

    let text = metrics.encode_openmetrics().unwrap();
    assert_eq!(
        sample(&text, "kubeproxy_proxy_healthz_total{code=\"200\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "kubeproxy_proxy_healthz_total{code=\"503\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "kubeproxy_proxy_livez_total{code=\"503\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "kubeproxy_proxy_livez_total{code=\"200\"}"),
        Some(1.0)
    );

    server.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}

#[tokio::test]
async fn metrics_server_endpoints() {
    let metrics = Arc::new(Metrics::new());
    metrics.inc_healthz(200);
    let configz = serde_json::json!({"mode": "iptables", "clusterCIDR": "10.0.0.0/8"});
    let server = serve_metrics(
        (LOOPBACK, 0).into(),
        metrics.clone(),
        "iptables".into(),
        configz.clone(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();

    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        r.body
            .contains("# TYPE kubeproxy_proxy_healthz_total counter\n"),
        "{}",
        r.body
    );
    assert_eq!(
        sample(&r.body, "kubeproxy_proxy_healthz_total{code=\"200\"}"),
        Some(1.0)
    );
    assert!(!r.body.contains("# EOF"));

    let r = request(
        addr,
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
    )
    .await
    .unwrap();
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(r.body.ends_with("# EOF\n"));
    assert!(r
        .body
        .contains("kubeproxy_sync_proxy_rules_service_changes_total 0\n"));

    let r = get(addr, "/proxyMode").await;
    assert_eq!((r.status, r.body.as_str()), (200, "iptables"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    let r = get(addr, "/configz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({ "kubeproxy.config.k8s.io": configz })
    );

    let r = get(addr, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    assert_eq!(get(addr, "/nope").await.status, 404);
}

#[tokio::test]
async fn binding_a_busy_address_is_a_typed_error() {
    let holder = StdListener::bind((LOOPBACK, 0)).unwrap();
    let addr = holder.local_addr().unwrap();
    let (health, _) = fake_health();
    let err = serve_healthz(addr, health, Arc::new(Metrics::new()))
        .await
        .unwrap_err();
    match err {
        ServersError::Bind {
            server: "healthz",
            addr: a,
            source,
        } => {
            assert_eq!(a, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let err = serve_metrics(
        addr,
        Arc::new(Metrics::new()),
        "nftables".into(),
        serde_json::json!({}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ServersError::Bind {
                server: "metrics",
                ..
            }
        ),
        "{err:?}"
    );
}
