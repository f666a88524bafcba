//! Keeps one IP family's [`ProxyState`] up to date from [`ObjectDelta`]s, doing work only for what changed.
//!
//! The builder holds its own view of the objects (every Service, this family's EndpointSlices indexed by the
//! Service they belong to, the Node) and what each Service produced last time. A delta rebuilds only the
//! Services it names or whose slices it names; the result is exactly what [`build_state`](crate::build_state)
//! gives for the same objects (that function is this builder applied to every object at once). A change of
//! the node's name or zone rebuilds every Service, because topology depends on them. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};

use crate::endpoint_list::EndpointList;
use crate::endpoints::{address_type, merge_slices, slice_rejector, LABEL_SERVICE_NAME};
use crate::objects::{ObjectDelta, ObjectKey};
use crate::parse::parse_cidr_sloppy;
use crate::service::{service_ports, Rejector};
use crate::slice::CompactSlice;
use crate::state::{
    IpFamily, ProxyState, Rejection, RejectionKind, ServicePortName, ServicePortState,
};
use crate::topology::{categorize, NodeTopology, ZONE_LABEL};
use crate::NodeContext;

/// What one Service produced at its last build.
#[derive(Default)]
struct Built {
    ports: Vec<Arc<ServicePortState>>,
    rejections: Vec<Rejection>,
}

/// One update's result: the new state and the service ports that differ from the previous one.
#[derive(Clone, Debug)]
pub struct BuildStep {
    pub state: Arc<ProxyState>,
    /// Service ports added, removed or changed by this update.
    pub touched: BTreeSet<ServicePortName>,
}

/// The incremental per-family state builder; keep one per IP family and feed it every delta.
pub struct IncrementalBuilder {
    family: IpFamily,
    node: NodeContext,
    zone: String,
    node_object: Option<Arc<Node>>,
    node_rejections: Vec<Rejection>,
    services: HashMap<ObjectKey, Arc<Service>>,
    /// This family's labelled slices: slice key → (owning Service key, slice).
    slices: HashMap<ObjectKey, (ObjectKey, Arc<CompactSlice>)>,
    /// Slice keys per Service key, sorted: slice-name order, the order slices are merged in. (A sorted `Vec`:
    /// a Service has one or two slices, and a one-key `BTreeSet` costs a ~540-byte node.)
    slices_of: HashMap<ObjectKey, Vec<ObjectKey>>,
    /// Slices of this family without a service-name label.
    unlabelled: BTreeMap<ObjectKey, Rejection>,
    built: HashMap<ObjectKey, Built>,
    /// Services whose last build rejected something, so listing rejections does not walk every Service.
    rejected: BTreeSet<ObjectKey>,
    state: Arc<ProxyState>,
}

impl IncrementalBuilder {
    /// A builder that has seen no objects yet (its state is empty).
    pub fn new(family: IpFamily, node: NodeContext) -> IncrementalBuilder {
        IncrementalBuilder {
            family,
            state: Arc::new(ProxyState::empty(family, node.node_name.clone())),
            node,
            zone: String::new(),
            node_object: None,
            node_rejections: Vec::new(),
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            unlabelled: BTreeMap::new(),
            built: HashMap::new(),
            rejected: BTreeSet::new(),
        }
    }

    /// The state after the last update.
    pub fn state(&self) -> &Arc<ProxyState> {
        &self.state
    }

    /// Every rejection the current objects cause: slices without a Service, then Services (with their
    /// slices' faults) in key order, then the Node.
    pub fn rejections(&self) -> impl Iterator<Item = &Rejection> {
        self.unlabelled
            .values()
            .chain(
                self.rejected
                    .iter()
                    .filter_map(|k| self.built.get(k))
                    .flat_map(|b| &b.rejections),
            )
            .chain(&self.node_rejections)
    }

    /// Applies `delta` and returns the new state with the service ports it touched.
    pub fn apply(&mut self, delta: &ObjectDelta) -> BuildStep {
        let mut dirty: BTreeSet<ObjectKey> = BTreeSet::new();
        for (key, svc) in &delta.services {
            match svc {
                Some(svc) => self.services.insert(key.clone(), Arc::clone(svc)),
                None => self.services.remove(key),
            };
            dirty.insert(key.clone());
        }
        for (key, slice) in &delta.endpoint_slices {
            self.remove_slice(key, &mut dirty);
            if let Some(slice) = slice {
                self.add_slice(key, slice, &mut dirty);
            }
        }
        let mut node_context_changed = false;
        let mut new_pod_cidrs = None;
        if let Some(node) = &delta.node {
            self.node_object = node.clone();
            let zone = zone_of(node.as_deref()).to_string();
            if zone != self.zone {
                self.zone = zone;
                node_context_changed = true;
            }
            self.node_rejections.clear();
            let cidrs = node_pod_cidrs(node.as_deref(), self.family, &mut self.node_rejections);
            if cidrs != self.state.node_pod_cidrs {
                new_pod_cidrs = Some(cidrs);
            }
        }
        if node_context_changed {
            // Every Service has a build entry.
            dirty.extend(self.built.keys().cloned());
        }
        if dirty.is_empty() && new_pod_cidrs.is_none() {
            return BuildStep {
                state: Arc::clone(&self.state),
                touched: BTreeSet::new(),
            };
        }

        let mut state = ProxyState::clone(&self.state);
        if let Some(cidrs) = new_pod_cidrs {
            state.node_pod_cidrs = cidrs;
        }
        let mut touched = BTreeSet::new();
        for key in &dirty {
            let old = self.built.remove(key).unwrap_or_default();
            for port in &old.ports {
                state.services.remove(&port.name);
            }
            let new = match self.services.get(key) {
                Some(svc) => self.build_service(key, svc, &old.ports),
                None => Built::default(),
            };
            for port in &old.ports {
                if !new.ports.iter().any(|p| Arc::ptr_eq(p, port)) {
                    touched.insert(port.name.clone());
                }
            }
            for port in &new.ports {
                if !old.ports.iter().any(|p| Arc::ptr_eq(p, port)) {
                    touched.insert(port.name.clone());
                }
                state.services.insert(port.name.clone(), Arc::clone(port));
            }
            if new.rejections.is_empty() {
                self.rejected.remove(key);
            } else {
                self.rejected.insert(key.clone());
            }
            if self.services.contains_key(key) {
                self.built.insert(key.clone(), new);
            }
        }
        self.state = Arc::new(state);
        BuildStep {
            state: Arc::clone(&self.state),
            touched,
        }
    }

