//! Tests of the API server through the real kube client and kube-runtime's watcher.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, watcher, Event};
use serde_json::json;

use super::*;

/// Guard against hangs: a test that never sees the awaited thing fails instead of blocking forever.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step hung")
}

fn svc(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"namespace": ns, "name": name, "labels": labels},
           "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80, "protocol": "TCP"}]}})
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn list_with_label_and_field_selectors() {
    let server = ApiServer::start().await.unwrap();
    server
        .apply(&svc("a", "plain", json!({"app": "web"})))
        .unwrap();
    server
        .apply(&svc(
            "a",
            "headless",
            json!({"service.kubernetes.io/headless": ""}),
        ))
        .unwrap();
    server
        .apply(&svc(
            "b",
            "other",
            json!({"service.kubernetes.io/service-proxy-name": "x"}),
        ))
        .unwrap();
    server.apply(&node("n1")).unwrap();
    server.apply(&node("n2")).unwrap();
    let client = server.client();

    let all: Api<Service> = Api::all(client.clone());
    let list = all.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&list.items), ["headless", "plain", "other"]);
    assert_eq!(
        list.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
    let sel = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";
    let list = all.list(&ListParams::default().labels(sel)).await.unwrap();
    assert_eq!(names(&list.items), ["plain"]);
    let list = all
        .list(&ListParams::default().labels("app in (web,db)"))
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["plain"]);
    let list = all
        .list(&ListParams::default().labels("app notin (web)"))
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["headless", "other"]);

    let in_a: Api<Service> = Api::namespaced(client.clone(), "a");
    assert_eq!(
        names(&in_a.list(&ListParams::default()).await.unwrap().items),
        ["headless", "plain"]
    );
    assert_eq!(
        in_a.get("plain")
            .await
            .unwrap()
            .metadata
            .namespace
            .as_deref(),
        Some("a")
    );
    assert!(in_a.get("nope").await.is_err());

    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default().fields("metadata.name=n2"))
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["n2"]);
    assert_eq!(
        nodes.get("n1").await.unwrap().metadata.name.as_deref(),
        Some("n1")
    );
}

#[tokio::test]
async fn watch_streams_changes_and_selector_transitions() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&svc("a", "s1", json!({}))).unwrap();
    let api: Api<Service> = Api::all(server.client());
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().labels("!service.kubernetes.io/headless");
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();

    server.apply(&svc("a", "s2", json!({}))).unwrap();
    server.apply(&svc("a", "s1", json!({"x": "y"}))).unwrap();
    server
        .apply(&svc(
            "a",
            "s2",
            json!({"service.kubernetes.io/headless": ""}),
        ))
        .unwrap();
    server.delete(Kind::Service, "a", "s1");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match within(stream.try_next()).await.unwrap().unwrap() {
            WatchEvent::Added(s) => seen.push(format!("ADDED {}", s.metadata.name.unwrap())),
            WatchEvent::Modified(s) => seen.push(format!("MODIFIED {}", s.metadata.name.unwrap())),
            WatchEvent::Deleted(s) => seen.push(format!("DELETED {}", s.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("unexpected error event {e:?}"),
        }
    }
    // s2 leaving the selector shows up as a deletion.
    assert_eq!(
        seen,
        ["ADDED s2", "MODIFIED s1", "DELETED s2", "DELETED s1"]
    );
}

