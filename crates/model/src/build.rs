//! Builds a [`ProxyState`] from [`ClusterObjects`] for one node and one IP family.
//!
//! Pure: reads the snapshot, never does I/O, never panics on bad input. The steps are upstream kube-proxy's:
//! services become service ports ([`crate::service`]), EndpointSlices of the family are merged per port
//! ([`crate::endpoints`]), and each port's endpoints are categorised for Cluster and Local traffic
//! ([`crate::topology`]). Unchanged ports keep the `Arc` of the previous state.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::BuildCache;
use crate::endpoints::{merge_slices, SliceIndex};
use crate::objects::ClusterObjects;
use crate::parse::parse_cidr_sloppy;
use crate::service::{service_ports, Rejector};
use crate::state::{IpFamily, ProxyState, Rejection, RejectionKind, ServicePortState};
use crate::topology::{categorize, NodeTopology, ZONE_LABEL};

/// Who "this node" is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeContext {
    /// This node's name (`--hostname-override` or the hostname); endpoints whose `nodeName` equals it are local.
    pub node_name: String,
}

/// The state plus the objects (or parts) that were skipped and why.
#[derive(Clone, Debug)]
pub struct BuildOutput {
    pub state: ProxyState,
    pub rejections: Vec<Rejection>,
}

/// Computes the state one proxier programs. `previous` lets unchanged service ports keep their `Arc`.
pub fn build_state(
    objects: &ClusterObjects,
    node: &NodeContext,
    family: IpFamily,
    previous: Option<&ProxyState>,
) -> BuildOutput {
    build(objects, node, family, Reuse::Previous(previous))
}

/// Like [`build_state`], for a caller that builds again and again (the sync runner): a Service whose object and
/// EndpointSlices are the very same `Arc`s as at the previous build (and the node's name and zone unchanged) is
/// taken from `cache` instead of being parsed again, so a build after one change costs little more than a walk
/// over the snapshot. The result is identical to `build_state`'s.
pub fn build_state_cached(
    objects: &ClusterObjects,
    node: &NodeContext,
    family: IpFamily,
    cache: &mut BuildCache,
) -> BuildOutput {
    build(objects, node, family, Reuse::Cache(cache))
}

enum Reuse<'p> {
    Previous(Option<&'p ProxyState>),
    Cache(&'p mut BuildCache),
}

fn build(
    objects: &ClusterObjects,
    node: &NodeContext,
    family: IpFamily,
    mut reuse: Reuse<'_>,
) -> BuildOutput {
    let mut rejections = Vec::new();
    let node_name = node.node_name.as_str();
    let zone = objects
        .node
        .as_ref()
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(ZONE_LABEL))
        .map_or("", String::as_str);
    let topo = NodeTopology { node_name, zone };
    if let Reuse::Cache(cache) = &mut reuse {
        cache.begin(family, node_name, zone);
    }

    let slices = SliceIndex::new(objects, family, &mut rejections);
    let mut services = BTreeMap::new();
    for (key, svc) in &objects.services {
        let (namespace, name) = key;
        let svc_slices = slices.slices(namespace, name);
        if let Reuse::Cache(cache) = &reuse {
            if let Some(hit) = cache.lookup(key, svc, svc_slices) {
                rejections.extend(hit.rejections.iter().cloned());
                for port in &hit.ports {
                    services.insert(port.name.clone(), Arc::clone(port));
                }
                continue;
            }
        }
        let mut own_rejections = Vec::new();
        let mut rej = Rejector {
            kind: "Service",
            namespace,
            name,
            out: &mut own_rejections,
        };
        let ports = service_ports(svc, family, &mut rej);
        let mut built_ports = Vec::with_capacity(ports.len());
        if !ports.is_empty() {
            let mut merged = merge_slices(svc_slices, family, node_name, &mut own_rejections);
            for mut port in ports {
                if let Some(group) = merged
                    .iter_mut()
                    .find(|g| g.port_name == port.name.port && g.protocol == port.name.protocol)
                {
                    port.endpoints = std::mem::take(&mut group.endpoints);
                }
                fill_categories(&mut port, topo);
                let prev = match &reuse {
                    Reuse::Previous(p) => p.and_then(|p| p.services.get(&port.name)).cloned(),
                    Reuse::Cache(cache) => cache.previous_port(key, &port.name),
                };
                let arc = match prev {
                    Some(prev) if *prev == port => prev,
                    _ => Arc::new(port),
                };
                services.insert(arc.name.clone(), Arc::clone(&arc));
                built_ports.push(arc);
            }
        }
        rejections.extend(own_rejections.iter().cloned());
        if let Reuse::Cache(cache) = &mut reuse {
            cache.store(key, svc, svc_slices, built_ports, own_rejections);
        }
    }
    if let Reuse::Cache(cache) = &mut reuse {
        cache.finish(objects);
    }

    let state = ProxyState {
        family,
        node_name: node.node_name.clone(),
        node_pod_cidrs: node_pod_cidrs(objects, family, &mut rejections),
        services,
    };
    BuildOutput { state, rejections }
}

fn fill_categories(port: &mut ServicePortState, topo: NodeTopology<'_>) {
    let cat = categorize(
        &port.endpoints,
        port.uses_cluster_endpoints(),
        port.uses_local_endpoints(),
        topo,
    );
    port.cluster_endpoints = cat.cluster;
    port.local_endpoints = cat.local;
    port.all_reachable_endpoints = cat.all_reachable;
    port.has_any_endpoints = cat.has_any;
}

/// The Node's `spec.podCIDRs` (falling back to `spec.podCIDR`) of `family`, sorted.
fn node_pod_cidrs(
    objects: &ClusterObjects,
    family: IpFamily,
    rejections: &mut Vec<Rejection>,
) -> Vec<ipnet::IpNet> {
    let Some(node) = &objects.node else {
        return Vec::new();
    };
    let Some(spec) = &node.spec else {
        return Vec::new();
    };
    let raw: Vec<&String> = match &spec.pod_cidrs {
        Some(v) if !v.is_empty() => v.iter().collect(),
        _ => spec.pod_cidr.iter().collect(),
    };
    let mut out = Vec::new();
    for cidr in raw.into_iter().filter(|c| !c.is_empty()) {
        match parse_cidr_sloppy(cidr) {
            Some(net) if family.contains(&net.addr()) => out.push(net),
            Some(_) => {}
            None => Rejector {
                kind: "Node",
                namespace: "",
                name: node.metadata.name.as_deref().unwrap_or_default(),
                out: rejections,
            }
            .reject(RejectionKind::Other(format!("invalid podCIDR {cidr:?}"))),
        }
    }
    out.sort();
    out.dedup();
    out
}
