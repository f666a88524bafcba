//! The objects served to the proxy: the synthetic cluster of `kube_proxy_model::synthetic_api_objects`, a Node, and
//! one probe Service whose only endpoint is the real backend pod; plus the sequence of single changes (endpoint
//! add/remove, Service add/delete) with the kernel state each one must produce.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use kube_proxy_testkit::apiserver::Kind;
use serde_json::{json, Value};

use crate::error::{BenchError, Result};

/// The node the proxy runs as.
pub const NODE: &str = "bench-node";
/// The node's address on the client link (also its Node InternalIP).
pub const NODE_IP: &str = "10.250.0.1";
/// The client's address.
pub const CLIENT_IP: &str = "10.250.0.2";
/// The client's second address, the source of direct-to-pod connections.
pub const CLIENT_DIRECT_IP: &str = "10.250.0.3";
/// The node's address on the pod link.
pub const NODE_POD_LINK_IP: &str = "10.240.0.1";
/// The backend pod's address.
pub const POD_IP: &str = "10.240.0.2";
/// The backend's port.
pub const POD_PORT: u16 = 8080;
/// ClusterIP of the probe Service (outside the synthetic range 10.96.0.0 + i).
pub const PROBE_IP: &str = "10.100.0.1";
/// Name of the probe Service; sorts after every `svc-N`.
pub const PROBE_NAME: &str = "zzz-probe";
/// Namespace of every benchmark object.
pub const NAMESPACE: &str = "bench";

/// The probe Service's ClusterIP:port.
pub fn probe_addr() -> SocketAddr {
    SocketAddr::new(PROBE_IP.parse().expect("constant"), 80)
}

/// The backend pod's IP:port.
pub fn pod_addr() -> SocketAddr {
    SocketAddr::new(POD_IP.parse().expect("constant"), POD_PORT)
}

/// What the kernel must show once a change is programmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The ClusterIP is served and its service chain picks among exactly `endpoints` endpoints.
    Present { ip: String, endpoints: usize },
    /// The ClusterIP is no longer served.
    Absent { ip: String },
}

/// One API operation.
#[derive(Clone, Debug)]
pub enum Op {
    Apply(Value),
    Delete(Kind, String),
}

/// Kinds of single change, in the order they are cycled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ChangeKind {
    EndpointAdd,
    EndpointRemove,
    ServiceAdd,
    ServiceDelete,
}

/// One change: the operations to send (back to back) and the expected kernel state.
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub ops: Vec<Op>,
    pub expect: Expect,
}

/// The cluster as the benchmark has told the API server, so changes know what exists.
pub struct Workload {
    /// name → (ClusterIP, endpoint IPs), for the Services that may be changed.
    services: BTreeMap<String, (String, Vec<String>)>,
    endpoints: usize,
    next_new_service: u32,
    next_new_endpoint: u32,
}

/// A ClusterIP Service `bench/<name>` (port "http" 80/TCP).
pub fn service_json(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": NAMESPACE, "name": name},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    })
}

/// The EndpointSlice `bench/<name>-abcde` of Service `name` with ready endpoints `ips` on port `port`.
pub fn slice_json(name: &str, ips: &[String], port: u16) -> Value {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false},
                         "nodeName": "node-1"}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": NAMESPACE, "name": format!("{name}-abcde"),
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    })
}

/// The Node object of [`NODE`].
pub fn node_json() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}
    })
}

fn to_value<T: serde::Serialize>(obj: &T) -> Result<Value> {
    serde_json::to_value(obj).map_err(|e| BenchError::WriteFile {
        what: "an object as JSON".into(),
        source: std::io::Error::other(e),
    })
}

