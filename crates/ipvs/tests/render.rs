//! The pure renderer: virtual servers, addresses, ipsets and iptables text for representative services.

mod common;

use common::{ep, ip, state, svc};
use kube_proxy_ipvs::ipsets::IpSetName;
use kube_proxy_ipvs::{
    plan_ipvsadm, render, render_text, IpvsConfig, LocalDetector, Scheduler, ServiceKey,
    SVC_F_PERSISTENT,
};
use kube_proxy_model::{IpFamily, Protocol};

fn cfg() -> IpvsConfig {
    let mut c = IpvsConfig::new(IpFamily::V4);
    c.node_port_ips = vec![ip("192.168.1.10"), ip("192.168.2.10")];
    c
}

fn key(p: Protocol, a: &str, port: u16) -> ServiceKey {
    ServiceKey {
        protocol: p,
        addr: ip(a),
        port,
    }
}

#[test]
fn every_service_address_gets_a_virtual_server() {
    let mut s = svc(
        "web",
        Protocol::Tcp,
        "10.96.0.10",
        80,
        vec![ep("10.244.1.5", 8080, true), ep("10.244.2.5", 8080, false)],
    );
    s.node_port = Some(30080);
    s.external_ips = vec![ip("203.0.113.7")];
    s.load_balancer_ips = vec![ip("198.51.100.9")];
    let plan = render(&state(IpFamily::V4, vec![s]), &cfg());
    let keys: Vec<ServiceKey> = plan.services.keys().copied().collect();
    assert_eq!(
        keys,
        vec![
            key(Protocol::Tcp, "10.96.0.10", 80),
            key(Protocol::Tcp, "192.168.1.10", 30080),
            key(Protocol::Tcp, "192.168.2.10", 30080),
            key(Protocol::Tcp, "198.51.100.9", 80),
            key(Protocol::Tcp, "203.0.113.7", 80),
        ]
    );
    for d in plan.services.values() {
        assert_eq!(d.vs.scheduler, "rr");
        assert_eq!(d.reals.len(), 2, "{:?}", d.vs.key);
        assert!(d.reals.values().all(|w| *w == 1));
    }
    // NodePort addresses belong to the node: not bound to kube-ipvs0.
    let bound: Vec<String> = plan.bound_addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(bound, vec!["10.96.0.10", "198.51.100.9", "203.0.113.7"]);
    let set = |n: IpSetName| plan.ipsets.get(n).cloned().collect::<Vec<_>>();
    assert_eq!(set(IpSetName::ClusterIp), vec!["10.96.0.10,tcp:80"]);
    assert_eq!(set(IpSetName::ExternalIp), vec!["203.0.113.7,tcp:80"]);
    assert_eq!(set(IpSetName::LoadBalancer), vec!["198.51.100.9,tcp:80"]);
    assert_eq!(set(IpSetName::NodePortTcp), vec!["30080"]);
    assert!(set(IpSetName::NodePortLocalTcp).is_empty());
    assert_eq!(
        set(IpSetName::LoopBack),
        vec!["10.244.1.5,tcp:8080,10.244.1.5"]
    );
    assert_eq!(set(IpSetName::IpvsIps).len(), 3);
}

#[test]
fn local_policy_uses_local_endpoints_and_falls_back_to_cluster() {
    let mut s = svc(
        "local",
        Protocol::Udp,
        "10.96.0.11",
        53,
        vec![ep("10.244.1.5", 53, true), ep("10.244.2.5", 53, false)],
    );
    s.node_port = Some(30053);
    s.external_policy_local = true;
    s.health_check_node_port = Some(32000);
    let mut remote_only = svc(
        "remote",
        Protocol::Tcp,
        "10.96.0.12",
        80,
        vec![ep("10.244.2.6", 80, false)],
    );
    remote_only.internal_policy_local = true;
    let plan = render(&state(IpFamily::V4, vec![s, remote_only]), &cfg());
    let np = &plan.services[&key(Protocol::Udp, "192.168.1.10", 30053)];
    assert_eq!(
        np.reals.keys().map(|k| k.0).collect::<Vec<_>>(),
        vec![ip("10.244.1.5")]
    );
    let cip = &plan.services[&key(Protocol::Udp, "10.96.0.11", 53)];
    assert_eq!(cip.reals.len(), 2, "ClusterIP keeps the Cluster policy");
    let fallback = &plan.services[&key(Protocol::Tcp, "10.96.0.12", 80)];
    assert_eq!(
        fallback.reals.len(),
        1,
        "no local endpoint: cluster endpoints are used"
    );
    let set = |n: IpSetName| plan.ipsets.get(n).cloned().collect::<Vec<_>>();
    assert_eq!(set(IpSetName::NodePortLocalUdp), vec!["30053"]);
    assert_eq!(set(IpSetName::HealthCheckNodePort), vec!["32000"]);
}

