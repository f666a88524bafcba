//! Scenarios that send real TCP/UDP traffic through services the applier programmed.

use super::*;

/// A ClusterIP programmed by the applier carries real TCP traffic from a namespace to both backends; the
/// address is on kube-ipvs0, the ipset and iptables jumps exist, and a second sync changes nothing.
pub(super) fn clusterip_traffic() -> Result<(), String> {
    topology()?;
    let mut dp = dataplane()?;
    let st = state(vec![service(
        "web",
        VIP,
        80,
        vec![endpoint(BE1, 8080), endpoint(BE2, 8080)],
    )]);
    dp.sync(&st).map_err(e("sync"))?;
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        seen.insert(ask_once(CLIENT_NS, vip(80))?);
    }
    if seen.len() != 2 {
        return Err(format!("rr reached {seen:?}, want both backends"));
    }
    let addrs = sh("ip", &["-4", "addr", "show", "dev", "kube-ipvs0"])?;
    if !addrs.contains("10.96.0.10/32") {
        return Err(format!("kube-ipvs0: {addrs}"));
    }
    let set = sh("ipset", &["list", "KUBE-CLUSTER-IP"])?;
    if !set.contains("10.96.0.10,tcp:80") {
        return Err(format!("KUBE-CLUSTER-IP: {set}"));
    }
    let nat = sh("iptables-legacy-save", &["-t", "nat"])?;
    if !nat
        .contains("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES")
    {
        return Err(format!("no KUBE-SERVICES jump: {nat}"));
    }
    let again = dp.sync(&st).map_err(e("second sync"))?;
    if again != kube_proxy_ipvs::IpvsSyncReport::default() {
        return Err(format!("second sync changed things: {again:?}"));
    }
    // Removing the service removes its virtual server and its address.
    let report = dp.sync(&state(vec![])).map_err(e("empty sync"))?;
    if report.services_deleted != 1 || report.addresses_deleted != 1 {
        return Err(format!("removal report {report:?}"));
    }
    Ok(())
}

/// ClientIP affinity is IPVS persistence: every connection from the client reaches the same backend.
pub(super) fn session_affinity() -> Result<(), String> {
    topology()?;
    let mut dp = dataplane()?;
    let mut svc = service(
        "sticky",
        VIP,
        81,
        vec![endpoint(BE1, 8080), endpoint(BE2, 8080)],
    );
    svc.session_affinity_timeout = Some(600);
    dp.sync(&state(vec![svc])).map_err(e("sync"))?;
    let vs = GenlIpvs::new()
        .map_err(e("open"))?
        .services()
        .map_err(e("list"))?
        .into_iter()
        .find(|v| v.key == key(81))
        .ok_or("no virtual server")?;
    if vs.flags & SVC_F_PERSISTENT == 0 || vs.timeout != 600 {
        return Err(format!("not persistent: {vs:?}"));
    }
    let mut seen = BTreeSet::new();
    for _ in 0..5 {
        seen.insert(ask_once(CLIENT_NS, vip(81))?);
    }
    dp.sync(&state(vec![])).map_err(e("cleanup sync"))?;
    if seen.len() != 1 {
        return Err(format!("affinity broken: {seen:?}"));
    }
    Ok(())
}

