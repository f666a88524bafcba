//! The change tracker: the current Service / EndpointSlice / Node objects, whether every kind finished its
//! initial list, and which objects changed since the sync runner last looked. Sources write into it; the sync
//! runner waits on [`ChangeTracker::changed`] and takes an [`ObjectDelta`] of just the changed objects with
//! [`ChangeTracker::take_changes`], so a change costs work in proportion to itself, not to the cluster. It holds
//! no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_proxy_model::{ClusterObjects, CompactSlice, ObjectDelta, ObjectKey};
use tokio::sync::Notify;

/// The label on an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A kind of object a source delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Services,
    EndpointSlices,
    Node,
    /// Optional: watched only where the API serves networking.k8s.io/v1 ServiceCIDRs; never gates readiness.
    ServiceCidrs,
}

impl ObjectKind {
    /// All three kinds, as the API and manifest sources deliver them.
    pub const ALL: [ObjectKind; 3] = [
        ObjectKind::Services,
        ObjectKind::EndpointSlices,
        ObjectKind::Node,
    ];
}

/// One change delivered by a source.
#[derive(Clone, Debug)]
pub enum Change<K> {
    /// Created or updated.
    Apply(K),
    /// Deleted.
    Delete(K),
    /// A complete, fresh list of the kind (an initial list or relist finished); marks the kind synced.
    Replace(Vec<K>),
}

/// Change counters, in the sense of upstream's `kubeproxy_sync_proxy_rules_{service,endpoint}_changes_*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeCounters {
    /// Service changes seen since start.
    pub service_changes_total: u64,
    /// Services with changes not yet taken by a snapshot.
    pub service_changes_pending: u64,
    /// EndpointSlice changes seen since start.
    pub endpoint_changes_total: u64,
    /// Services whose endpoints changed and were not yet taken by a snapshot.
    pub endpoint_changes_pending: u64,
    /// Whether the Node changed since the last snapshot.
    pub node_changed: bool,
    /// When the oldest change not yet taken by a snapshot was queued.
    pub oldest_pending: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    objects: ClusterObjects,
    expected: BTreeSet<ObjectKind>,
    synced: BTreeSet<ObjectKind>,
    service_total: u64,
    endpoint_total: u64,
    pending_services: BTreeSet<ObjectKey>,
    /// Services whose slices changed (for the counters).
    pending_endpoints: BTreeSet<ObjectKey>,
    /// The changed slices themselves.
    pending_slices: BTreeSet<ObjectKey>,
    node_changed: bool,
    service_cidrs_changed: bool,
    oldest_pending: Option<Instant>,
    generation: u64,
}

impl Inner {
    fn queued(&mut self) {
        self.oldest_pending.get_or_insert_with(Instant::now);
        self.generation += 1;
    }

    fn service_changed(&mut self, key: ObjectKey) {
        self.service_total += 1;
        self.pending_services.insert(key);
        self.queued();
    }

    fn slice_changed(&mut self, key: ObjectKey, service: ObjectKey) {
        self.endpoint_total += 1;
        self.pending_endpoints.insert(service);
        self.pending_slices.insert(key);
        self.queued();
    }

    fn set_node(&mut self, node: Option<Arc<Node>>) {
        if self.objects.node != node {
            self.objects.node = node;
            self.node_changed = true;
            self.queued();
        }
    }

    fn counters(&self) -> ChangeCounters {
        ChangeCounters {
            service_changes_total: self.service_total,
            service_changes_pending: self.pending_services.len() as u64,
            endpoint_changes_total: self.endpoint_total,
            endpoint_changes_pending: self.pending_endpoints.len() as u64,
            node_changed: self.node_changed,
            oldest_pending: self.oldest_pending,
        }
    }
}

/// `(namespace, name)` of an object; `None` when it has no name. A missing namespace reads as "default".
pub fn object_key(meta: &ObjectMeta) -> Option<ObjectKey> {
    key_of(meta.namespace.as_deref(), meta.name.as_deref())
}

/// [`object_key`] of an EndpointSlice in its compact form.
pub fn slice_key(slice: &CompactSlice) -> Option<ObjectKey> {
    key_of(slice.namespace.as_deref(), slice.name.as_deref())
}

fn key_of(namespace: Option<&str>, name: Option<&str>) -> Option<ObjectKey> {
    let name = name.filter(|n| !n.is_empty())?;
    let ns = namespace.filter(|n| !n.is_empty()).unwrap_or("default");
    Some((ns.to_string(), name.to_string()))
}

/// `(namespace, service name)` an EndpointSlice belongs to (its own name when the label is missing).
fn service_of_slice(slice: &CompactSlice) -> ObjectKey {
    let (ns, name) = slice_key(slice).unwrap_or_default();
    let svc = slice.service_name.clone().unwrap_or(name);
    (ns, svc)
}

