//! The API objects the model reads, as the sources keep them.
//!
//! Sources (API watch, manifest files) maintain a `ClusterObjects`; the model reads it. Objects are shared
//! behind `Arc` so that snapshots are cheap. EndpointSlices are kept in their compact form ([`CompactSlice`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;

use crate::slice::CompactSlice;

/// `(namespace, name)` of a namespaced object.
pub type ObjectKey = (String, String);

/// A consistent snapshot of everything the proxy watches.
#[derive(Clone, Debug, Default)]
pub struct ClusterObjects {
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<CompactSlice>>,
    /// This node's Node object, when known.
    pub node: Option<Arc<Node>>,
    /// networking.k8s.io/v1 ServiceCIDR objects by name (empty when the API does not serve them).
    pub service_cidrs: BTreeMap<String, Arc<ServiceCIDR>>,
}

/// What changed among the objects: each entry holds the object now, or `None` when it was deleted.
#[derive(Clone, Debug, Default)]
pub struct ObjectDelta {
    pub services: Vec<(ObjectKey, Option<Arc<Service>>)>,
    pub endpoint_slices: Vec<(ObjectKey, Option<Arc<CompactSlice>>)>,
    /// `Some` when the Node changed (to the inner value).
    pub node: Option<Option<Arc<Node>>>,
    /// `Some` when the ServiceCIDR objects changed (to the inner value).
    pub service_cidrs: Option<BTreeMap<String, Arc<ServiceCIDR>>>,
}

impl ObjectDelta {
    /// Every object of `objects`, as a delta from nothing.
    pub fn everything(objects: &ClusterObjects) -> ObjectDelta {
        ObjectDelta {
            services: objects
                .services
                .iter()
                .map(|(k, v)| (k.clone(), Some(Arc::clone(v))))
                .collect(),
            endpoint_slices: objects
                .endpoint_slices
                .iter()
                .map(|(k, v)| (k.clone(), Some(Arc::clone(v))))
                .collect(),
            node: Some(objects.node.clone()),
            service_cidrs: Some(objects.service_cidrs.clone()),
        }
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.endpoint_slices.is_empty()
            && self.node.is_none()
            && self.service_cidrs.is_none()
    }
}

impl ClusterObjects {
    /// Applies `delta` to these objects.
    pub fn apply(&mut self, delta: &ObjectDelta) {
        for (key, svc) in &delta.services {
            match svc {
                Some(svc) => self.services.insert(key.clone(), Arc::clone(svc)),
                None => self.services.remove(key),
            };
        }
        for (key, slice) in &delta.endpoint_slices {
            match slice {
                Some(slice) => self.endpoint_slices.insert(key.clone(), Arc::clone(slice)),
                None => self.endpoint_slices.remove(key),
            };
        }
        if let Some(node) = &delta.node {
            self.node = node.clone();
        }
        if let Some(cidrs) = &delta.service_cidrs {
            self.service_cidrs = cidrs.clone();
        }
    }

    /// The service IP ranges of `family` declared by the ServiceCIDR objects (see [`service_cidr_ranges`]).
    pub fn service_cidr_ranges(&self, family: crate::IpFamily) -> Vec<ipnet::IpNet> {
        service_cidr_ranges(&self.service_cidrs, family)
    }
}

/// The service IP ranges of `family` declared by ServiceCIDR objects (`spec.cidrs`), sorted and deduplicated;
/// unparseable entries are skipped.
pub fn service_cidr_ranges(
    service_cidrs: &BTreeMap<String, Arc<ServiceCIDR>>,
    family: crate::IpFamily,
) -> Vec<ipnet::IpNet> {
    let mut out: Vec<ipnet::IpNet> = service_cidrs
        .values()
        .filter_map(|o| o.spec.as_ref())
        .flat_map(|spec| spec.cidrs.iter().flatten())
        .filter_map(|c| crate::parse_cidr_sloppy(c))
        .filter(|net| family.contains(&net.addr()))
        .collect();
    out.sort();
    out.dedup();
    out
}
