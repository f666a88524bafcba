//! `build_state_cached` gives exactly `build_state`'s answer through a sequence of changes, and reuses work.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy_model::{
    build_state, build_state_cached, synthetic_cluster, BuildCache, ClusterObjects, IpFamily,
    NodeContext,
};

fn node() -> NodeContext {
    NodeContext {
        node_name: "node-0".into(),
    }
}

fn check(objects: &ClusterObjects, cache: &mut BuildCache) {
    let plain = build_state(objects, &node(), IpFamily::V4, None);
    let cached = build_state_cached(objects, &node(), IpFamily::V4, cache);
    assert_eq!(plain.state, cached.state);
    let mut a: Vec<String> = plain.rejections.iter().map(|r| r.to_string()).collect();
    let mut b: Vec<String> = cached.rejections.iter().map(|r| r.to_string()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

fn edit_slice(objects: &mut ClusterObjects, index: usize, f: impl FnOnce(&mut EndpointSlice)) {
    let key = objects.endpoint_slices.keys().nth(index).unwrap().clone();
    let mut slice = (*objects.endpoint_slices[&key]).clone();
    f(&mut slice);
    objects.endpoint_slices.insert(key, Arc::new(slice));
}

#[test]
fn cached_builds_equal_plain_builds_through_changes() {
    let mut objects = synthetic_cluster(50, 3, "node-0");
    let mut cache = BuildCache::default();
    check(&objects, &mut cache);
    assert_eq!(cache.len(), 50);
    // Unchanged snapshot: same answer, and every port keeps its Arc.
    let first = build_state_cached(&objects, &node(), IpFamily::V4, &mut cache).state;
    let again = build_state_cached(&objects, &node(), IpFamily::V4, &mut cache).state;
    for (name, port) in &again.services {
        assert!(Arc::ptr_eq(port, &first.services[name]), "{name} rebuilt");
    }
    // An endpoint becomes not ready.
    edit_slice(&mut objects, 7, |s| {
        s.endpoints.as_mut().unwrap()[0]
            .conditions
            .get_or_insert_with(Default::default)
            .ready = Some(false);
    });
    check(&objects, &mut cache);
    let after = build_state_cached(&objects, &node(), IpFamily::V4, &mut cache).state;
    let changed: Vec<_> = after
        .services
        .iter()
        .filter(|(n, p)| !Arc::ptr_eq(p, &first.services[*n]))
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "only the edited service is rebuilt: {changed:?}"
    );
    // A bad address is rejected the same way, from the cache too.
    edit_slice(&mut objects, 3, |s| {
        s.endpoints.as_mut().unwrap()[1].addresses = vec!["not-an-ip".into()]
    });
    check(&objects, &mut cache);
    check(&objects, &mut cache);
    // A Service disappears; another appears.
    let gone = objects.services.keys().next().unwrap().clone();
    objects.services.remove(&gone);
    check(&objects, &mut cache);
    assert_eq!(cache.len(), 49);
    let extra = synthetic_cluster(51, 3, "node-0");
    let (k, v) = extra.services.iter().last().unwrap();
    objects.services.insert(k.clone(), v.clone());
    check(&objects, &mut cache);
    // The node's zone changes: topology may change everywhere, so everything is rebuilt correctly.
    let node: Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "node-0", "labels": {"topology.kubernetes.io/zone": "zone-b"}}
    }))
    .unwrap();
    objects.node = Some(Arc::new(node));
    check(&objects, &mut cache);
}
