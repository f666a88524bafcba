//! Tests of the API source against the testkit API server, through the real kube client.

use std::time::Duration;

use kube_proxy_model::ClusterObjects;
use kube_proxy_testkit::apiserver::{ApiServer, Kind, RequestRecord};
use serde_json::{json, Value};

use super::*;

fn svc(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"namespace": "default", "name": name, "labels": labels},
           "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80, "protocol": "TCP"}]}})
}

fn slice(name: &str, service: &str, labels: Value) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/service-name"] = json!(service);
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"namespace": "default", "name": name, "labels": labels},
           "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.0.1"]}]})
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn service_names(o: &ClusterObjects) -> Vec<&str> {
    o.services.keys().map(|k| k.1.as_str()).collect()
}

/// Waits until the tracker is ready and `pred` holds for its objects; fails instead of hanging.
async fn wait_for(tracker: &ChangeTracker, what: &str, pred: impl Fn(&ClusterObjects) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if tracker.is_ready() && pred(&tracker.peek()) {
                return;
            }
            tracker.changed().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "never saw: {what}; have {:?}",
        tracker.peek()
    );
}

fn start(
    server: &ApiServer,
    options: ApiSourceOptions,
) -> (Arc<ChangeTracker>, tokio::task::JoinHandle<()>) {
    let tracker = Arc::new(ChangeTracker::new(&ObjectKind::ALL));
    let task = tokio::spawn(run_api_sources_with(
        server.client(),
        "node-a".into(),
        tracker.clone(),
        options,
    ));
    (tracker, task)
}

fn lists_of(server: &ApiServer, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.is_list_of(path))
        .count()
}

#[tokio::test]
async fn initial_lists_filters_and_live_changes() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&svc("web", json!({}))).unwrap();
    server
        .apply(&svc(
            "headless",
            json!({"service.kubernetes.io/headless": ""}),
        ))
        .unwrap();
    server
        .apply(&svc(
            "foreign",
            json!({"service.kubernetes.io/service-proxy-name": "x"}),
        ))
        .unwrap();
    server.apply(&slice("web-1", "web", json!({}))).unwrap();
    server
        .apply(&slice(
            "headless-1",
            "headless",
            json!({"service.kubernetes.io/headless": ""}),
        ))
        .unwrap();
    server.apply(&node("node-b")).unwrap();
    let (tracker, task) = start(&server, ApiSourceOptions::default());

    // Ready although this node's Node does not exist yet.
    wait_for(&tracker, "initial lists", |_| true).await;
    let snap = tracker.snapshot().unwrap();
    assert_eq!(service_names(&snap), ["web"]);
    assert_eq!(snap.endpoint_slices.len(), 1);
    assert!(
        snap.node.is_none(),
        "another node's object must not be picked up"
    );
    let node_list = server
        .requests()
        .into_iter()
        .find(|r| r.is_list_of("/api/v1/nodes"))
        .unwrap();
    assert_eq!(
        node_list.query.get("fieldSelector").map(String::as_str),
        Some("metadata.name=node-a")
    );

    server.apply(&node("node-a")).unwrap();
    server.apply(&svc("api", json!({}))).unwrap();
    server.delete(Kind::EndpointSlice, "default", "web-1");
    wait_for(&tracker, "node, new service, deleted slice", |o| {
        o.node.is_some() && service_names(o) == ["api", "web"] && o.endpoint_slices.is_empty()
    })
    .await;
    // A Service that becomes headless disappears.
    server
        .apply(&svc("api", json!({"service.kubernetes.io/headless": ""})))
        .unwrap();
    wait_for(&tracker, "headless api gone", |o| {
        service_names(o) == ["web"]
    })
    .await;
    let c = tracker.counters();
    assert!(
        c.service_changes_total >= 3 && c.endpoint_changes_total >= 2,
        "{c:?}"
    );
    task.abort();
}