/// An endpoint removed while a long TCP connection uses it: the connection keeps working, new connections
/// avoid it (weight 0), and the real server is deleted once the connection ends.
pub(super) fn graceful_termination() -> Result<(), String> {
    topology()?;
    let mut dp = dataplane()?;
    let both = vec![endpoint(BE1, 8080), endpoint(BE2, 8080)];
    dp.sync(&state(vec![service("drain", VIP, 82, both)]))
        .map_err(e("sync"))?;
    let mut long = Client::connect(CLIENT_NS, vip(82))?;
    let victim = long.ask()?;
    let other = if victim == "be1" { BE2 } else { BE1 };
    let report = dp
        .sync(&state(vec![service(
            "drain",
            VIP,
            82,
            vec![endpoint(other, 8080)],
        )]))
        .map_err(e("sync without victim"))?;
    if report.reals_draining != 1 || report.pending_graceful != 1 {
        return Err(format!("victim not draining: {report:?}"));
    }
    let rs = reals(&key(82))?;
    let v = rs
        .iter()
        .find(|r| r.addr == backend_ip(&victim))
        .ok_or("victim deleted while its connection was active")?;
    if v.weight != 0 || v.active_conns == 0 {
        return Err(format!(
            "victim real server {v:?}, want weight 0 with an active connection"
        ));
    }
    for _ in 0..4 {
        let got = ask_once(CLIENT_NS, vip(82))?;
        if got == victim {
            return Err("a new connection reached the draining endpoint".into());
        }
    }
    if long.ask()? != victim {
        return Err("the long connection moved".into());
    }
    // Another sync keeps it draining.
    dp.sync(&state(vec![service(
        "drain",
        VIP,
        82,
        vec![endpoint(other, 8080)],
    )]))
    .map_err(e("resync"))?;
    if !reals(&key(82))?
        .iter()
        .any(|r| r.addr == backend_ip(&victim))
    {
        return Err("victim deleted by a resync while active".into());
    }
    long.abort()?;
    // Right after the reset IPVS still tracks the connection as inactive (CLOSE state): like upstream, the
    // drain waits for inactive connections too, so the real server must stay while the listing shows one.
    if let Some(v) = reals(&key(82))?
        .into_iter()
        .find(|r| r.addr == backend_ip(&victim))
    {
        if v.active_conns + v.inactive_conns > 0
            && dp.process_graceful(Instant::now()).map_err(e("graceful"))? == 0
        {
            return Err(format!("victim deleted with connections left: {v:?}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = dp.process_graceful(Instant::now()).map_err(e("graceful"))?;
        if pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "still draining after close: {:?}",
                reals(&key(82))?
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let left: Vec<_> = reals(&key(82))?.iter().map(|r| r.socket_addr()).collect();
    dp.sync(&state(vec![])).map_err(e("cleanup sync"))?;
    if left != vec![SocketAddr::new(ip(other), 8080)] {
        return Err(format!("after drain real servers are {left:?}"));
    }
    Ok(())
}

/// NodePort on the node's address, an externalIP, and a UDP ClusterIP all carry traffic from the client.
pub(super) fn nodeport_externalip_udp() -> Result<(), String> {
    topology()?;
    let mut dp = dataplane()?;
    let mut tcp = service("np", VIP, 85, vec![endpoint(BE1, 8080)]);
    tcp.node_port = Some(30085);
    tcp.external_ips = vec![ip("203.0.113.5")];
    let mut udp = service("dns", "10.96.0.53", 53, vec![endpoint(BE2, 5353)]);
    udp.protocol = Protocol::Udp;
    udp.name.protocol = Protocol::Udp;
    dp.sync(&state(vec![tcp, udp])).map_err(e("sync"))?;
    let np = ask_once(CLIENT_NS, SocketAddr::new(ip("10.1.9.1"), 30085));
    // The client has no route to 203.0.113.0/24 but its default route leads to the node.
    let ext = ask_once(CLIENT_NS, SocketAddr::new(ip("203.0.113.5"), 85));
    let dns = udp_ask(CLIENT_NS, SocketAddr::new(ip("10.96.0.53"), 53));
    let set = sh("ipset", &["list", "KUBE-NODE-PORT-TCP"]);
    dp.sync(&state(vec![])).map_err(e("cleanup sync"))?;
    if np? != "be1" {
        return Err("NodePort reached the wrong backend".into());
    }
    if ext? != "be1" {
        return Err("externalIP reached the wrong backend".into());
    }
    if dns? != "be2" {
        return Err("UDP reached the wrong backend".into());
    }
    if !set?.contains("30085") {
        return Err("KUBE-NODE-PORT-TCP lacks 30085".into());
    }
    Ok(())
}

/// A process on the node reaches a ClusterIP (its VIP source is masqueraded), and a local endpoint reaches
/// itself through its own service (hairpin, KUBE-LOOP-BACK masquerade).
pub(super) fn node_client_and_hairpin() -> Result<(), String> {
    topology()?;
    let mut dp = dataplane()?;
    let mut me = endpoint(BE1, 8080);
    me.is_local = true;
    dp.sync(&state(vec![service("self", VIP, 86, vec![me])]))
        .map_err(e("sync"))?;
    let from_node = ask_from_node(vip(86));
    let hairpin = ask_once("be1", vip(86));
    let loopback = sh("ipset", &["list", "KUBE-LOOP-BACK"]);
    dp.sync(&state(vec![])).map_err(e("cleanup sync"))?;
    if from_node? != "be1" {
        return Err("node client reached the wrong backend".into());
    }
    if !loopback?.contains("10.1.1.2,tcp:8080,10.1.1.2") {
        return Err("KUBE-LOOP-BACK lacks the local endpoint".into());
    }
    if hairpin? != "be1" {
        return Err("hairpin reached the wrong backend".into());
    }
    Ok(())
}

/// An IPv6 ClusterIP: v6 virtual server, KUBE-6-* sets, ip6tables chains, and real traffic.
pub(super) fn ipv6_clusterip() -> Result<(), String> {
    topology()?;
    add_v6("be1", "vbe1", "fd01:1")?;
    add_v6("be2", "vbe2", "fd01:2")?;
    add_v6(CLIENT_NS, "vcl", "fd01:9")?;
    std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1").map_err(e("v6 forwarding"))?;
    start_backend_v6("be1", 8081, "be1")?;
    start_backend_v6("be2", 8081, "be2")?;
    let mut cfg = IpvsConfig::new(IpFamily::V6);
    cfg.node_port_ips = vec![ip("fd01:9::1")];
    let mut dp =
        IpvsDataplane::with_real_system(cfg, Backend::Legacy).map_err(e("v6 dataplane"))?;
    let mut svc = service(
        "six",
        "fd00:96::10",
        80,
        vec![endpoint("fd01:1::2", 8081), endpoint("fd01:2::2", 8081)],
    );
    svc.family = IpFamily::V6;
    svc.node_port = Some(30086);
    let mut st = state(vec![svc]);
    st.family = IpFamily::V6;
    dp.sync(&st).map_err(e("sync"))?;
    let vip6 = SocketAddr::new(ip("fd00:96::10"), 80);
    let mut seen = BTreeSet::new();
    let mut errs = Vec::new();
    for _ in 0..4 {
        match ask_once(CLIENT_NS, vip6) {
            Ok(n) => {
                seen.insert(n);
            }
            Err(x) => errs.push(x),
        }
    }
    let np = ask_once(CLIENT_NS, SocketAddr::new(ip("fd01:9::1"), 30086));
    let set = sh("ipset", &["list", "KUBE-6-CLUSTER-IP"]);
    let save = sh("ip6tables-legacy-save", &["-t", "nat"]);
    let mut empty = state(vec![]);
    empty.family = IpFamily::V6;
    dp.sync(&empty).map_err(e("cleanup sync"))?;
    if !errs.is_empty() || seen.len() != 2 {
        return Err(format!("v6 reached {seen:?}, errors {errs:?}"));
    }
    np.map_err(|x| format!("v6 NodePort: {x}"))?;
    if !set?.contains("fd00:96::10,tcp:80") {
        return Err("KUBE-6-CLUSTER-IP lacks the VIP".into());
    }
    if !save?.contains("--match-set KUBE-6-CLUSTER-IP") {
        return Err("ip6tables lacks the KUBE-6 rules".into());
    }
    Ok(())
}
