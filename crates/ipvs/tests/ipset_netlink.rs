//! ipsets over netlink against the host kernel (which has ipset), each test in a fresh network namespace,
//! checked with the `ipset` tool. Root only (skipped on a laptop, required when CI=true).

mod common;

use std::collections::BTreeSet;

use common::{ep, ip, state, svc};
use kube_proxy_ipvs::ipset_kernel::{sync_ipsets, IpsetHandle, NetlinkIpset};
use kube_proxy_ipvs::ipset_wire::{Member, SetSpec, SetType};
use kube_proxy_ipvs::ipsets::{IpSetName, IpSets};
use kube_proxy_ipvs::{render, IpvsConfig};
use kube_proxy_model::{IpFamily, Protocol, ProxyState};
use kube_proxy_testkit::netns::{require_root, Netns};

fn cfg(family: IpFamily) -> IpvsConfig {
    let mut c = IpvsConfig::new(family);
    c.node_port_ips = match family {
        IpFamily::V4 => vec![ip("192.168.1.10")],
        IpFamily::V6 => vec![ip("fd00:1::10")],
    };
    c
}

/// Services touching every set: hairpin, ClusterIP, externalIP (Local and not), LB with source ranges
/// (one containing the node address), NodePorts TCP/UDP/SCTP with Local policy, a health-check node port.
fn rich(family: IpFamily) -> ProxyState {
    let (a, b) = match family {
        IpFamily::V4 => ("10.96.0.", "10.244.1."),
        IpFamily::V6 => ("fd00:96::", "fd00:244::"),
    };
    let x = |p: &str, n: u32| ip(&format!("{p}{n}"));
    let mut web = svc(
        "web",
        Protocol::Tcp,
        &format!("{a}10"),
        80,
        vec![
            ep(&format!("{b}5"), 8080, true),
            ep(&format!("{b}6"), 8080, false),
        ],
    );
    web.node_port = Some(30080);
    web.external_ips = vec![x(a, 200)];
    web.load_balancer_ips = vec![x(a, 201)];
    web.load_balancer_source_ranges = match family {
        IpFamily::V4 => vec![
            "192.168.1.0/24".parse().unwrap(),
            "10.1.2.3/8".parse().unwrap(),
        ],
        IpFamily::V6 => vec!["fd00:1::/64".parse().unwrap()],
    };
    web.external_policy_local = true;
    web.health_check_node_port = Some(31000);
    let mut dns = svc(
        "dns",
        Protocol::Udp,
        &format!("{a}53"),
        53,
        vec![ep(&format!("{b}7"), 5353, false)],
    );
    dns.node_port = Some(30053);
    dns.external_ips = vec![x(a, 54)];
    let mut sctp = svc(
        "sig",
        Protocol::Sctp,
        &format!("{a}90"),
        9000,
        vec![ep(&format!("{b}8"), 9000, true)],
    );
    sctp.node_port = Some(30900);
    sctp.external_policy_local = true;
    state(family, vec![web, dns, sctp])
}

/// Removes the random ` initval 0x...` from a line.
fn without_initval(l: &str) -> String {
    match l.find(" initval ") {
        Some(i) => {
            let rest = &l[i + " initval ".len()..];
            let after = rest.find(' ').map(|j| &rest[j..]).unwrap_or("");
            format!("{}{after}", &l[..i])
        }
        None => l.to_string(),
    }
}

/// `ipset save` without the random `initval`, KUBE sets only, sorted.
fn save(ns: &Netns) -> String {
    let out = ns.exec_ok(&["ipset", "save"]).unwrap();
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| l.contains(" KUBE-"))
        .map(without_initval)
        .collect();
    lines.sort();
    lines.join("\n")
}

