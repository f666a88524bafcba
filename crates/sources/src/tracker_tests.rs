//! Unit tests of the change tracker.

use super::*;
use serde_json::json;

fn svc(ns: &str, name: &str, port: i32) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": port}]}}))
    .unwrap()
}

fn slice(ns: &str, name: &str, service: &str) -> EndpointSlice {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name,
        "labels": {SERVICE_NAME_LABEL: service}}, "addressType": "IPv4", "endpoints": []}))
    .unwrap()
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

#[test]
fn ready_only_after_every_kind_listed() {
    let t = ChangeTracker::new(&ObjectKind::ALL);
    t.apply_service(Change::Replace(vec![svc("a", "s", 80)]));
    t.apply_slice(Change::Replace(vec![]));
    assert!(!t.is_ready());
    assert!(t.snapshot().is_none());
    // A Node that does not exist still counts as listed.
    t.apply_node(Change::Replace(vec![]));
    assert!(t.is_ready());
    let snap = t.snapshot().unwrap();
    assert_eq!(snap.services.len(), 1);
    assert!(snap.node.is_none());
}

#[test]
fn counters_count_real_changes_and_reset_on_snapshot() {
    let t = ChangeTracker::new(&[ObjectKind::Services, ObjectKind::EndpointSlices]);
    t.mark_synced(ObjectKind::Services);
    t.mark_synced(ObjectKind::EndpointSlices);
    assert!(t.take_snapshot().unwrap().1.oldest_pending.is_none());

    t.apply_service(Change::Apply(svc("a", "s", 80)));
    t.apply_service(Change::Apply(svc("a", "s", 80))); // no-op
    t.apply_service(Change::Apply(svc("a", "s", 81)));
    t.apply_slice(Change::Apply(slice("a", "s-1", "s")));
    t.apply_slice(Change::Apply(slice("a", "s-2", "s")));
    let c = t.counters();
    assert_eq!(c.service_changes_total, 2);
    assert_eq!(c.service_changes_pending, 1);
    assert_eq!(c.endpoint_changes_total, 2);
    assert_eq!(
        c.endpoint_changes_pending, 1,
        "pending endpoints are counted per service"
    );
    assert!(c.oldest_pending.is_some());

    let (objs, taken) = t.take_snapshot().unwrap();
    assert_eq!(taken, c);
    assert_eq!(objs.endpoint_slices.len(), 2);
    let after = t.counters();
    assert_eq!(after.service_changes_pending, 0);
    assert_eq!(after.endpoint_changes_pending, 0);
    assert_eq!(after.oldest_pending, None);
    assert_eq!(after.service_changes_total, 2);

    t.apply_service(Change::Delete(svc("a", "s", 81)));
    t.apply_service(Change::Delete(svc("a", "missing", 81))); // unknown: no change
    assert_eq!(t.counters().service_changes_total, 3);
    assert!(t.snapshot().unwrap().services.is_empty());
}

#[test]
fn replace_diffs_against_current_objects() {
    let t = ChangeTracker::new(&[ObjectKind::Services]);
    t.apply_service(Change::Replace(vec![svc("a", "x", 80), svc("a", "y", 80)]));
    t.snapshot().unwrap();
    // y unchanged, x removed, z added: two changes.
    t.apply_service(Change::Replace(vec![svc("a", "y", 80), svc("a", "z", 80)]));
    let c = t.counters();
    assert_eq!(c.service_changes_total, 4);
    assert_eq!(c.service_changes_pending, 2);
    let names: Vec<_> = t
        .snapshot()
        .unwrap()
        .services
        .into_keys()
        .map(|k| k.1)
        .collect();
    assert_eq!(names, ["y", "z"]);
}

#[test]
fn replace_all_sets_everything_and_readiness() {
    let t = ChangeTracker::new(&ObjectKind::ALL);
    let mut objs = ClusterObjects::default();
    objs.services
        .insert(("a".into(), "s".into()), Arc::new(svc("a", "s", 80)));
    objs.node = Some(Arc::new(node("n1")));
    t.replace_all(objs);
    assert!(t.is_ready());
    let c = t.counters();
    assert!(c.node_changed);
    assert_eq!(c.service_changes_pending, 1);
    let snap = t.snapshot().unwrap();
    assert_eq!(snap.node.unwrap().metadata.name.as_deref(), Some("n1"));
    t.replace_all(ClusterObjects::default());
    assert!(t.snapshot().unwrap().services.is_empty());
}

#[tokio::test]
async fn changed_wakes_the_waiter() {
    let t = Arc::new(ChangeTracker::new(&ObjectKind::ALL));
    let waiter = {
        let t = t.clone();
        tokio::spawn(async move { t.changed().await })
    };
    tokio::task::yield_now().await;
    t.apply_node(Change::Apply(node("n1")));
    waiter.await.unwrap();
    // A change made while nobody waits is remembered for the next wait.
    t.apply_node(Change::Delete(node("n1")));
    t.changed().await;
}
