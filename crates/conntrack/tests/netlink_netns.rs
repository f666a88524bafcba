//! Privileged end-to-end test of the netlink conntrack seam: in a private network namespace, inserts UDP (and
//! other) entries with `conntrack -I`, then lists and reconciles them through [`NetlinkConntrack`] and checks
//! with `conntrack -L` that exactly the stale entries are gone. Needs root; fails (does not skip) when CI=true.

use std::net::IpAddr;
use std::process::Command;

use kube_proxy_conntrack::{
    reconcile, ConntrackOps, Flow, FlowTuple, NetlinkConntrack, IPPROTO_UDP,
};
use kube_proxy_model::{fixtures, IpFamily, Protocol, ProxyState};

fn privileged() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test needs root when CI=true"
    );
    eprintln!("skipping: needs root (set CI=true to make this a failure)");
    false
}

/// Runs `f` on a fresh thread moved into a new, private network namespace (gone when the thread ends).
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A UDP flow `client:sport -> dst:dport` answered by `replier:rport`.
fn udp(client: &str, sport: u16, dst: &str, dport: u16, replier: &str, rport: u16) -> Flow {
    Flow::udp(
        FlowTuple::new(ip(client), sport, ip(dst), dport),
        FlowTuple::new(ip(replier), rport, ip(client), sport),
    )
}

