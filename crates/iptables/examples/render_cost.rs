//! Measures the proxy's own share of an iptables sync at scale: rendering everything (a full sync) and
//! rendering after one endpoint change (a partial sync), and the size of the restore input each produces.
//! A measurement tool, not a test: `cargo run -p kube-proxy-iptables --release --example render_cost -- 1000 10`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_proxy_iptables::{render, RenderConfig, RenderScope};
use kube_proxy_model::fixtures::finish;
use kube_proxy_model::{build_state, synthetic_cluster, IpFamily, NodeContext};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let services = args.next().unwrap_or(1_000);
    let endpoints = args.next().unwrap_or(10);
    let node = NodeContext {
        node_name: "node-0".into(),
    };
    let objects = synthetic_cluster(services, endpoints, "node-0");
    let state = Arc::new(build_state(&objects, &node, IpFamily::V4, None).state);
    let cfg = RenderConfig::default();

    let mut full_times = Vec::new();
    let mut bytes = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let full = render(&state, &cfg, &RenderScope::Full);
        bytes = full.restore_input().len();
        full_times.push(t.elapsed());
    }
    full_times.sort();
    println!(
        "full render of {services} x {endpoints}: min {:?}, median {:?} of 5; {bytes} bytes",
        full_times[0], full_times[2]
    );

    let mut times: Vec<Duration> = Vec::new();
    let mut previous = Arc::clone(&state);
    for round in 0..21 {
        // One endpoint of one service port goes away (or comes back): a new state differing in that port only.
        let mut next = (*previous).clone();
        let name = next
            .services
            .keys()
            .nth(round * 37 % services)
            .unwrap()
            .clone();
        let mut port = (*next.services[&name]).clone();
        if round % 2 == 0 {
            port.endpoints.pop();
        } else {
            port.endpoints = state.services[&name].endpoints.clone();
        }
        next.services.insert(name, Arc::new(finish(port)));
        let next = Arc::new(next);
        let t = Instant::now();
        let partial = render(
            &next,
            &cfg,
            &RenderScope::Partial {
                changed: Default::default(),
                previous: Arc::clone(&previous),
            },
        );
        bytes = partial.restore_input().len();
        times.push(t.elapsed());
        previous = next;
    }
    times.sort();
    println!(
        "partial render after one endpoint change: p50 {:?}, max {:?} of {}; {bytes} bytes",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
}
