//! Model fixtures shared by the IPVS host tests.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;

use kube_proxy_model::{
    Endpoint, IpFamily, Protocol, ProxyState, ServicePortName, ServicePortState,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
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

pub fn svc(
    name: &str,
    proto: Protocol,
    cluster_ip: &str,
    port: u16,
    eps: Vec<Endpoint>,
) -> ServicePortState {
    let local: Vec<Endpoint> = eps.iter().filter(|e| e.is_local).cloned().collect();
    ServicePortState {
        name: ServicePortName {
            namespace: "ns".into(),
            name: name.into(),
            port: "p".into(),
            protocol: proto,
        },
        family: IpFamily::of(&ip(cluster_ip)),
        cluster_ip: ip(cluster_ip),
        port,
        protocol: proto,
        node_port: None,
        external_ips: Vec::new(),
        load_balancer_ips: Vec::new(),
        load_balancer_source_ranges: Vec::new(),
        external_policy_local: false,
        internal_policy_local: false,
        health_check_node_port: None,
        session_affinity_timeout: None,
        has_any_endpoints: !eps.is_empty(),
        endpoints: eps.clone(),
        cluster_endpoints: eps.clone().into(),
        local_endpoints: local.into(),
        all_reachable_endpoints: eps.into(),
    }
}

pub fn state(family: IpFamily, services: Vec<ServicePortState>) -> ProxyState {
    ProxyState {
        family,
        node_name: "node-a".into(),
        node_pod_cidrs: Vec::new(),
        services: services
            .into_iter()
            .map(|s| (s.name.clone(), Arc::new(s)))
            .collect(),
    }
}
