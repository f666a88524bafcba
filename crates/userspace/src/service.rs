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
