//! The guest scenarios (each returns `Err(reason)` on failure), the shared topology and helpers.
//! [`kernel`] talks to IPVS and the tools directly; [`traffic`] sends real packets through programmed services.

mod kernel;
mod traffic;

use kernel::*;
use traffic::*;

pub(crate) use std::collections::BTreeSet;
pub(crate) use std::net::{IpAddr, SocketAddr};
pub(crate) use std::sync::OnceLock;
pub(crate) use std::time::{Duration, Instant};

pub(crate) use kube_proxy_iptables::Backend;
pub(crate) use kube_proxy_ipvs::{
    GenlIpvs, Ipvs, IpvsConfig, IpvsDataplane, RealServer, Scheduler, ServiceKey, VirtualServer,
    SVC_F_PERSISTENT,
};
pub(crate) use kube_proxy_model::{IpFamily, Protocol};
pub(crate) use kube_proxy_vmtest::guest::sh;

pub(crate) use crate::fixtures::{endpoint, ip, service, state};
pub(crate) use crate::net::{
    add_namespace, add_v6, ask_from_node, ask_once, start_backend, start_backend_v6,
    start_udp_backend, udp_ask, Client,
};

type Scenario = (&'static str, fn() -> Result<(), String>);

pub const ALL: &[Scenario] = &[
    ("ipvs-available", available),
    ("genl-crud", genl_crud),
    ("schedulers", schedulers),
    ("rtnl-dummy-link", rtnl_dummy_link),
    ("clusterip-traffic", clusterip_traffic),
    ("session-affinity", session_affinity),
    ("ipvsadm-listing", ipvsadm_listing),
    ("nodeport-externalip-udp", nodeport_externalip_udp),
    ("node-client-and-hairpin", node_client_and_hairpin),
    ("graceful-termination", graceful_termination),
    ("restart-restores-weights", restart_restores_weights),
    ("stale-services-removed", stale_services_removed),
    ("ipv6-clusterip", ipv6_clusterip),
    ("cleanup", cleanup),
];

pub(crate) const VIP: &str = "10.96.0.10";
pub(crate) const BE1: &str = "10.1.1.2";
pub(crate) const BE2: &str = "10.1.2.2";
pub(crate) const CLIENT_NS: &str = "client";

/// Two backends (be1, be2) serving :8080 and a client namespace, all routed through the guest's root
/// namespace (the "node"). Built once.
pub(crate) fn topology() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        add_namespace("be1", "vbe1", "10.1.1")?;
        add_namespace("be2", "vbe2", "10.1.2")?;
        add_namespace(CLIENT_NS, "vcl", "10.1.9")?;
        start_backend("be1", 8080, "be1")?;
        start_backend("be2", 8080, "be2")?;
        start_udp_backend("be1", 5353, "be1")?;
        start_udp_backend("be2", 5353, "be2")?;
        Ok(())
    })
    .clone()
}

pub(crate) fn dataplane() -> Result<IpvsDataplane, String> {
    let mut cfg = IpvsConfig::new(IpFamily::V4);
    cfg.node_port_ips = vec![ip("10.1.9.1")];
    cfg.exclude_cidrs = vec!["10.250.0.0/16".parse().unwrap()];
    IpvsDataplane::with_real_system(cfg, Backend::Legacy).map_err(e("dataplane"))
}

pub(crate) fn vip(port: u16) -> SocketAddr {
    SocketAddr::new(ip(VIP), port)
}

pub(crate) fn key(port: u16) -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        addr: ip(VIP),
        port,
    }
}

pub(crate) fn reals(k: &ServiceKey) -> Result<Vec<RealServer>, String> {
    GenlIpvs::new()
        .map_err(e("open"))?
        .real_servers(k)
        .map_err(e("list reals"))
}

pub(crate) fn backend_ip(name: &str) -> IpAddr {
    ip(if name == "be1" { BE1 } else { BE2 })
}

fn e<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| format!("{what}: {err}")
}
