//! Shared helpers for the model's integration tests: k8s objects from JSON, a build on node "node-a".
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_proxy_model::{
    build_state, BuildOutput, ClusterObjects, IpFamily, NodeContext, Protocol, ProxyState,
    ServicePortName, ServicePortState,
};
use serde_json::{json, Value};

pub const NODE: &str = "node-a";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| ip(s)).collect()
}

/// A ClusterIP Service `ns/name` with one unnamed TCP port 80, then `patch` merged into it (JSON merge).
pub fn service(ns: &str, name: &str, spec_patch: Value) -> Value {
    let mut v = json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP"}]}
    });
    merge(&mut v["spec"], spec_patch);
    v
}

/// A slice `ns/slice` of service `svc`, with `ports` and `endpoints` as given.
pub fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    family: &str,
    ports: Value,
    endpoints: Value,
) -> Value {
    json!({
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family,
        "ports": ports,
        "endpoints": endpoints,
    })
}

/// An endpoint JSON with the address and extra fields merged in.
pub fn ep(addr: &str, extra: Value) -> Value {
    let mut v = json!({"addresses": [addr]});
    merge(&mut v, extra);
    v
}

pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

pub fn objects(services: Vec<Value>, slices: Vec<Value>, node: Option<Value>) -> ClusterObjects {
    let mut objs = ClusterObjects::default();
    for s in services {
        let svc: Service = serde_json::from_value(s).expect("service json");
        let key = (
            svc.metadata.namespace.clone().unwrap(),
            svc.metadata.name.clone().unwrap(),
        );
        objs.services.insert(key, Arc::new(svc));
    }
    for s in slices {
        let sl: EndpointSlice = serde_json::from_value(s).expect("slice json");
        let key = (
            sl.metadata.namespace.clone().unwrap(),
            sl.metadata.name.clone().unwrap(),
        );
        objs.endpoint_slices.insert(key, Arc::new(sl.into()));
    }
    objs.node = node.map(|n| Arc::new(serde_json::from_value::<Node>(n).expect("node json")));
    objs
}

/// A Node named `node-a` in `zone` (no label when empty).
pub fn node_in_zone(zone: &str) -> Value {
    let mut n = json!({"metadata": {"name": NODE}});
    if !zone.is_empty() {
        n["metadata"]["labels"] = json!({"topology.kubernetes.io/zone": zone});
    }
    n
}

pub fn build(objs: &ClusterObjects, family: IpFamily) -> BuildOutput {
    build_state(
        objs,
        &NodeContext {
            node_name: NODE.into(),
        },
        family,
        None,
    )
}

pub fn spn(ns: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName {
        namespace: ns.into(),
        name: name.into(),
        port: port.into(),
        protocol,
    }
}

/// The port `ns/name` (unnamed, TCP), panicking with the state's keys when absent.
pub fn port<'s>(state: &'s ProxyState, ns: &str, name: &str) -> &'s ServicePortState {
    named_port(state, ns, name, "", Protocol::Tcp)
}

pub fn named_port<'s>(
    state: &'s ProxyState,
    ns: &str,
    name: &str,
    port: &str,
    protocol: Protocol,
) -> &'s ServicePortState {
    let key = spn(ns, name, port, protocol);
    state.services.get(&key).unwrap_or_else(|| {
        panic!(
            "{key} missing; have {:?}",
            state.services.keys().collect::<Vec<_>>()
        )
    })
}

/// `ip:port` strings of a list of endpoints.
pub fn addrs(eps: &[kube_proxy_model::Endpoint]) -> Vec<String> {
    eps.iter().map(|e| e.addr_string()).collect()
}
