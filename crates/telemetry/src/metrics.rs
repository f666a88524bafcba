//! [`Metrics`]: kube-proxy's Prometheus metrics with upstream's exposed names, types, labels and buckets
//! (pkg/proxy/metrics, Kubernetes 1.33+, where most sync metrics carry an `ip_family` label), plus our own
//! `kubeproxy_rs_*` extras (sync failures by mode, the kernel-loading part of each sync). Covered: sync durations (all/full/partial), last sync and last queued timestamps,
//! network programming latency, pending/total service and endpoint changes, iptables rule counts and
//! restore failures, nftables sync/cleanup failures, no-local-endpoints gauges, healthz/livez response counts,
//! conntrack reconciler duration and deletions, and the iptables nfacct packet counters. Collectors added
//! later ([`Metrics::register_collector`], e.g. the userspace proxy's per-service [`UserspaceCollector`]) are
//! read on every scrape.
//!
//! prometheus-client appends `_total` to counter names, so counters are registered without that suffix and
//! the exposed sample names equal upstream's. Gauges whose upstream name ends in `_total` keep it. This module
//! only records and encodes; serving is `kube-proxy-servers`' job.

mod nfacct;
mod register;
mod text;
mod userspace;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube_proxy_model::IpFamily;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::TelemetryError;

pub use text::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE};
pub use userspace::{UserspaceCollector, UserspaceServiceSample};

/// Whether a sync rewrote everything or only what changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Partial,
}

/// The traffic policy a "no local endpoints" count refers to (upstream label values `internal`/`external`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficPolicy {
    Internal,
    External,
}

impl TrafficPolicy {
    fn label(self) -> &'static str {
        match self {
            TrafficPolicy::Internal => "internal",
            TrafficPolicy::External => "external",
        }
    }
}

/// Upstream's `ip_family` label value: the Kubernetes `IPFamily` spelling, `IPv4` or `IPv6`.
pub fn family_label(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    ip_family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    ip_family: &'static str,
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    ip_family: &'static str,
    traffic_policy: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    ip_family: &'static str,
    mode: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<FamilyLabels, Histogram, fn() -> Histogram>;

/// Buckets of the sync duration histograms: 1 ms doubling 15 times (upstream's exponential buckets).
fn sync_duration_histogram() -> Histogram {
    Histogram::new((0..15).map(|i| 0.001 * f64::from(1u32 << i)))
}

/// Buckets of the network programming histogram: 0, 0.25 s, 0.5 s, every second to 59 s, every 5 s to 115 s,
/// every 30 s to 5 min — the same boundaries upstream uses (including its leading 0 bucket).
fn network_programming_buckets() -> Vec<f64> {
    let mut b = vec![0.0, 0.25, 0.5];
    b.extend((1..=59).map(f64::from));
    b.extend((0..12).map(|i| 60.0 + 5.0 * f64::from(i)));
    b.extend((0..7).map(|i| 120.0 + 30.0 * f64::from(i)));
    b
}

fn network_programming_histogram() -> Histogram {
    Histogram::new(network_programming_buckets())
}

/// All of kube-proxy's metrics in one registry. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    sync_duration: HistogramFamily,
    sync_full_duration: HistogramFamily,
    sync_partial_duration: HistogramFamily,
    last_sync_timestamp: Family<FamilyLabels, F64Gauge>,
    last_queued_timestamp: Family<FamilyLabels, F64Gauge>,
    network_programming: HistogramFamily,
    endpoint_changes_pending: Gauge,
    endpoint_changes: Counter,
    service_changes_pending: Gauge,
    service_changes: Counter,
    iptables_rules_total: Family<TableLabels, Gauge>,
    iptables_rules_last: Family<TableLabels, Gauge>,
    iptables_restore_failures: Family<FamilyLabels, Counter>,
    iptables_partial_restore_failures: Family<FamilyLabels, Counter>,
    nftables_sync_failures: Family<FamilyLabels, Counter>,
    nftables_cleanup_failures: Family<FamilyLabels, Counter>,
    no_local_endpoints: Family<PolicyLabels, Gauge>,
    healthz: Family<CodeLabels, Counter>,
    livez: Family<CodeLabels, Counter>,
    conntrack_reconcile_duration: HistogramFamily,
    conntrack_deleted_entries: Family<FamilyLabels, Counter>,
    nfacct: Arc<nfacct::NfacctPackets>,
    rs_sync_failures: Family<ModeLabels, Counter>,
    rs_kernel_duration: HistogramFamily,
    added: AddedCollectors,
}

