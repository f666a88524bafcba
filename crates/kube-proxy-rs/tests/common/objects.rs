//! Builders for the API objects end-to-end tests serve.

use serde_json::{json, Value};

/// A Node with LAN addresses on the test topology (node `n` is 10.100.0.n / fd00:100::n).
pub fn node(name: &str, n: u8, zone: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
        "spec": {"podCIDR": format!("10.244.{n}.0/24"),
                 "podCIDRs": [format!("10.244.{n}.0/24"), format!("fd00:10:244:{n}::/64")]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": format!("10.100.0.{n}")},
            {"type": "InternalIP", "address": format!("fd00:100::{n}")},
            {"type": "Hostname", "address": name}
        ]}
    })
}

/// A Service in namespace `e2e` with one port (named "p") of `protocol`; `spec` is merged over the defaults.
pub fn service(name: &str, cluster_ip: &str, port: u16, protocol: &str, spec: Value) -> Value {
    let mut base = json!({
        "type": "ClusterIP",
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "ports": [{"name": "p", "port": port, "protocol": protocol, "targetPort": super::POD_PORT}]
    });
    merge(&mut base, spec);
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "e2e", "name": name},
        "spec": base
    })
}

/// One endpoint: address, node, and conditions (ready, serving, terminating).
#[derive(Clone, Debug)]
pub struct Ep {
    pub ip: String,
    pub node: &'static str,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub zone_hint: Option<&'static str>,
}

/// A ready endpoint.
pub fn ep(ip: impl ToString, node: &'static str) -> Ep {
    Ep {
        ip: ip.to_string(),
        node,
        ready: true,
        serving: true,
        terminating: false,
        zone_hint: None,
    }
}

impl Ep {
    pub fn terminating(mut self, serving: bool) -> Ep {
        self.ready = false;
        self.serving = serving;
        self.terminating = true;
        self
    }
    pub fn hint(mut self, zone: &'static str) -> Ep {
        self.zone_hint = Some(zone);
        self
    }
}

/// An EndpointSlice for service `svc` with port "p" → the pods' echo port.
pub fn slice(svc: &str, slice_name: &str, family: &str, protocol: &str, eps: &[Ep]) -> Value {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|e| {
            let mut v = json!({
                "addresses": [e.ip],
                "nodeName": e.node,
                "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating}
            });
            if let Some(z) = e.zone_hint {
                v["hints"] = json!({"forZones": [{"name": z}]});
            }
            v
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "e2e", "name": slice_name,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family,
        "ports": [{"name": "p", "port": super::POD_PORT, "protocol": protocol}],
        "endpoints": endpoints
    })
}

fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}