#[test]
fn affinity_scheduler_and_sctp_nodeports() {
    let mut s = svc(
        "sticky",
        Protocol::Sctp,
        "10.96.0.13",
        9000,
        vec![ep("10.244.1.9", 9000, false)],
    );
    s.session_affinity_timeout = Some(10800);
    s.node_port = Some(31000);
    let mut c = cfg();
    c.scheduler = "sh".parse::<Scheduler>().unwrap();
    let plan = render(&state(IpFamily::V4, vec![s]), &c);
    let d = &plan.services[&key(Protocol::Sctp, "10.96.0.13", 9000)];
    assert_eq!(
        (d.vs.flags, d.vs.timeout, d.vs.scheduler.as_str()),
        (SVC_F_PERSISTENT, 10800, "sh")
    );
    let sctp: Vec<_> = plan.ipsets.get(IpSetName::NodePortSctp).cloned().collect();
    assert_eq!(
        sctp,
        vec!["192.168.1.10,sctp:31000", "192.168.2.10,sctp:31000"]
    );
    assert!("bogus".parse::<Scheduler>().is_err());
    assert_eq!("".parse::<Scheduler>().unwrap(), Scheduler::RoundRobin);
}

#[test]
fn source_ranges_fill_the_firewall_sets() {
    let mut s = svc(
        "fw",
        Protocol::Tcp,
        "10.96.0.14",
        443,
        vec![ep("10.244.1.1", 8443, false)],
    );
    s.load_balancer_ips = vec![ip("198.51.100.20")];
    s.load_balancer_source_ranges = vec![
        "192.168.1.0/24".parse().unwrap(),
        "203.0.113.0/24".parse().unwrap(),
    ];
    let plan = render(&state(IpFamily::V4, vec![s]), &cfg());
    let set = |n: IpSetName| plan.ipsets.get(n).cloned().collect::<Vec<_>>();
    assert_eq!(
        set(IpSetName::LoadBalancerFw),
        vec!["198.51.100.20,tcp:443"]
    );
    assert_eq!(
        set(IpSetName::LoadBalancerSourceCidr),
        vec![
            "198.51.100.20,tcp:443,192.168.1.0/24",
            "198.51.100.20,tcp:443,203.0.113.0/24"
        ]
    );
    assert_eq!(
        set(IpSetName::LoadBalancerSourceIp),
        vec!["198.51.100.20,tcp:443,192.168.1.10"]
    );
    assert!(plan.iptables.contains(
        "-A KUBE-PROXY-FIREWALL -m comment --comment \"Kubernetes service load balancer ip + port for load balancer with sourceRange\" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL\n"
    ));
    assert!(plan
        .iptables
        .contains("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP\n"));
}

#[test]
fn iptables_masquerade_rule_follows_the_config() {
    let s = svc("a", Protocol::Tcp, "10.96.0.10", 80, vec![]);
    let st = state(IpFamily::V4, vec![s]);
    let rule = "-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP";
    let t = render(&st, &cfg()).iptables;
    assert!(
        t.contains(&format!("{rule} src,dst -j KUBE-MARK-MASQ\n")),
        "{t}"
    );
    let mut c = cfg();
    c.local_detector = LocalDetector::Cidrs(vec!["10.244.0.0/16".parse().unwrap()]);
    let t = render(&st, &c).iptables;
    assert!(
        t.contains(&format!(
            "{rule} dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ\n"
        )),
        "{t}"
    );
    c.masquerade_all = true;
    let t = render(&st, &c).iptables;
    assert!(
        t.contains(&format!("{rule} dst,dst -j KUBE-MARK-MASQ\n")),
        "{t}"
    );
    assert!(t.contains("-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000\n"));
    assert!(t.contains("-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT\n"));
    assert!(t.starts_with("*filter\n") && t.ends_with("COMMIT\n"));
}

#[test]
fn ipv6_uses_its_own_sets_and_skips_other_family() {
    let v6 = svc(
        "six",
        Protocol::Tcp,
        "fd00::10",
        80,
        vec![ep("fd00:1::5", 80, false)],
    );
    let v4 = svc("four", Protocol::Tcp, "10.96.0.10", 80, vec![]);
    let mut c = IpvsConfig::new(IpFamily::V6);
    c.node_port_ips = vec![];
    let plan = render(&state(IpFamily::V6, vec![v6, v4]), &c);
    assert_eq!(plan.services.len(), 1);
    assert!(plan.iptables.contains("--match-set KUBE-6-CLUSTER-IP"));
    assert!(plan
        .iptables
        .contains("-A KUBE-SERVICES -s ::1/128 -j RETURN"));
    assert!(plan
        .ipsets
        .restore_text()
        .contains("create KUBE-6-CLUSTER-IP hash:ip,port family inet6"));
}

#[test]
fn ipvsadm_style_listing() {
    let mut s = svc(
        "web",
        Protocol::Tcp,
        "10.96.0.10",
        80,
        vec![ep("10.244.1.5", 8080, false), ep("10.244.2.5", 8080, false)],
    );
    s.session_affinity_timeout = Some(10800);
    let u = svc(
        "dns",
        Protocol::Udp,
        "10.96.0.53",
        53,
        vec![ep("10.244.1.6", 53, false)],
    );
    let plan = render(&state(IpFamily::V4, vec![s, u]), &cfg());
    let want = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.10:80 rr persistent 10800
  -> 10.244.1.5:8080              Masq    1      0          0
  -> 10.244.2.5:8080              Masq    1      0          0
UDP  10.96.0.53:53 rr
  -> 10.244.1.6:53                Masq    1      0          0
";
    assert_eq!(plan_ipvsadm(&plan), want);
    let text = render_text(&plan);
    assert!(text.contains("# kube-ipvs0 addresses\n10.96.0.10\n10.96.0.53\n"));
    assert!(
        text.contains("KUBE-CLUSTER-IP (hash:ip,port)\n  10.96.0.10,tcp:80\n  10.96.0.53,udp:53\n")
    );
}