/// Collectors added after construction, each in its own registry (the main one is fixed once built, and a
/// collector cannot hand its encoder on to others), encoded after the main registry.
#[derive(Debug, Default)]
struct AddedCollectors(RwLock<Vec<Registry>>);

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every metric registered (and so exposed, even before the first observation).
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let hist = |ctor: fn() -> Histogram| HistogramFamily::new_with_constructor(ctor);
        let m = Metrics {
            sync_duration: hist(sync_duration_histogram),
            sync_full_duration: hist(sync_duration_histogram),
            sync_partial_duration: hist(sync_duration_histogram),
            last_sync_timestamp: Family::default(),
            last_queued_timestamp: Family::default(),
            network_programming: hist(network_programming_histogram),
            endpoint_changes_pending: Gauge::default(),
            endpoint_changes: Counter::default(),
            service_changes_pending: Gauge::default(),
            service_changes: Counter::default(),
            iptables_rules_total: Family::default(),
            iptables_rules_last: Family::default(),
            iptables_restore_failures: Family::default(),
            iptables_partial_restore_failures: Family::default(),
            nftables_sync_failures: Family::default(),
            nftables_cleanup_failures: Family::default(),
            no_local_endpoints: Family::default(),
            healthz: Family::default(),
            livez: Family::default(),
            conntrack_reconcile_duration: hist(sync_duration_histogram),
            conntrack_deleted_entries: Family::default(),
            nfacct: Arc::default(),
            rs_sync_failures: Family::default(),
            rs_kernel_duration: hist(sync_duration_histogram),
            added: AddedCollectors::default(),
            registry: Registry::default(),
        };
        register::register_all(&mut registry, &m);
        Metrics { registry, ..m }
    }

    /// Records one successful sync of `family` that took `duration`.
    pub fn observe_sync(&self, family: IpFamily, kind: SyncKind, duration: Duration) {
        let l = fam(family);
        let secs = duration.as_secs_f64();
        self.sync_duration.get_or_create(&l).observe(secs);
        match kind {
            SyncKind::Full => self.sync_full_duration.get_or_create(&l).observe(secs),
            SyncKind::Partial => self.sync_partial_duration.get_or_create(&l).observe(secs),
        }
    }

    /// Records how long the kernel-loading step of one successful sync took (`iptables-restore`, the nftables
    /// batch): with the sync's own duration, the proxy's overhead over the bare tool for the same input.
    pub fn observe_kernel_time(&self, family: IpFamily, duration: Duration) {
        self.rs_kernel_duration
            .get_or_create(&fam(family))
            .observe(duration.as_secs_f64());
    }

    /// Sets the last successful sync time of `family` to now.
    pub fn set_last_sync_now(&self, family: IpFamily) {
        self.set_last_sync_at(family, SystemTime::now());
    }

    /// Sets the last successful sync time of `family`.
    pub fn set_last_sync_at(&self, family: IpFamily, at: SystemTime) {
        self.last_sync_timestamp
            .get_or_create(&fam(family))
            .set(unix_seconds(at));
    }

    /// Sets the time a sync of `family` was last requested to now.
    pub fn set_last_queued_now(&self, family: IpFamily) {
        self.set_last_queued_at(family, SystemTime::now());
    }

    /// Sets the time a sync of `family` was last requested.
    pub fn set_last_queued_at(&self, family: IpFamily, at: SystemTime) {
        self.last_queued_timestamp
            .get_or_create(&fam(family))
            .set(unix_seconds(at));
    }

    /// Records the delay between an object change (e.g. an EndpointSlice's last-change-trigger-time) and the
    /// sync that programmed it.
    pub fn observe_network_programming(&self, family: IpFamily, latency: Duration) {
        self.network_programming
            .get_or_create(&fam(family))
            .observe(latency.as_secs_f64());
    }

    /// Sets the number of service and endpoint changes waiting for a sync.
    pub fn set_pending_changes(&self, services: usize, endpoints: usize) {
        self.service_changes_pending
            .set(saturating_i64(services as u64));
        self.endpoint_changes_pending
            .set(saturating_i64(endpoints as u64));
    }

    /// Counts newly seen service and endpoint changes.
    pub fn add_changes(&self, services: u64, endpoints: u64) {
        self.service_changes.inc_by(services);
        self.endpoint_changes.inc_by(endpoints);
    }

    /// Sets how many rules kube-proxy owns in iptables table `table` (`filter`, `nat`, ...) for `family`.
    pub fn set_iptables_rule_counts(&self, family: IpFamily, table: &str, rules: u64) {
        self.iptables_rules_total
            .get_or_create(&table_labels(family, table))
            .set(saturating_i64(rules));
    }

    /// Sets how many rules of `table` the last iptables-restore wrote for `family`.
    pub fn set_iptables_rules_last(&self, family: IpFamily, table: &str, rules: u64) {
        self.iptables_rules_last
            .get_or_create(&table_labels(family, table))
            .set(saturating_i64(rules));
    }

    /// Counts a failed iptables-restore; `partial` marks a failed partial restore (followed by a full one).
    pub fn inc_restore_failure(&self, family: IpFamily, partial: bool) {
        let counter = if partial {
            &self.iptables_partial_restore_failures
        } else {
            &self.iptables_restore_failures
        };
        counter.get_or_create(&fam(family)).inc();
    }

    /// Counts a failed nftables transaction.
    pub fn inc_nftables_sync_failure(&self, family: IpFamily) {
        self.nftables_sync_failures
            .get_or_create(&fam(family))
            .inc();
    }

    /// Counts a failed cleanup of stale nftables chains/sets.
    pub fn inc_nftables_cleanup_failure(&self, family: IpFamily) {
        self.nftables_cleanup_failures
            .get_or_create(&fam(family))
            .inc();
    }

    /// Sets how many services with a Local `policy` have no local endpoints.
    pub fn set_no_local_endpoints(&self, family: IpFamily, policy: TrafficPolicy, services: u64) {
        let l = PolicyLabels {
            ip_family: family_label(family),
            traffic_policy: policy.label(),
        };
        self.no_local_endpoints
            .get_or_create(&l)
            .set(saturating_i64(services));
    }

    /// Counts one /healthz response with HTTP status `code`.
    pub fn inc_healthz(&self, code: u16) {
        self.healthz
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }

    /// Counts one /livez response with HTTP status `code`.
    pub fn inc_livez(&self, code: u16) {
        self.livez
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
    }

    /// Records one conntrack reconciliation of `family`: how long it took and how many stale flows it deleted.
    pub fn observe_conntrack_reconcile(&self, family: IpFamily, duration: Duration, deleted: u64) {
        let l = fam(family);
        self.conntrack_reconcile_duration
            .get_or_create(&l)
            .observe(duration.as_secs_f64());
        self.conntrack_deleted_entries
            .get_or_create(&l)
            .inc_by(deleted);
    }

    /// Sets the packet counts of the iptables mode's nfacct counters, as read from the kernel. `None` (counter
    /// missing or unreadable) exposes nothing for that metric, like upstream's custom collectors.
    pub fn set_iptables_nfacct_packets(
        &self,
        ct_state_invalid_dropped: Option<u64>,
        localhost_nodeports_accepted: Option<u64>,
    ) {
        self.nfacct
            .set(ct_state_invalid_dropped, localhost_nodeports_accepted);
    }

    /// Counts a failed sync of `family` in proxy mode `mode` (`iptables`, `nftables`, ...). Ours, not upstream's.
    pub fn inc_sync_failure(&self, family: IpFamily, mode: &str) {
        let l = ModeLabels {
            ip_family: family_label(family),
            mode: mode.to_string(),
        };
        self.rs_sync_failures.get_or_create(&l).inc();
    }

    /// Adds a collector whose output is read on every scrape (e.g. [`UserspaceCollector`]). Its metric names must
    /// not clash with any other's.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        let mut registry = Registry::default();
        registry.register_collector(collector);
        self.added
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(registry);
    }

    /// The registry as OpenMetrics text (ends with `# EOF`), served with [`OPENMETRICS_CONTENT_TYPE`].
    pub fn encode_openmetrics(&self) -> Result<String, TelemetryError> {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        for r in self
            .added
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            encode_registry(&mut out, r)?;
        }
        encode_eof(&mut out)?;
        Ok(out)
    }

    /// The registry in the classic Prometheus text format 0.0.4 (what Go's client serves by default), served
    /// with [`PROMETHEUS_TEXT_CONTENT_TYPE`]: counters' HELP/TYPE lines carry the `_total` name, no `# EOF`.
    pub fn encode_prometheus_text(&self) -> Result<String, TelemetryError> {
        Ok(text::openmetrics_to_prometheus(&self.encode_openmetrics()?))
    }

    /// The underlying registry, for callers that want to add their own collectors' output (without the
    /// collectors added by [`Metrics::register_collector`]).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

fn fam(family: IpFamily) -> FamilyLabels {
    FamilyLabels {
        ip_family: family_label(family),
    }
}

fn table_labels(family: IpFamily, table: &str) -> TableLabels {
    TableLabels {
        ip_family: family_label(family),
        table: table.to_string(),
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
