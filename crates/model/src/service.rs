//! Reads one Service into the per-port, per-family base of [`ServicePortState`] (everything but endpoints).
//!
//! Follows upstream's service change tracker and `newBaseServiceInfo`: skipped Services (headless, ExternalName,
//! proxy-name/headless labels) produce nothing; invalid parts become [`Rejection`]s and are left out.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};

use crate::parse::{parse_cidr_sloppy, parse_ip_sloppy};
use crate::state::{
    IpFamily, Protocol, Rejection, RejectionKind, ServicePortName, ServicePortState,
};

/// Services with this label belong to another proxy.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Services with this label are headless from the proxy's point of view.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Upstream's default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10_800;
const MAX_AFFINITY_TIMEOUT_SECONDS: i32 = 86_400;

/// Collects rejections for one object; the object's name is only formatted when something is rejected.
pub(crate) struct Rejector<'r> {
    /// `Service`, `EndpointSlice`, `Node`.
    pub kind: &'static str,
    pub namespace: &'r str,
    pub name: &'r str,
    pub out: &'r mut Vec<Rejection>,
}

impl Rejector<'_> {
    pub fn reject(&mut self, kind: RejectionKind) {
        let object = if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        };
        // Debug only: builds repeat every sync, so the caller logs (and deduplicates) the returned rejections.
        tracing::debug!(%object, reason = ?kind, "ignoring invalid part of object");
        self.out.push(Rejection { object, kind });
    }
}

fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    }
}

/// Whether the proxy ignores this Service entirely (no rejection).
pub(crate) fn should_skip(svc: &Service) -> bool {
    if let Some(labels) = &svc.metadata.labels {
        if labels.contains_key(LABEL_SERVICE_PROXY_NAME) || labels.contains_key(LABEL_HEADLESS) {
            return true;
        }
    }
    let Some(spec) = &svc.spec else { return true };
    let primary = match spec.cluster_ip.as_deref() {
        Some(ip) if !ip.is_empty() => ip,
        _ => spec
            .cluster_ips
            .as_ref()
            .and_then(|v| v.first())
            .map_or("", String::as_str),
    };
    primary.is_empty() || primary == "None" || spec.type_.as_deref() == Some("ExternalName")
}

/// The ClusterIP of `family` (upstream's `GetClusterIPByFamily`, tolerant of manifests lacking `clusterIPs`).
/// `Err` when the address meant for this family does not parse; `Ok(None)` when the service has none.
fn cluster_ip(spec: &ServiceSpec, family: IpFamily) -> Result<Option<IpAddr>, String> {
    let cluster_ips: Vec<&str> = match &spec.cluster_ips {
        Some(v) if !v.is_empty() => v.iter().map(String::as_str).collect(),
        _ => spec.cluster_ip.as_deref().into_iter().collect(),
    };
    if let Some(families) = spec.ip_families.as_ref().filter(|f| !f.is_empty()) {
        let Some(idx) = families.iter().position(|f| f == family_name(family)) else {
            return Ok(None);
        };
        let Some(raw) = cluster_ips.get(idx) else {
            return Ok(None);
        };
        return match parse_ip_sloppy(raw) {
            Some(ip) if family.contains(&ip) => Ok(Some(ip)),
            _ => Err((*raw).to_string()),
        };
    }
    let mut bad = None;
    for raw in cluster_ips {
        match parse_ip_sloppy(raw) {
            Some(ip) if family.contains(&ip) => return Ok(Some(ip)),
            Some(_) => {}
            None => bad = bad.or(Some(raw)),
        }
    }
    bad.map_or(Ok(None), |raw| Err(raw.to_string()))
}

/// `true` when the service can receive traffic other than to its ClusterIP (upstream's
/// `apiservice.ExternallyAccessible`); an unset type is the API default, ClusterIP.
fn externally_accessible(spec: &ServiceSpec) -> bool {
    match spec.type_.as_deref().unwrap_or("ClusterIP") {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => spec.external_ips.as_ref().is_some_and(|v| !v.is_empty()),
        _ => false,
    }
}

fn port_u16(value: i32) -> Option<u16> {
    u16::try_from(value).ok().filter(|p| *p != 0)
}

/// The per-family values shared by every port of the service.
struct Shared {
    cluster_ip: IpAddr,
    external_ips: Vec<IpAddr>,
    load_balancer_ips: Vec<IpAddr>,
    source_ranges: Vec<IpNet>,
    external_policy_local: bool,
    internal_policy_local: bool,
    health_check_node_port: Option<u16>,
    session_affinity_timeout: Option<u32>,
}

fn sorted_dedup<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

