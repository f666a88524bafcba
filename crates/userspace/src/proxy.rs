//! [`UserspaceProxy`]: follows successive [`ProxyState`] snapshots by opening and closing one listener per portal.
//!
//! Only the update path takes a lock (one `apply` at a time). The data path reads each service's current
//! state through an `ArcSwap`; a service whose portals did not change keeps its listeners, and connections are
//! never touched by an update.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use kube_proxy_model::{Protocol, ProxyState, ServicePortName};
use tokio::task::JoinHandle;

use crate::config::UserspaceConfig;
use crate::error::UserspaceError;
use crate::metrics::{ServiceMetrics, ServiceMetricsSnapshot};
use crate::portal::{listen_addr, portal_keys, Portal, PortalKey};
use crate::service::{LocalClients, ServiceRuntime};

/// What one [`UserspaceProxy::apply`] did.
#[derive(Debug, Default)]
pub struct ApplyOutcome {
    /// Listeners opened by this call.
    pub opened: usize,
    /// Listeners closed by this call.
    pub closed: usize,
    /// Portals that could not be served; they are retried by the next `apply`.
    pub errors: Vec<UserspaceError>,
    /// Service ports skipped because this mode does not proxy their protocol (SCTP); not an error, as upstream.
    pub unsupported: Vec<ServicePortName>,
}

impl ApplyOutcome {
    /// Every wanted portal is being served.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }
}

struct Listener {
    portal: Portal,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Registry {
    services: HashMap<ServicePortName, Arc<ServiceRuntime>>,
    listeners: BTreeMap<PortalKey, Listener>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        for l in self.listeners.values() {
            l.task.abort();
        }
    }
}

/// The userspace proxy for one IP family.
pub struct UserspaceProxy {
    config: Arc<UserspaceConfig>,
    state: ArcSwap<ProxyState>,
    local: Arc<ArcSwap<LocalClients>>,
    registry: tokio::sync::Mutex<Registry>,
    portals: ArcSwap<Vec<Portal>>,
    metrics: ArcSwap<BTreeMap<ServicePortName, Arc<ServiceMetrics>>>,
}

impl UserspaceProxy {
    /// A proxy that serves nothing until the first [`apply`](Self::apply).
    pub fn new(config: UserspaceConfig, initial: Arc<ProxyState>) -> Self {
        let node_ips: Vec<IpAddr> = config
            .node_port_addresses
            .iter()
            .copied()
            .filter(|ip| !ip.is_unspecified())
            .collect();
        UserspaceProxy {
            local: Arc::new(ArcSwap::from_pointee(LocalClients {
                pod_cidrs: initial.node_pod_cidrs.clone(),
                node_ips,
            })),
            config: Arc::new(config),
            state: ArcSwap::new(initial),
            registry: tokio::sync::Mutex::default(),
            portals: ArcSwap::default(),
            metrics: ArcSwap::default(),
        }
    }

    /// The configuration this proxy was built with.
    pub fn config(&self) -> &UserspaceConfig {
        &self.config
    }

    /// The snapshot last applied.
    pub fn state(&self) -> Arc<ProxyState> {
        self.state.load_full()
    }

    /// Serves `state`: opens listeners for new portals, closes those of portals that went away (waiting until
    /// their sockets are closed), and hands the new endpoints to existing services. Must run inside a Tokio
    /// runtime. Bind failures are reported, not fatal: those portals are retried on the next call.
    pub async fn apply(&self, state: Arc<ProxyState>) -> ApplyOutcome {
        let mut outcome = ApplyOutcome::default();
        let mut reg = self.registry.lock().await;
        self.state.store(Arc::clone(&state));
        let node_ips = self.local.load().node_ips.clone();
        self.local.store(Arc::new(LocalClients {
            pod_cidrs: state.node_pod_cidrs.clone(),
            node_ips,
        }));

        let mut wanted: BTreeMap<PortalKey, Arc<ServiceRuntime>> = BTreeMap::new();
        let mut live: HashSet<&ServicePortName> = HashSet::new();
        for (name, svc) in &state.services {
            if !matches!(svc.protocol, Protocol::Tcp | Protocol::Udp) {
                tracing::debug!(service = %name, protocol = %svc.protocol, "userspace proxy: protocol not proxied");
                outcome.unsupported.push(name.clone());
                continue;
            }
            live.insert(name);
            let rt = match reg.services.get(name) {
                Some(rt) => {
                    if !Arc::ptr_eq(&rt.spec.load(), svc) {
                        rt.spec.store(Arc::clone(svc));
                    }
                    Arc::clone(rt)
                }
                None => {
                    let rt = Arc::new(ServiceRuntime::new(
                        Arc::clone(svc),
                        Arc::clone(&self.local),
                        Arc::clone(&self.config),
                    ));
                    reg.services.insert(name.clone(), Arc::clone(&rt));
                    rt
                }
            };
            for key in portal_keys(svc, &self.config) {
                wanted.insert(key, Arc::clone(&rt));
            }
        }

        let gone: Vec<PortalKey> = reg
            .listeners
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(l) = reg.listeners.remove(&key) {
                l.task.abort();
                let _ = l.task.await;
                tracing::info!(service = %key.service, portal = %l.portal.listen, "userspace proxy: closed listener");
                outcome.closed += 1;
            }
        }
        reg.services.retain(|name, _| live.contains(name));

