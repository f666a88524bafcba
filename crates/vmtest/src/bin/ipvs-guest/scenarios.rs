//! The guest scenarios: each returns `Err(reason)` on failure.

use std::net::IpAddr;

use kube_proxy_ipvs::{GenlIpvs, Ipvs, RealServer, ServiceKey, VirtualServer, SVC_F_PERSISTENT};
use kube_proxy_model::Protocol;

type Scenario = (&'static str, fn() -> Result<(), String>);

pub const ALL: &[Scenario] = &[("genl-crud", genl_crud)];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn e<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// Add, list, update and delete virtual and real servers over generic netlink.
fn genl_crud() -> Result<(), String> {
    let ipvs = GenlIpvs::new().map_err(e("open"))?;
    ipvs.flush().map_err(e("flush"))?;
    let key = ServiceKey {
        protocol: Protocol::Tcp,
        addr: ip("10.96.0.10"),
        port: 80,
    };
    let mut vs = VirtualServer {
        key,
        scheduler: "rr".into(),
        flags: 0,
        timeout: 0,
    };
    ipvs.add_service(&vs).map_err(e("add service"))?;
    let v6 = VirtualServer {
        key: ServiceKey {
            protocol: Protocol::Udp,
            addr: ip("fd00::a"),
            port: 53,
        },
        scheduler: "wrr".into(),
        flags: 0,
        timeout: 0,
    };
    ipvs.add_service(&v6).map_err(e("add v6 service"))?;
    ipvs.add_real_server(&key, &RealServer::masq(ip("10.1.1.2"), 8080, 1))
        .map_err(e("add real"))?;
    ipvs.add_real_server(&key, &RealServer::masq(ip("10.1.2.2"), 8080, 1))
        .map_err(e("add real 2"))?;
    vs.scheduler = "sh".into();
    vs.flags = SVC_F_PERSISTENT;
    vs.timeout = 10800;
    ipvs.update_service(&vs).map_err(e("update service"))?;
    ipvs.update_real_server(&key, &RealServer::masq(ip("10.1.2.2"), 8080, 0))
        .map_err(e("update real"))?;
    let listed = ipvs.services().map_err(e("list"))?;
    let got = listed
        .iter()
        .find(|s| s.key == key)
        .ok_or("service not listed")?;
    if !got.same_settings(&vs) {
        return Err(format!("listed {got:?}, want {vs:?}"));
    }
    if !listed.iter().any(|s| s.same_settings(&v6)) {
        return Err(format!("v6 service not listed: {listed:?}"));
    }
    let reals = ipvs.real_servers(&key).map_err(e("list reals"))?;
    let mut weights: Vec<_> = reals
        .iter()
        .map(|r| (r.socket_addr().to_string(), r.weight, r.forward))
        .collect();
    weights.sort();
    let want = vec![
        (
            "10.1.1.2:8080".to_string(),
            1,
            kube_proxy_ipvs::ForwardMethod::Masquerade,
        ),
        (
            "10.1.2.2:8080".to_string(),
            0,
            kube_proxy_ipvs::ForwardMethod::Masquerade,
        ),
    ];
    if weights != want {
        return Err(format!("real servers {weights:?}, want {want:?}"));
    }
    let ipvsadm = std::fs::read_to_string("/proc/net/ip_vs").unwrap_or_default();
    println!("{ipvsadm}");
    ipvs.delete_real_server(&key, ip("10.1.1.2"), 8080)
        .map_err(e("delete real"))?;
    if ipvs.real_servers(&key).map_err(e("list reals"))?.len() != 1 {
        return Err("real server not deleted".into());
    }
    match ipvs.add_service(&vs) {
        Err(kube_proxy_ipvs::IpvsError::Kernel { errno: 17, .. }) => {}
        other => return Err(format!("duplicate add gave {other:?}, want EEXIST")),
    }
    ipvs.delete_service(&key).map_err(e("delete service"))?;
    ipvs.delete_service(&v6.key)
        .map_err(e("delete v6 service"))?;
    if !ipvs.services().map_err(e("list"))?.is_empty() {
        return Err("services left after delete".into());
    }
    Ok(())
}
