//! The iptables dataplane as the sync runner drives it: program one family, then reconcile UDP conntrack entries.

use std::sync::Arc;

use kube_proxy_conntrack::{cleanup_required, ConntrackOps};
use kube_proxy_iptables::{IptablesDataplane, SyncKind};
use kube_proxy_model::{IpFamily, ProxyState};
use kube_proxy_sync::{Dataplane, DataplaneError, SyncReport};
use kube_proxy_telemetry::Metrics;

/// One family's iptables proxier plus the conntrack cleanup that follows each successful sync.
pub struct IptablesMode {
    pub iptables: IptablesDataplane,
    pub conntrack: Option<Arc<dyn ConntrackOps>>,
    pub metrics: Arc<Metrics>,
    /// The state of the last sync whose conntrack cleanup succeeded.
    reconciled: Option<Arc<ProxyState>>,
}

impl IptablesMode {
    pub fn new(
        iptables: IptablesDataplane,
        conntrack: Option<Arc<dyn ConntrackOps>>,
        metrics: Arc<Metrics>,
    ) -> IptablesMode {
        IptablesMode {
            iptables,
            conntrack,
            metrics,
            reconciled: None,
        }
    }

    fn reconcile_conntrack(&mut self, state: &Arc<ProxyState>) {
        let Some(ops) = &self.conntrack else { return };
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
        let partial = !force_full && self.iptables.last_applied().is_some();
        let report = match self.iptables.sync(state, force_full) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.inc_restore_failure(family, partial);
                self.metrics.inc_sync_failure(family, "iptables");
                return Err(Box::new(e));
            }
        };
        self.metrics
            .set_iptables_rule_counts(family, "filter", report.filter_rules_total as u64);
        self.metrics
            .set_iptables_rule_counts(family, "nat", report.nat_rules_total as u64);
        self.metrics
            .set_iptables_rules_last(family, "filter", report.filter_rules as u64);
        self.metrics
            .set_iptables_rules_last(family, "nat", report.nat_rules as u64);
        self.metrics.set_no_local_endpoints(
            family,
            kube_proxy_telemetry::TrafficPolicy::Internal,
            report.no_local_endpoints_internal as u64,
        );
        self.metrics.set_no_local_endpoints(
            family,
            kube_proxy_telemetry::TrafficPolicy::External,
            report.no_local_endpoints_external as u64,
        );
        self.reconcile_conntrack(state);
        Ok(SyncReport {
            full: report.kind == SyncKind::Full,
            counts: vec![
                ("filter".into(), report.filter_rules_total as u64),
                ("nat".into(), report.nat_rules_total as u64),
            ],
        })
    }
}
