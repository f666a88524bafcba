//! Model states for the guest scenarios.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use kube_proxy_model::{
    Endpoint, IpFamily, Protocol, ProxyState, ServicePortName, ServicePortState,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn endpoint(addr: &str, port: u16) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port,
        is_local: false,
        ready: true,
        serving: true,
        terminating: false,
        hints: None,
    }
}

/// A ClusterIP service `default/<name>` on `cluster_ip:port` with the given endpoints.
pub fn service(name: &str, cluster_ip: &str, port: u16, eps: Vec<Endpoint>) -> ServicePortState {
    ServicePortState {
        name: ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: "".into(),
            protocol: Protocol::Tcp,
        },
        family: IpFamily::V4,
        cluster_ip: ip(cluster_ip),
        port,
        protocol: Protocol::Tcp,
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
        local_endpoints: Default::default(),
        all_reachable_endpoints: eps.into(),
    }
}

pub fn state(services: Vec<ServicePortState>) -> ProxyState {
    ProxyState {
        family: IpFamily::V4,
        node_name: "guest".into(),
        node_pod_cidrs: Vec::new(),
        services: services
            .into_iter()
            .map(|s| (s.name.clone(), Arc::new(s)))
            .collect::<BTreeMap<_, _>>(),
    }
}
