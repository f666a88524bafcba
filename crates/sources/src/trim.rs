//! Drops the parts of watched API objects that kube-proxy never reads, before they are stored.
//!
//! The proxy keeps every Service and EndpointSlice of the cluster in memory (10,000 Services with 10 endpoints
//! each is ~20,000 objects), so what each object carries matters: managed fields, annotations, owner
//! references, an endpoint's target reference, hostname and zone, and the spare capacity serde leaves in
//! vectors. Only fields the model, health and events never look at are cleared (the model reads labels,
//! specs, load-balancer status, an endpoint's first address, conditions, hints and node name; the Node's
//! labels, taints, pod CIDRs, addresses, deletion timestamp and UID).

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
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

impl Trim for EndpointSlice {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        for ep in self.endpoints.iter_mut().flatten() {
            // Only an endpoint's first address is used (as upstream).
            ep.addresses.truncate(1);
            ep.addresses.shrink_to_fit();
            ep.target_ref = None;
            ep.hostname = None;
            ep.zone = None;
            ep.deprecated_topology = None;
        }
        if let Some(eps) = &mut self.endpoints {
            eps.shrink_to_fit();
        }
        if let Some(ports) = &mut self.ports {
            ports.shrink_to_fit();
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
    fn endpoint_slices_keep_what_the_model_reads() {
        let mut slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web-abc",
                "labels": {"kubernetes.io/service-name": "web"},
                "annotations": {"a": "b"},
                "managedFields": [{"manager": "x"}]},
            "addressType": "IPv4",
            "endpoints": [{
                "addresses": ["10.0.0.1", "10.0.0.2"],
                "conditions": {"ready": false, "serving": true, "terminating": true},
                "hints": {"forZones": [{"name": "z1"}]},
                "nodeName": "n1", "zone": "z1", "hostname": "h",
                "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "ns"}
            }],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        slice.trim();
        let ep = &slice.endpoints.as_ref().unwrap()[0];
        assert_eq!(ep.addresses, ["10.0.0.1"]);
        assert_eq!(ep.conditions.as_ref().unwrap().ready, Some(false));
        assert_eq!(ep.conditions.as_ref().unwrap().terminating, Some(true));
        assert!(ep.hints.is_some());
        assert_eq!(ep.node_name.as_deref(), Some("n1"));
        assert!(ep.target_ref.is_none() && ep.zone.is_none() && ep.hostname.is_none());
        assert!(slice.metadata.annotations.is_none() && slice.metadata.managed_fields.is_none());
        assert_eq!(
            slice.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"],
            "web"
        );
        assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080));
    }

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
