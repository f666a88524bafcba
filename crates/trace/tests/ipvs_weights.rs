//! IPVS scheduling in the tracer: real-server weights become probabilities, weight-0 (draining) servers are
//! never chosen, and a virtual server with nothing to choose answers with a REJECT.

use kube_proxy_model::fixtures::ip;
use kube_proxy_model::Protocol;
use kube_proxy_trace::ipvs::{trace_ipvs, IpvsReal, IpvsService, IpvsTable};
use kube_proxy_trace::{Packet, Ruleset, TraceOptions, Verdict};

fn table(weights: &[u32]) -> IpvsTable {
    IpvsTable {
        services: vec![IpvsService {
            protocol: Protocol::Tcp,
            addr: ip("10.96.0.10"),
            port: 80,
            scheduler: "wrr".into(),
            persistence_seconds: None,
            reals: weights
                .iter()
                .enumerate()
                .map(|(i, w)| IpvsReal {
                    addr: ip(&format!("10.0.0.{}", i + 1)),
                    port: 8080,
                    weight: *w,
                })
                .collect(),
        }],
    }
}

fn opts() -> TraceOptions {
    let mut o = TraceOptions::with_local_addrs(vec![ip("10.96.0.10")]);
    o.ensure_kube_proxy_jumps = false;
    o
}

fn pkt(port: u16) -> Packet {
    Packet::inbound(ip("10.0.9.9"), ip("10.96.0.10"), port, Protocol::Tcp)
}

#[test]
fn weights_become_probabilities_and_weight_zero_is_skipped() {
    let rules = Ruleset::parse("").unwrap();
    let t = trace_ipvs(&rules, &table(&[3, 1, 0]), &pkt(80), &opts());
    let got: Vec<(Verdict, f64)> = t
        .outcomes
        .iter()
        .map(|o| (o.verdict.clone(), o.probability))
        .collect();
    let dnat = |i: &str| Verdict::Dnat {
        ip: ip(i),
        port: 8080,
    };
    assert_eq!(
        got,
        vec![(dnat("10.0.0.1"), 0.75), (dnat("10.0.0.2"), 0.25)]
    );
    let vs = t.outcomes[0].virtual_server.as_ref().unwrap();
    assert_eq!((vs.weight, vs.total_weight), (3, 4));
    assert!(t
        .render_text()
        .contains("ipvs virtual server TCP 10.96.0.10:80 (wrr): weight 3 of 4"));
}

#[test]
fn only_draining_servers_means_reject_and_other_ports_are_delivered_locally() {
    let rules = Ruleset::parse("").unwrap();
    let t = trace_ipvs(&rules, &table(&[0, 0]), &pkt(80), &opts());
    assert_eq!(t.outcomes.len(), 1);
    assert_eq!(t.outcomes[0].verdict, Verdict::Reject);
    assert_eq!(t.outcomes[0].decided_by.as_ref().unwrap().table, "ipvs");
    let t = trace_ipvs(&rules, &table(&[1]), &pkt(81), &opts());
    assert_eq!(t.outcomes[0].verdict, Verdict::Accept);
    assert!(t.outcomes[0].delivered_locally);
    assert!(t.outcomes[0].virtual_server.is_none());
}

#[test]
fn the_helper_rules_run_before_ipvs_and_masquerade_after_it() {
    let rules = Ruleset::parse(
        "*filter
:INPUT ACCEPT [0:0]
-A INPUT -s 10.0.9.66 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -s 10.0.9.9 -j KUBE-MARK-MASQ
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
COMMIT
",
    )
    .unwrap();
    let t = trace_ipvs(&rules, &table(&[1]), &pkt(80), &opts());
    let m = t.outcomes[0].masquerade.as_ref().expect("masqueraded");
    assert_eq!(
        m.decided_by.rule,
        "-A PREROUTING -s 10.0.9.9 -j KUBE-MARK-MASQ"
    );
    let dropped = Packet::inbound(ip("10.0.9.66"), ip("10.96.0.10"), 80, Protocol::Tcp);
    let t = trace_ipvs(&rules, &table(&[1]), &dropped, &opts());
    assert_eq!(t.outcomes[0].verdict, Verdict::Drop);
    assert!(t.outcomes[0].virtual_server.is_none());
}
