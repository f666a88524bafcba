//! Privileged end-to-end tests: the netlink applier against the real kernel, compared with the nft text
//! encoder's output loaded by `nft -f`, each in a private network namespace. Needs root and nft: fails when
//! CI=true and they are missing, skips with a note otherwise.

mod common;

use std::sync::Arc;

use common::*;
use kube_proxy_model::{IpFamily, ProxyState};
use kube_proxy_nftables::text::to_nft_script;
use kube_proxy_nftables::{
    render_full, render_incremental, FullReason, LocalDetector, NftablesDataplane,
    NodePortAddresses, RenderConfig, SyncKind,
};

fn cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec![
            "10.0.0.0/16".parse().unwrap(),
            "fd00:1::/64".parse().unwrap(),
        ]),
        node_port_addresses: NodePortAddresses::Ips(vec![ip("192.168.1.10"), ip("fd00:99::10")]),
        node_ips: vec![ip("198.51.100.7")],
        service_cidrs: vec![
            "172.30.0.0/16".parse().unwrap(),
            "fd00:30::/112".parse().unwrap(),
        ],
        ..RenderConfig::default()
    }
}

/// What `nft` shows after loading the text encoding of `steps` (each a transaction) in a fresh namespace.
fn listing_via_text(family: &'static str, steps: Vec<String>) -> String {
    in_private_netns(move || {
        for (i, s) in steps.iter().enumerate() {
            nft_load(s).unwrap_or_else(|e| panic!("nft -f of step {i} failed: {e}\n{s}"));
        }
        nft_list(family).expect("table exists")
    })
}

fn family_str(f: IpFamily) -> &'static str {
    match f {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

fn check_full_and_incremental(first: Arc<ProxyState>, second: Arc<ProxyState>) {
    let fam = family_str(first.family);
    let cfg = cfg();
    let full_text = to_nft_script(&render_full(&first, &cfg));
    let inc_text = to_nft_script(&render_incremental(&first, &second, &cfg));
    let want_full = listing_via_text(fam, vec![full_text.clone()]);
    let want_inc = listing_via_text(fam, vec![full_text, inc_text]);
    let want_resync = listing_via_text(fam, vec![to_nft_script(&render_full(&second, &cfg))]);
    let (got_full, got_inc, tamper) = in_private_netns(|| {
        let mut dp = NftablesDataplane::new(first.family, cfg.clone()).expect("netlink socket");
        let r = dp.sync(&first, false).expect("full sync");
        assert_eq!(r.kind, SyncKind::Full);
        let got_full = nft_list(fam).expect("table after full sync");
        let r = dp.sync(&second, false).expect("incremental sync");
        assert_eq!(
            r.kind,
            SyncKind::Partial,
            "untampered table must sync incrementally"
        );
        let got_inc = nft_list(fam).expect("table after incremental sync");
        // Nothing changed: no batch at all.
        let r = dp.sync(&second, false).expect("no-op sync");
        assert_eq!((r.kind, r.messages), (SyncKind::Partial, 0));
        // Tamper: another program adds a chain to our table; the next sync notices and resyncs in full.
        nft_load(&format!("add chain {fam} kube-proxy intruder\n")).expect("tamper");
        let r = dp.sync(&second, false).expect("resync");
        assert_eq!(r.full_reason, Some(FullReason::Tampered));
        let after_resync = nft_list(fam).expect("table after resync");
        dp.cleanup().expect("cleanup");
        assert!(nft_list(fam).is_none(), "cleanup removes the table");
        dp.cleanup().expect("cleanup is idempotent");
        (got_full, got_inc, after_resync)
    });
    assert_eq!(
        normalise(&got_full),
        normalise(&want_full),
        "full sync via netlink differs from nft -f"
    );
    assert_eq!(
        normalise(&got_inc),
        normalise(&want_inc),
        "incremental sync via netlink differs from nft -f"
    );
    assert_eq!(
        normalise(&tamper),
        normalise(&want_resync),
        "resync after tampering restores the table"
    );
}

#[test]
fn netlink_equals_nft_text_ipv4() {
    if !can_run_privileged() {
        return;
    }
    check_full_and_incremental(v4_state("10.0.1.7"), v4_state("10.0.1.8"));
}

#[test]
fn netlink_equals_nft_text_ipv6() {
    if !can_run_privileged() {
        return;
    }
    let first = v6_state();
    let mut second = (*first).clone();
    second.services.pop_first();
    check_full_and_incremental(first, Arc::new(second));
}

/// A named network namespace (`ip netns add`), deleted on drop (also when a test panics).
struct NamedNetns(String);

impl NamedNetns {
    fn new(role: &str) -> NamedNetns {
        let name = format!("kpnft-{}-{role}", std::process::id());
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .output();
        ip_cmd(&["netns", "add", &name]);
        NamedNetns(name)
    }

    /// Runs `ip ARGS` inside the namespace.
    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend_from_slice(args);
        ip_cmd(&full);
    }

    /// Runs `f` on a thread that entered the namespace.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).expect("open netns");
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

fn ip_cmd(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Connects to `addr` from `client` and echoes 4 bytes through `listener`; returns the address the server
/// accepted on.
fn echo_through(
    client: &NamedNetns,
    listener: &std::net::TcpListener,
    addr: &str,
) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).unwrap();
            conn.write_all(&buf).unwrap();
            conn.local_addr().unwrap()
        });
        client.run(|| {
            let target: std::net::SocketAddr = addr.parse().unwrap();
            let mut c =
                std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
            c.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
        });
        server.join().unwrap()
    })
}

