//! Every rule in kube-proxy-iptables' golden files uses only matches and targets this tracer models, and a
//! packet to every ClusterIP in them gets a verdict without "unsupported" reports.

use std::path::Path;

use kube_proxy_model::Protocol;
use kube_proxy_trace::{rule::Match, trace_packet, Packet, Ruleset, TraceOptions, Verdict};

fn goldens() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../iptables/tests/snapshots");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("iptables snapshots") {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        // Drop insta's front matter (between the first two `---` lines).
        let body = text.splitn(3, "---\n").nth(2).unwrap_or(&text).to_string();
        out.push((p.file_name().unwrap().to_string_lossy().into_owned(), body));
    }
    out.sort();
    assert!(
        out.len() >= 10,
        "expected the iptables goldens, found {}",
        out.len()
    );
    out
}

#[test]
fn every_golden_rule_is_fully_modelled() {
    for (name, body) in goldens() {
        let rules = Ruleset::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut n = 0;
        for table in rules.tables.values() {
            for chain in table.chains.values() {
                for r in &chain.rules {
                    n += 1;
                    assert!(
                        r.unsupported().is_empty(),
                        "{name}: {} -> {:?}",
                        r.text,
                        r.unsupported()
                    );
                    assert!(
                        r.target.is_some() || r.text.contains("--comment"),
                        "{name}: {}",
                        r.text
                    );
                }
            }
        }
        assert!(n > 0, "{name} has no rules");
    }
}

#[test]
fn every_cluster_ip_in_the_goldens_gets_a_verdict() {
    let opts = TraceOptions::with_local_addrs(vec!["192.168.0.2".parse().unwrap()]);
    let mut traced = 0;
    // Partial renders leave unchanged services' chains out; a trace rightly reports those as missing.
    for (name, body) in goldens()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("partial"))
    {
        let rules = Ruleset::parse(&body).unwrap();
        let Some(nat) = rules.tables.get("nat") else {
            continue;
        };
        let Some(services) = nat.chains.get("KUBE-SERVICES") else {
            continue;
        };
        for r in services
            .rules
            .iter()
            .filter(|r| r.text.contains("cluster IP"))
        {
            let (mut dst, mut port) = (None, None);
            for m in &r.matches {
                match m {
                    Match::Destination {
                        net,
                        negated: false,
                    } => dst = Some(net.addr()),
                    Match::DstPort { lo, .. } => port = Some(*lo),
                    _ => {}
                }
            }
            let (Some(dst), Some(port)) = (dst, port) else {
                continue;
            };
            let src = if dst.is_ipv4() {
                "10.0.9.9"
            } else {
                "fd00:10::9"
            };
            let pkt = Packet::inbound(src.parse().unwrap(), dst, port, Protocol::Tcp);
            let t = trace_packet(&rules, &pkt, &opts);
            assert!(t.unsupported.is_empty(), "{name}: {:?}", t.unsupported);
            let sum: f64 = t.outcomes.iter().map(|o| o.probability).sum();
            assert!((sum - 1.0).abs() < 1e-6, "{name}: {}", t.render_text());
            // A captured ClusterIP is always DNATed (or refused when it has no usable endpoints).
            for o in &t.outcomes {
                assert!(
                    matches!(
                        o.verdict,
                        Verdict::Dnat { .. } | Verdict::Drop | Verdict::Reject
                    ),
                    "{name}: {}",
                    t.render_text()
                );
            }
            traced += 1;
        }
    }
    assert!(traced >= 10, "only {traced} ClusterIPs traced");
}
