//! A compact, model-owned form of a discovery.k8s.io/v1 EndpointSlice.
//!
//! The proxy keeps every EndpointSlice of the cluster (100,000 endpoints at 10,000 Services × 10), and a
//! k8s-openapi `Endpoint` struct alone is ~340 bytes before any string. [`CompactSlice`] keeps only what the
//! model reads (see `endpoints.rs`): the slice's namespace, name, service-name label, address type and ports,
//! and per endpoint its first address, its conditions (defaults applied), its node name and its hints. Sources
//! convert each slice as it arrives, so API structs are never stored; node names are shared between slices
//! through a [`NameInterner`]. Conversion loses nothing the model acts on, including what it rejects: a
//! missing or unparseable address and malformed ports are kept as written.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::{Endpoint as ApiEndpoint, EndpointSlice};

use crate::endpoints::LABEL_SERVICE_NAME;
use crate::parse::parse_ip_sloppy;
use crate::state::EndpointHints;

/// What the model reads of an EndpointSlice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactSlice {
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: Option<String>,
    /// The `kubernetes.io/service-name` label.
    pub service_name: Option<String>,
    /// `addressType`: "IPv4", "IPv6" or "FQDN".
    pub address_type: String,
    /// `ports` (absent reads as none).
    pub ports: Vec<SlicePort>,
    /// `endpoints` (absent reads as none).
    pub endpoints: Vec<SliceEndpoint>,
}

/// One entry of a slice's `ports`, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlicePort {
    pub name: Option<String>,
    pub port: Option<i32>,
    pub protocol: Option<String>,
}

/// One endpoint of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// The first of `addresses` (only the first one counts, as upstream).
    pub address: SliceAddress,
    /// `nodeName`, shared between the slices that name the same node.
    pub node_name: Option<Arc<str>>,
    /// `conditions.ready`, true when unset.
    pub ready: bool,
    /// `conditions.serving`, true when unset.
    pub serving: bool,
    /// `conditions.terminating`, false when unset.
    pub terminating: bool,
    /// `hints`, sorted and deduplicated; `None` when there are none.
    pub hints: Option<Arc<EndpointHints>>,
}

/// An endpoint's first address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SliceAddress {
    /// The endpoint has no address.
    Missing,
    /// An address written canonically (its text is `ip.to_string()`), parsed.
    Ip(IpAddr),
    /// Any other text, as written: the model parses it leniently or rejects it quoting this text.
    Text(Box<str>),
}

impl SliceAddress {
    /// Parses `raw` now when it is written canonically; keeps it as text otherwise.
    pub fn from_text(raw: &str) -> SliceAddress {
        match parse_ip_sloppy(raw) {
            Some(ip) if ip.to_string() == raw => SliceAddress::Ip(ip),
            _ => SliceAddress::Text(raw.into()),
        }
    }
}

/// Shares equal strings (node names) between slices, so 100,000 endpoints on a few hundred nodes hold a few
/// hundred strings. Names no slice uses any more are dropped as the table grows.
#[derive(Debug, Default)]
pub struct NameInterner {
    names: HashSet<Arc<str>>,
    /// Size of the table after the last prune.
    kept: usize,
}

impl NameInterner {
    /// The shared copy of `name`.
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return Arc::clone(shared);
        }
        if self.names.len() >= 2 * self.kept.max(512) {
            self.prune();
        }
        let shared: Arc<str> = name.into();
        self.names.insert(Arc::clone(&shared));
        shared
    }

    /// Drops the names only this table still holds.
    pub fn prune(&mut self) {
        self.names.retain(|n| Arc::strong_count(n) > 1);
        self.kept = self.names.len();
    }

    /// Number of names held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn compact_endpoint(ep: &ApiEndpoint, names: &mut NameInterner) -> SliceEndpoint {
    let cond = ep.conditions.as_ref();
    let hints = ep.hints.as_ref().and_then(|h| {
        EndpointHints::shared(
            h.for_zones.iter().flatten().map(|z| z.name.clone()),
            h.for_nodes.iter().flatten().map(|n| n.name.clone()),
        )
    });
    SliceEndpoint {
        address: ep
            .addresses
            .first()
            .map_or(SliceAddress::Missing, |raw| SliceAddress::from_text(raw)),
        node_name: ep.node_name.as_deref().map(|n| names.intern(n)),
        ready: cond.and_then(|c| c.ready).unwrap_or(true),
        serving: cond.and_then(|c| c.serving).unwrap_or(true),
        terminating: cond.and_then(|c| c.terminating).unwrap_or(false),
        hints,
    }
}

