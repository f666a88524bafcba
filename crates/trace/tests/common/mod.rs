//! Builders for model states rendered with kube-proxy-iptables, and tracing helpers.
#![allow(dead_code)]

use kube_proxy_iptables::{render, LocalDetector, RenderConfig, RenderScope};
use kube_proxy_model::{IpFamily, Protocol, ProxyState, ServicePortState};
use kube_proxy_trace::{trace_text, Packet, Trace, TraceOptions};

pub const NODE_IP: &str = "192.168.0.2";
pub const POD_CIDR: &str = "10.0.0.0/16";

pub use kube_proxy_model::fixtures::{ep, finish, ip, name, svc};

/// A state of the family of the first service (IPv4 when empty).
pub fn state(svcs: Vec<ServicePortState>) -> ProxyState {
    let family = svcs.first().map(|s| s.family).unwrap_or(IpFamily::V4);
    kube_proxy_model::fixtures::state(family, svcs)
}

pub fn cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec![POD_CIDR.parse().unwrap()]),
        node_ips: vec![ip(NODE_IP)],
        ..RenderConfig::default()
    }
}

pub fn rules(st: &ProxyState) -> String {
    render(st, &cfg(), &RenderScope::Full).restore_input()
}

pub fn opts() -> TraceOptions {
    TraceOptions::with_local_addrs(vec![ip(NODE_IP)])
}

/// Traces a TCP packet entering from `iface` through the rendered rules of `st`.
pub fn trace_in(st: &ProxyState, src: &str, dst: &str, port: u16, iface: &str) -> Trace {
    let pkt = Packet::inbound(ip(src), ip(dst), port, Protocol::Tcp).via(iface);
    let t = trace_text(&rules(st), &pkt, &opts()).unwrap();
    assert_probabilities_sum_to_one(&t);
    t
}

/// Traces a TCP packet generated on the node.
pub fn trace_local(st: &ProxyState, src: &str, dst: &str, port: u16) -> Trace {
    let pkt = Packet::local(ip(src), ip(dst), port, Protocol::Tcp);
    let t = trace_text(&rules(st), &pkt, &opts()).unwrap();
    assert_probabilities_sum_to_one(&t);
    t
}

pub fn assert_probabilities_sum_to_one(t: &Trace) {
    let sum: f64 = t.outcomes.iter().map(|o| o.probability).sum();
    assert!(
        (sum - 1.0).abs() < 1e-6,
        "probabilities sum to {sum}: {}",
        t.render_text()
    );
}
