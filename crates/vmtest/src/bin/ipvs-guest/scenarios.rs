//! The guest scenarios: each returns `Err(reason)` on failure.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube_proxy_iptables::Backend;
use kube_proxy_ipvs::{
    GenlIpvs, Ipvs, IpvsConfig, IpvsDataplane, RealServer, Scheduler, ServiceKey, VirtualServer,
    SVC_F_PERSISTENT,
};
use kube_proxy_model::{IpFamily, Protocol};
use kube_proxy_vmtest::guest::sh;

use crate::fixtures::{endpoint, ip, service, state};
use crate::net::{
    add_namespace, add_v6, ask_from_node, ask_once, start_backend, start_backend_v6,
    start_udp_backend, udp_ask, Client,
};

type Scenario = (&'static str, fn() -> Result<(), String>);

pub const ALL: &[Scenario] = &[
    ("ipvs-available", available),
    ("genl-crud", genl_crud),
    ("schedulers", schedulers),
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

const VIP: &str = "10.96.0.10";
const BE1: &str = "10.1.1.2";
const BE2: &str = "10.1.2.2";
const CLIENT_NS: &str = "client";

/// Two backends (be1, be2) serving :8080 and a client namespace, all routed through the guest's root
/// namespace (the "node"). Built once.
fn topology() -> Result<(), String> {
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

fn dataplane() -> Result<IpvsDataplane, String> {
    let mut cfg = IpvsConfig::new(IpFamily::V4);
    cfg.node_port_ips = vec![ip("10.1.9.1")];
    cfg.exclude_cidrs = vec!["10.250.0.0/16".parse().unwrap()];
    IpvsDataplane::with_real_system(cfg, Backend::Legacy).map_err(e("dataplane"))
}

fn vip(port: u16) -> SocketAddr {
    SocketAddr::new(ip(VIP), port)
}

fn key(port: u16) -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        addr: ip(VIP),
        port,
    }
}

fn reals(k: &ServiceKey) -> Result<Vec<RealServer>, String> {
    GenlIpvs::new()
        .map_err(e("open"))?
        .real_servers(k)
        .map_err(e("list reals"))
}

fn backend_ip(name: &str) -> IpAddr {
    ip(if name == "be1" { BE1 } else { BE2 })
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

/// Every scheduler `--ipvs-scheduler` accepts is accepted by the kernel.
fn schedulers() -> Result<(), String> {
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

/// A ClusterIP programmed by the applier carries real TCP traffic from a namespace to both backends; the
/// address is on kube-ipvs0, the ipset and iptables jumps exist, and a second sync changes nothing.
fn clusterip_traffic() -> Result<(), String> {
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
fn session_affinity() -> Result<(), String> {
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
fn graceful_termination() -> Result<(), String> {
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
    drop(long);
    let deadline = Instant::now() + Duration::from_secs(20);
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

/// A desired real server left at weight 0 by an earlier run gets its weight back on the first sync.
fn restart_restores_weights() -> Result<(), String> {
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
fn stale_services_removed() -> Result<(), String> {
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
fn available() -> Result<(), String> {
    kube_proxy_ipvs::ipvs_support(std::path::Path::new("/proc")).map_err(|u| u.0)
}

/// NodePort on the node's address, an externalIP, and a UDP ClusterIP all carry traffic from the client.
fn nodeport_externalip_udp() -> Result<(), String> {
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
fn node_client_and_hairpin() -> Result<(), String> {
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

/// `--cleanup` removes virtual servers, kube-ipvs0, our iptables chains and jumps, and the ipsets.
fn cleanup() -> Result<(), String> {
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

/// An IPv6 ClusterIP: v6 virtual server, KUBE-6-* sets, ip6tables chains, and real traffic.
fn ipv6_clusterip() -> Result<(), String> {
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

/// Our `ipvsadm -Ln`-style listing of the kernel's table equals ipvsadm's own (after its version line).
fn ipvsadm_listing() -> Result<(), String> {
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
