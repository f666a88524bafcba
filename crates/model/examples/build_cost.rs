//! Measures what a sync's build step costs at scale: a full build, and an incremental update after one
//! endpoint change. A measurement tool, not a test:
//! `cargo run -p kube-proxy-model --release --example build_cost -- 10000 10`.

use std::sync::Arc;
use std::time::Instant;

use kube_proxy_model::{
    build_state, synthetic_cluster, IncrementalBuilder, IpFamily, NodeContext, ObjectDelta,
};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let services = args.next().unwrap_or(10_000);
    let endpoints = args.next().unwrap_or(10);
    let node = NodeContext {
        node_name: "node-0".into(),
    };
    let objects = synthetic_cluster(services, endpoints, "node-0");
    let t = Instant::now();
    build_state(&objects, &node, IpFamily::V4, None);
    println!("full build of {services} x {endpoints}: {:?}", t.elapsed());
    let mut builder = IncrementalBuilder::new(IpFamily::V4, node);
    builder.apply(&ObjectDelta::everything(&objects));
    let mut times = Vec::new();
    for round in 0..21 {
        // One endpoint of one slice flips readiness: a new Arc for that slice only, as the tracker hands it over.
        let key = objects
            .endpoint_slices
            .keys()
            .nth(round * 37 % services)
            .unwrap()
            .clone();
        let mut slice = (*objects.endpoint_slices[&key]).clone();
        if let Some(ep) = slice.endpoints.first_mut() {
            ep.ready = !ep.ready;
        }
        let delta = ObjectDelta {
            endpoint_slices: vec![(key, Some(Arc::new(slice)))],
            ..Default::default()
        };
        let t = Instant::now();
        let step = builder.apply(&delta);
        times.push(t.elapsed());
        assert_eq!(step.touched.len(), 1);
    }
    times.sort();
    println!(
        "incremental update after one endpoint change: p50 {:?} max {:?}",
        times[10], times[20]
    );
}
