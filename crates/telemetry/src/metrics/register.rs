//! Registration of every metric of [`Metrics`] under its exposed name, with our own help texts.
//!
//! Counters are registered without the `_total` suffix prometheus-client appends.

use prometheus_client::registry::Registry;

use super::Metrics;

/// Registers all of `m`'s metrics in `r`.
pub(super) fn register_all(r: &mut Registry, m: &Metrics) {
    let a = "[ALPHA] ";
    r.register(
        "kubeproxy_sync_proxy_rules_duration_seconds",
        format!("{a}Time taken by one sync of the proxy rules, in seconds"),
        m.sync_duration.clone(),
    );
    r.register(
        "kubeproxy_sync_full_proxy_rules_duration_seconds",
        format!("{a}Time taken by one full sync of the proxy rules, in seconds"),
        m.sync_full_duration.clone(),
    );
    r.register(
        "kubeproxy_sync_partial_proxy_rules_duration_seconds",
        format!("{a}Time taken by one partial sync of the proxy rules, in seconds"),
        m.sync_partial_duration.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        format!("{a}Unix time of the last successful proxy rules sync"),
        m.last_sync_timestamp.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
        format!("{a}Unix time at which a proxy rules sync was last requested"),
        m.last_queued_timestamp.clone(),
    );
    r.register(
        "kubeproxy_network_programming_duration_seconds",
        format!("{a}Delay from an object change to the rules that reflect it, in seconds"),
        m.network_programming.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
        format!("{a}Endpoint changes not yet written to the proxy rules"),
        m.endpoint_changes_pending.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_endpoint_changes",
        format!("{a}Endpoint changes seen since start"),
        m.endpoint_changes.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_service_changes_pending",
        format!("{a}Service changes not yet written to the proxy rules"),
        m.service_changes_pending.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_service_changes",
        format!("{a}Service changes seen since start"),
        m.service_changes.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_iptables_total",
        format!("{a}Number of iptables rules kube-proxy owns, per table"),
        m.iptables_rules_total.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_iptables_last",
        format!("{a}Number of iptables rules written by the last sync, per table"),
        m.iptables_rules_last.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_iptables_restore_failures",
        format!("{a}iptables-restore runs that failed"),
        m.iptables_restore_failures.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures",
        format!("{a}Partial iptables-restore runs that failed and fell back to a full sync"),
        m.iptables_partial_restore_failures.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_nftables_sync_failures",
        format!("{a}nftables transactions that failed"),
        m.nftables_sync_failures.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_nftables_cleanup_failures",
        format!("{a}Failed attempts to delete stale nftables objects"),
        m.nftables_cleanup_failures.clone(),
    );
    r.register(
        "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
        format!("{a}Services with a Local traffic policy and no local endpoints"),
        m.no_local_endpoints.clone(),
    );
    r.register(
        "kubeproxy_proxy_healthz",
        format!("{a}Responses of the proxy /healthz endpoint, by HTTP status"),
        m.healthz.clone(),
    );
    r.register(
        "kubeproxy_proxy_livez",
        format!("{a}Responses of the proxy /livez endpoint, by HTTP status"),
        m.livez.clone(),
    );
    r.register(
        "kubeproxy_conntrack_reconciler_sync_duration_seconds",
        format!("{a}Time taken by one conntrack reconciliation, in seconds"),
        m.conntrack_reconcile_duration.clone(),
    );
    r.register(
        "kubeproxy_conntrack_reconciler_deleted_entries",
        format!("{a}Stale conntrack flows deleted by the conntrack reconciler"),
        m.conntrack_deleted_entries.clone(),
    );
    r.register_collector(Box::new(m.nfacct.clone()));
    r.register(
        "kubeproxy_rs_sync_failures",
        "kube-proxy-rs only: proxy rule syncs that failed, by IP family and proxy mode",
        m.rs_sync_failures.clone(),
    );
    r.register(
        "kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds",
        "kube-proxy-rs only: the part of each successful sync spent loading rules into the kernel \
         (iptables-restore from start to exit, an nftables netlink batch from send to its last acknowledgement), \
         by IP family",
        m.rs_kernel_duration.clone(),
    );
}
