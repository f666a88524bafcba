//! The incremental builder gives exactly `build_state`'s answer through a long sequence of changes, reports
//! exactly the service ports that changed, and keeps the `Arc` of every port it did not touch.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use kube_proxy_model::{
    build_state, synthetic_cluster, ClusterObjects, CompactSlice, EndpointHints,
    IncrementalBuilder, IpFamily, NodeContext, ObjectDelta, SliceAddress, StateDiff,
};

fn node_ctx() -> NodeContext {
    NodeContext {
        node_name: "node-0".into(),
    }
}

fn sorted_strings<'a>(r: impl Iterator<Item = &'a kube_proxy_model::Rejection>) -> Vec<String> {
    let mut v: Vec<String> = r.map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// Applies `delta` to both `objects` and `builder`, then checks the builder against a one-shot build.
fn step(
    objects: &mut ClusterObjects,
    builder: &mut IncrementalBuilder,
    delta: ObjectDelta,
    what: &str,
) {
    let before = Arc::clone(builder.state());
    objects.apply(&delta);
    let out = builder.apply(&delta);
    let plain = build_state(objects, &node_ctx(), IpFamily::V4, None);
    assert_eq!(*out.state, plain.state, "state after {what}");
    assert_eq!(
        sorted_strings(builder.rejections()),
        sorted_strings(plain.rejections.iter()),
        "rejections after {what}"
    );
    assert_eq!(
        out.touched,
        StateDiff::between(&before, &out.state).touched(),
        "touched ports after {what}"
    );
    for (name, port) in &out.state.services {
        if !out.touched.contains(name) {
            assert!(Arc::ptr_eq(port, &before.services[name]), "{name} rebuilt");
        }
    }
}

fn edited_slice(
    objects: &ClusterObjects,
    key: &(String, String),
    f: impl FnOnce(&mut CompactSlice),
) -> ObjectDelta {
    let mut slice = (*objects.endpoint_slices[key]).clone();
    f(&mut slice);
    ObjectDelta {
        endpoint_slices: vec![(key.clone(), Some(Arc::new(slice)))],
        ..Default::default()
    }
}

fn edited_service(
    objects: &ClusterObjects,
    key: &(String, String),
    f: impl FnOnce(&mut Service),
) -> ObjectDelta {
    let mut svc = (*objects.services[key]).clone();
    f(&mut svc);
    ObjectDelta {
        services: vec![(key.clone(), Some(Arc::new(svc)))],
        ..Default::default()
    }
}

fn node_in_zone(zone: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "node-0", "labels": {"topology.kubernetes.io/zone": zone}},
        "spec": {"podCIDRs": ["10.244.0.0/24", "not-a-cidr"]}
    }))
    .unwrap()
}