#[tokio::test]
async fn watch_sends_bookmarks_when_allowed() {
    let server = ApiServer::start_with(ApiServerOptions {
        bookmark_interval: Duration::from_millis(20),
        ..Default::default()
    })
    .await
    .unwrap();
    server.apply(&node("n1")).unwrap();
    let api: Api<Node> = Api::all(server.client());
    let rv = server.resource_version().to_string();
    let mut stream = api
        .watch(
            &WatchParams {
                bookmarks: true,
                ..Default::default()
            },
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    match within(stream.try_next()).await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_compacted_version_gets_410() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&node("n1")).unwrap();
    let old = server.resource_version().to_string();
    server.compact();
    let api: Api<Node> = Api::all(server.client());
    let mut stream = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match within(stream.try_next()).await.unwrap().unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected 410, got {other:?}"),
    }
    // The current version is still fine.
    let now = server.resource_version().to_string();
    let mut stream = api
        .watch(&WatchParams::default(), &now)
        .await
        .unwrap()
        .boxed();
    server.apply(&node("n2")).unwrap();
    assert!(matches!(
        within(stream.try_next()).await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
}

/// Runs a watcher stream in a task (so it keeps reconnecting while the test waits) and forwards its events.
fn spawn_watcher<K: Send + 'static>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
) -> tokio::sync::mpsc::UnboundedReceiver<Event<K>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("watcher error (will retry): {e}"),
            }
        }
    });
    rx
}

/// Collects watcher events until `stop` says so.
async fn collect_until<K>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event<K>>,
    out: &mut Vec<Event<K>>,
    stop: impl Fn(&[Event<K>]) -> bool,
) {
    within(async {
        while !stop(out) {
            out.push(rx.recv().await.expect("watcher task ended"));
        }
    })
    .await
}

fn count_init_done<K>(evs: &[Event<K>]) -> usize {
    evs.iter().filter(|e| matches!(e, Event::InitDone)).count()
}

#[tokio::test]
async fn kube_watcher_streaming_list() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&svc("a", "s1", json!({}))).unwrap();
    server.apply(&svc("b", "s2", json!({}))).unwrap();
    let api: Api<Service> = Api::all(server.client());
    let mut stream = spawn_watcher(watcher(api, watcher::Config::default().streaming_lists()));
    let mut evs = Vec::new();
    collect_until(&mut stream, &mut evs, |e| count_init_done(e) == 1).await;
    let applied: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::InitApply(s) => s.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(applied, ["s1", "s2"]);
    assert!(
        server.requests().iter().all(|r| r.is_watch()),
        "no list call expected"
    );
    server.apply(&svc("a", "s3", json!({}))).unwrap();
    collect_until(&mut stream, &mut evs, |e| {
        matches!(e.last(), Some(Event::Apply(_)))
    })
    .await;
}

#[tokio::test]
async fn kube_watcher_relists_after_410_and_catches_up_after_drop() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&svc("a", "s1", json!({}))).unwrap();
    let api: Api<Service> = Api::all(server.client());
    let mut stream = spawn_watcher(watcher(api, watcher::Config::default()));
    let mut evs = Vec::new();
    collect_until(&mut stream, &mut evs, |e| count_init_done(e) == 1).await;
    let lists = |s: &ApiServer| {
        s.requests()
            .iter()
            .filter(|r| r.is_list_of("/api/v1/services"))
            .count()
    };
    assert_eq!(lists(&server), 1);

    // Dropped watch: changes made while disconnected are replayed from history, without a relist.
    server
        .wait_for_requests(|r| r.iter().any(RequestRecord::is_watch))
        .await;
    within(async {
        while server.open_watches() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    server.drop_watches();
    server.apply(&svc("a", "s2", json!({}))).unwrap();
    collect_until(&mut stream, &mut evs, |e| {
        e.iter()
            .any(|x| matches!(x, Event::Apply(s) if s.metadata.name.as_deref() == Some("s2")))
    })
    .await;
    assert_eq!(lists(&server), 1, "a resumed watch must not relist");

    // Compacted history: the resumed watch gets 410 and the watcher relists.
    server.compact();
    server.drop_watches();
    server.apply(&svc("a", "s3", json!({}))).unwrap();
    collect_until(&mut stream, &mut evs, |e| count_init_done(e) == 2).await;
    assert_eq!(lists(&server), 2);
    let last_init: Vec<_> = evs
        .iter()
        .rev()
        .skip(1)
        .map_while(|e| match e {
            Event::InitApply(s) => s.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(last_init, ["s3", "s2", "s1"]);
}

#[tokio::test]
async fn injected_failures_then_recovery() {
    let server = ApiServer::start().await.unwrap();
    server.apply(&node("n1")).unwrap();
    let api: Api<Node> = Api::all(server.client());
    server.fail_requests(2);
    for _ in 0..2 {
        let err = api.list(&ListParams::default()).await.unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(s) if s.code == 500),
            "expected 500"
        );
    }
    assert_eq!(
        names(&api.list(&ListParams::default()).await.unwrap().items),
        ["n1"]
    );
}

#[tokio::test]
async fn events_are_stored_and_control_verbs_work() {
    let server = ApiServer::start().await.unwrap();
    let client = server.client();
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let ev: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "ev1"}, "reason": "Starting",
        "involvedObject": {"kind": "Node", "name": "n1"}}))
    .unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();
    assert_eq!(server.events().len(), 1);
    assert_eq!(server.events()[0]["reason"], "Starting");
    assert_eq!(server.events()[0]["metadata"]["namespace"], "default");

    // PUT creates/updates, DELETE removes, through the normal resource paths.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "ns");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "es1", "labels": {"kubernetes.io/service-name": "s"}},
        "addressType": "IPv4", "endpoints": []}))
    .unwrap();
    slices.create(&PostParams::default(), &slice).await.unwrap();
    assert_eq!(server.objects(Kind::EndpointSlice).len(), 1);
    slices.delete("es1", &Default::default()).await.unwrap();
    assert!(server.objects(Kind::EndpointSlice).is_empty());
}

