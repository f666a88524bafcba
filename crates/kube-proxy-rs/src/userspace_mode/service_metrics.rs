//! Publishes the userspace proxies' per-service-port counters on /metrics: one collector for every family,
//! reading each proxy's live counters at scrape time (nothing is copied between scrapes).

use std::sync::Arc;

use kube_proxy_model::IpFamily;
use kube_proxy_telemetry::{Metrics, UserspaceCollector, UserspaceServiceSample};
use kube_proxy_userspace::UserspaceProxy;

/// The current counters of every service port `proxy` serves.
fn samples(family: IpFamily, proxy: &UserspaceProxy) -> Vec<UserspaceServiceSample> {
    proxy
        .metrics_snapshot()
        .into_iter()
        .map(|(name, s)| UserspaceServiceSample {
            family,
            service: name.to_string(),
            protocol: name.protocol.as_k8s().to_string(),
            active_connections: s.active_connections,
            accepted: s.accepted_total,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            dial_failures: s.dial_failures,
            no_endpoint_drops: s.no_endpoint_drops,
            over_limit_drops: s.over_limit_drops,
            failed_endpoints: s
                .failed_endpoints
                .into_iter()
                .map(|(addr, n)| (addr.to_string(), n))
                .collect(),
        })
        .collect()
}

/// Registers one collector exposing the `kubeproxy_rs_userspace_*` metrics of `proxies` (call once, with every
/// family's proxy, so each metric has a single descriptor).
pub fn register_service_metrics(metrics: &Metrics, proxies: Vec<(IpFamily, Arc<UserspaceProxy>)>) {
    metrics.register_collector(Box::new(UserspaceCollector::new(move || {
        proxies
            .iter()
            .flat_map(|(family, proxy)| samples(*family, proxy))
            .collect()
    })));
}