impl CompactSlice {
    /// Converts an API slice, sharing node names through `names`.
    pub fn new(slice: &EndpointSlice, names: &mut NameInterner) -> CompactSlice {
        let meta = &slice.metadata;
        CompactSlice {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            service_name: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SERVICE_NAME).cloned()),
            address_type: slice.address_type.clone(),
            ports: slice
                .ports
                .iter()
                .flatten()
                .map(|p| SlicePort {
                    name: p.name.clone(),
                    port: p.port,
                    protocol: p.protocol.clone(),
                })
                .collect(),
            endpoints: slice
                .endpoints
                .iter()
                .flatten()
                .map(|ep| compact_endpoint(ep, names))
                .collect(),
        }
    }
}

impl From<&EndpointSlice> for CompactSlice {
    /// Converts one slice alone (node names are shared within it only).
    fn from(slice: &EndpointSlice) -> CompactSlice {
        CompactSlice::new(slice, &mut NameInterner::default())
    }
}

impl From<EndpointSlice> for CompactSlice {
    fn from(slice: EndpointSlice) -> CompactSlice {
        CompactSlice::from(&slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_slice(json: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn keeps_what_the_model_reads() {
        let slice = CompactSlice::from(api_slice(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "web-abc",
                "labels": {"kubernetes.io/service-name": "web", "other": "x"},
                "annotations": {"a": "b"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1", "10.0.0.2"],
                 "conditions": {"ready": false, "terminating": true},
                 "hints": {"forZones": [{"name": "z2"}, {"name": "z1"}, {"name": "z2"}]},
                 "nodeName": "n1", "zone": "z1", "hostname": "h"},
                {"addresses": ["010.0.0.3"], "hints": {}},
                {"addresses": []}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 0}]
        })));
        assert_eq!(slice.namespace.as_deref(), Some("ns"));
        assert_eq!(slice.name.as_deref(), Some("web-abc"));
        assert_eq!(slice.service_name.as_deref(), Some("web"));
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(
            slice.ports,
            [
                SlicePort {
                    name: Some("http".into()),
                    port: Some(8080),
                    protocol: Some("TCP".into()),
                },
                SlicePort {
                    port: Some(0),
                    ..Default::default()
                },
            ]
        );
        let [first, second, third] = &slice.endpoints[..] else {
            panic!("three endpoints: {:?}", slice.endpoints);
        };
        assert_eq!(first.address, SliceAddress::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!(
            (first.ready, first.serving, first.terminating),
            (false, true, true)
        );
        assert_eq!(first.node_name.as_deref(), Some("n1"));
        let hints = first.hints.as_deref().unwrap();
        assert_eq!(
            (&hints.zones[..], hints.nodes.is_empty()),
            (&["z1".to_string(), "z2".to_string()][..], true)
        );
        // Non-canonical text is kept as written (the model parses it leniently); empty hints read as none.
        assert_eq!(second.address, SliceAddress::Text("010.0.0.3".into()));
        assert_eq!(
            (second.ready, second.serving, second.terminating),
            (true, true, false)
        );
        assert!(second.hints.is_none() && second.node_name.is_none());
        assert_eq!(third.address, SliceAddress::Missing);
    }

    #[test]
    fn mapped_and_odd_addresses_stay_text() {
        for raw in ["::ffff:10.0.0.1", "10.0.0.1 ", "not-an-ip", "FD00::1"] {
            assert_eq!(
                SliceAddress::from_text(raw),
                SliceAddress::Text(raw.into()),
                "{raw}"
            );
        }
        assert_eq!(
            SliceAddress::from_text("fd00::1"),
            SliceAddress::Ip("fd00::1".parse().unwrap())
        );
    }

    #[test]
    fn node_names_are_shared_and_pruned() {
        let mut names = NameInterner::default();
        let a = names.intern("node-1");
        let b = names.intern("node-1");
        assert!(Arc::ptr_eq(&a, &b));
        drop(names.intern("gone"));
        assert_eq!(names.len(), 2);
        names.prune();
        assert_eq!(names.len(), 1);
        assert!(Arc::ptr_eq(&a, &names.intern("node-1")));
    }
}
