//! Unit tests of the change tracker.

use super::*;
use serde_json::json;

fn svc(ns: &str, name: &str, port: i32) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": port}]}}))
    .unwrap()
}

fn slice(ns: &str, name: &str, service: &str) -> CompactSlice {
    let api: k8s_openapi::api::discovery::v1::EndpointSlice =
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name,
            "labels": {SERVICE_NAME_LABEL: service}}, "addressType": "IPv4", "endpoints": []}))
        .unwrap();
    api.into()
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
    assert!(t.take_changes(false).unwrap().1.oldest_pending.is_none());

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

    let (delta, taken) = t.take_changes(false).unwrap();
    assert_eq!(taken, c);
    assert_eq!(delta.services.len(), 1);
    assert_eq!(delta.endpoint_slices.len(), 2);
    assert!(delta.node.is_none() && delta.service_cidrs.is_none());
    assert!(t.take_changes(false).unwrap().0.is_empty());
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
    t.take_changes(false).unwrap();
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
    // The delta names x as deleted and z as new; y is not in it.
    let (delta, _) = t.take_changes(false).unwrap();
    let entries: Vec<_> = delta
        .services
        .iter()
        .map(|(k, v)| (k.1.as_str(), v.is_some()))
        .collect();
    assert_eq!(entries, [("x", false), ("z", true)]);
}

#[test]
fn deltas_carry_changed_slices_node_and_service_cidrs() {
    let t = ChangeTracker::new(&ObjectKind::ALL);
    t.apply_service(Change::Replace(vec![svc("a", "s", 80)]));
    t.apply_slice(Change::Replace(vec![
        slice("a", "s-1", "s"),
        slice("a", "s-2", "s"),
    ]));
    t.apply_node(Change::Replace(vec![node("n1")]));
    let (first, _) = t.take_changes(true).unwrap();
    assert_eq!((first.services.len(), first.endpoint_slices.len()), (1, 2));
    assert!(first.node.is_some());

    // A slice moves from Service s to Service t: one slice in the delta, both Services pending.
    t.apply_slice(Change::Apply(slice("a", "s-2", "t")));
    assert_eq!(t.counters().endpoint_changes_pending, 2);
    t.apply_slice(Change::Delete(slice("a", "s-1", "s")));
    t.apply_node(Change::Apply(node("n2")));
    t.apply_service_cidr(Change::Apply(
        serde_json::from_value(json!({"metadata": {"name": "kubernetes"},
            "spec": {"cidrs": ["10.96.0.0/16"]}}))
        .unwrap(),
    ));
    let (delta, _) = t.take_changes(false).unwrap();
    assert!(delta.services.is_empty());
    let slices: Vec<_> = delta
        .endpoint_slices
        .iter()
        .map(|(k, v)| (k.1.as_str(), v.is_some()))
        .collect();
    assert_eq!(slices, [("s-1", false), ("s-2", true)]);
    let node = delta.node.expect("node changed").expect("node present");
    assert_eq!(node.metadata.name.as_deref(), Some("n2"));
    assert_eq!(delta.service_cidrs.expect("cidrs changed").len(), 1);
    assert!(t.take_changes(false).unwrap().0.is_empty());
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
