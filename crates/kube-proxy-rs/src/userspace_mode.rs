//! The userspace mode as the sync runner drives it: one [`UserspaceProxy`] per family serves every portal, then
//! the redirect rules (or, with bind-VIPs addressing, the local routes) that deliver the traffic are written.
//!
//! Settings come from the configuration and this node's addresses; nothing here decides which endpoint is used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use kube_proxy_config::ProxyConfig;
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

/// Set to `1` or `true` to bind listeners on the service addresses themselves (no NAT rules; local routes deliver
/// the addresses). Stands in for a `--userspace-bind-vips` flag until the configuration has one.
pub const BIND_VIPS_ENV: &str = "KUBE_PROXY_RS_USERSPACE_BIND_VIPS";

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
    metrics: Arc<Metrics>,
}

/// Whether [`BIND_VIPS_ENV`] asks for bind-VIPs addressing.
pub fn bind_vips_requested() -> bool {
    std::env::var(BIND_VIPS_ENV)
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false)
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

impl UserspaceMode {
    /// A proxy for `family` with `settings`, writing rules through `exec`. Must be called inside the Tokio
    /// runtime the listeners will run on. Leftovers of the other addressing (rules or routes) are removed.
    pub fn new(
        family: IpFamily,
        node_name: &str,
        settings: Settings,
        exec: Arc<dyn IptablesExec>,
        metrics: Arc<Metrics>,
    ) -> UserspaceMode {
        Self::with_routes(
            family,
            node_name,
            settings,
            exec,
            Arc::new(IpRouteExec),
            metrics,
        )
    }