/// A small deterministic generator (no external randomness: failures reproduce).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[test]
fn incremental_builds_equal_one_shot_builds_through_random_changes() {
    let spare = synthetic_cluster(60, 4, "node-0");
    let mut objects = ClusterObjects::default();
    let mut builder = IncrementalBuilder::new(IpFamily::V4, node_ctx());
    // Start from 40 of the 60 Services and their slices.
    let mut first = ObjectDelta::everything(&synthetic_cluster(40, 4, "node-0"));
    first.node = Some(Some(Arc::new(node_in_zone("zone-a"))));
    step(&mut objects, &mut builder, first, "the first delta");
    let mut rng = Lcg(7);
    for round in 0..400 {
        let svc_keys: Vec<_> = objects.services.keys().cloned().collect();
        let slice_keys: Vec<_> = objects.endpoint_slices.keys().cloned().collect();
        let delta = match rng.next(12) {
            // An endpoint flips readiness.
            0 | 1 if !slice_keys.is_empty() => {
                let k = &slice_keys[rng.next(slice_keys.len())];
                let i = rng.next(4);
                edited_slice(&objects, k, |s| {
                    if let Some(ep) = s.endpoints.get_mut(i) {
                        ep.ready = !ep.ready;
                    }
                })
            }
            // An endpoint gets a bad address, or a good one back.
            2 if !slice_keys.is_empty() => {
                let k = &slice_keys[rng.next(slice_keys.len())];
                let bad = rng.next(2) == 0;
                edited_slice(&objects, k, |s| {
                    if let Some(ep) = s.endpoints.first_mut() {
                        ep.address =
                            SliceAddress::from_text(if bad { "not-an-ip" } else { "10.1.2.3" });
                    }
                })
            }
            // A slice moves to another Service, or loses its label.
            3 if !slice_keys.is_empty() && !svc_keys.is_empty() => {
                let k = &slice_keys[rng.next(slice_keys.len())];
                let target = svc_keys[rng.next(svc_keys.len())].1.clone();
                let drop_label = rng.next(4) == 0;
                edited_slice(&objects, k, |s| {
                    s.service_name = (!drop_label).then_some(target);
                })
            }
            // A slice or a Service is deleted.
            4 if !slice_keys.is_empty() => ObjectDelta {
                endpoint_slices: vec![(slice_keys[rng.next(slice_keys.len())].clone(), None)],
                ..Default::default()
            },
            5 if !svc_keys.is_empty() => ObjectDelta {
                services: vec![(svc_keys[rng.next(svc_keys.len())].clone(), None)],
                ..Default::default()
            },
            // A Service (and maybe its slice) from the spare set appears, in one delta or two.
            6 => {
                let (k, v) = spare.services.iter().nth(rng.next(60)).unwrap();
                let slice_key = (k.0.clone(), format!("{}-abcde", k.1));
                let mut d = ObjectDelta {
                    services: vec![(k.clone(), Some(v.clone()))],
                    ..Default::default()
                };
                if rng.next(2) == 0 {
                    d.endpoint_slices = vec![(
                        slice_key.clone(),
                        Some(spare.endpoint_slices[&slice_key].clone()),
                    )];
                }
                d
            }
            // A Service changes port, policy or type.
            7 if !svc_keys.is_empty() => {
                let k = &svc_keys[rng.next(svc_keys.len())];
                let what = rng.next(3);
                edited_service(&objects, k, |s| {
                    let spec = s.spec.as_mut().unwrap();
                    match what {
                        0 => spec.ports.as_mut().unwrap()[0].port += 1,
                        1 => spec.internal_traffic_policy = Some("Local".into()),
                        _ => spec.cluster_ip = Some("None".into()),
                    }
                })
            }
            // The node's zone (topology everywhere) or nothing about it changes.
            8 => ObjectDelta {
                node: Some(Some(Arc::new(node_in_zone(
                    ["zone-a", "zone-b"][rng.next(2)],
                )))),
                ..Default::default()
            },
            // Several changes in one delta, including a slice changed twice.
            9 if slice_keys.len() > 2 => {
                let a = &slice_keys[rng.next(slice_keys.len())];
                let mut d = edited_slice(&objects, a, |s| s.endpoints.truncate(1));
                d.endpoint_slices
                    .push((slice_keys[rng.next(slice_keys.len())].clone(), None));
                d.endpoint_slices
                    .push((a.clone(), Some(objects.endpoint_slices[a].clone())));
                d
            }
            // Every endpoint of a slice gets zone hints (so the node's zone decides the cluster endpoints).
            10 if !slice_keys.is_empty() => {
                let k = &slice_keys[rng.next(slice_keys.len())];
                edited_slice(&objects, k, |s| {
                    for (i, ep) in s.endpoints.iter_mut().enumerate() {
                        let zone = ["zone-a", "zone-b"][i % 2].to_string();
                        ep.hints = Some(Arc::new(EndpointHints {
                            zones: vec![zone],
                            nodes: vec![],
                        }));
                    }
                })
            }
            // Nothing.
            _ => ObjectDelta::default(),
        };
        step(
            &mut objects,
            &mut builder,
            delta,
            &format!("change {round}"),
        );
    }
}

#[test]
fn an_empty_delta_returns_the_same_state() {
    let objects = synthetic_cluster(5, 2, "node-0");
    let mut builder = IncrementalBuilder::new(IpFamily::V4, node_ctx());
    let first = builder.apply(&ObjectDelta::everything(&objects));
    assert_eq!(first.touched.len(), 5);
    let again = builder.apply(&ObjectDelta::default());
    assert!(Arc::ptr_eq(&first.state, &again.state));
    assert!(again.touched.is_empty());
}
