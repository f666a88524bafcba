//! The long-lived per-service-port runtime shared by that port's listeners and connections: the current
//! snapshot of its state (an `ArcSwap`, read without locks), its balancer, metrics and connection budget.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use kube_proxy_model::ServicePortState;
use tokio::sync::Semaphore;

use crate::balancer::Balancer;
use crate::config::UserspaceConfig;
use crate::metrics::{ActiveGuard, ServiceMetrics};
use crate::portal::PortalKind;

/// What the node considers local clients: its pod CIDRs and node addresses (plus loopback).
#[derive(Debug, Default)]
pub(crate) struct LocalClients {
    pub pod_cidrs: Vec<IpNet>,
    pub node_ips: Vec<IpAddr>,
}

impl LocalClients {
    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_loopback()
            || self.node_ips.contains(&ip)
            || self.pod_cidrs.iter().any(|c| c.contains(&ip))
    }
}

/// Shared by every listener and connection of one service port.
#[derive(Debug)]
pub(crate) struct ServiceRuntime {
    pub spec: ArcSwap<ServicePortState>,
    pub balancer: Balancer,
    pub metrics: Arc<ServiceMetrics>,
    limiter: Option<Arc<Semaphore>>,
    pub local: Arc<ArcSwap<LocalClients>>,
    pub config: Arc<UserspaceConfig>,
}

impl ServiceRuntime {
    pub(crate) fn new(
        spec: Arc<ServicePortState>,
        local: Arc<ArcSwap<LocalClients>>,
        config: Arc<UserspaceConfig>,
    ) -> Self {
        ServiceRuntime {
            spec: ArcSwap::new(spec),
            balancer: Balancer::default(),
            metrics: Arc::new(ServiceMetrics::default()),
            limiter: config
                .max_connections_per_service
                .map(|n| Arc::new(Semaphore::new(n))),
            local,
            config,
        }
    }

    /// Takes a slot of the connection budget, or counts an over-limit drop and returns `None`.
    pub(crate) fn admit(&self) -> Option<ActiveGuard> {
        let permit = match &self.limiter {
            None => None,
            Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    ServiceMetrics::add(&self.metrics.over_limit_drops, 1);
                    return None;
                }
            },
        };
        Some(ActiveGuard::new(Arc::clone(&self.metrics), permit))
    }

    /// The endpoints to try, in order, for a new connection from `client` to a portal of `kind`.
    ///
    /// External addresses use the external policy's endpoints, except for clients on this node (pods, the node
    /// itself), which use the internal ones as upstream's short-circuit does.
    pub(crate) fn candidates(&self, kind: PortalKind, client: IpAddr) -> Vec<SocketAddr> {
        let spec = self.spec.load();
        let external = kind.is_external() && !self.local.load().contains(client);
        let endpoints = if external {
            spec.external_endpoints()
        } else {
            spec.internal_endpoints()
        };
        self.balancer.candidates(
            client,
            endpoints,
            self.affinity(),
            self.config.max_dial_attempts,
        )
    }

    /// The ClientIP affinity timeout, when the service has affinity.
    pub(crate) fn affinity(&self) -> Option<Duration> {
        self.spec
            .load()
            .session_affinity_timeout
            .map(|s| Duration::from_secs(u64::from(s)))
    }

    /// `backend` failed: log it, count it and drop an affinity entry pointing at it.
    pub(crate) fn dial_failed(
        &self,
        client: IpAddr,
        backend: SocketAddr,
        why: &dyn std::fmt::Display,
    ) {
        tracing::warn!(
            service = %self.spec.load().name,
            endpoint = %backend,
            error = %why,
            "userspace proxy: backend connection failed"
        );
        self.metrics.record_dial_failure(backend);
        self.balancer.record_failure(client, backend);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_model::{Endpoint, IpFamily, Protocol, ServicePortName};

    fn ep(last: u8, is_local: bool) -> Endpoint {
        Endpoint {
            ip: IpAddr::from([10, 1, 0, last]),
            port: 8080,
            is_local,
            ready: true,
            serving: true,
            terminating: false,
            hints: None,
        }
    }

    #[test]
    fn external_clients_use_the_external_policy_and_local_clients_the_cluster_endpoints() {
        let (local, remote) = (ep(1, true), ep(2, false));
        let spec = ServicePortState {
            name: ServicePortName {
                namespace: "ns".into(),
                name: "lb".into(),
                port: "".into(),
                protocol: Protocol::Tcp,
            },
            family: IpFamily::V4,
            cluster_ip: IpAddr::from([10, 96, 0, 1]),
            port: 80,
            protocol: Protocol::Tcp,
            node_port: Some(30000),
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            external_policy_local: true,
            internal_policy_local: false,
            health_check_node_port: Some(31000),
            session_affinity_timeout: None,
            endpoints: vec![local.clone(), remote.clone()],
            cluster_endpoints: vec![local.clone(), remote.clone()].into(),
            local_endpoints: vec![local.clone()].into(),
            all_reachable_endpoints: vec![local.clone(), remote].into(),
            has_any_endpoints: true,
        };
        let clients = LocalClients {
            pod_cidrs: vec!["10.244.1.0/24".parse().unwrap()],
            node_ips: vec![IpAddr::from([192, 168, 1, 10])],
        };
        let config = Arc::new(UserspaceConfig {
            max_dial_attempts: 5,
            ..UserspaceConfig::default()
        });
        let rt = ServiceRuntime::new(
            Arc::new(spec),
            Arc::new(ArcSwap::from_pointee(clients)),
            config,
        );
        let outside = IpAddr::from([203, 0, 113, 9]);
        let only_local = vec![SocketAddr::new(local.ip, local.port)];
        assert_eq!(rt.candidates(PortalKind::NodePort, outside), only_local);
        for inside in [[10, 244, 1, 7], [192, 168, 1, 10], [127, 0, 0, 1]] {
            let got = rt.candidates(PortalKind::NodePort, IpAddr::from(inside));
            assert_eq!(got.len(), 2, "client {inside:?} uses the cluster endpoints");
        }
        assert_eq!(rt.candidates(PortalKind::ClusterIp, outside).len(), 2);
    }
}