/// `ipset list` (names, types, revisions, headers, references, members) without `initval` and the memory
/// size (which depends on the order the elements arrived in).
fn list(ns: &Netns) -> String {
    let out = ns.exec_ok(&["ipset", "list", "-s"]).unwrap();
    out.lines()
        .filter(|l| !l.starts_with("Size in memory"))
        .map(without_initval)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same sets programmed the old way, `ipset restore -exist` with the render's text, in a namespace.
fn restored_with_the_tool(sets: &[&IpSets]) -> Netns {
    let ns = Netns::new("ipset-tool").unwrap();
    let path = std::env::temp_dir().join(format!("kprs-ipset-{}.txt", std::process::id()));
    let text: String = sets.iter().map(|s| s.restore_text()).collect();
    std::fs::write(&path, text).unwrap();
    ns.exec_ok(&[
        "sh",
        "-c",
        &format!("ipset restore -exist < {}", path.display()),
    ])
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    ns
}

fn handle_in(ns: &Netns) -> NetlinkIpset {
    ns.run_in(|| NetlinkIpset::new().unwrap()).unwrap()
}

#[test]
fn sets_equal_what_ipset_restore_made() {
    if !require_root("sets_equal_what_ipset_restore_made") {
        return;
    }
    let ns = Netns::new("ipset-nl").unwrap();
    let h = handle_in(&ns);
    let v4 = render(&rich(IpFamily::V4), &cfg(IpFamily::V4));
    let v6 = render(&rich(IpFamily::V6), &cfg(IpFamily::V6));
    let c4 = sync_ipsets(&h, &v4.ipsets).unwrap();
    let c6 = sync_ipsets(&h, &v6.ipsets).unwrap();
    let want = |s: &IpSets| s.entries.values().map(|e| e.len()).sum::<usize>();
    assert_eq!((c4.added, c4.deleted), (want(&v4.ipsets), 0));
    assert_eq!((c6.added, c6.deleted), (want(&v6.ipsets), 0));
    assert!(want(&v4.ipsets) > 15, "the fixture fills the sets");
    for n in IpSetName::ALL {
        if n != IpSetName::NodePortLocalUdp {
            assert!(!v4.ipsets.is_empty(n), "{n:?} has entries");
        }
    }

    let ours = save(&ns);
    let tool = restored_with_the_tool(&[&v4.ipsets, &v6.ipsets]);
    assert_eq!(
        ours,
        save(&tool),
        "netlink and `ipset restore` give the same sets"
    );
    assert!(ours
        .contains("create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536"));
    assert!(ours.contains("create KUBE-NODE-PORT-TCP bitmap:port range 0-65535"));
    assert!(ours.contains("add KUBE-LOAD-BALANCER-SOURCE-CIDR 10.96.0.201,tcp:80,10.0.0.0/8"));
    assert!(ours.contains("add KUBE-6-CLUSTER-IP fd00:96::10,tcp:80"));

    // `ipset list` shows exactly the same too: types, revisions, headers, members.
    let listed = list(&ns);
    assert_eq!(listed, list(&tool));
    assert!(
        listed.contains("Type: hash:ip,port,ip\nRevision: "),
        "{listed}"
    );
    assert!(
        listed.contains("\n10.244.1.5,tcp:8080,10.244.1.5\n"),
        "{listed}"
    );
}

#[test]
fn a_second_sync_sends_only_the_difference() {
    if !require_root("a_second_sync_sends_only_the_difference") {
        return;
    }
    let ns = Netns::new("ipset-diff").unwrap();
    let h = handle_in(&ns);
    let c = cfg(IpFamily::V4);
    let first = render(&rich(IpFamily::V4), &c);
    sync_ipsets(&h, &first.ipsets).unwrap();
    let s1 = h.stats();

    // Unchanged: creates are re-sent (idempotent), no element message.
    let again = sync_ipsets(&h, &first.ipsets).unwrap();
    assert_eq!((again.added, again.deleted), (0, 0));
    let s2 = h.stats();
    assert_eq!(
        (s2.adds, s2.dels, s2.update_batches),
        (s1.adds, s1.dels, s1.update_batches)
    );

    // A stray element put there by hand goes; one service goes away, one endpoint changes.
    ns.exec_ok(&["ipset", "add", "KUBE-CLUSTER-IP", "10.96.9.9,udp:99"])
        .unwrap();
    let mut st = rich(IpFamily::V4);
    st.services.retain(|k, _| &*k.name != "dns");
    let key = st
        .services
        .keys()
        .find(|k| &*k.name == "web")
        .unwrap()
        .clone();
    let mut web = (*st.services[&key]).clone();
    web.endpoints[0].ip = ip("10.244.1.50");
    web.cluster_endpoints = web.endpoints.clone().into();
    web.local_endpoints = vec![web.endpoints[0].clone()].into();
    st.services.insert(key, std::sync::Arc::new(web));
    let second = render(&st, &c);

    let old: BTreeSet<(IpSetName, String)> = flat(&first.ipsets);
    let new: BTreeSet<(IpSetName, String)> = flat(&second.ipsets);
    let added = new.difference(&old).count();
    let deleted = old.difference(&new).count() + 1; // + the stray element
    assert!(added >= 1 && deleted >= 4, "{added} {deleted}");

    let counts = sync_ipsets(&h, &second.ipsets).unwrap();
    assert_eq!((counts.added, counts.deleted), (added, deleted));
    let s3 = h.stats();
    assert_eq!(
        s3.adds - s2.adds,
        added as u64,
        "only the new elements are sent"
    );
    assert_eq!(
        s3.dels - s2.dels,
        deleted as u64,
        "only the old elements are sent"
    );
    assert_eq!(s3.update_batches - s2.update_batches, 1, "in one sendmsg");

    let tool = restored_with_the_tool(&[&second.ipsets]);
    assert_eq!(save(&ns), save(&tool));
    assert_eq!(list(&ns), list(&tool));
    let cip = ns.exec_ok(&["ipset", "list", "KUBE-CLUSTER-IP"]).unwrap();
    assert!(!cip.contains("10.96.9.9"), "{cip}");
    assert!(!cip.contains("10.96.0.53"), "{cip}");
}

fn flat(s: &IpSets) -> BTreeSet<(IpSetName, String)> {
    s.entries
        .iter()
        .flat_map(|(n, e)| e.iter().map(move |x| (*n, x.clone())))
        .collect()
}

#[test]
fn large_updates_are_batched_and_acknowledged() {
    if !require_root("large_updates_are_batched_and_acknowledged") {
        return;
    }
    let ns = Netns::new("ipset-big").unwrap();
    let h = handle_in(&ns);
    let mut sets = IpSets::new(IpFamily::V4);
    for i in 0..5000u32 {
        sets.add(
            IpSetName::ClusterIp,
            format!("10.96.{}.{},tcp:{}", i / 250, i % 250 + 1, 80 + i % 3),
        );
    }
    let c = sync_ipsets(&h, &sets).unwrap();
    assert_eq!(c.added, 5000);
    assert!(h.stats().update_batches > 10);
    let listed = h.list("KUBE-CLUSTER-IP").unwrap().unwrap();
    assert_eq!(listed.members.len(), 5000, "the dump spans many messages");
    let terse = ns
        .exec_ok(&["ipset", "list", "-t", "KUBE-CLUSTER-IP"])
        .unwrap();
    assert!(terse.contains("Number of entries: 5000"), "{terse}");

    // Half go away.
    let mut half = IpSets::new(IpFamily::V4);
    for e in sets.get(IpSetName::ClusterIp).take(2500) {
        half.add(IpSetName::ClusterIp, e.clone());
    }
    let c = sync_ipsets(&h, &half).unwrap();
    assert_eq!((c.added, c.deleted), (0, 2500));
    let terse = ns
        .exec_ok(&["ipset", "list", "-t", "KUBE-CLUSTER-IP"])
        .unwrap();
    assert!(terse.contains("Number of entries: 2500"), "{terse}");
}

#[test]
fn create_exist_semantics_destroy_and_errors() {
    if !require_root("create_exist_semantics_destroy_and_errors") {
        return;
    }
    let ns = Netns::new("ipset-crud").unwrap();
    let h = handle_in(&ns);
    let (min, max) = h.protocol().unwrap();
    assert!(min <= 6 && 6 <= max, "protocol {min}..{max}");
    let spec = |name: &str, t| SetSpec {
        name: name.into(),
        set_type: t,
        family: IpFamily::V4,
    };
    let specs = [
        spec("KUBE-T-IP", SetType::HashIp),
        spec("KUBE-T-NET", SetType::HashNet),
        spec("KUBE-T-PORT", SetType::BitmapPort),
    ];
    h.ensure_sets(&specs).unwrap();
    h.ensure_sets(&specs).unwrap();
    // Created by the tool with the same options: accepted too.
    ns.exec_ok(&[
        "ipset",
        "create",
        "KUBE-T-IPP",
        "hash:ip,port",
        "family",
        "inet",
        "hashsize",
        "1024",
        "maxelem",
        "65536",
    ])
    .unwrap();
    h.ensure_sets(&[spec("KUBE-T-IPP", SetType::HashIpPort)])
        .unwrap();
    // Another type under the same name: a clear error.
    let err = h
        .ensure_sets(&[spec("KUBE-T-IP", SetType::HashIpPort)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("create KUBE-T-IP hash:ip,port"), "{err}");
    assert!(err.contains("exists with another type"), "{err}");

    // hash:net: a network masked like the kernel does, plus a nomatch entry added by hand.
    let m = Member::parse(SetType::HashNet, "10.1.2.3/16").unwrap();
    assert_eq!(m.to_string(), "10.1.0.0/16");
    h.update(&[kube_proxy_ipvs::ipset_kernel::Change {
        add: true,
        set: "KUBE-T-NET".into(),
        member: m,
    }])
    .unwrap();
    ns.exec_ok(&["ipset", "add", "KUBE-T-NET", "10.9.0.0/24", "nomatch"])
        .unwrap();
    let listed = h.list("KUBE-T-NET").unwrap().unwrap();
    assert_eq!(listed.type_name, "hash:net");
    assert_eq!(listed.members, vec![m]);
    assert_eq!(
        listed.nomatch,
        vec![Member::parse(SetType::HashNet, "10.9.0.0/24").unwrap()]
    );
    let all = h.list_all().unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["KUBE-T-IP", "KUBE-T-NET", "KUBE-T-PORT", "KUBE-T-IPP"]
    );

    // An element of the wrong family is refused with the kernel's reason.
    let err = h
        .update(&[kube_proxy_ipvs::ipset_kernel::Change {
            add: true,
            set: "KUBE-T-IP".into(),
            member: Member::Ip(ip("fd00::1")),
        }])
        .unwrap_err()
        .to_string();
    assert!(err.contains("add KUBE-T-IP fd00::1"), "{err}");

    assert!(h.list("KUBE-NOPE").unwrap().is_none());
    h.destroy("KUBE-NOPE").unwrap();
    for s in &specs {
        h.destroy(&s.name).unwrap();
    }
    h.destroy("KUBE-T-IPP").unwrap();
    assert_eq!(ns.exec_ok(&["ipset", "list", "-n"]).unwrap().trim(), "");
}

#[test]
fn cleanup_destroys_the_sets_over_netlink() {
    if !require_root("cleanup_destroys_the_sets_over_netlink") {
        return;
    }
    let ns = Netns::new("ipset-cleanup").unwrap();
    let h = handle_in(&ns);
    for f in [IpFamily::V4, IpFamily::V6] {
        sync_ipsets(&h, &render(&rich(f), &cfg(f)).ipsets).unwrap();
    }
    ns.exec_ok(&["ipset", "create", "OTHER", "hash:ip"])
        .unwrap();
    kube_proxy_ipvs::cleanup(
        None,
        &kube_proxy_ipvs::FakeLink::default(),
        &kube_proxy_iptables::sim::FakeExec::default(),
        &h,
    )
    .unwrap();
    assert_eq!(
        ns.exec_ok(&["ipset", "list", "-n"]).unwrap().trim(),
        "OTHER",
        "ours gone, the foreign set kept"
    );
}
