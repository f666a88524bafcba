//! The modes as the sync runner drives them: program one family, then reconcile UDP conntrack entries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube_proxy_conntrack::{cleanup_required, ConntrackOps};
use kube_proxy_iptables::IptablesDataplane;
use kube_proxy_model::{service_cidr_ranges, IpFamily, ProxyState};
use kube_proxy_nftables::NftablesDataplane;
use kube_proxy_sync::{Dataplane, DataplaneError, SyncReport};
use kube_proxy_telemetry::{Metrics, TrafficPolicy};

/// Deletes stale UDP conntrack entries after successful syncs, when endpoints of UDP services changed.
pub struct ConntrackReconciler {
    ops: Option<Arc<dyn ConntrackOps>>,
    metrics: Arc<Metrics>,
    /// The state of the last sync whose cleanup succeeded.
    reconciled: Option<Arc<ProxyState>>,
}

impl ConntrackReconciler {
    pub fn new(ops: Option<Arc<dyn ConntrackOps>>, metrics: Arc<Metrics>) -> ConntrackReconciler {
        ConntrackReconciler {
            ops,
            metrics,
            reconciled: None,
        }
    }

    /// Call after the rules for `state` are in place (or new entries would be stale too).
    fn after_sync(&mut self, state: &Arc<ProxyState>) {
        let Some(ops) = &self.ops else { return };
        let needed = match &self.reconciled {
            None => true,
            Some(prev) => cleanup_required(prev, state),
        };
        if !needed {
            return;
        }
        let began = std::time::Instant::now();
        match kube_proxy_conntrack::reconcile(ops.as_ref(), state) {
            Ok(outcome) => {
                self.metrics.observe_conntrack_reconcile(
                    state.family,
                    began.elapsed(),
                    outcome.deleted as u64,
                );
                self.reconciled = Some(state.clone());
            }
            // Stale UDP flows only misroute datagrams until they time out; retry after the next sync.
            Err(e) => tracing::warn!(family = ?state.family, "conntrack cleanup failed: {e}"),
        }
    }

    fn record_no_local(&self, family: IpFamily, internal: usize, external: usize) {
        self.metrics
            .set_no_local_endpoints(family, TrafficPolicy::Internal, internal as u64);
        self.metrics
            .set_no_local_endpoints(family, TrafficPolicy::External, external as u64);
    }
}

/// One family's iptables proxier.
pub struct IptablesMode {
    pub iptables: IptablesDataplane,
    pub conntrack: ConntrackReconciler,
}

impl Dataplane for IptablesMode {
    fn family(&self) -> IpFamily {
        self.iptables.family()
    }

    fn sync(
        &mut self,
        state: &Arc<ProxyState>,
        force_full: bool,
    ) -> Result<SyncReport, DataplaneError> {
        let family = self.family();
        let metrics = self.conntrack.metrics.clone();
        let partial = !force_full && self.iptables.last_applied().is_some();
        let report = match self.iptables.sync(state, force_full) {
            Ok(r) => r,
            Err(e) => {
                metrics.inc_restore_failure(family, partial);
                metrics.inc_sync_failure(family, "iptables");
                return Err(Box::new(e));
            }
        };
        for (table, total, last) in [
            ("filter", report.filter_rules_total, report.filter_rules),
            ("nat", report.nat_rules_total, report.nat_rules),
        ] {
            metrics.set_iptables_rule_counts(family, table, total as u64);
            metrics.set_iptables_rules_last(family, table, last as u64);
        }
        self.conntrack.record_no_local(
            family,
            report.no_local_endpoints_internal,
            report.no_local_endpoints_external,
        );
        self.conntrack.after_sync(state);
        Ok(SyncReport {
            full: report.kind == kube_proxy_iptables::SyncKind::Full,
            counts: vec![
                ("filter".into(), report.filter_rules_total as u64),
                ("nat".into(), report.nat_rules_total as u64),
            ],
            kernel_time: Some(report.restore_time),
        })
    }
}

/// The service IP ranges declared by ServiceCIDR objects, as of the latest snapshot (both families).
#[derive(Debug, Default)]
pub struct ServiceCidrs(Mutex<Vec<IpNet>>);

impl ServiceCidrs {
    /// Records the ranges the ServiceCIDR objects declare (called before a sync when they changed).
    pub fn publish(&self, objects: &BTreeMap<String, Arc<ServiceCIDR>>) {
        let mut ranges = service_cidr_ranges(objects, IpFamily::V4);
        ranges.extend(service_cidr_ranges(objects, IpFamily::V6));
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = ranges;
    }

    /// The ranges of `family`; empty when no ServiceCIDR object declares any.
    pub fn of(&self, family: IpFamily) -> Vec<IpNet> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .filter(|n| family.contains(&n.addr()))
            .copied()
            .collect()
    }
}

/// One family's nftables proxier.
pub struct NftablesMode {
    pub family: IpFamily,
    pub nftables: NftablesDataplane,
    pub conntrack: ConntrackReconciler,
    /// The configuration with `--service-cluster-ip-range`, used when no ServiceCIDR object exists.
    pub base_config: kube_proxy_nftables::RenderConfig,
    pub service_cidrs: Arc<ServiceCidrs>,
}

impl Dataplane for NftablesMode {
    fn family(&self) -> IpFamily {
        self.family
    }

    fn sync(
        &mut self,
        state: &Arc<ProxyState>,
        force_full: bool,
    ) -> Result<SyncReport, DataplaneError> {
        // ServiceCIDR objects, when the API serves any, take precedence over --service-cluster-ip-range.
        let from_objects = self.service_cidrs.of(self.family);
        let mut cfg = self.base_config.clone();
        if !from_objects.is_empty() {
            cfg.service_cidrs = from_objects;
        }
        self.nftables.set_config(cfg);
        let report = match self.nftables.sync(state, force_full) {
            Ok(r) => r,
            Err(e) => {
                self.conntrack
                    .metrics
                    .inc_nftables_sync_failure(self.family);
                self.conntrack
                    .metrics
                    .inc_sync_failure(self.family, "nftables");
                return Err(Box::new(e));
            }
        };
        let (internal, external) = report.no_local_endpoints;
        self.conntrack
            .record_no_local(self.family, internal, external);
        self.conntrack.after_sync(state);
        Ok(SyncReport {
            full: report.kind == kube_proxy_nftables::SyncKind::Full,
            counts: vec![
                ("messages".into(), report.messages as u64),
                ("bytes".into(), report.bytes as u64),
            ],
            kernel_time: report.kernel_time,
        })
    }
}

/// One family's IPVS proxier.
pub struct IpvsMode {
    pub family: IpFamily,
    pub ipvs: kube_proxy_ipvs::IpvsDataplane,
    pub conntrack: ConntrackReconciler,
}

impl Dataplane for IpvsMode {
    fn family(&self) -> IpFamily {
        self.family
    }

    fn sync(
        &mut self,
        state: &Arc<ProxyState>,
        _force_full: bool,
    ) -> Result<SyncReport, DataplaneError> {
        // Every IPVS sync diffs the kernel's table against the desired state, so it is always "full".
        if let Err(e) = self.ipvs.sync(state) {
            self.conntrack.metrics.inc_sync_failure(self.family, "ipvs");
            return Err(Box::new(e));
        }
        self.conntrack.after_sync(state);
        Ok(SyncReport {
            full: true,
            counts: self.ipvs.counts(),
            kernel_time: None,
        })
    }
}
