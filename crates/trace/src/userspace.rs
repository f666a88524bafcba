//! Userspace mode: the proxy itself accepts the connection on a listener (one per portal: ClusterIP,
//! externalIP, load-balancer IP, NodePort on a node address) and connects to a backend of its own choosing,
//! round robin (each of N backends 1/N), sticking to one per client with ClientIP affinity. The backend sees the
//! node's address. Portals of external kinds use the external policy's endpoints, except for clients on this
//! node (pods of its pod CIDRs, its own addresses), which use the internal ones.
//!
//! A packet for a local address that no listener serves is refused; one for another address is forwarded
//! unchanged. Pure: the caller turns a plan (manifests, or the running proxy's status) into [`UserspacePlan`].
//!
//! Behind REDIRECT/DNAT rules on a live node, [`trace_redirected`] continues the packet's trace through the
//! kernel's rules into the listener those rules picked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use kube_proxy_model::Protocol;
use serde::Serialize;

use crate::packet::{Packet, TraceOptions};
use crate::ruleset::RuleRef;
use crate::tokens::split;
use crate::trace::{Affinity, ListenerHit, Outcome, Trace, Verdict};

/// One address a service port is served on, and where the proxy listens for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserspacePortal {
    /// `cluster_ip`, `external_ip`, `load_balancer`, `node_port`.
    pub kind: String,
    /// Uses the external traffic policy.
    pub external: bool,
    /// The address clients use (unspecified: every local address, for NodePorts).
    pub vip: IpAddr,
    pub port: u16,
    /// Where the proxy listens; `None` when it is an ephemeral port chosen at start-up.
    pub listen: Option<SocketAddr>,
}

/// One service port as the proxy serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserspaceService {
    /// `ns/name:port`.
    pub name: String,
    pub protocol: Protocol,
    pub portals: Vec<UserspacePortal>,
    /// Endpoints of internal (ClusterIP) traffic and of external traffic.
    pub internal: Vec<SocketAddr>,
    pub external: Vec<SocketAddr>,
    pub affinity_seconds: Option<u32>,
}

/// Every service port of one family, and what counts as a client on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserspacePlan {
    pub services: Vec<UserspaceService>,
    /// The node's pod CIDRs (loopback and `TraceOptions::local_addrs` count as local too).
    pub local_client_cidrs: Vec<IpNet>,
}

fn outcome(probability: f64, verdict: Verdict, decided_by: RuleRef, local: bool) -> Outcome {
    Outcome {
        probability,
        path: vec![decided_by.clone()],
        verdict,
        decided_by: Some(decided_by),
        masquerade: None,
        affinity: Vec::new(),
        delivered_locally: local,
        virtual_server: None,
        listener: None,
    }
}

/// Traces `packet` to the listener that accepts it and the backends the proxy would connect to.
pub fn trace_userspace(plan: &UserspacePlan, packet: &Packet, opts: &TraceOptions) -> Trace {
    let local_dst = opts.is_local(&packet.dst);
    let found = plan.services.iter().find_map(|s| {
        let p = s.portals.iter().find(|p| {
            s.protocol == packet.protocol
                && p.port == packet.dst_port
                && (p.vip == packet.dst || (p.vip.is_unspecified() && local_dst))
        })?;
        Some((s, p))
    });
    let rref = |chain: String, rule: String| RuleRef {
        table: "userspace".to_string(),
        chain,
        rule,
    };
    let dst = SocketAddr::new(packet.dst, packet.dst_port);
    let outcomes = match found {
        None if local_dst => vec![outcome(
            1.0,
            Verdict::Reject,
            rref(
                "listeners".into(),
                format!(
                    "no listener for {} {dst}: connection refused",
                    packet.protocol
                ),
            ),
            true,
        )],
        None => vec![outcome(
            1.0,
            Verdict::Accept,
            rref(
                "listeners".into(),
                format!(
                    "no listener for {} {dst}: forwarded unchanged",
                    packet.protocol
                ),
            ),
            false,
        )],
        Some((s, p)) => {
            let local_client = packet.src.is_loopback()
                || opts.local_addrs.contains(&packet.src)
                || plan
                    .local_client_cidrs
                    .iter()
                    .any(|c| c.contains(&packet.src));
            let backends = if p.external && !local_client {
                &s.external
            } else {
                &s.internal
            };
            let listen = p
                .listen
                .map(|l| l.to_string())
                .unwrap_or_else(|| "an ephemeral port".into());
            let accepted = rref(
                s.name.clone(),
                format!(
                    "{} portal {dst} accepted by the listener on {listen}",
                    p.kind
                ),
            );
            let hit = ListenerHit {
                service: s.name.clone(),
                portal: p.kind.clone(),
                listen: p.listen,
                backends: backends.len(),
            };
            if backends.is_empty() {
                let mut o = outcome(1.0, Verdict::Accept, accepted, true);
                o.path.push(rref(
                    s.name.clone(),
                    "no endpoints: the proxy closes the connection".into(),
                ));
                o.listener = Some(hit);
                vec![o]
            } else {
                let n = backends.len() as f64;
                backends
                    .iter()
                    .map(|b| {
                        let mut o = outcome(
                            1.0 / n,
                            Verdict::Proxy {
                                ip: b.ip(),
                                port: b.port(),
                            },
                            accepted.clone(),
                            true,
                        );
                        o.path
                            .push(rref(s.name.clone(), format!("round robin: connect to {b}")));
                        if let Some(secs) = s.affinity_seconds {
                            o.affinity.push(Affinity {
                                name: format!("ClientIP affinity of {}", s.name),
                                seconds: Some(secs),
                                target: None,
                                rule: accepted.clone(),
                            });
                        }
                        o.listener = Some(hit.clone());
                        o
                    })
                    .collect()
            }
        }
    };
    Trace {
        packet: packet.clone(),
        outcomes,
        unsupported: Vec::new(),
    }
}