#[tokio::test]
async fn typed_objects_yaml_bodies_and_watch_timeout() {
    let server = ApiServer::start().await.unwrap();
    let typed: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "x", "name": "typed"}, "spec": {"ports": [{"port": 1}]}}))
    .unwrap();
    let stored = server.apply(&typed).unwrap();
    assert_eq!(stored["kind"], "Service");
    assert_eq!(
        stored["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );

    // A watch with timeoutSeconds ends by itself.
    let api: Api<Service> = Api::all(server.client());
    let wp = WatchParams::default().timeout(1);
    let rv = server.resource_version().to_string();
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    within(async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            assert!(matches!(ev, WatchEvent::Bookmark(_)), "unexpected {ev:?}");
        }
    })
    .await;

    // PUT with a YAML body on a named path.
    let url = format!("{}/api/v1/nodes/n9", server.url());
    let yaml = "metadata:\n  labels:\n    zone: a\n";
    let req = http::Request::put(url)
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    let node: Node = server.client().request(req).await.unwrap();
    assert_eq!(node.metadata.name.as_deref(), Some("n9"));
    assert_eq!(node.metadata.labels.unwrap()["zone"], "a");
}

#[tokio::test]
async fn lists_are_paginated_when_the_client_asks() {
    let server = ApiServer::start().await.unwrap();
    for n in ["n1", "n2", "n3"] {
        server.apply(&node(n)).unwrap();
    }
    let api: Api<Node> = Api::all(server.client());
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&first.items), ["n1", "n2"]);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let next = ListParams::default().limit(2).continue_token(&token);
    let rest = api.list(&next).await.unwrap();
    assert_eq!(names(&rest.items), ["n3"]);
    assert!(rest.metadata.continue_.is_none());
    // Any change makes the token stale: 410, as a real server answers a token whose snapshot is gone.
    server.apply(&node("n4")).unwrap();
    let err = api.list(&next).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 410),
        "expected 410"
    );
    // kube-rs' watcher follows the tokens through the whole list.
    let mut stream = spawn_watcher(watcher(api, watcher::Config::default().page_size(3)));
    let mut evs = Vec::new();
    collect_until(&mut stream, &mut evs, |e| count_init_done(e) == 1).await;
    let applied: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::InitApply(n) => n.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(applied, ["n1", "n2", "n3", "n4"]);
    let watcher_pages = server
        .requests()
        .iter()
        .filter(|r| !r.is_watch() && r.query.get("limit").map(String::as_str) == Some("3"))
        .count();
    assert_eq!(watcher_pages, 2, "four nodes in pages of three");
}
