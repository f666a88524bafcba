//! Hand-made states for renderer and tracer tests in other crates: builders for names, endpoints and service
//! ports that skip `build_state`, so a test pins one renderer alone. Pure data, no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::state::{Endpoint, IpFamily, Protocol, ProxyState, ServicePortName, ServicePortState};

/// Parses an address; panics on a typo (test input).
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
        hints: None,
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
        cluster_endpoints: Default::default(),
        local_endpoints: Default::default(),
        all_reachable_endpoints: Default::default(),
        has_any_endpoints: false,
    }
}

/// Fills the derived endpoint lists the way the model does for ready endpoints (no topology, no terminating
/// fallback), so renderer tests pin the renderer alone.
pub fn finish(mut s: ServicePortState) -> ServicePortState {
    s.endpoints.sort();
    let ready: Vec<Endpoint> = s.endpoints.iter().filter(|e| e.ready).cloned().collect();
    s.cluster_endpoints = if s.uses_cluster_endpoints() {
        ready.clone().into()
    } else {
        Default::default()
    };
    s.local_endpoints = if s.uses_local_endpoints() {
        ready.iter().filter(|e| e.is_local).cloned().collect()
    } else {
        Default::default()
    };
    let mut all: Vec<Endpoint> = s
        .cluster_endpoints
        .iter()
        .chain(&s.local_endpoints)
        .cloned()
        .collect();
    all.sort();
    all.dedup();
    s.all_reachable_endpoints = all.into();
    s.has_any_endpoints = !ready.is_empty();
    s
}

pub fn state(family: IpFamily, svcs: Vec<ServicePortState>) -> ProxyState {
    let services: BTreeMap<_, _> = svcs
        .into_iter()
        .map(|s| (s.name.clone(), Arc::new(s)))
        .collect();
    ProxyState {
        family,
        node_name: "node1".into(),
        node_pod_cidrs: vec![],
        services,
    }
}