fn shared(
    svc: &Service,
    spec: &ServiceSpec,
    family: IpFamily,
    rej: &mut Rejector<'_>,
) -> Option<Shared> {
    let cluster_ip = match cluster_ip(spec, family) {
        Ok(Some(ip)) => ip,
        Ok(None) => return None,
        Err(raw) => {
            rej.reject(RejectionKind::InvalidClusterIp(raw));
            return None;
        }
    };

    let mut external_ips = Vec::new();
    for raw in spec.external_ips.iter().flatten() {
        match parse_ip_sloppy(raw) {
            Some(ip) if family.contains(&ip) => external_ips.push(ip),
            Some(_) => {}
            None if raw.trim().is_empty() => {}
            None => rej.reject(RejectionKind::InvalidExternalIp(raw.clone())),
        }
    }

    let mut load_balancer_ips = Vec::new();
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    for ing in ingress.into_iter().flatten() {
        let Some(raw) = ing.ip.as_deref().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        // Only VIP-mode ingress (unset ipMode means VIP) is programmed; Proxy-mode load balancers do their own.
        if ing.ip_mode.as_deref().is_some_and(|m| m != "VIP") {
            continue;
        }
        match parse_ip_sloppy(raw) {
            Some(ip) if family.contains(&ip) => load_balancer_ips.push(ip),
            Some(_) => {}
            None => rej.reject(RejectionKind::InvalidLoadBalancerIp(raw.to_string())),
        }
    }

    // Upstream reads only the field (the annotation is for cloud providers) and trims whitespace that validation
    // lets through. Invalid entries are dropped, as upstream does.
    let mut source_ranges = Vec::new();
    for raw in spec.load_balancer_source_ranges.iter().flatten() {
        match parse_cidr_sloppy(raw.trim()) {
            Some(net) if family.contains(&net.addr()) => source_ranges.push(net),
            Some(_) => {}
            None => rej.reject(RejectionKind::InvalidSourceRange(raw.clone())),
        }
    }

    let external_policy_local =
        externally_accessible(spec) && spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_policy_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let is_lb = spec.type_.as_deref() == Some("LoadBalancer");
    let health_check_node_port = if is_lb && external_policy_local {
        match spec.health_check_node_port.unwrap_or(0) {
            0 => None,
            p => port_u16(p).or_else(|| {
                rej.reject(RejectionKind::InvalidPort(i64::from(p)));
                None
            }),
        }
    } else {
        None
    };

    let session_affinity_timeout =
        (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            let configured = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match configured {
                None => DEFAULT_AFFINITY_TIMEOUT_SECONDS,
                Some(t) if t > 0 && t <= MAX_AFFINITY_TIMEOUT_SECONDS => t.unsigned_abs(),
                Some(t) => {
                    rej.reject(RejectionKind::Other(format!(
                        "invalid sessionAffinity timeoutSeconds {t}"
                    )));
                    DEFAULT_AFFINITY_TIMEOUT_SECONDS
                }
            }
        });

    Some(Shared {
        cluster_ip,
        external_ips: sorted_dedup(external_ips),
        load_balancer_ips: sorted_dedup(load_balancer_ips),
        source_ranges: sorted_dedup(source_ranges),
        external_policy_local,
        internal_policy_local,
        health_check_node_port,
        session_affinity_timeout,
    })
}

/// One [`ServicePortState`] (endpoints empty) per valid `spec.ports` entry; empty when the service has no
/// ClusterIP of `family` or is skipped. Later duplicates of a port name + protocol replace earlier ones.
pub(crate) fn service_ports(
    svc: &Service,
    family: IpFamily,
    rej: &mut Rejector<'_>,
) -> Vec<ServicePortState> {
    if should_skip(svc) {
        return Vec::new();
    }
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let Some(shared) = shared(svc, spec, family, rej) else {
        return Vec::new();
    };
    // The snapshot's key is authoritative (manifests may leave metadata.namespace unset).
    let (namespace, name): (Arc<str>, Arc<str>) = (rej.namespace.into(), rej.name.into());

    let mut out: Vec<ServicePortState> = Vec::new();
    for sp in spec.ports.iter().flatten() {
        let Some(port) = port_u16(sp.port) else {
            rej.reject(RejectionKind::InvalidPort(i64::from(sp.port)));
            continue;
        };
        let raw_protocol = sp.protocol.as_deref().unwrap_or("TCP");
        let Some(protocol) = Protocol::from_k8s(raw_protocol) else {
            rej.reject(RejectionKind::UnknownProtocol(raw_protocol.to_string()));
            continue;
        };
        let node_port = match sp.node_port.unwrap_or(0) {
            0 => None,
            p => port_u16(p).or_else(|| {
                rej.reject(RejectionKind::InvalidPort(i64::from(p)));
                None
            }),
        };
        let state = ServicePortState {
            name: ServicePortName {
                namespace: namespace.clone(),
                name: name.clone(),
                port: sp.name.as_deref().unwrap_or_default().into(),
                protocol,
            },
            family,
            cluster_ip: shared.cluster_ip,
            port,
            protocol,
            node_port,
            external_ips: shared.external_ips.clone(),
            load_balancer_ips: shared.load_balancer_ips.clone(),
            load_balancer_source_ranges: shared.source_ranges.clone(),
            external_policy_local: shared.external_policy_local,
            internal_policy_local: shared.internal_policy_local,
            health_check_node_port: shared.health_check_node_port,
            session_affinity_timeout: shared.session_affinity_timeout,
            endpoints: Vec::new(),
            cluster_endpoints: Default::default(),
            local_endpoints: Default::default(),
            all_reachable_endpoints: Default::default(),
            has_any_endpoints: false,
        };
        out.retain(|s| s.name != state.name);
        out.push(state);
    }
    out
}
