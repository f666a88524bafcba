//! Scenarios on the IPVS table, the fallback check, the ipvsadm listing and cleanup (no traffic).

use super::*;

/// Add, list, update and delete virtual and real servers over generic netlink.
pub(super) fn genl_crud() -> Result<(), String> {
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

/// Every scheduler `--ipvs-scheduler` accepts is accepted by the kernel.
pub(super) fn schedulers() -> Result<(), String> {
    let ipvs = GenlIpvs::new().map_err(e("open"))?;
    for (i, sched) in Scheduler::ALL.iter().enumerate() {
        let vs = VirtualServer {
            key: ServiceKey {
                protocol: Protocol::Sctp,
                addr: ip("10.96.7.7"),
                port: 1000 + i as u16,
            },
            scheduler: sched.as_str().into(),
            flags: 0,
            timeout: 0,
        };
        ipvs.add_service(&vs).map_err(e(sched.as_str()))?;
        let listed = ipvs.services().map_err(e("list"))?;
        if !listed.iter().any(|l| l.same_settings(&vs)) {
            return Err(format!("{sched} not listed"));
        }
        ipvs.delete_service(&vs.key).map_err(e("delete"))?;
    }
    Ok(())
}

/// A desired real server left at weight 0 by an earlier run gets its weight back on the first sync.
pub(super) fn restart_restores_weights() -> Result<(), String> {
    topology()?;
    let st = state(vec![service("restart", VIP, 83, vec![endpoint(BE1, 8080)])]);
    dataplane()?.sync(&st).map_err(e("first run"))?;
    GenlIpvs::new()
        .map_err(e("open"))?
        .update_real_server(&key(83), &RealServer::masq(ip(BE1), 8080, 0))
        .map_err(e("zero weight"))?;
    let report = dataplane()?.sync(&st).map_err(e("second run"))?;
    let rs = reals(&key(83))?;
    dataplane()?.sync(&state(vec![])).map_err(e("cleanup"))?;
    if report.reals_updated != 1 || rs.len() != 1 || rs[0].weight != 1 {
        return Err(format!("after restart {rs:?} ({report:?})"));
    }
    Ok(())
}

/// Virtual servers nobody wants are removed, except inside --ipvs-exclude-cidrs.
pub(super) fn stale_services_removed() -> Result<(), String> {
    let ipvs = GenlIpvs::new().map_err(e("open"))?;
    let mk = |addr: &str| VirtualServer {
        key: ServiceKey {
            protocol: Protocol::Tcp,
            addr: ip(addr),
            port: 99,
        },
        scheduler: "rr".into(),
        flags: 0,
        timeout: 0,
    };
    ipvs.add_service(&mk("10.96.5.5")).map_err(e("add stale"))?;
    ipvs.add_service(&mk("10.250.0.1"))
        .map_err(e("add excluded"))?;
    dataplane()?.sync(&state(vec![])).map_err(e("sync"))?;
    let left: Vec<IpAddr> = ipvs
        .services()
        .map_err(e("list"))?
        .into_iter()
        .map(|v| v.key.addr)
        .collect();
    ipvs.flush().map_err(e("flush"))?;
    if left != vec![ip("10.250.0.1")] {
        return Err(format!("left after sync: {left:?}"));
    }
    Ok(())
}

/// The fallback check says yes where the kernel has IPVS.
pub(super) fn available() -> Result<(), String> {
    kube_proxy_ipvs::ipvs_support(std::path::Path::new("/proc")).map_err(|u| u.0)
}

/// kube-ipvs0 over rtnetlink (this host's kernel has no dummy links): create (twice), add IPv4 and IPv6
/// addresses (usable at once: no DAD), list them per family, delete one, delete the link (twice).
pub(super) fn rtnl_dummy_link() -> Result<(), String> {
    use kube_proxy_ipvs::{DummyLink, RtnlLink};
    let link = RtnlLink::new("kprs-dummy0").map_err(e("open"))?;
    if !link.addresses(IpFamily::V4).map_err(e("list"))?.is_empty() {
        return Err("addresses of a missing link".into());
    }
    link.delete().map_err(e("delete missing"))?;
    link.ensure().map_err(e("create"))?;
    link.ensure().map_err(e("create again"))?;
    let shown = sh("ip", &["-d", "link", "show", "dev", "kprs-dummy0"])?;
    if !shown.contains("dummy") {
        return Err(format!("not a dummy link: {shown}"));
    }
    for a in ["10.96.7.1", "10.96.7.2", "fd00:96::7"] {
        link.add_address(ip(a)).map_err(e("add"))?;
    }
    link.add_address(ip("10.96.7.1")).map_err(e("add again"))?;
    let v4: Vec<String> = link
        .addresses(IpFamily::V4)
        .map_err(e("list v4"))?
        .iter()
        .map(|a| a.to_string())
        .collect();
    let v6: Vec<String> = link
        .addresses(IpFamily::V6)
        .map_err(e("list v6"))?
        .iter()
        .map(|a| a.to_string())
        .collect();
    if v4 != ["10.96.7.1", "10.96.7.2"] || v6 != ["fd00:96::7"] {
        return Err(format!("listed {v4:?} {v6:?}"));
    }
    let addrs = sh("ip", &["addr", "show", "dev", "kprs-dummy0"])?;
    if !addrs.contains("10.96.7.2/32")
        || !addrs.contains("fd00:96::7/128")
        || addrs.contains("tentative")
    {
        return Err(format!("ip addr: {addrs}"));
    }
    link.delete_address(ip("10.96.7.2"))
        .map_err(e("delete address"))?;
    link.delete_address(ip("10.96.7.2"))
        .map_err(e("delete address again"))?;
    link.delete_address(ip("fd00:96::7"))
        .map_err(e("delete v6 address"))?;
    let addrs = sh("ip", &["addr", "show", "dev", "kprs-dummy0"])?;
    if addrs.contains("10.96.7.2")
        || addrs.contains("fd00:96::7")
        || !addrs.contains("10.96.7.1/32")
    {
        return Err(format!("after delete: {addrs}"));
    }
    link.delete().map_err(e("delete"))?;
    if sh("ip", &["link", "show", "dev", "kprs-dummy0"]).is_ok() {
        return Err("link left".into());
    }
    link.delete().map_err(e("delete again"))
}

/// `--cleanup` removes virtual servers, kube-ipvs0, our iptables chains and jumps, and the ipsets.
pub(super) fn cleanup() -> Result<(), String> {
    topology()?;
    let mut dp = dataplane()?;
    dp.sync(&state(vec![service(
        "gone",
        VIP,
        87,
        vec![endpoint(BE1, 8080)],
    )]))
    .map_err(e("sync"))?;
    kube_proxy_ipvs::cleanup_host(Backend::Legacy).map_err(e("cleanup"))?;
    if !GenlIpvs::new()
        .map_err(e("open"))?
        .services()
        .map_err(e("list"))?
        .is_empty()
    {
        return Err("virtual servers left".into());
    }
    if sh("ip", &["link", "show", "dev", "kube-ipvs0"]).is_ok() {
        return Err("kube-ipvs0 left".into());
    }
    for t in ["nat", "filter"] {
        let save = sh("iptables-legacy-save", &["-t", t])?;
        if save.contains("KUBE-") {
            return Err(format!("{t} still has our rules: {save}"));
        }
    }
    let sets = sh("ipset", &["list", "-n"])?;
    if !sets.trim().is_empty() {
        return Err(format!("ipsets left: {sets}"));
    }
    kube_proxy_ipvs::cleanup_host(Backend::Legacy).map_err(e("second cleanup"))
}

/// Our `ipvsadm -Ln`-style listing of the kernel's table equals ipvsadm's own (after its version line).
pub(super) fn ipvsadm_listing() -> Result<(), String> {
    topology()?;
    let mut dp = dataplane()?;
    let mut a = service(
        "list-a",
        VIP,
        88,
        vec![endpoint(BE1, 8080), endpoint(BE2, 8080)],
    );
    a.session_affinity_timeout = Some(10800);
    let mut b = service("list-b", "10.96.0.53", 53, vec![endpoint(BE2, 5353)]);
    b.protocol = Protocol::Udp;
    b.name.protocol = Protocol::Udp;
    dp.sync(&state(vec![a, b])).map_err(e("sync"))?;
    let ipvs = GenlIpvs::new().map_err(e("open"))?;
    let mut services = ipvs.services().map_err(e("list"))?;
    services.sort_by_key(|v| (v.key.protocol, v.key.addr, v.key.port));
    let mut pairs = Vec::new();
    for vs in &services {
        pairs.push((vs, ipvs.real_servers(&vs.key).map_err(e("reals"))?));
    }
    let ours = kube_proxy_ipvs::ipvsadm_list(pairs);
    let theirs = sh("ipvsadm", &["-Ln"]);
    dp.sync(&state(vec![])).map_err(e("cleanup sync"))?;
    let theirs = theirs?;
    let theirs: Vec<&str> = theirs.lines().skip(1).map(str::trim_end).collect();
    let ours: Vec<&str> = ours.lines().map(str::trim_end).collect();
    // ipvsadm sorts by its own hash order; compare as sets of lines per service block.
    let norm = |lines: Vec<&str>| {
        let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        v.sort();
        v
    };
    if norm(ours.clone()) != norm(theirs.clone()) {
        return Err(format!(
            "ours:\n{}\nipvsadm:\n{}",
            ours.join("\n"),
            theirs.join("\n")
        ));
    }
    Ok(())
}
