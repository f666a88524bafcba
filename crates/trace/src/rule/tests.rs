//! Parser tests for single rules.

use super::*;
use crate::tokens::split;

fn rule(line: &str) -> Rule {
    let words = split(line).unwrap();
    Rule::parse(&words[1], line, &words[2..])
}

#[test]
fn kube_proxy_rule_parses_into_typed_matches() {
    let r = rule(
        r#"-A KUBE-SVC-X -m comment --comment "ns/s:p cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ"#,
    );
    assert_eq!(
        r.matches,
        vec![
            Match::Protocol {
                proto: Some("tcp".into()),
                negated: false
            },
            Match::Destination {
                net: "172.30.0.41/32".parse().unwrap(),
                negated: false
            },
            Match::DstPort {
                lo: 80,
                hi: 80,
                negated: false
            },
            Match::Source {
                net: "10.0.0.0/8".parse().unwrap(),
                negated: true
            },
        ]
    );
    assert_eq!(r.target, Some(Target::Jump("KUBE-MARK-MASQ".into())));
}

#[test]
fn targets_parse() {
    assert_eq!(
        rule("-A X -m tcp -p tcp -j DNAT --to-destination [fd00::1]:8080").target,
        Some(Target::Dnat(DnatTo {
            ip: "fd00::1".parse().unwrap(),
            port: Some(8080)
        }))
    );
    assert_eq!(
        rule("-A X -j MARK --set-xmark 0x4000/0x4000").target,
        Some(Target::Mark {
            and: !0x4000,
            or: 0,
            xor: 0x4000
        })
    );
    assert_eq!(
        rule("-A X -j MARK --or-mark 0x00004000").target,
        Some(Target::Mark {
            and: u32::MAX,
            or: 0x4000,
            xor: 0
        })
    );
    assert_eq!(
        rule("-A X -j MASQUERADE --random-fully").target,
        Some(Target::Masquerade)
    );
    assert_eq!(
        rule("-A X -g KUBE-Y").target,
        Some(Target::Goto("KUBE-Y".into()))
    );
    assert!(matches!(
        rule("-A X -j LOG --log-prefix x").target,
        Some(Target::Unsupported(_))
    ));
}

#[test]
fn recent_statistic_and_unknown_matches() {
    let r = rule("-A X -m recent --name KUBE-SEP-A --rcheck --seconds 10800 --reap -j KUBE-SEP-A");
    assert_eq!(
        r.matches,
        vec![Match::RecentCheck {
            name: "KUBE-SEP-A".into(),
            seconds: Some(10800)
        }]
    );
    let r = rule(
        "-A X -m recent --name KUBE-SEP-A --set -m tcp -p tcp -j DNAT --to-destination 1.2.3.4:80",
    );
    assert_eq!(
        r.matches[0],
        Match::RecentSet {
            name: "KUBE-SEP-A".into()
        }
    );
    let r = rule("-A X -m statistic --mode random --probability 0.3333333333 -j Y");
    assert_eq!(
        r.matches,
        vec![Match::Probability {
            p: 0.3333333333,
            negated: false
        }]
    );
    let r = rule("-A X -m set ! --match-set foo dst,dst,src -j Y");
    assert_eq!(
        r.matches,
        vec![Match::Set {
            name: "foo".into(),
            dirs: vec![false, false, true],
            negated: true
        }]
    );
    let r = rule("-A X -m owner --uid-owner 0 -m foo --bar -j Y");
    assert_eq!(r.unsupported().len(), 2, "{:?}", r.matches);
    let r = rule("-A X -p tcp -j REDIRECT --to-ports 41234");
    assert_eq!(r.target, Some(Target::Redirect(Some(41234))));
    let r = rule("-A X -m mark ! --mark 0x4000/0x4000 -j RETURN");
    assert_eq!(
        r.matches,
        vec![Match::Mark {
            value: 0x4000,
            mask: 0x4000,
            negated: true
        }]
    );
}