        for (key, rt) in wanted {
            if reg.listeners.contains_key(&key) {
                continue;
            }
            match open(&key, rt, &self.config) {
                Ok(l) => {
                    tracing::info!(service = %key.service, vip = %key.vip, port = key.port, listen = %l.portal.listen, "userspace proxy: opened listener");
                    reg.listeners.insert(key, l);
                    outcome.opened += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "userspace proxy: cannot serve portal");
                    outcome.errors.push(e);
                }
            }
        }

        self.portals.store(Arc::new(
            reg.listeners.values().map(|l| l.portal.clone()).collect(),
        ));
        self.metrics.store(Arc::new(
            reg.services
                .iter()
                .map(|(n, rt)| (n.clone(), Arc::clone(&rt.metrics)))
                .collect(),
        ));
        outcome
    }

    /// Applies every state `states` publishes (the current one first) until its sender is dropped, logging
    /// incomplete outcomes. For callers that do not need each [`ApplyOutcome`].
    pub async fn follow(&self, mut states: tokio::sync::watch::Receiver<Arc<ProxyState>>) {
        loop {
            let state = Arc::clone(&states.borrow_and_update());
            let outcome = self.apply(state).await;
            if !outcome.is_complete() {
                tracing::warn!(
                    failed = outcome.errors.len(),
                    "userspace proxy: some portals are not served"
                );
            }
            if states.changed().await.is_err() {
                return;
            }
        }
    }

    /// Closes every listener (connections in flight continue until their peers end them).
    pub async fn shutdown(&self) -> ApplyOutcome {
        let empty = ProxyState::empty(
            self.state.load().family,
            self.state.load().node_name.clone(),
        );
        self.apply(Arc::new(empty)).await
    }

    /// Every portal currently served and where it listens: what a REDIRECT rule writer needs in
    /// [`crate::Addressing::Redirect`] mode.
    pub fn portals(&self) -> Arc<Vec<Portal>> {
        self.portals.load_full()
    }

    /// Live counters of every current service port.
    pub fn service_metrics(&self) -> Arc<BTreeMap<ServicePortName, Arc<ServiceMetrics>>> {
        self.metrics.load_full()
    }

    /// A snapshot of every current service port's counters.
    pub fn metrics_snapshot(&self) -> BTreeMap<ServicePortName, ServiceMetricsSnapshot> {
        self.metrics
            .load()
            .iter()
            .map(|(n, m)| (n.clone(), m.snapshot()))
            .collect()
    }
}

fn open(
    key: &PortalKey,
    rt: Arc<ServiceRuntime>,
    config: &UserspaceConfig,
) -> Result<Listener, UserspaceError> {
    let (addr, freebind) = listen_addr(key, &config.addressing);
    let listen_err = |source| UserspaceError::Listen {
        addr,
        protocol: key.protocol,
        source,
    };
    let (listen, task) = match key.protocol {
        Protocol::Tcp => {
            let l = crate::socket::bind_tcp(addr, freebind)?;
            let local = l.local_addr().map_err(listen_err)?;
            (local, tokio::spawn(crate::tcp::serve(l, key.kind, rt)))
        }
        Protocol::Udp => {
            let s = crate::socket::bind_udp(addr, freebind)?;
            let local = s.local_addr().map_err(listen_err)?;
            (local, tokio::spawn(crate::udp::serve(s, key.kind, rt)))
        }
        Protocol::Sctp => {
            return Err(UserspaceError::UnsupportedProtocol {
                service: key.service.clone(),
                protocol: key.protocol,
            })
        }
    };
    Ok(Listener {
        portal: Portal {
            key: key.clone(),
            listen,
        },
        task,
    })
}