fn refused(client: &NamedNetns, addr: &str) -> bool {
    client.run(|| {
        let target: std::net::SocketAddr = addr.parse().unwrap();
        matches!(
            std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_secs(10)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
    })
}

/// Real TCP traffic from a client namespace to a node namespace over a veth pair: ClusterIP DNAT with
/// ClientIP affinity, REJECT for a service without endpoints and for a wrong port on a ClusterIP, after a
/// full and an incremental sync; without affinity, every endpoint is used and an endpoint replacement
/// (elements only) takes effect.
#[test]
fn traffic_through_cluster_ips() {
    if !can_run_privileged() {
        return;
    }
    let node = NamedNetns::new("node");
    let client = NamedNetns::new("client");
    ip_cmd(&[
        "link", "add", "kpn0", "netns", &node.0, "type", "veth", "peer", "name", "kpc0", "netns",
        &client.0,
    ]);
    node.ip(&["link", "set", "lo", "up"]);
    node.ip(&["link", "set", "kpn0", "up"]);
    node.ip(&["addr", "add", "10.9.0.1/24", "dev", "kpn0"]);
    for a in ["10.0.1.5/32", "10.0.1.7/32", "10.0.1.8/32"] {
        node.ip(&["addr", "add", a, "dev", "lo"]);
    }
    // Unanswered ClusterIP traffic is routed (back) out of the node, so the forward hook sees it.
    node.ip(&["route", "add", "172.30.0.0/24", "via", "10.9.0.2"]);
    client.ip(&["link", "set", "lo", "up"]);
    client.ip(&["link", "set", "kpc0", "up"]);
    client.ip(&["addr", "add", "10.9.0.2/24", "dev", "kpc0"]);
    client.ip(&["route", "add", "172.30.0.0/24", "via", "10.9.0.1"]);
    node.run(|| {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding");
        // ICMP redirects would use up the per-peer ICMP rate limit before the REJECT's port-unreachable.
        for dev in ["all", "kpn0"] {
            std::fs::write(format!("/proc/sys/net/ipv4/conf/{dev}/send_redirects"), "0")
                .expect("no redirects");
        }
    });
    let listener =
        node.run(|| std::net::TcpListener::bind("0.0.0.0:8080").expect("bind endpoint port"));
    let mut dp = node.run(|| NftablesDataplane::new(IpFamily::V4, cfg()).unwrap());
    dp.sync(&v4_state("10.0.1.7"), false).unwrap();

    let first = echo_through(&client, &listener, "172.30.0.10:80");
    assert!(
        ["10.0.1.5:8080", "10.0.1.7:8080"].contains(&first.to_string().as_str()),
        "DNAT target {first}"
    );
    for _ in 0..8 {
        assert_eq!(
            echo_through(&client, &listener, "172.30.0.10:80"),
            first,
            "ClientIP affinity keeps the endpoint"
        );
    }
    assert!(
        refused(&client, "172.30.0.13:80"),
        "service without endpoints rejects"
    );
    assert!(
        refused(&client, "172.30.0.10:81"),
        "wrong port on a ClusterIP rejects"
    );

    // Incremental: the second endpoint moves; traffic still flows to a current endpoint.
    let r = dp.sync(&v4_state("10.0.1.8"), false).unwrap();
    assert_eq!(r.kind, SyncKind::Partial);
    let served = echo_through(&client, &listener, "172.30.0.10:80");
    assert!(
        ["10.0.1.5:8080", "10.0.1.8:8080"].contains(&served.to_string().as_str()),
        "DNAT target {served}"
    );

    // Without affinity the endpoint comes from a `backends-K` slot: every endpoint is used, and replacing
    // one (a data-only batch) moves the traffic to the new address.
    let targets = |dp: &mut NftablesDataplane, second: &str| {
        let mut st = (*v4_state(second)).clone();
        let web = st
            .services
            .keys()
            .find(|n| &*n.name == "web")
            .cloned()
            .unwrap();
        let mut s = (*st.services[&web]).clone();
        s.session_affinity_timeout = None;
        st.services.insert(web, Arc::new(s));
        let r = dp.sync(&Arc::new(st), false).unwrap();
        assert_eq!(r.kind, SyncKind::Partial);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            seen.insert(echo_through(&client, &listener, "172.30.0.10:80").to_string());
        }
        seen
    };
    let want = |a: &str, b: &str| -> std::collections::BTreeSet<String> {
        [a.to_string(), b.to_string()].into()
    };
    assert_eq!(
        targets(&mut dp, "10.0.1.8"),
        want("10.0.1.5:8080", "10.0.1.8:8080")
    );
    assert_eq!(
        targets(&mut dp, "10.0.1.7"),
        want("10.0.1.5:8080", "10.0.1.7:8080")
    );
    dp.cleanup().unwrap();
}

/// Longest legal names (63-character namespace, name and port name, IPv6 endpoints): chain names are
/// truncated to the kernel's limit and comments to nft's, identically by both encoders.
#[test]
fn longest_names_are_accepted() {
    if !can_run_privileged() {
        return;
    }
    let long = |c: char| std::iter::repeat_n(c, 63).collect::<String>();
    let mut s = svc(name(&long('n'), &long('s'), &long('p')), "fd00:30::20", 80);
    s.node_port = Some(30099);
    s.endpoints = vec![ep("fd00:1:2:3:4:5:6:7", 65535, false)];
    let first = Arc::new(state(IpFamily::V6, vec![finish(s.clone())]));
    let mut empty = s;
    empty.endpoints.clear();
    let second = Arc::new(state(IpFamily::V6, vec![finish(empty)]));
    check_full_and_incremental(first, second);
}
