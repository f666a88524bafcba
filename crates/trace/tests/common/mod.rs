//! Builders for model states rendered with kube-proxy-iptables, and tracing helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use kube_proxy_iptables::{render, LocalDetector, RenderConfig, RenderScope};
use kube_proxy_model::{
    Endpoint, IpFamily, Protocol, ProxyState, ServicePortName, ServicePortState,
};
use kube_proxy_trace::{trace_text, Packet, Trace, TraceOptions};

pub const NODE_IP: &str = "192.168.0.2";
pub const POD_CIDR: &str = "10.0.0.0/16";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn name(ns: &str, n: &str, port: &str) -> ServicePortName {
    ServicePortName {
        namespace: ns.into(),
        name: n.into(),
        port: port.into(),
        protocol: Protocol::Tcp,
    }
}

pub fn ep(addr: &str, port: u16, local: bool) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port,
        is_local: local,
        ready: true,
        serving: true,
        terminating: false,
        zone_hints: vec![],
        node_hints: vec![],
    }
}

/// A ClusterIP service port with no endpoints; adjust fields, then call [`finish`].
pub fn svc(n: ServicePortName, cluster_ip: &str, port: u16) -> ServicePortState {
    let cip = ip(cluster_ip);
    ServicePortState {
        protocol: n.protocol,
        name: n,
        family: IpFamily::of(&cip),
        cluster_ip: cip,
        port,
        node_port: None,
        external_ips: vec![],
        load_balancer_ips: vec![],
        load_balancer_source_ranges: vec![],
        external_policy_local: false,
        internal_policy_local: false,
        health_check_node_port: None,
        session_affinity_timeout: None,
        endpoints: vec![],
        cluster_endpoints: vec![],
        local_endpoints: vec![],
        all_reachable_endpoints: vec![],
        has_any_endpoints: false,
    }
}

/// Fills the derived endpoint lists the way the model does for ready endpoints.
pub fn finish(mut s: ServicePortState) -> ServicePortState {
    s.endpoints.sort();
    let ready: Vec<Endpoint> = s.endpoints.iter().filter(|e| e.ready).cloned().collect();
    s.cluster_endpoints = if s.uses_cluster_endpoints() {
        ready.clone()
    } else {
        vec![]
    };
    s.local_endpoints = if s.uses_local_endpoints() {
        ready.iter().filter(|e| e.is_local).cloned().collect()
    } else {
        vec![]
    };
    let mut all: Vec<Endpoint> = s
        .cluster_endpoints
        .iter()
        .chain(&s.local_endpoints)
        .cloned()
        .collect();
    all.sort();
    all.dedup();
    s.all_reachable_endpoints = all;
    s.has_any_endpoints = !ready.is_empty();
    s
}

pub fn state(svcs: Vec<ServicePortState>) -> ProxyState {
    let services: BTreeMap<_, _> = svcs
        .into_iter()
        .map(|s| (s.name.clone(), Arc::new(s)))
        .collect();
    let family = services
        .values()
        .next()
        .map(|s| s.family)
        .unwrap_or(IpFamily::V4);
    ProxyState {
        family,
        node_name: "node1".into(),
        node_pod_cidrs: vec![],
        services,
    }
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
