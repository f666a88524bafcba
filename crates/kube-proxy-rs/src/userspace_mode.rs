//! The userspace mode as the sync runner drives it: one [`UserspaceProxy`] per family serves every portal, then
//! the redirect rules (or, with bind-VIPs addressing, the local routes) that deliver the traffic are written.
//!
//! Settings come from the configuration and this node's addresses; nothing here decides which endpoint is used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use kube_proxy_config::ProxyConfig;
use kube_proxy_conntrack::{ConntrackOps, NetlinkConntrack};
use kube_proxy_iptables::IptablesExec;
use kube_proxy_model::{IpFamily, ProxyState};
use kube_proxy_sync::{Dataplane, DataplaneError, SyncReport};
use kube_proxy_telemetry::Metrics;
use kube_proxy_userspace::redirect::{
    self, local_route_targets, IpRouteExec, LocalRouteExec, LocalRoutes, RedirectConfig,
    RedirectRules,
};
use kube_proxy_userspace::{Addressing, UserspaceConfig, UserspaceProxy};

use crate::node_addresses::{resolve_nodeport_addresses, NodePortSelection};

mod service_metrics;
mod stale_flows;
pub use service_metrics::register_service_metrics;
use stale_flows::{stale_udp_flows, udp_portals, UdpPortals};

/// Why a userspace sync failed.
#[derive(Debug, thiserror::Error)]
pub enum UserspaceModeError {
    /// The runner handed over a state of the other family.
    #[error("state is {got:?} but this proxy serves {want:?}")]
    FamilyMismatch { want: IpFamily, got: IpFamily },
    /// Some portals have no listener (they are retried by the next sync).
    #[error("{failed} {family:?} portal(s) could not be served, first: {first}")]
    Listeners {
        family: IpFamily,
        failed: usize,
        first: String,
    },
    /// The redirect rules or local routes could not be written.
    #[error("delivering {family:?} service traffic to the proxy: {source}")]
    Delivery {
        family: IpFamily,
        #[source]
        source: redirect::RedirectError,
    },
}

/// How traffic reaches the listeners.
enum Delivery {
    Rules(RedirectRules),
    Routes(LocalRoutes),
}

/// One family's userspace proxy.
pub struct UserspaceMode {
    family: IpFamily,
    proxy: Arc<UserspaceProxy>,
    runtime: tokio::runtime::Handle,
    delivery: Delivery,
    conntrack: Option<Arc<dyn ConntrackOps>>,
    /// The UDP portals after the last successful stale-flow pass.
    udp_cleaned: Option<UdpPortals>,
    metrics: Arc<Metrics>,
}

/// One family's proxy and delivery settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub proxy: UserspaceConfig,
    /// `None` with bind-VIPs addressing (no rules).
    pub redirect: Option<RedirectConfig>,
}

/// The settings of `family`: listeners on the node's (local) IP when one is known, so that DNAT targets and UDP
/// reply sources are that address; NodePort listeners on the selected node addresses.
pub fn settings(
    family: IpFamily,
    bind_vips: bool,
    node_ips: &[IpAddr],
    local_addresses: &[IpAddr],
    node_ports: &NodePortSelection,
) -> Settings {
    let node_ip = node_ips
        .iter()
        .copied()
        .find(|ip| family.contains(ip) && local_addresses.contains(ip));
    let node_port_addresses = match node_ports {
        NodePortSelection::All => vec![unspecified(family)],
        NodePortSelection::Ips(ips) => ips
            .iter()
            .copied()
            .filter(|ip| family.contains(ip))
            .collect(),
    };
    let addressing = if bind_vips {
        Addressing::BindVips
    } else {
        Addressing::Redirect { listen_ip: node_ip }
    };
    Settings {
        proxy: UserspaceConfig {
            addressing,
            node_port_addresses,
            ..UserspaceConfig::default()
        },
        redirect: (!bind_vips).then_some(RedirectConfig {
            family,
            host_ip: node_ip,
        }),
    }
}

