//! Measures what a sync's build step costs at scale: a full build, and a rebuild after one endpoint change with
//! and without the per-Service memo. A measurement tool, not a test:
//! `cargo run -p kube-proxy-model --release --example build_cost -- 10000 10`.

use std::sync::Arc;
use std::time::Instant;

use kube_proxy_model::{
    build_state, build_state_cached, synthetic_cluster, BuildCache, IpFamily, NodeContext,
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
    let mut objects = synthetic_cluster(services, endpoints, "node-0");
    let t = Instant::now();
    let full = build_state(&objects, &node, IpFamily::V4, None);
    println!("full build of {services} x {endpoints}: {:?}", t.elapsed());
    let mut cache = BuildCache::default();
    build_state_cached(&objects, &node, IpFamily::V4, &mut cache);
    let mut plain = Vec::new();
    let mut memo = Vec::new();
    for round in 0..20 {
        // One endpoint of one slice flips readiness: a new Arc for that slice only, as the tracker stores it.
        let key = objects
            .endpoint_slices
            .keys()
            .nth(round * 37 % services)
            .unwrap()
            .clone();
        let mut slice = (*objects.endpoint_slices[&key]).clone();
        if let Some(ep) = slice.endpoints.as_mut().and_then(|e| e.first_mut()) {
            let c = ep.conditions.get_or_insert_with(Default::default);
            c.ready = Some(!c.ready.unwrap_or(true));
        }
        objects.endpoint_slices.insert(key, Arc::new(slice));
        let t = Instant::now();
        let a = build_state(&objects, &node, IpFamily::V4, Some(&full.state));
        plain.push(t.elapsed());
        let t = Instant::now();
        let b = build_state_cached(&objects, &node, IpFamily::V4, &mut cache);
        memo.push(t.elapsed());
        assert_eq!(a.state, b.state);
    }
    plain.sort();
    memo.sort();
    println!(
        "rebuild after one change, plain:  p50 {:?} max {:?}",
        plain[10], plain[19]
    );
    println!(
        "rebuild after one change, memo:   p50 {:?} max {:?}",
        memo[10], memo[19]
    );
}