fn insert(flow: &Flow, proto: &str) {
    let o = &flow.original;
    let r = &flow.reply;
    let mut args: Vec<String> = vec![
        "-I".into(),
        "-p".into(),
        proto.into(),
        "-t".into(),
        "300".into(),
    ];
    for (k, v) in [
        ("-s", o.src.to_string()),
        ("-d", o.dst.to_string()),
        ("--sport", o.src_port.to_string()),
        ("--dport", o.dst_port.to_string()),
        ("--reply-src", r.src.to_string()),
        ("--reply-dst", r.dst.to_string()),
        ("--reply-port-src", r.src_port.to_string()),
        ("--reply-port-dst", r.dst_port.to_string()),
    ] {
        args.push(k.into());
        args.push(v);
    }
    if proto == "tcp" {
        args.extend(["--state".into(), "ESTABLISHED".into()]);
    }
    if flow.zone != 0 {
        args.extend(["-w".into(), flow.zone.to_string()]);
    }
    let out = Command::new("conntrack")
        .args(&args)
        .output()
        .expect("run conntrack -I");
    assert!(
        out.status.success(),
        "conntrack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn conntrack_list(family: &str) -> String {
    let out = Command::new("conntrack")
        .args(["-L", "-f", family])
        .output()
        .expect("run conntrack -L");
    assert!(
        out.status.success(),
        "conntrack -L: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(listing: &str, f: &Flow) -> bool {
    let needle = format!(
        "src={} dst={} sport={} dport={}",
        f.original.src, f.original.dst, f.original.src_port, f.original.dst_port
    );
    listing.lines().any(|l| l.contains(&needle))
}

fn dns_state(family: IpFamily, cluster_ip: &str, endpoint: &str) -> ProxyState {
    let mut port = fixtures::name("kube-system", "dns", "dns");
    port.protocol = Protocol::Udp;
    let mut svc = fixtures::svc(port, cluster_ip, 53);
    svc.node_port = Some(30053);
    svc.endpoints = vec![fixtures::ep(endpoint, 53, true)];
    fixtures::state(family, vec![fixtures::finish(svc)])
}

#[test]
fn reconcile_deletes_exactly_the_stale_udp_entries_v4() {
    if !privileged() {
        return;
    }
    in_new_netns(|| {
        let keep = udp("10.0.0.1", 1001, "10.96.0.10", 53, "10.244.1.5", 53);
        let keep_np = udp("10.0.0.1", 1002, "10.100.0.1", 30053, "10.244.1.5", 53);
        let stale_ep = udp("10.0.0.1", 1003, "10.96.0.10", 53, "10.244.9.9", 53);
        let stale_unnat = udp("10.0.0.1", 1004, "10.96.0.10", 53, "10.96.0.10", 53);
        let stale_np = udp("10.0.0.1", 1005, "10.100.0.1", 30053, "10.100.0.1", 30053);
        let stale_zone = Flow {
            zone: 5,
            ..udp("10.0.0.1", 1006, "10.96.0.10", 53, "10.244.9.9", 53)
        };
        let unrelated = udp("10.0.0.1", 1007, "192.168.1.1", 53, "192.168.1.1", 53);
        let tcp = Flow {
            protocol: 6,
            ..udp("10.0.0.1", 1008, "10.96.0.10", 53, "10.244.9.9", 53)
        };
        let v6 = udp("fd00::1", 1009, "fd00:96::10", 53, "fd00:96::10", 53);
        let udp_flows = [
            keep,
            keep_np,
            stale_ep,
            stale_unnat,
            stale_np,
            stale_zone,
            unrelated,
        ];
        for f in &udp_flows {
            insert(f, "udp");
        }
        insert(&tcp, "tcp");
        insert(&v6, "udp");

        let ct = NetlinkConntrack::new();
        let mut listed = ct.list_udp(IpFamily::V4).expect("dump");
        listed.sort();
        let mut want = udp_flows.to_vec();
        want.sort();
        assert_eq!(listed, want, "the v4 dump holds exactly the UDP v4 entries");
        assert!(listed.iter().all(|f| f.protocol == IPPROTO_UDP));

        let out = reconcile(&ct, &dns_state(IpFamily::V4, "10.96.0.10", "10.244.1.5"))
            .expect("reconcile");
        assert_eq!((out.listed, out.stale, out.deleted), (7, 4, 4));

        let v4 = conntrack_list("ipv4");
        for f in [keep, keep_np, unrelated, tcp] {
            assert!(has(&v4, &f), "{f} must survive:\n{v4}");
        }
        for f in [stale_ep, stale_unnat, stale_np, stale_zone] {
            assert!(!has(&v4, &f), "{f} must be gone:\n{v4}");
        }
        assert!(
            has(&conntrack_list("ipv6"), &v6),
            "v6 entries are untouched by a v4 pass"
        );

        // Deleting an entry that is already gone is not an error and is not counted.
        assert_eq!(ct.delete(&[stale_ep]).expect("delete again"), 0);
    });
}

#[test]
fn reconcile_deletes_exactly_the_stale_udp_entries_v6() {
    if !privileged() {
        return;
    }
    in_new_netns(|| {
        let keep = udp("fd00::1", 2001, "fd00:96::10", 53, "fd00:10:244:1::5", 53);
        let stale = udp("fd00::1", 2002, "fd00:96::10", 53, "fd00:96::10", 53);
        let v4 = udp("10.0.0.1", 2003, "10.96.0.10", 53, "10.96.0.10", 53);
        for f in [keep, stale, v4] {
            insert(&f, "udp");
        }
        let ct = NetlinkConntrack::new();
        let mut listed = ct.list_udp(IpFamily::V6).expect("dump");
        listed.sort();
        assert_eq!(listed, vec![keep, stale]);
        let out = reconcile(
            &ct,
            &dns_state(IpFamily::V6, "fd00:96::10", "fd00:10:244:1::5"),
        )
        .expect("reconcile");
        assert_eq!((out.stale, out.deleted), (1, 1));
        assert_eq!(ct.list_udp(IpFamily::V6).expect("dump"), vec![keep]);
        assert!(has(&conntrack_list("ipv4"), &v4));
    });
}

#[test]
fn many_stale_flows_are_deleted_in_batches() {
    if !privileged() {
        return;
    }
    in_new_netns(|| {
        // More than one deletion batch (128) of stale flows, plus a few live ones.
        let stale: Vec<Flow> = (0..300)
            .map(|i| udp("10.0.0.1", 3000 + i, "10.96.0.10", 53, "10.244.9.9", 53))
            .collect();
        let keep: Vec<Flow> = (0..5)
            .map(|i| udp("10.0.0.2", 4000 + i, "10.96.0.10", 53, "10.244.1.5", 53))
            .collect();
        for f in stale.iter().chain(&keep) {
            insert(f, "udp");
        }
        let ct = NetlinkConntrack::new();
        let out = reconcile(&ct, &dns_state(IpFamily::V4, "10.96.0.10", "10.244.1.5"))
            .expect("reconcile");
        assert_eq!((out.listed, out.stale, out.deleted), (305, 300, 300));
        let mut left = ct.list_udp(IpFamily::V4).expect("dump");
        left.sort();
        assert_eq!(left, keep);
    });
}