/// Replaces `map` with `items`, calling `changed` for every key added, updated or removed.
fn replace_map<K: PartialEq>(
    map: &mut BTreeMap<ObjectKey, Arc<K>>,
    items: BTreeMap<ObjectKey, Arc<K>>,
    mut changed: impl FnMut(&ObjectKey, &K),
) {
    for (key, old) in map.iter() {
        if !items.contains_key(key) {
            changed(key, old);
        }
    }
    for (key, new) in &items {
        if map.get(key).is_none_or(|old| old != new) {
            changed(key, new);
        }
    }
    *map = items;
}

fn keyed<K>(items: Vec<K>, key: impl Fn(&K) -> Option<ObjectKey>) -> BTreeMap<ObjectKey, Arc<K>> {
    items
        .into_iter()
        .filter_map(|o| key(&o).map(|k| (k, Arc::new(o))))
        .collect()
}

/// Current objects plus readiness and change accounting; `Send + Sync`, shared behind an `Arc`.
pub struct ChangeTracker {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl ChangeTracker {
    /// A tracker that becomes ready once every kind in `kinds_expected` has been synced.
    pub fn new(kinds_expected: &[ObjectKind]) -> Self {
        ChangeTracker {
            inner: Mutex::new(Inner {
                expected: kinds_expected.iter().copied().collect(),
                ..Inner::default()
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps behind; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self, before: u64, inner: &Inner) {
        if inner.generation != before {
            self.notify.notify_one();
        }
    }

    /// Applies a Service change.
    pub fn apply_service(&self, change: Change<Service>) {
        let mut inner = self.lock();
        let before = inner.generation;
        match change {
            Change::Apply(svc) => {
                if let Some(key) = object_key(&svc.metadata) {
                    if inner
                        .objects
                        .services
                        .get(&key)
                        .is_none_or(|old| **old != svc)
                    {
                        inner.objects.services.insert(key.clone(), Arc::new(svc));
                        inner.service_changed(key);
                    }
                }
            }
            Change::Delete(svc) => {
                if let Some(key) = object_key(&svc.metadata) {
                    if inner.objects.services.remove(&key).is_some() {
                        inner.service_changed(key);
                    }
                }
            }
            Change::Replace(list) => {
                let mut map = std::mem::take(&mut inner.objects.services);
                let mut changed = Vec::new();
                replace_map(
                    &mut map,
                    keyed(list, |s| object_key(&s.metadata)),
                    |k, _| changed.push(k.clone()),
                );
                inner.objects.services = map;
                changed.into_iter().for_each(|k| inner.service_changed(k));
                Self::synced(&mut inner, ObjectKind::Services);
            }
        }
        self.wake(before, &inner);
    }

    /// Applies an EndpointSlice change (slices arrive in their compact form).
    pub fn apply_slice(&self, change: Change<CompactSlice>) {
        let mut inner = self.lock();
        let before = inner.generation;
        match change {
            Change::Apply(slice) => {
                if let Some(key) = slice_key(&slice) {
                    if inner
                        .objects
                        .endpoint_slices
                        .get(&key)
                        .is_none_or(|old| **old != slice)
                    {
                        // A slice moved to another Service changes both.
                        if let Some(old) = inner.objects.endpoint_slices.get(&key) {
                            let old_service = service_of_slice(old);
                            if old_service != service_of_slice(&slice) {
                                inner.pending_endpoints.insert(old_service);
                            }
                        }
                        inner.slice_changed(key.clone(), service_of_slice(&slice));
                        inner.objects.endpoint_slices.insert(key, Arc::new(slice));
                    }
                }
            }
            Change::Delete(slice) => {
                if let Some(key) = slice_key(&slice) {
                    if let Some(old) = inner.objects.endpoint_slices.remove(&key) {
                        inner.slice_changed(key, service_of_slice(&old));
                    }
                }
            }
            Change::Replace(list) => {
                let mut map = std::mem::take(&mut inner.objects.endpoint_slices);
                let mut changed = Vec::new();
                replace_map(&mut map, keyed(list, slice_key), |k, s| {
                    changed.push((k.clone(), service_of_slice(s)))
                });
                inner.objects.endpoint_slices = map;
                changed
                    .into_iter()
                    .for_each(|(k, s)| inner.slice_changed(k, s));
                Self::synced(&mut inner, ObjectKind::EndpointSlices);
            }
        }
        self.wake(before, &inner);
    }

    /// Applies a ServiceCIDR change (an optional kind: it never gates readiness).
    pub fn apply_service_cidr(&self, change: Change<ServiceCIDR>) {
        let mut inner = self.lock();
        let before = inner.generation;
        let mut map = inner.objects.service_cidrs.clone();
        match change {
            Change::Apply(o) => {
                if let Some(name) = o.metadata.name.clone() {
                    map.insert(name, Arc::new(o));
                }
            }
            Change::Delete(o) => {
                if let Some(name) = &o.metadata.name {
                    map.remove(name);
                }
            }
            Change::Replace(list) => {
                map = list
                    .into_iter()
                    .filter_map(|o| o.metadata.name.clone().map(|n| (n, Arc::new(o))))
                    .collect();
            }
        }
        if map != inner.objects.service_cidrs {
            inner.objects.service_cidrs = map;
            inner.service_cidrs_changed = true;
            inner.queued();
        }
        self.wake(before, &inner);
    }

    /// Applies a change to this node's Node object (the source only delivers the one node).
    pub fn apply_node(&self, change: Change<Node>) {
        let mut inner = self.lock();
        let before = inner.generation;
        match change {
            Change::Apply(node) => inner.set_node(Some(Arc::new(node))),
            Change::Delete(_) => inner.set_node(None),
            Change::Replace(list) => {
                inner.set_node(list.into_iter().next().map(Arc::new));
                Self::synced(&mut inner, ObjectKind::Node);
            }
        }
        self.wake(before, &inner);
    }

    /// Replaces every kind at once (manifest source) and marks all kinds synced.
    pub fn replace_all(&self, objects: ClusterObjects) {
        let mut inner = self.lock();
        let before = inner.generation;
        let mut services = std::mem::take(&mut inner.objects.services);
        let mut changed_svcs = Vec::new();
        replace_map(&mut services, objects.services, |k, _| {
            changed_svcs.push(k.clone())
        });
        inner.objects.services = services;
        changed_svcs
            .into_iter()
            .for_each(|k| inner.service_changed(k));
        let mut slices = std::mem::take(&mut inner.objects.endpoint_slices);
        let mut changed_slices = Vec::new();
        replace_map(&mut slices, objects.endpoint_slices, |k, s| {
            changed_slices.push((k.clone(), service_of_slice(s)))
        });
        inner.objects.endpoint_slices = slices;
        changed_slices
            .into_iter()
            .for_each(|(k, s)| inner.slice_changed(k, s));
        inner.set_node(objects.node);
        for kind in ObjectKind::ALL {
            Self::synced(&mut inner, kind);
        }
        self.wake(before, &inner);
    }

    fn synced(inner: &mut Inner, kind: ObjectKind) {
        if inner.synced.insert(kind) {
            inner.generation += 1;
        }
    }

    /// Marks a kind as having finished its initial list.
    pub fn mark_synced(&self, kind: ObjectKind) {
        let mut inner = self.lock();
        let before = inner.generation;
        Self::synced(&mut inner, kind);
        self.wake(before, &inner);
    }

    /// Whether every expected kind finished its initial list.
    pub fn is_ready(&self) -> bool {
        let inner = self.lock();
        inner.expected.is_subset(&inner.synced)
    }

    /// Whether one kind finished its initial list.
    pub fn is_synced(&self, kind: ObjectKind) -> bool {
        self.lock().synced.contains(&kind)
    }

    /// The current objects once ready (None before). Leaves the pending changes alone.
    pub fn snapshot(&self) -> Option<ClusterObjects> {
        let inner = self.lock();
        inner
            .expected
            .is_subset(&inner.synced)
            .then(|| inner.objects.clone())
    }

    /// Once ready, the objects that changed since the previous call (every object when `everything`) and
    /// the counters as they were just before this call cleared the pending ones. `None` before ready.
    pub fn take_changes(&self, everything: bool) -> Option<(ObjectDelta, ChangeCounters)> {
        let mut inner = self.lock();
        if !inner.expected.is_subset(&inner.synced) {
            return None;
        }
        let counters = inner.counters();
        let delta = if everything {
            ObjectDelta::everything(&inner.objects)
        } else {
            let objects = &inner.objects;
            ObjectDelta {
                services: inner
                    .pending_services
                    .iter()
                    .map(|k| (k.clone(), objects.services.get(k).cloned()))
                    .collect(),
                endpoint_slices: inner
                    .pending_slices
                    .iter()
                    .map(|k| (k.clone(), objects.endpoint_slices.get(k).cloned()))
                    .collect(),
                node: inner.node_changed.then(|| objects.node.clone()),
                service_cidrs: inner
                    .service_cidrs_changed
                    .then(|| objects.service_cidrs.clone()),
            }
        };
        inner.pending_services.clear();
        inner.pending_endpoints.clear();
        inner.pending_slices.clear();
        inner.node_changed = false;
        inner.service_cidrs_changed = false;
        inner.oldest_pending = None;
        Some((delta, counters))
    }

    /// The current objects without touching the counters, even before ready (for debugging and tests).
    pub fn peek(&self) -> ClusterObjects {
        self.lock().objects.clone()
    }

    /// The change counters.
    pub fn counters(&self) -> ChangeCounters {
        self.lock().counters()
    }

    /// A number that grows with every change or readiness step.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Waits until something changed since the previous wake-up (single consumer: the sync runner).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
