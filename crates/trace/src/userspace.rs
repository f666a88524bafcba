//! Userspace mode: the proxy itself accepts the connection on a listener (one per portal: ClusterIP,
//! externalIP, load-balancer IP, NodePort on a node address) and connects to a backend of its own choosing,
//! round robin (each of N backends 1/N), sticking to one per client with ClientIP affinity. The backend sees the
//! node's address. Portals of external kinds use the external policy's endpoints, except for clients on this
//! node (pods of its pod CIDRs, its own addresses), which use the internal ones.
//!
//! A packet for a local address that no listener serves is refused; one for another address is forwarded
//! unchanged. Pure: the caller turns a plan (manifests) into [`UserspacePlan`].

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use kube_proxy_model::Protocol;
use serde::Serialize;

use crate::packet::{Packet, TraceOptions};
use crate::ruleset::RuleRef;
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
