//! Drops the parts of watched API objects that kube-proxy never reads, before they are stored.
//!
//! The proxy keeps every Service and EndpointSlice of the cluster in memory (10,000 Services with 10 endpoints
//! each is ~20,000 objects), so what each object carries matters: managed fields, annotations, owner
//! references, an endpoint's target reference, hostname and zone, and the spare capacity serde leaves in
//! vectors. Only fields the model, health and events never look at are cleared (the model reads labels,
//! specs, load-balancer status; the Node's labels, taints, pod CIDRs, addresses, deletion timestamp and UID).
//! EndpointSlices are not trimmed but converted whole to the model's `CompactSlice`.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// An API object that can shed what the proxy does not use.
pub trait Trim {
    /// Clears unused fields and releases spare capacity.
    fn trim(&mut self);
}

fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    meta.finalizers = None;
}

impl Trim for Service {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        if let Some(status) = &mut self.status {
            status.conditions = None;
        }
    }
}

impl Trim for Node {
    fn trim(&mut self) {
        let uid = self.metadata.uid.take();
        trim_meta(&mut self.metadata);
        self.metadata.uid = uid;
        if let Some(status) = &mut self.status {
            status.images = None;
            status.volumes_attached = None;
            status.volumes_in_use = None;
            status.conditions = None;
        }
    }
}

impl Trim for ServiceCIDR {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_keep_uid_labels_taints_and_addresses() {
        let mut node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "uid": "u-1", "labels": {"topology.kubernetes.io/zone": "z"},
                "annotations": {"a": "b"}},
            "spec": {"podCIDRs": ["10.244.0.0/24"], "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}],
                "images": [{"names": ["img"]}]}
        }))
        .unwrap();
        node.trim();
        assert_eq!(node.metadata.uid.as_deref(), Some("u-1"));
        assert!(node.metadata.labels.is_some() && node.metadata.annotations.is_none());
        assert!(node.spec.as_ref().unwrap().taints.is_some());
        let status = node.status.as_ref().unwrap();
        assert!(status.addresses.is_some() && status.images.is_none());
    }
}
