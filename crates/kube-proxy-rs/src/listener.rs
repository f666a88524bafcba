//! What happens around each sync: metrics, proxy health, and the health-check node ports of eTP=Local services.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube_proxy_model::IpFamily;

use crate::dataplanes::ServiceCidrs;
use kube_proxy_servers::{NamespacedName, ServersError, ServiceHealthServer};
use kube_proxy_sources::EventRecorder;
use kube_proxy_sync::{DataplaneError, Snapshot, SyncListener, SyncOutcome};
use kube_proxy_telemetry::{Metrics, NodeInfo, ProxyHealth, StatusBoard, SyncKind};
use tokio::sync::mpsc;

/// Health-check node ports and local endpoint counts, per service (merged over families by the task).
#[derive(Clone, Debug, Default)]
struct HealthCheckView {
    ports: BTreeMap<NamespacedName, u16>,
    local_endpoints: BTreeMap<NamespacedName, usize>,
}

/// The binary's [`SyncListener`].
pub struct Listener {
    pub families: Vec<IpFamily>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<ProxyHealth>,
    pub status: Arc<StatusBoard>,
    hc_tx: mpsc::UnboundedSender<(IpFamily, HealthCheckView)>,
    last_node: Mutex<Option<NodeInfo>>,
    /// Change totals at the previous snapshot.
    changes_seen: Mutex<(u64, u64)>,
    service_cidrs: Arc<ServiceCidrs>,
}

impl Listener {
    /// Starts the task that keeps health-check node-port servers in line with the programmed states.
    pub fn new(
        families: Vec<IpFamily>,
        metrics: Arc<Metrics>,
        health: Arc<ProxyHealth>,
        hc_server: Arc<ServiceHealthServer>,
        status: Arc<StatusBoard>,
        events: Option<EventRecorder>,
        service_cidrs: Arc<ServiceCidrs>,
    ) -> Listener {
        let (hc_tx, hc_rx) = mpsc::unbounded_channel();
        tokio::spawn(health_check_task(hc_server, hc_rx, events));
        Listener {
            families,
            metrics,
            health,
            status,
            hc_tx,
            last_node: Mutex::new(None),
            changes_seen: Mutex::new((0, 0)),
            service_cidrs,
        }
    }
}

impl SyncListener for Listener {
    fn snapshot_taken(&self, snapshot: &Snapshot) {
        if let Some(cidrs) = &snapshot.delta.service_cidrs {
            self.service_cidrs.publish(cidrs);
        }
        if let Some(node) = &snapshot.delta.node {
            let info = node.as_deref().map(NodeInfo::from_node);
            let mut last = self.last_node.lock().unwrap_or_else(|e| e.into_inner());
            if *last != info {
                match &info {
                    Some(i) => self.health.sync_node(i),
                    None => self.health.sync_node_removed(),
                }
                *last = info;
            }
        }
        let mut seen = self.changes_seen.lock().unwrap_or_else(|e| e.into_inner());
        let (services, endpoints) = (
            snapshot.service_changes_total,
            snapshot.endpoint_changes_total,
        );
        self.metrics.add_changes(
            services.saturating_sub(seen.0),
            endpoints.saturating_sub(seen.1),
        );
        *seen = (services, endpoints);
        self.metrics.set_pending_changes(0, 0);
    }

    fn queued(&self) {
        for f in &self.families {
            self.health.queued_update(*f);
            self.metrics.set_last_queued_now(*f);
        }
    }

    fn synced(&self, o: &SyncOutcome<'_>) {
        self.health.updated(o.family);
        self.status
            .record_sync(o.family, o.report.full, &o.report.counts, o.current);
        let kind = if o.report.full {
            SyncKind::Full
        } else {
            SyncKind::Partial
        };
        self.metrics.observe_sync(o.family, kind, o.elapsed);
        if let Some(kernel) = o.report.kernel_time {
            self.metrics.observe_kernel_time(o.family, kernel);
        }
        self.metrics.set_last_sync_now(o.family);
        if let Some(latency) = o.programming_latency {
            self.metrics.observe_network_programming(o.family, latency);
        }
        let mut view = HealthCheckView::default();
        for svc in o.current.services.values() {
            let Some(port) = svc.health_check_node_port else {
                continue;
            };
            let name = NamespacedName::new(&*svc.name.namespace, &*svc.name.name);
            view.ports.insert(name.clone(), port);
            *view.local_endpoints.entry(name).or_default() += svc.local_ready_endpoint_count();
        }
        let _ = self.hc_tx.send((o.family, view));
    }

    fn failed(&self, family: IpFamily, error: &DataplaneError, elapsed: Duration) {
        tracing::error!(?family, ?elapsed, "failed to program rules: {error}");
    }
}

/// Merges the families' views (a dual-stack service counts endpoints of both) and applies them.
async fn health_check_task(
    server: Arc<ServiceHealthServer>,
    mut rx: mpsc::UnboundedReceiver<(IpFamily, HealthCheckView)>,
    events: Option<EventRecorder>,
) {
    let mut per_family: BTreeMap<IpFamily, HealthCheckView> = BTreeMap::new();
    while let Some((family, view)) = rx.recv().await {
        per_family.insert(family, view);
        while let Ok((family, view)) = rx.try_recv() {
            per_family.insert(family, view);
        }
        let mut merged = HealthCheckView::default();
        for view in per_family.values() {
            merged.ports.extend(view.ports.clone());
            for (name, n) in &view.local_endpoints {
                *merged.local_endpoints.entry(name.clone()).or_default() += n;
            }
        }
        for err in server.sync_services(&merged.ports).await {
            tracing::error!("health-check node port: {err}");
            if let (
                Some(rec),
                ServersError::BindHealthCheck {
                    service,
                    port,
                    source,
                    ..
                },
            ) = (&events, &err)
            {
                let rec = rec.clone();
                let (service, port, why) = (service.clone(), *port, source.to_string());
                tokio::spawn(async move {
                    let posted = rec
                        .health_check_port_failed(&service.namespace, &service.name, port, &why)
                        .await;
                    if let Err(e) = posted {
                        tracing::warn!("{e}");
                    }
                });
            }
        }
        server.sync_endpoints(&merged.local_endpoints);
    }
}
