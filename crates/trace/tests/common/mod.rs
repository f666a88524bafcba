//! Builders for model states rendered with kube-proxy-iptables, tracing helpers, and the pieces every mode's
//! scenarios share (the three-endpoint Service, verdict and outcome helpers).
#![allow(dead_code)]

use kube_proxy_iptables::{render, LocalDetector, RenderConfig, RenderScope};
use kube_proxy_model::{IpFamily, Protocol, ProxyState, ServicePortState};
use kube_proxy_trace::{trace_text, Outcome, Packet, Trace, TraceOptions, Verdict};

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

/// A DNAT verdict to `ip_:port`.
pub fn dnat(ip_: &str, port: u16) -> Verdict {
    Verdict::Dnat { ip: ip(ip_), port }
}

/// The single outcome of `t` (fails when there are several).
pub fn only(t: &Trace) -> &Outcome {
    assert_eq!(t.outcomes.len(), 1, "{}", t.render_text());
    &t.outcomes[0]
}

/// `ns1/web:http` on 172.30.0.10:80 with three endpoints, the last one local.
pub fn three_endpoints() -> ProxyState {
    let mut s = svc(name("ns1", "web", "http"), "172.30.0.10", 80);
    s.endpoints = vec![
        ep("10.0.1.1", 8080, false),
        ep("10.0.2.1", 8080, false),
        ep("10.0.3.1", 8080, true),
    ];
    state(vec![finish(s)])
}