    fn remove_slice(&mut self, key: &ObjectKey, dirty: &mut BTreeSet<ObjectKey>) {
        self.unlabelled.remove(key);
        if let Some((owner, _)) = self.slices.remove(key) {
            if let Some(keys) = self.slices_of.get_mut(&owner) {
                if let Ok(i) = keys.binary_search(key) {
                    keys.remove(i);
                }
                if keys.is_empty() {
                    self.slices_of.remove(&owner);
                }
            }
            dirty.insert(owner);
        }
    }

    fn add_slice(
        &mut self,
        key: &ObjectKey,
        slice: &Arc<CompactSlice>,
        dirty: &mut BTreeSet<ObjectKey>,
    ) {
        if slice.address_type != address_type(self.family) {
            return;
        }
        let service = slice.service_name.as_ref().filter(|s| !s.is_empty());
        let Some(service) = service else {
            let mut out = Vec::new();
            slice_rejector(slice, &mut out).reject(RejectionKind::Other(format!(
                "no {LABEL_SERVICE_NAME} label"
            )));
            self.unlabelled
                .extend(out.into_iter().map(|r| (key.clone(), r)));
            return;
        };
        let owner = (key.0.clone(), service.clone());
        let keys = self.slices_of.entry(owner.clone()).or_default();
        if let Err(i) = keys.binary_search(key) {
            keys.insert(i, key.clone());
        }
        self.slices
            .insert(key.clone(), (owner.clone(), Arc::clone(slice)));
        dirty.insert(owner);
    }

    /// Builds one Service's ports; a port equal to one of `previous` keeps that `Arc`.
    fn build_service(
        &self,
        key: &ObjectKey,
        svc: &Arc<Service>,
        previous: &[Arc<ServicePortState>],
    ) -> Built {
        let (namespace, name) = key;
        let mut rejections = Vec::new();
        let mut rej = Rejector {
            kind: "Service",
            namespace,
            name,
            out: &mut rejections,
        };
        let ports = service_ports(svc, self.family, &mut rej);
        if ports.is_empty() {
            return Built {
                ports: Vec::new(),
                rejections,
            };
        }
        let slices: Vec<&Arc<CompactSlice>> = self
            .slices_of
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|k| self.slices.get(k).map(|(_, s)| s))
            .collect();
        let mut merged = merge_slices(&slices, self.family, &self.node.node_name, &mut rejections);
        let topo = NodeTopology {
            node_name: &self.node.node_name,
            zone: &self.zone,
        };
        let mut ports: Vec<Arc<ServicePortState>> = ports
            .into_iter()
            .map(|mut port| {
                if let Some(group) = merged
                    .iter_mut()
                    .find(|g| *g.port_name == *port.name.port && g.protocol == port.name.protocol)
                {
                    port.endpoints = std::mem::take(&mut group.endpoints);
                }
                fill_categories(&mut port, topo);
                match previous.iter().find(|p| p.name == port.name) {
                    Some(prev) if **prev == port => Arc::clone(prev),
                    _ => Arc::new(port),
                }
            })
            .collect();
        // The collect reuses the allocation of the `ServicePortState`s (~240 bytes each, room for four): give
        // back all but the pointers kept for as long as the Service lives.
        ports.shrink_to_fit();
        Built { ports, rejections }
    }
}

fn zone_of(node: Option<&Node>) -> &str {
    node.and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(ZONE_LABEL))
        .map_or("", String::as_str)
}

fn fill_categories(port: &mut ServicePortState, topo: NodeTopology<'_>) {
    let cat = categorize(
        &port.endpoints,
        port.uses_cluster_endpoints(),
        port.uses_local_endpoints(),
        topo,
    );
    // The views are usually equal (all-reachable is the cluster list unless topology or local terminating
    // endpoints split them): equal views share one list.
    let cluster = EndpointList::from(cat.cluster);
    let local = if cluster == cat.local {
        cluster.clone()
    } else {
        EndpointList::from(cat.local)
    };
    port.all_reachable_endpoints = if cluster == cat.all_reachable {
        cluster.clone()
    } else if local == cat.all_reachable {
        local.clone()
    } else {
        EndpointList::from(cat.all_reachable)
    };
    port.cluster_endpoints = cluster;
    port.local_endpoints = local;
    port.has_any_endpoints = cat.has_any;
}

/// The Node's `spec.podCIDRs` (falling back to `spec.podCIDR`) of `family`, sorted.
fn node_pod_cidrs(
    node: Option<&Node>,
    family: IpFamily,
    rejections: &mut Vec<Rejection>,
) -> Vec<ipnet::IpNet> {
    let Some(node) = node else {
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
