//! The per-Service memo behind [`build_state_cached`](crate::build_state_cached).
//!
//! An entry remembers the exact `Arc`s of a Service and its EndpointSlices and what they produced. The memo
//! holds those `Arc`s, so pointer equality can never be fooled by a freed and reused address. Any change of the
//! node's name or zone, or of the family, empties it (topology depends on them).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::objects::{ClusterObjects, ObjectKey};
use crate::state::{IpFamily, Rejection, ServicePortName, ServicePortState};

/// What one Service produced at the previous build.
pub(crate) struct Entry {
    service: Arc<Service>,
    slices: Vec<Arc<EndpointSlice>>,
    pub ports: Vec<Arc<ServicePortState>>,
    pub rejections: Vec<Rejection>,
}

/// A memo of per-Service build results; keep one per IP family and pass it to every build.
#[derive(Default)]
pub struct BuildCache {
    context: Option<(IpFamily, String, String)>,
    entries: HashMap<ObjectKey, Entry>,
}

impl BuildCache {
    /// Number of Services remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts a build; forgets everything when the family, node name or zone changed.
    pub(crate) fn begin(&mut self, family: IpFamily, node_name: &str, zone: &str) {
        let context = (family, node_name.to_string(), zone.to_string());
        if self.context.as_ref() != Some(&context) {
            self.entries.clear();
            self.context = Some(context);
        }
    }

    /// The previous result for `key` if the Service and its slices are the same objects as then.
    pub(crate) fn lookup(
        &self,
        key: &ObjectKey,
        service: &Arc<Service>,
        slices: &[&Arc<EndpointSlice>],
    ) -> Option<&Entry> {
        let entry = self.entries.get(key)?;
        let same = Arc::ptr_eq(&entry.service, service)
            && entry.slices.len() == slices.len()
            && entry
                .slices
                .iter()
                .zip(slices)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        same.then_some(entry)
    }

    /// The previous `Arc` of one port of `key`, so an unchanged port keeps it.
    pub(crate) fn previous_port(
        &self,
        key: &ObjectKey,
        port: &ServicePortName,
    ) -> Option<Arc<ServicePortState>> {
        self.entries
            .get(key)?
            .ports
            .iter()
            .find(|p| &p.name == port)
            .cloned()
    }

    /// Remembers what `key` produced.
    pub(crate) fn store(
        &mut self,
        key: &ObjectKey,
        service: &Arc<Service>,
        slices: &[&Arc<EndpointSlice>],
        ports: Vec<Arc<ServicePortState>>,
        rejections: Vec<Rejection>,
    ) {
        self.entries.insert(
            key.clone(),
            Entry {
                service: Arc::clone(service),
                slices: slices.iter().map(|s| Arc::clone(s)).collect(),
                ports,
                rejections,
            },
        );
    }

    /// Ends a build: forgets Services that are gone.
    pub(crate) fn finish(&mut self, objects: &ClusterObjects) {
        if self.entries.len() != objects.services.len() {
            self.entries.retain(|k, _| objects.services.contains_key(k));
        }
    }
}
