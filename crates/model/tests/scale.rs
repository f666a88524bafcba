//! A large synthetic cluster builds completely and incrementally (timing is printed, never asserted).

use std::sync::Arc;
use std::time::Instant;

use kube_proxy_model::{build_state, synthetic_cluster, IpFamily, NodeContext, StateDiff};

#[test]
fn ten_thousand_services_build_and_rebuild() {
    let objs = synthetic_cluster(10_000, 10, "node-a");
    let node = NodeContext {
        node_name: "node-a".into(),
    };
    let t = Instant::now();
    let first = build_state(&objs, &node, IpFamily::V4, None);
    let cold = t.elapsed();
    assert!(first.rejections.is_empty());
    assert_eq!(first.state.services.len(), 10_000);
    let total: usize = first
        .state
        .services
        .values()
        .map(|s| s.endpoints.len())
        .sum();
    assert_eq!(total, 100_000);
    assert!(first
        .state
        .services
        .values()
        .all(|s| s.local_endpoints.is_empty() && s.cluster_endpoints.len() == 10));

    let t = Instant::now();
    let second = build_state(&objs, &node, IpFamily::V4, Some(&first.state));
    let warm = t.elapsed();
    assert!(StateDiff::between(&first.state, &second.state).is_empty());
    assert!(second
        .state
        .services
        .iter()
        .all(|(k, v)| Arc::ptr_eq(v, &first.state.services[k])));
    assert!(build_state(&objs, &node, IpFamily::V6, None)
        .state
        .services
        .is_empty());
    println!("10k services x 10 endpoints: cold build {cold:?}, rebuild with previous {warm:?}");
}
