//! The API objects the model reads, as the sources keep them.
//!
//! Sources (API watch, manifest files) maintain a `ClusterObjects`; the model reads it. Objects are shared
//! behind `Arc` so that snapshots are cheap.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// `(namespace, name)` of a namespaced object.
pub type ObjectKey = (String, String);

/// A consistent snapshot of everything the proxy watches.
#[derive(Clone, Debug, Default)]
pub struct ClusterObjects {
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    /// This node's Node object, when known.
    pub node: Option<Arc<Node>>,
}