/// The `--comment` of an `iptables-save` rule line (the redirect rules name their service port there).
pub fn rule_comment(rule: &str) -> Option<String> {
    let words = split(rule).ok()?;
    let i = words.iter().position(|w| w == "--comment")?;
    words.get(i + 1).cloned()
}

fn unspecified_like(ip: &IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Live redirect addressing: `nat` is the packet's trace through the node's netfilter rules (from
/// `iptables-save`). An outcome that a rule of one of `chains` DNATed or REDIRECTed continues in the proxy: the
/// rule's comment names the service port (in `plan`), the portal for the packet's original destination decides
/// between internal and external endpoints, and the rule's target is the listener (REDIRECT: the unspecified
/// address and the port). Every other outcome is kept as the kernel decides it (DROP, REJECT, another DNAT),
/// except a packet the rules leave alone, which is refused when its destination is local (no listener) or
/// forwarded, as in [`trace_userspace`]. Probabilities multiply; paths are the kernel's rules, then the proxy's.
pub fn trace_redirected(
    nat: &Trace,
    plan: &UserspacePlan,
    chains: &[&str],
    opts: &TraceOptions,
) -> Trace {
    let packet = &nat.packet;
    let dst = SocketAddr::new(packet.dst, packet.dst_port);
    let mut outcomes = Vec::new();
    for o in &nat.outcomes {
        let redirect = o
            .decided_by
            .as_ref()
            .filter(|r| r.table == "nat" && chains.contains(&r.chain.as_str()));
        let listen = match (&o.verdict, redirect) {
            (Verdict::Dnat { ip, port }, Some(_)) => Some(SocketAddr::new(*ip, *port)),
            (Verdict::Redirect { port }, Some(_)) => {
                Some(SocketAddr::new(unspecified_like(&packet.dst), *port))
            }
            _ => None,
        };
        let proxied = match (listen, redirect) {
            (Some(listen), Some(rule)) => {
                let name = rule_comment(&rule.rule).unwrap_or_default();
                match portal_of(plan, &name, packet) {
                    Some((s, p)) => {
                        let one = UserspacePlan {
                            services: vec![UserspaceService {
                                portals: vec![UserspacePortal {
                                    vip: packet.dst,
                                    port: packet.dst_port,
                                    listen: Some(listen),
                                    ..p.clone()
                                }],
                                ..s.clone()
                            }],
                            local_client_cidrs: plan.local_client_cidrs.clone(),
                        };
                        trace_userspace(&one, packet, opts).outcomes
                    }
                    None => vec![outcome(
                        1.0,
                        Verdict::Accept,
                        RuleRef {
                            table: "userspace".into(),
                            chain: name.clone(),
                            rule: format!(
                                "{dst} redirected to {listen}, but the running proxy reports no service port \
                                 {name:?} with a portal there: its backends are unknown"
                            ),
                        },
                        true,
                    )],
                }
            }
            _ if o.verdict == Verdict::Accept && o.decided_by.is_none() => {
                let none = UserspacePlan {
                    services: Vec::new(),
                    local_client_cidrs: plan.local_client_cidrs.clone(),
                };
                trace_userspace(&none, packet, opts).outcomes
            }
            _ => {
                outcomes.push(o.clone());
                continue;
            }
        };
        for u in proxied {
            let mut path = o.path.clone();
            path.extend(u.path);
            outcomes.push(Outcome {
                probability: o.probability * u.probability,
                path,
                ..u
            });
        }
    }
    Trace {
        packet: packet.clone(),
        outcomes,
        unsupported: nat.unsupported.clone(),
    }
}

/// The service port `name` of the packet's protocol and its portal for the packet's destination: the exact
/// address first, then a NodePort on every local address.
fn portal_of<'a>(
    plan: &'a UserspacePlan,
    name: &str,
    packet: &Packet,
) -> Option<(&'a UserspaceService, &'a UserspacePortal)> {
    let s = plan
        .services
        .iter()
        .find(|s| s.name == name && s.protocol == packet.protocol)?;
    let on_port = |p: &&UserspacePortal| p.port == packet.dst_port;
    let p = s
        .portals
        .iter()
        .filter(on_port)
        .find(|p| p.vip == packet.dst)
        .or_else(|| {
            s.portals
                .iter()
                .filter(on_port)
                .find(|p| p.vip.is_unspecified())
        })?;
    Some((s, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_text;

    const CHAINS: &[&str] = &[
        "KUBE-PORTALS-CONTAINER",
        "KUBE-PORTALS-HOST",
        "KUBE-NODEPORT-CONTAINER",
        "KUBE-NODEPORT-HOST",
    ];

    /// Rules in the shape the userspace redirect renderer writes, with the jumps from the built-in chains.
    const RULES: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-PORTALS-CONTAINER - [0:0]
:KUBE-PORTALS-HOST - [0:0]
:KUBE-NODEPORT-CONTAINER - [0:0]
:KUBE-NODEPORT-HOST - [0:0]
-A PREROUTING -m comment --comment "userspace proxy: service addresses" -j KUBE-PORTALS-CONTAINER
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "userspace proxy: node ports" -j KUBE-NODEPORT-CONTAINER
-A OUTPUT -m comment --comment "userspace proxy: service addresses" -j KUBE-PORTALS-HOST
-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "userspace proxy: node ports" -j KUBE-NODEPORT-HOST
-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http" -m tcp --dport 80 -j DNAT --to-destination 192.168.0.2:40001
-A KUBE-PORTALS-CONTAINER -d 10.96.0.11/32 -p tcp -m comment --comment ns/gone:http -m tcp --dport 80 -j REDIRECT --to-ports 40009
-A KUBE-PORTALS-CONTAINER -d 10.96.0.12/32 -p tcp -m tcp --dport 80 -j DROP
-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http" -m tcp --dport 80 -j DNAT --to-destination 192.168.0.2:40001
-A KUBE-NODEPORT-CONTAINER -p tcp -m comment --comment "ns/web:http" -m tcp --dport 30080 -j REDIRECT --to-ports 40002
COMMIT
"#;

    fn plan() -> UserspacePlan {
        let portal = |kind: &str, vip: &str, port| UserspacePortal {
            kind: kind.into(),
            external: kind != "cluster_ip",
            vip: vip.parse().unwrap(),
            port,
            listen: None,
        };
        UserspacePlan {
            services: vec![UserspaceService {
                name: "ns/web:http".into(),
                protocol: Protocol::Tcp,
                portals: vec![
                    portal("cluster_ip", "10.96.0.10", 80),
                    portal("node_port", "0.0.0.0", 30080),
                ],
                internal: vec![
                    "10.0.1.1:8080".parse().unwrap(),
                    "10.0.2.1:8080".parse().unwrap(),
                ],
                external: vec!["10.0.2.1:8080".parse().unwrap()],
                affinity_seconds: Some(60),
            }],
            local_client_cidrs: vec!["10.0.2.0/24".parse().unwrap()],
        }
    }

    fn run(packet: Packet) -> Trace {
        let opts = TraceOptions::with_local_addrs(vec!["192.168.0.2".parse().unwrap()]);
        let nat = trace_text(RULES, &packet, &opts).unwrap();
        trace_redirected(&nat, &plan(), CHAINS, &opts)
    }

    fn inbound(src: &str, dst: &str, port: u16) -> Packet {
        Packet::inbound(
            src.parse().unwrap(),
            dst.parse().unwrap(),
            port,
            Protocol::Tcp,
        )
    }

    fn verdicts(t: &Trace) -> Vec<(String, f64)> {
        t.outcomes
            .iter()
            .map(|o| (format!("{:?}", o.verdict), o.probability))
            .collect()
    }

    #[test]
    fn comments_quoted_or_not() {
        assert_eq!(
            rule_comment(r#"-A X -m comment --comment "a b" -j Y"#).as_deref(),
            Some("a b")
        );
        assert_eq!(
            rule_comment("-A X -m comment --comment ns/a:b -j Y").as_deref(),
            Some("ns/a:b")
        );
        assert_eq!(rule_comment("-A X -j Y"), None);
    }

    #[test]
    fn a_dnat_rule_picks_the_listener_and_the_service_its_backends() {
        let t = run(inbound("10.0.2.7", "10.96.0.10", 80));
        assert_eq!(
            verdicts(&t),
            vec![
                ("Proxy { ip: 10.0.1.1, port: 8080 }".into(), 0.5),
                ("Proxy { ip: 10.0.2.1, port: 8080 }".into(), 0.5)
            ]
        );
        let o = &t.outcomes[0];
        let l = o.listener.as_ref().unwrap();
        assert_eq!(l.listen, Some("192.168.0.2:40001".parse().unwrap()));
        assert_eq!((l.portal.as_str(), l.backends), ("cluster_ip", 2));
        // The kernel's rules come first on the path, then the listener.
        assert_eq!(o.path[0].chain, "PREROUTING");
        assert!(o
            .path
            .iter()
            .any(|r| r.chain == "KUBE-PORTALS-CONTAINER" && r.rule.contains("40001")));
        assert_eq!(o.decided_by.as_ref().unwrap().table, "userspace");
        assert_eq!(o.affinity[0].seconds, Some(60));
        assert!(o.masquerade.is_none());
        // From the node itself, through the host chain.
        let local = Packet::local(
            "192.168.0.2".parse().unwrap(),
            "10.96.0.10".parse().unwrap(),
            80,
            Protocol::Tcp,
        );
        let t = run(local);
        assert_eq!(t.outcomes.len(), 2);
        assert!(t.outcomes[0]
            .path
            .iter()
            .any(|r| r.chain == "KUBE-PORTALS-HOST"));
    }

    #[test]
    fn node_ports_redirect_to_a_local_port_and_use_the_external_endpoints() {
        let t = run(inbound("203.0.113.9", "192.168.0.2", 30080));
        assert_eq!(
            verdicts(&t),
            vec![("Proxy { ip: 10.0.2.1, port: 8080 }".into(), 1.0)]
        );
        let l = t.outcomes[0].listener.as_ref().unwrap();
        assert_eq!(l.listen, Some("0.0.0.0:40002".parse().unwrap()));
        assert_eq!(l.portal, "node_port");
        // A client in the node's pod CIDR uses the internal endpoints.
        assert_eq!(
            run(inbound("10.0.2.7", "192.168.0.2", 30080))
                .outcomes
                .len(),
            2
        );
    }

    #[test]
    fn other_outcomes_follow_the_kernel() {
        // Redirected for a service the proxy does not report: accepted, backends unknown.
        let t = run(inbound("10.0.2.7", "10.96.0.11", 80));
        assert_eq!(verdicts(&t), vec![("Accept".into(), 1.0)]);
        let rule = &t.outcomes[0].decided_by.as_ref().unwrap().rule;
        assert!(
            rule.contains("reports no service port \"ns/gone:http\""),
            "{rule}"
        );
        // Dropped by a rule: stays dropped.
        let t = run(inbound("10.0.2.7", "10.96.0.12", 80));
        assert_eq!(verdicts(&t), vec![("Drop".into(), 1.0)]);
        // No rule for a local port: refused; for another address: forwarded.
        let t = run(inbound("10.0.2.7", "192.168.0.2", 30099));
        assert_eq!(verdicts(&t), vec![("Reject".into(), 1.0)]);
        let t = run(inbound("10.0.2.7", "10.96.0.99", 80));
        assert_eq!(verdicts(&t), vec![("Accept".into(), 1.0)]);
        assert!(!t.outcomes[0].delivered_locally);
    }
}