#[tokio::test]
async fn compacted_history_forces_a_relist() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&svc("a", json!({}))).unwrap();
    server.apply(&svc("b", json!({}))).unwrap();
    let (tracker, task) = start(&server, ApiSourceOptions::default());
    wait_for(&tracker, "initial lists", |o| {
        service_names(o) == ["a", "b"]
    })
    .await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while server.open_watches() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("watches never opened");
    assert_eq!(lists_of(&server, "/api/v1/services"), 1);

    // While disconnected: a deletion the watcher can only learn from a relist after 410.
    server.drop_watches();
    server.delete(Kind::Service, "default", "a");
    server.apply(&svc("c", json!({}))).unwrap();
    server.compact();
    wait_for(&tracker, "relisted services", |o| {
        service_names(o) == ["b", "c"]
    })
    .await;
    assert!(
        lists_of(&server, "/api/v1/services") >= 2,
        "the watcher must have relisted"
    );
    task.abort();
}

#[tokio::test]
async fn dropped_watches_resume_without_relist() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&svc("a", json!({}))).unwrap();
    let (tracker, task) = start(&server, ApiSourceOptions::default());
    wait_for(&tracker, "initial lists", |o| service_names(o) == ["a"]).await;
    for round in 0..3 {
        server.drop_watches();
        server.apply(&svc(&format!("n{round}"), json!({}))).unwrap();
        wait_for(&tracker, "caught up", |o| o.services.len() == round + 2).await;
    }
    assert_eq!(lists_of(&server, "/api/v1/services"), 1);
    let watches = server
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/services" && r.is_watch())
        .count();
    assert!(watches >= 2, "the watch must have been reopened");
    task.abort();
}

#[tokio::test]
async fn failing_server_delays_readiness_until_it_recovers() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&svc("a", json!({}))).unwrap();
    server.apply(&node("node-a")).unwrap();
    server.fail_requests(1_000_000);
    let (tracker, task) = start(&server, ApiSourceOptions::default());
    // Every kind tried (and failed) at least twice: the watchers retry with backoff.
    tokio::time::timeout(
        Duration::from_secs(60),
        server.wait_for_requests(|r: &[RequestRecord]| {
            [
                "/api/v1/services",
                "/apis/discovery.k8s.io/v1/endpointslices",
                "/api/v1/nodes",
            ]
            .iter()
            .all(|p| r.iter().filter(|x| x.is_list_of(p)).count() >= 2)
        }),
    )
    .await
    .expect("watchers did not retry");
    assert!(!tracker.is_ready());
    assert!(tracker.snapshot().is_none());
    server.fail_requests(0);
    wait_for(&tracker, "recovered", |o| {
        service_names(o) == ["a"] && o.node.is_some()
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn streaming_lists_work_too() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&svc("a", json!({}))).unwrap();
    server.apply(&node("node-a")).unwrap();
    let (tracker, task) = start(
        &server,
        ApiSourceOptions {
            streaming_lists: true,
        },
    );
    wait_for(&tracker, "initial streams", |o| {
        service_names(o) == ["a"] && o.node.is_some()
    })
    .await;
    assert_eq!(lists_of(&server, "/api/v1/services"), 0);
    server.apply(&svc("b", json!({}))).unwrap();
    wait_for(&tracker, "update", |o| service_names(o) == ["a", "b"]).await;
    task.abort();
}

#[tokio::test]
async fn service_cidrs_are_watched_when_served() {
    let server = ApiServer::start().await.unwrap();
    server
        .apply(
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                       "metadata": {"name": "kubernetes"},
                       "spec": {"cidrs": ["10.96.0.0/16", "fd00:96::/112"]}}),
        )
        .unwrap();
    let (tracker, task) = start(&server, ApiSourceOptions::default());
    let v4 = |o: &ClusterObjects| o.service_cidr_ranges(kube_proxy_model::IpFamily::V4);
    wait_for(&tracker, "the first ServiceCIDR", |o| {
        v4(o) == vec!["10.96.0.0/16".parse().unwrap()]
    })
    .await;
    let v6 = tracker
        .peek()
        .service_cidr_ranges(kube_proxy_model::IpFamily::V6);
    assert_eq!(v6.len(), 1);
    assert_eq!(v6[0].to_string(), "fd00:96::/112");
    server
        .apply(
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                       "metadata": {"name": "extra"}, "spec": {"cidrs": ["10.97.0.0/16"]}}),
        )
        .unwrap();
    wait_for(&tracker, "a second ServiceCIDR", |o| v4(o).len() == 2).await;
    server.delete(Kind::ServiceCidr, "", "extra");
    wait_for(&tracker, "the second one deleted", |o| v4(o).len() == 1).await;
    task.abort();
}
