//! Real HTTP requests against the servers bound on 127.0.0.1 (loopback only).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use kube_proxy_model::IpFamily::{V4, V6};
use kube_proxy_servers::{
    serve_healthz, serve_metrics, ListenAddresses, NamespacedName, ServersError,
    ServiceHealthServer,
};
use kube_proxy_telemetry::{FakeClock, Metrics, NodeInfo, ProxyHealth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("bad JSON {e}: {}", self.body))
    }
}

async fn request(addr: SocketAddr, path: &str, extra_headers: &str) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr).await?;
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra_headers}\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, path, "")
        .await
        .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"))
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn free_port() -> u16 {
    StdListener::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fake_health() -> (Arc<ProxyHealth>, Arc<FakeClock>) {
    let clock = Arc::new(FakeClock::new(
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ));
    (
        Arc::new(ProxyHealth::with_clock(
            Duration::from_secs(30),
            clock.clone(),
        )),
        clock,
    )
}

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

#[tokio::test]
async fn health_check_node_ports_follow_syncs() {
    let (health, clock) = fake_health();
    let hcs = ServiceHealthServer::new(ListenAddresses::Ips(vec![LOOPBACK]), health.clone());
    let web = NamespacedName::new("default", "web");
    let api = NamespacedName::new("prod", "api");
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let at = |port: u16| SocketAddr::new(LOOPBACK, port);

    let errors = hcs
        .sync_services(&BTreeMap::from([(web.clone(), p1), (api.clone(), p2)]))
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(hcs.listening().await[&web], vec![at(p1)]);

    // No local endpoints yet: 503 with weight 0.
    let r = get(at(p1), "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-load-balancing-endpoint-weight"), Some("0"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.json(),
        serde_json::json!({"service": {"namespace": "default", "name": "web"}, "localEndpoints": 0, "serviceProxyHealthy": true})
    );

    hcs.sync_endpoints(&BTreeMap::from([(web.clone(), 2)]));
    let r = get(at(p1), "/any/path").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-load-balancing-endpoint-weight"), Some("2"));
    assert_eq!(r.json()["localEndpoints"], 2);
    let r = get(at(p2), "/").await;
    assert_eq!(
        (r.status, r.json()["service"]["name"].as_str()),
        (503, Some("api"))
    );

    // The node being deleted does not matter to service health checks…
    health.sync_node(&NodeInfo {
        deleting: true,
        taint_keys: vec![],
    });
    assert_eq!(get(at(p1), "/").await.status, 200);
    // …but a stalled proxy does.
    health.updated(V4);
    health.queued_update(V4);
    clock.advance(Duration::from_secs(61));
    let r = get(at(p1), "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["serviceProxyHealthy"], false);
    assert_eq!(r.header("x-load-balancing-endpoint-weight"), Some("2"));
    health.updated(V4);

    // api disappears: its port closes, web keeps serving.
    let errors = hcs
        .sync_services(&BTreeMap::from([(web.clone(), p1)]))
        .await;
    assert!(errors.is_empty());
    assert!(
        TcpStream::connect(at(p2)).await.is_err(),
        "api's port must be closed"
    );
    assert_eq!(get(at(p1), "/").await.status, 200);

    // web moves to another port.
    let errors = hcs
        .sync_services(&BTreeMap::from([(web.clone(), p3)]))
        .await;
    assert!(errors.is_empty());
    assert!(
        TcpStream::connect(at(p1)).await.is_err(),
        "old port must be closed"
    );
    assert_eq!(get(at(p3), "/").await.status, 200);

    // A busy port is reported, left out, and retried on the next sync.
    let holder = StdListener::bind(at(0)).unwrap();
    let busy = holder.local_addr().unwrap().port();
    let wanted = BTreeMap::from([(web.clone(), p3), (api.clone(), busy)]);
    let errors = hcs.sync_services(&wanted).await;
    assert_eq!(errors.len(), 1);
    match &errors[0] {
        ServersError::BindHealthCheck {
            service,
            port,
            addr,
            source,
        } => {
            assert_eq!((service, *port, *addr), (&api, busy, at(busy)));
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(!hcs.listening().await.contains_key(&api));
    drop(holder);
    let errors = hcs.sync_services(&wanted).await;
    assert!(errors.is_empty(), "{errors:?}");
    let r = get(at(busy), "/").await;
    assert_eq!(
        (r.status, r.json()["service"]["namespace"].as_str()),
        (503, Some("prod"))
    );

    hcs.shutdown().await;
    assert!(TcpStream::connect(at(p3)).await.is_err());
    assert!(hcs.listening().await.is_empty());
}

#[tokio::test]
async fn all_addresses_listener_answers_on_loopback() {
    let (health, _) = fake_health();
    let hcs = ServiceHealthServer::new(ListenAddresses::All, health);
    let svc = NamespacedName::new("ns", "lb");
    let port = free_port();
    let errors = hcs
        .sync_services(&BTreeMap::from([(svc.clone(), port)]))
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    let addrs = &hcs.listening().await[&svc];
    assert_eq!(addrs.len(), 1);
    assert!(addrs[0].ip().is_unspecified(), "{addrs:?}");
    hcs.sync_endpoints(&BTreeMap::from([(svc.clone(), 1)]));
    let r = get(SocketAddr::new(LOOPBACK, port), "/").await;
    assert_eq!(r.status, 200);
    hcs.shutdown().await;
}
