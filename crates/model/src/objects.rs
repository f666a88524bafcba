//! The API objects the model reads, as the sources keep them.
//!
//! Sources (API watch, manifest files) maintain a `ClusterObjects`; the model reads it. Objects are shared
//! behind `Arc` so that snapshots are cheap.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

/// `(namespace, name)` of a namespaced object.
pub type ObjectKey = (String, String);

/// A consistent snapshot of everything the proxy watches.
#[derive(Clone, Debug, Default)]
pub struct ClusterObjects {
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    /// This node's Node object, when known.
    pub node: Option<Arc<Node>>,
    /// networking.k8s.io/v1 ServiceCIDR objects by name (empty when the API does not serve them).
    pub service_cidrs: BTreeMap<String, Arc<ServiceCIDR>>,
}

impl ClusterObjects {
    /// The service IP ranges of `family` declared by ServiceCIDR objects (`spec.cidrs`), sorted and
    /// deduplicated; unparseable entries are skipped.
    pub fn service_cidr_ranges(&self, family: crate::IpFamily) -> Vec<ipnet::IpNet> {
        let mut out: Vec<ipnet::IpNet> = self
            .service_cidrs
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
}