    /// [`new`](Self::new) with another seam for local routes.
    pub fn with_routes(
        family: IpFamily,
        node_name: &str,
        settings: Settings,
        exec: Arc<dyn IptablesExec>,
        routes: Arc<dyn LocalRouteExec>,
        metrics: Arc<Metrics>,
    ) -> UserspaceMode {
        let routes = LocalRoutes::new(routes, family);
        let delivery = match settings.redirect {
            Some(rcfg) => {
                if let Err(e) = routes.cleanup() {
                    tracing::debug!(?family, "removing bind-VIPs local routes: {e}");
                }
                Delivery::Rules(RedirectRules::new(exec, rcfg))
            }
            None => {
                if let Err(e) = redirect::cleanup(exec.as_ref(), family) {
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
            metrics,
        }
    }

    /// The proxy (for its per-service metrics; not yet published).
    #[allow(dead_code)]
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

/// The userspace dataplanes of `families`: addressing from [`BIND_VIPS_ENV`], NodePort addresses from the
/// configuration. Must be called inside the Tokio runtime.
pub fn userspace_dataplanes(
    families: &[IpFamily],
    cfg: &ProxyConfig,
    node_name: &str,
    node_ips: &[IpAddr],
    local_addresses: &[IpAddr],
    exec: Arc<dyn IptablesExec>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Vec<Box<dyn Dataplane>>> {
    let bind_vips = bind_vips_requested();
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
    for family in families {
        let node_ports = resolve_nodeport_addresses(
            &cfg.node_port_addresses,
            *family,
            local_addresses,
            node_ips,
        );
        let s = settings(*family, bind_vips, node_ips, local_addresses, &node_ports);
        out.push(Box::new(UserspaceMode::new(
            *family,
            node_name,
            s,
            exec.clone(),
            metrics.clone(),
        )));
    }
    Ok(out)
}

/// Removes the userspace mode's redirect rules and local routes in both families (for `--cleanup` and when
/// another mode starts). Every part is attempted; the first error is returned.
#[allow(dead_code)] // until `--cleanup` and `setup::cleanup_other_modes` call it
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
mod tests {
    use super::*;
    use kube_proxy_iptables::sim::FakeExec;
    use kube_proxy_iptables::Table;
    use kube_proxy_model::{Protocol, ServicePortName, ServicePortState};
    use std::collections::BTreeSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn settings_follow_addressing_and_local_node_ips() {
        let local = [ip("127.0.0.1"), ip("10.100.0.1")];
        let s = settings(
            IpFamily::V4,
            false,
            &[ip("10.100.0.1"), ip("fd00::1")],
            &local,
            &NodePortSelection::All,
        );
        assert_eq!(
            s.proxy.addressing,
            Addressing::Redirect {
                listen_ip: Some(ip("10.100.0.1"))
            }
        );
        assert_eq!(s.proxy.node_port_addresses, vec![ip("0.0.0.0")]);
        assert_eq!(s.redirect.unwrap().host_ip, Some(ip("10.100.0.1")));

        // A node IP that is not on this host is not a listen address.
        let s = settings(
            IpFamily::V4,
            false,
            &[ip("10.100.0.9")],
            &local,
            &NodePortSelection::Ips(vec![ip("10.100.0.1"), ip("fd00::1")]),
        );
        assert_eq!(s.proxy.addressing, Addressing::Redirect { listen_ip: None });
        assert_eq!(s.proxy.node_port_addresses, vec![ip("10.100.0.1")]);
        assert_eq!(s.redirect.unwrap().host_ip, None);

        let s = settings(IpFamily::V6, true, &[], &local, &NodePortSelection::All);
        assert_eq!(s.proxy.addressing, Addressing::BindVips);
        assert_eq!(s.proxy.node_port_addresses, vec![ip("::")]);
        assert!(s.redirect.is_none());
    }

    struct NoRoutes;
    impl LocalRouteExec for NoRoutes {
        fn list(&self, _: IpFamily) -> Result<BTreeSet<IpAddr>, redirect::RedirectError> {
            Ok(BTreeSet::new())
        }
        fn add(&self, _: IpAddr) -> Result<(), redirect::RedirectError> {
            panic!("redirect mode adds no routes")
        }
        fn delete(&self, _: IpAddr) -> Result<(), redirect::RedirectError> {
            Ok(())
        }
    }

    fn state(services: &[(&str, &str)]) -> Arc<ProxyState> {
        let mut st = ProxyState::empty(IpFamily::V4, "node1");
        for (name, vip) in services {
            let n = ServicePortName {
                namespace: "ns".into(),
                name: (*name).into(),
                port: "p".into(),
                protocol: Protocol::Tcp,
            };
            st.services.insert(
                n.clone(),
                Arc::new(ServicePortState {
                    name: n,
                    family: IpFamily::V4,
                    cluster_ip: ip(vip),
                    port: 80,
                    protocol: Protocol::Tcp,
                    node_port: None,
                    external_ips: vec![],
                    load_balancer_ips: vec![],
                    load_balancer_source_ranges: vec![],
                    external_policy_local: false,
                    internal_policy_local: false,
                    health_check_node_port: None,
                    session_affinity_timeout: None,
                    endpoints: vec![],
                    cluster_endpoints: vec![],
                    local_endpoints: vec![],
                    all_reachable_endpoints: vec![],
                    has_any_endpoints: false,
                }),
            );
        }
        Arc::new(st)
    }

    #[test]
    fn sync_serves_portals_and_points_the_rules_at_the_listeners() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let exec = Arc::new(FakeExec::default());
        let s = settings(
            IpFamily::V4,
            false,
            &[ip("127.0.0.1")],
            &[ip("127.0.0.1")],
            &NodePortSelection::Ips(vec![]),
        );
        let mut mode = {
            let _guard = rt.enter();
            UserspaceMode::with_routes(
                IpFamily::V4,
                "node1",
                s,
                exec.clone(),
                Arc::new(NoRoutes),
                Arc::new(Metrics::new()),
            )
        };
        let report = mode.sync(&state(&[("web", "10.96.0.10")]), true).unwrap();
        assert_eq!(report.counts[0], ("listeners".to_string(), 1));
        let portals = mode.proxy().portals();
        let listen = portals[0].listen;
        assert_eq!(listen.ip(), ip("127.0.0.1"));
        let chain = |c: &str| {
            exec.snapshot(IpFamily::V4)
                .table(Table::Nat)
                .chains
                .get(c)
                .cloned()
                .unwrap_or_default()
        };
        let container = chain(redirect::KUBE_PORTALS_CONTAINER);
        assert_eq!(container.len(), 1);
        assert!(
            container[0].contains("-d 10.96.0.10/32")
                && container[0].ends_with(&format!("-j DNAT --to-destination {listen}")),
            "{container:?}"
        );
        // The listener really accepts connections.
        assert!(std::net::TcpStream::connect(listen).is_ok());

        // The wrong family is refused; removing the service removes listener and rules.
        let mut v6 = (*state(&[])).clone();
        v6.family = IpFamily::V6;
        assert!(mode.sync(&Arc::new(v6), false).is_err());
        mode.sync(&state(&[]), false).unwrap();
        assert!(mode.proxy().portals().is_empty());
        assert!(chain(redirect::KUBE_PORTALS_CONTAINER).is_empty());
        assert!(std::net::TcpStream::connect(listen).is_err());
    }

    #[test]
    fn failed_rule_writes_are_sync_errors() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let exec = Arc::new(FakeExec::default());
        exec.fail_restores
            .store(1, std::sync::atomic::Ordering::SeqCst);
        let s = settings(
            IpFamily::V4,
            false,
            &[],
            &[],
            &NodePortSelection::Ips(vec![]),
        );
        let mut mode = {
            let _guard = rt.enter();
            UserspaceMode::with_routes(
                IpFamily::V4,
                "node1",
                s,
                exec,
                Arc::new(NoRoutes),
                Arc::new(Metrics::new()),
            )
        };
        let err = mode.sync(&state(&[]), true).unwrap_err();
        assert!(err.to_string().contains("delivering"), "{err}");
        assert!(mode.sync(&state(&[]), true).is_ok());
    }
}