impl Workload {
    /// N Services × M endpoints (plus the probe Service, which changes never touch).
    pub fn new(services: usize, endpoints: usize) -> Workload {
        let objs = kube_proxy_model::synthetic_api_objects(services, endpoints, NODE);
        let mut map = BTreeMap::new();
        for ((_, name), svc) in &objs.services {
            let ip = svc
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.clone())
                .unwrap_or_default();
            let slice = objs
                .endpoint_slices
                .get(&(NAMESPACE.to_string(), format!("{name}-abcde")));
            let eps = slice
                .and_then(|s| s.endpoints.as_ref())
                .map(|eps| eps.iter().flat_map(|e| e.addresses.clone()).collect())
                .unwrap_or_default();
            map.insert(name.clone(), (ip, eps));
        }
        Workload {
            services: map,
            endpoints,
            next_new_service: 0,
            next_new_endpoint: 0,
        }
    }

    /// Every object to load before the proxy starts: the Node, N Services with their slices, the probe.
    pub fn initial_objects(&self) -> Result<Vec<Value>> {
        let objs =
            kube_proxy_model::synthetic_api_objects(self.services.len(), self.endpoints, NODE);
        let mut out = vec![node_json()];
        for svc in objs.services.values() {
            out.push(to_value(svc.as_ref())?);
        }
        for slice in objs.endpoint_slices.values() {
            out.push(to_value(slice.as_ref())?);
        }
        out.push(service_json(PROBE_NAME, PROBE_IP));
        out.push(slice_json(PROBE_NAME, &[POD_IP.to_string()], POD_PORT));
        Ok(out)
    }

    /// How many ClusterIPs are served once everything is programmed (every Service has endpoints).
    pub fn served_services(&self) -> usize {
        self.services.len() + 1
    }

    /// The `k`-th change (call with k = 0, 1, 2, ... in order).
    pub fn change(&mut self, k: usize) -> Change {
        let kinds = [
            ChangeKind::EndpointAdd,
            ChangeKind::EndpointRemove,
            ChangeKind::ServiceAdd,
            ChangeKind::ServiceDelete,
        ];
        let mut kind = kinds[k % kinds.len()];
        if self.services.len() < 2 && kind == ChangeKind::ServiceDelete {
            kind = ChangeKind::ServiceAdd;
        }
        let name = self.pick(k);
        if kind == ChangeKind::EndpointRemove && self.services[&name].1.len() < 2 {
            kind = ChangeKind::EndpointAdd;
        }
        match kind {
            ChangeKind::EndpointAdd => {
                self.next_new_endpoint += 1;
                let ip = Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(10, 200, 0, 0)) + self.next_new_endpoint,
                );
                let entry = self
                    .services
                    .get_mut(&name)
                    .expect("picked an existing service");
                entry.1.push(ip.to_string());
                let expect = Expect::Present {
                    ip: entry.0.clone(),
                    endpoints: entry.1.len(),
                };
                Change {
                    kind,
                    ops: vec![Op::Apply(slice_json(&name, &entry.1, 8080))],
                    expect,
                }
            }
            ChangeKind::EndpointRemove => {
                let entry = self
                    .services
                    .get_mut(&name)
                    .expect("picked an existing service");
                entry.1.remove(0);
                let expect = Expect::Present {
                    ip: entry.0.clone(),
                    endpoints: entry.1.len(),
                };
                Change {
                    kind,
                    ops: vec![Op::Apply(slice_json(&name, &entry.1, 8080))],
                    expect,
                }
            }
            ChangeKind::ServiceAdd => {
                self.next_new_service += 1;
                let n = self.next_new_service;
                let name = format!("new-{n}");
                let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 98, 0, 0)) + n).to_string();
                let eps: Vec<String> = (0..self.endpoints.max(1))
                    .map(|j| Ipv4Addr::new(10, 201, (n % 250) as u8, j as u8 + 1).to_string())
                    .collect();
                let ops = vec![
                    Op::Apply(service_json(&name, &ip)),
                    Op::Apply(slice_json(&name, &eps, 8080)),
                ];
                let expect = Expect::Present {
                    ip: ip.clone(),
                    endpoints: eps.len(),
                };
                self.services.insert(name, (ip, eps));
                Change { kind, ops, expect }
            }
            ChangeKind::ServiceDelete => {
                let (ip, _) = self
                    .services
                    .remove(&name)
                    .expect("picked an existing service");
                let ops = vec![
                    Op::Delete(Kind::Service, name.clone()),
                    Op::Delete(Kind::EndpointSlice, format!("{name}-abcde")),
                ];
                Change {
                    kind,
                    ops,
                    expect: Expect::Absent { ip },
                }
            }
        }
    }

    /// A Service spread over the whole set (a fixed stride, so runs are reproducible).
    fn pick(&self, k: usize) -> String {
        let names: Vec<&String> = self.services.keys().collect();
        names[(k.wrapping_mul(7919) + 13) % names.len()].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_cycle_kinds_and_track_endpoint_counts() {
        let mut w = Workload::new(10, 3);
        assert_eq!(w.initial_objects().unwrap().len(), 1 + 10 + 10 + 2);
        let kinds: Vec<ChangeKind> = (0..4).map(|k| w.change(k).kind).collect();
        assert_eq!(
            kinds,
            [
                ChangeKind::EndpointAdd,
                ChangeKind::EndpointRemove,
                ChangeKind::ServiceAdd,
                ChangeKind::ServiceDelete
            ]
        );
        assert_eq!(w.served_services(), 11, "one added, one deleted");
        let mut w = Workload::new(10, 3);
        match w.change(0).expect {
            Expect::Present { endpoints, .. } => assert_eq!(endpoints, 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn removal_never_empties_a_service() {
        let mut w = Workload::new(1, 1);
        let c = w.change(1);
        assert_eq!(c.kind, ChangeKind::EndpointAdd);
    }
}
