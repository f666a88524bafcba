//! Real HTTP requests against health-check node port servers bound on 127.0.0.1, across syncs.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::Duration;

use common::{fake_health, free_port, get, LOOPBACK};
use kube_proxy_model::IpFamily::V4;
use kube_proxy_servers::{ListenAddresses, NamespacedName, ServersError, ServiceHealthServer};
use kube_proxy_telemetry::NodeInfo;
use tokio::net::TcpStream;

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
