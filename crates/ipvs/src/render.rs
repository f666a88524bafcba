//! The pure renderer: [`ProxyState`] + [`IpvsConfig`] → [`IpvsPlan`] (virtual servers with their real
//! servers, kube-ipvs0 addresses, ipset contents, iptables-restore text). No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kube_proxy_model::{Endpoint, Protocol, ProxyState, ServicePortName, ServicePortState};

use crate::config::IpvsConfig;
use crate::ipsets::{IpSetName, IpSets};
use crate::types::{ServiceKey, VirtualServer, SVC_F_PERSISTENT};

/// One desired virtual server and its real servers (address, port → weight).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    pub service: ServicePortName,
    pub vs: VirtualServer,
    pub reals: BTreeMap<(IpAddr, u16), u32>,
}

/// Everything one sync programs for one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsPlan {
    pub services: BTreeMap<ServiceKey, DesiredService>,
    /// Addresses bound to kube-ipvs0 (ClusterIPs, externalIPs, load-balancer IPs).
    pub bound_addresses: BTreeSet<IpAddr>,
    pub ipsets: IpSets,
    /// `iptables-restore --noflush` input for the filter and nat tables.
    pub iptables: String,
}

fn reals_of(endpoints: &[Endpoint]) -> BTreeMap<(IpAddr, u16), u32> {
    endpoints.iter().map(|e| ((e.ip, e.port), 1)).collect()
}

/// Upstream's choice of endpoints: Local policy uses the local endpoints, but falls back to the cluster
/// endpoints when there are none (so that pods on this node still reach the service).
fn pick(svc: &ServicePortState, local: bool) -> BTreeMap<(IpAddr, u16), u32> {
    if local && !svc.local_endpoints.is_empty() {
        reals_of(&svc.local_endpoints)
    } else {
        reals_of(&svc.cluster_endpoints)
    }
}

fn sets_key(ip: IpAddr, p: Protocol, port: u16) -> String {
    format!("{ip},{}:{port}", p.as_lower())
}

/// Renders the desired IPVS state. Never fails; equal input gives equal output.
pub fn render(state: &ProxyState, cfg: &IpvsConfig) -> IpvsPlan {
    let mut services = BTreeMap::new();
    let mut bound = BTreeSet::new();
    let mut sets = IpSets::new(cfg.family);
    let scheduler = cfg.scheduler.as_str().to_string();

    for svc in state.services.values() {
        if !cfg.family.contains(&svc.cluster_ip) {
            continue;
        }
        let proto = svc.protocol;
        let (flags, timeout) = match svc.session_affinity_timeout {
            Some(t) => (SVC_F_PERSISTENT, t),
            None => (0, 0),
        };
        let mut add = |addr: IpAddr, port: u16, local: bool| {
            let key = ServiceKey {
                protocol: proto,
                addr,
                port,
            };
            services.insert(
                key,
                DesiredService {
                    service: svc.name.clone(),
                    vs: VirtualServer {
                        key,
                        scheduler: scheduler.clone(),
                        flags,
                        timeout,
                    },
                    reals: pick(svc, local),
                },
            );
        };

        // Hairpin: a local endpoint reaching itself through the service is masqueraded.
        for ep in svc.endpoints.iter().filter(|e| e.is_local) {
            sets.add(
                IpSetName::LoopBack,
                format!("{},{}:{},{}", ep.ip, proto.as_lower(), ep.port, ep.ip),
            );
        }

        add(svc.cluster_ip, svc.port, svc.internal_policy_local);
        bound.insert(svc.cluster_ip);
        sets.add(
            IpSetName::ClusterIp,
            sets_key(svc.cluster_ip, proto, svc.port),
        );

        for ip in &svc.external_ips {
            add(*ip, svc.port, svc.external_policy_local);
            bound.insert(*ip);
            let set = if svc.external_policy_local {
                IpSetName::ExternalIpLocal
            } else {
                IpSetName::ExternalIp
            };
            sets.add(set, sets_key(*ip, proto, svc.port));
        }

        for ip in &svc.load_balancer_ips {
            add(*ip, svc.port, svc.external_policy_local);
            bound.insert(*ip);
            let entry = sets_key(*ip, proto, svc.port);
            sets.add(IpSetName::LoadBalancer, entry.clone());
            if svc.external_policy_local {
                sets.add(IpSetName::LoadBalancerLocal, entry.clone());
            }
            if !svc.load_balancer_source_ranges.is_empty() {
                sets.add(IpSetName::LoadBalancerFw, entry.clone());
                for cidr in &svc.load_balancer_source_ranges {
                    sets.add(IpSetName::LoadBalancerSourceCidr, format!("{entry},{cidr}"));
                }
                // Let the node itself reach an LB whose source ranges include one of its addresses.
                for node_ip in &cfg.node_port_ips {
                    if svc
                        .load_balancer_source_ranges
                        .iter()
                        .any(|c| c.contains(node_ip))
                    {
                        sets.add(
                            IpSetName::LoadBalancerSourceIp,
                            format!("{entry},{node_ip}"),
                        );
                    }
                }
            }
        }

        if let Some(np) = svc.node_port {
            for ip in &cfg.node_port_ips {
                add(*ip, np, svc.external_policy_local);
            }
            match proto {
                Protocol::Tcp | Protocol::Udp => {
                    let (all, local) = if proto == Protocol::Tcp {
                        (IpSetName::NodePortTcp, IpSetName::NodePortLocalTcp)
                    } else {
                        (IpSetName::NodePortUdp, IpSetName::NodePortLocalUdp)
                    };
                    sets.add(all, np.to_string());
                    if svc.external_policy_local {
                        sets.add(local, np.to_string());
                    }
                }
                Protocol::Sctp => {
                    for ip in &cfg.node_port_ips {
                        sets.add(IpSetName::NodePortSctp, sets_key(*ip, proto, np));
                        if svc.external_policy_local {
                            sets.add(IpSetName::NodePortLocalSctp, sets_key(*ip, proto, np));
                        }
                    }
                }
            }
        }
        if let Some(hc) = svc.health_check_node_port {
            sets.add(IpSetName::HealthCheckNodePort, hc.to_string());
        }
    }
    for ip in &bound {
        sets.add(IpSetName::IpvsIps, ip.to_string());
    }
    let iptables = crate::rules::render_iptables(&sets, cfg);
    IpvsPlan {
        services,
        bound_addresses: bound,
        ipsets: sets,
        iptables,
    }
}