fn unspecified(family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The kernel seams of the userspace mode.
#[derive(Clone)]
pub struct Seams {
    pub iptables: Arc<dyn IptablesExec>,
    pub routes: Arc<dyn LocalRouteExec>,
    /// Deletes UDP flows translated to a listener that is gone; `None` leaves them to time out.
    pub conntrack: Option<Arc<dyn ConntrackOps>>,
}

impl Seams {
    /// The real kernel: `exec` for iptables, iproute2 for routes, netlink for conntrack.
    pub fn host(exec: Arc<dyn IptablesExec>) -> Seams {
        Seams {
            iptables: exec,
            routes: Arc::new(IpRouteExec),
            conntrack: Some(Arc::new(NetlinkConntrack::new())),
        }
    }
}

impl UserspaceMode {
    /// A proxy for `family` with `settings`. Must be called inside the Tokio runtime the listeners will run on.
    /// Leftovers of the other addressing (rules or routes) are removed.
    pub fn new(
        family: IpFamily,
        node_name: &str,
        settings: Settings,
        seams: &Seams,
        metrics: Arc<Metrics>,
    ) -> UserspaceMode {
        let routes = LocalRoutes::new(seams.routes.clone(), family);
        let delivery = match settings.redirect {
            Some(rcfg) => {
                if let Err(e) = routes.cleanup() {
                    tracing::debug!(?family, "removing bind-VIPs local routes: {e}");
                }
                Delivery::Rules(RedirectRules::new(seams.iptables.clone(), rcfg))
            }
            None => {
                if let Err(e) = redirect::cleanup(seams.iptables.as_ref(), family) {
                    tracing::debug!(?family, "removing redirect rules: {e}");
                }
                Delivery::Routes(routes)
            }
        };
        UserspaceMode {
            family,
            proxy: Arc::new(UserspaceProxy::new(
                settings.proxy,
                Arc::new(ProxyState::empty(family, node_name)),
            )),
            runtime: tokio::runtime::Handle::current(),
            delivery,
            conntrack: seams.conntrack.clone(),
            udp_cleaned: None,
            metrics,
        }
    }

    /// Behind NAT rules: deletes UDP flows still translated to listeners that are gone, whenever the UDP
    /// portals changed since the last successful pass. Failures are logged; the next sync retries.
    fn clear_stale_udp_flows(&mut self, portals: &[kube_proxy_userspace::Portal]) {
        let (Some(ops), Delivery::Rules(_)) = (&self.conntrack, &self.delivery) else {
            return;
        };
        let current = udp_portals(portals);
        if self.udp_cleaned.as_ref() == Some(&current) {
            return;
        }
        let previous = self.udp_cleaned.clone().unwrap_or_default();
        let result = ops.list_udp(self.family).and_then(|flows| {
            let stale = stale_udp_flows(&flows, &current, &previous);
            if stale.is_empty() {
                Ok(0)
            } else {
                ops.delete(&stale)
            }
        });
        match result {
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::debug!(family = ?self.family, deleted, "userspace proxy: stale UDP flows deleted");
                }
                self.udp_cleaned = Some(current);
            }
            Err(e) => {
                tracing::warn!(family = ?self.family, "userspace proxy: conntrack cleanup failed: {e}")
            }
        }
    }

    /// The proxy (its portals and per-service counters).
    pub fn proxy(&self) -> &Arc<UserspaceProxy> {
        &self.proxy
    }

    fn sync_inner(&mut self, state: &Arc<ProxyState>) -> Result<SyncReport, UserspaceModeError> {
        let family = self.family;
        if state.family != family {
            return Err(UserspaceModeError::FamilyMismatch {
                want: family,
                got: state.family,
            });
        }
        let outcome = self.runtime.block_on(self.proxy.apply(Arc::clone(state)));
        let portals = self.proxy.portals();
        let delivered = match &self.delivery {
            Delivery::Rules(r) => r.sync(&portals).map(|n| ("rules", n)),
            Delivery::Routes(r) => r
                .sync(&local_route_targets(&portals, family))
                .map(|n| ("local_routes", n)),
        };
        let (what, count) =
            delivered.map_err(|source| UserspaceModeError::Delivery { family, source })?;
        self.clear_stale_udp_flows(&portals);
        if let Some(first) = outcome.errors.first() {
            return Err(UserspaceModeError::Listeners {
                family,
                failed: outcome.errors.len(),
                first: first.to_string(),
            });
        }
        tracing::debug!(
            ?family,
            opened = outcome.opened,
            closed = outcome.closed,
            listeners = portals.len(),
            "userspace proxy synced"
        );
        Ok(SyncReport {
            full: true,
            counts: vec![
                ("listeners".into(), portals.len() as u64),
                (what.into(), count as u64),
            ],
            kernel_time: None,
        })
    }
}

impl Dataplane for UserspaceMode {
    fn family(&self) -> IpFamily {
        self.family
    }

    fn sync(
        &mut self,
        state: &Arc<ProxyState>,
        _force_full: bool,
    ) -> Result<SyncReport, DataplaneError> {
        self.sync_inner(state).map_err(|e| {
            self.metrics.inc_sync_failure(self.family, "userspace");
            Box::new(e) as DataplaneError
        })
    }
}

/// The userspace dataplanes of `families`: addressing from `--userspace-bind-vips`, NodePort addresses from the
/// configuration; their per-service counters are registered on `metrics`. Must be called inside the Tokio
/// runtime.
pub fn userspace_dataplanes(
    families: &[IpFamily],
    cfg: &ProxyConfig,
    node_name: &str,
    node_ips: &[IpAddr],
    local_addresses: &[IpAddr],
    seams: &Seams,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Vec<Box<dyn Dataplane>>> {
    let bind_vips = cfg.userspace_bind_vips;
    tracing::info!(
        bind_vips,
        "userspace proxy: listeners {}",
        if bind_vips {
            "bound on the service addresses (local routes, no NAT rules)"
        } else {
            "on ephemeral ports behind REDIRECT/DNAT rules"
        }
    );
    let mut out: Vec<Box<dyn Dataplane>> = Vec::new();
    let mut proxies = Vec::new();
    for family in families {
        let node_ports = resolve_nodeport_addresses(
            &cfg.node_port_addresses,
            *family,
            local_addresses,
            node_ips,
        );
        let s = settings(*family, bind_vips, node_ips, local_addresses, &node_ports);
        let mode = UserspaceMode::new(*family, node_name, s, seams, metrics.clone());
        proxies.push((*family, mode.proxy().clone()));
        out.push(Box::new(mode));
    }
    register_service_metrics(&metrics, proxies);
    Ok(out)
}

/// Removes the userspace mode's redirect rules and local routes in both families (for `--cleanup` and when
/// another mode starts). Every part is attempted; the first error is returned.
pub fn cleanup(exec: &dyn IptablesExec) -> Result<(), redirect::RedirectError> {
    let mut first = None;
    for family in [IpFamily::V4, IpFamily::V6] {
        if let Err(e) = redirect::cleanup(exec, family) {
            first.get_or_insert(e);
        }
        if let Err(e) = LocalRoutes::new(Arc::new(IpRouteExec), family).cleanup() {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests;
