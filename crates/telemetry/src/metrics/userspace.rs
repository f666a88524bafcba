//! Our own `kubeproxy_rs_userspace_*` metrics: the userspace proxy's per-service-port counters, read from the
//! proxy at scrape time through a caller-supplied source (so nothing is stale and a removed service port simply
//! disappears). This module only encodes; it knows nothing of the proxy itself.

use std::fmt;

use kube_proxy_model::IpFamily;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::family_label;

/// One service port's counters at scrape time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserspaceServiceSample {
    pub family: IpFamily,
    /// `namespace/name` or `namespace/name:port` (the port's name).
    pub service: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// TCP connections and UDP flows open now.
    pub active_connections: u64,
    /// TCP connections accepted and UDP flows opened.
    pub accepted: u64,
    /// Payload bytes from clients to backends.
    pub bytes_in: u64,
    /// Payload bytes from backends to clients.
    pub bytes_out: u64,
    /// Backend connection attempts that failed or timed out.
    pub dial_failures: u64,
    /// Clients dropped because no endpoint was usable or every attempt failed.
    pub no_endpoint_drops: u64,
    /// Clients dropped by the per-service connection limit.
    pub over_limit_drops: u64,
    /// Failed dials per endpoint (`ip:port`).
    pub failed_endpoints: Vec<(String, u64)>,
}

type Source = dyn Fn() -> Vec<UserspaceServiceSample> + Send + Sync;

/// A [`Collector`] exposing the samples its source returns on each scrape. Register it once (covering every
/// family) with [`super::Metrics::register_collector`].
pub struct UserspaceCollector {
    source: Box<Source>,
}

impl UserspaceCollector {
    /// A collector calling `source` on every scrape.
    pub fn new(
        source: impl Fn() -> Vec<UserspaceServiceSample> + Send + Sync + 'static,
    ) -> UserspaceCollector {
        UserspaceCollector {
            source: Box::new(source),
        }
    }
}

impl fmt::Debug for UserspaceCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserspaceCollector").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    ip_family: &'static str,
    service: String,
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    ip_family: &'static str,
    service: String,
    protocol: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    ip_family: &'static str,
    service: String,
    protocol: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    ip_family: &'static str,
    service: String,
    protocol: String,
    endpoint: String,
}

const PREFIX: &str = "kube-proxy-rs only, userspace mode: ";

/// Encodes one counter family from `(labels, value)` pairs (nothing when there are none).
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(L, u64)],
) -> Result<(), fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let help = format!("{PREFIX}{help}");
    let mut family = encoder.encode_descriptor(
        name,
        &help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for UserspaceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let samples = (self.source)();
        if samples.is_empty() {
            return Ok(());
        }
        let base = |s: &UserspaceServiceSample| ServiceLabels {
            ip_family: family_label(s.family),
            service: s.service.clone(),
            protocol: s.protocol.clone(),
        };
        {
            let help = format!("{PREFIX}TCP connections and UDP flows open now, by service port");
            let mut family = encoder.encode_descriptor(
                "kubeproxy_rs_userspace_active_connections",
                &help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for s in &samples {
                let gauge =
                    ConstGauge::new(i64::try_from(s.active_connections).unwrap_or(i64::MAX));
                gauge.encode(family.encode_family(&base(s))?)?;
            }
        }
        let simple = |f: fn(&UserspaceServiceSample) -> u64| -> Vec<(ServiceLabels, u64)> {
            samples.iter().map(|s| (base(s), f(s))).collect()
        };
        counters(
            &mut encoder,
            "kubeproxy_rs_userspace_accepted_connections",
            "TCP connections accepted and UDP flows opened, by service port",
            &simple(|s| s.accepted),
        )?;
        let bytes: Vec<_> = samples
            .iter()
            .flat_map(|s| {
                let b = base(s);
                [("in", s.bytes_in), ("out", s.bytes_out)].map(|(direction, v)| {
                    let labels = DirectionLabels {
                        ip_family: b.ip_family,
                        service: b.service.clone(),
                        protocol: b.protocol.clone(),
                        direction,
                    };
                    (labels, v)
                })
            })
            .collect();
        counters(
            &mut encoder,
            "kubeproxy_rs_userspace_bytes",
            "payload bytes relayed, by service port; direction in = client to backend, out = backend to client",
            &bytes,
        )?;
        counters(
            &mut encoder,
            "kubeproxy_rs_userspace_dial_failures",
            "backend connection attempts that failed or timed out, by service port",
            &simple(|s| s.dial_failures),
        )?;
        let drops: Vec<_> = samples
            .iter()
            .flat_map(|s| {
                let b = base(s);
                [
                    ("no_endpoint", s.no_endpoint_drops),
                    ("over_limit", s.over_limit_drops),
                ]
                .map(|(reason, v)| {
                    let labels = ReasonLabels {
                        ip_family: b.ip_family,
                        service: b.service.clone(),
                        protocol: b.protocol.clone(),
                        reason,
                    };
                    (labels, v)
                })
            })
            .collect();
        counters(
            &mut encoder,
            "kubeproxy_rs_userspace_dropped_connections",
            "clients dropped (no usable endpoint, or the per-service connection limit), by service port",
            &drops,
        )?;
        let endpoints: Vec<_> = samples
            .iter()
            .flat_map(|s| {
                let b = base(s);
                s.failed_endpoints.iter().map(move |(endpoint, v)| {
                    let labels = EndpointLabels {
                        ip_family: b.ip_family,
                        service: b.service.clone(),
                        protocol: b.protocol.clone(),
                        endpoint: endpoint.clone(),
                    };
                    (labels, *v)
                })
            })
            .collect();
        counters(
            &mut encoder,
            "kubeproxy_rs_userspace_endpoint_dial_failures",
            "failed connection attempts to one endpoint of a service port",
            &endpoints,
        )
    }
}

#[cfg(test)]
mod tests;
