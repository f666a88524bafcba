//! The typed result of a trace ([`Trace`]: outcomes with probabilities, rule-by-rule paths, verdicts,
//! masquerade decisions) and its human-readable rendering. JSON comes from serde.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::packet::{Origin, Packet};
use crate::ruleset::RuleRef;

/// Everything a packet may experience, one [`Outcome`] per probabilistic branch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trace {
    pub packet: Packet,
    /// Branches in rule order; their probabilities sum to 1.
    pub outcomes: Vec<Outcome>,
    /// Rules on the way that use matches or targets the tracer does not model (treated as non-matching).
    pub unsupported: Vec<Unsupported>,
}

/// One possible fate of the packet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub probability: f64,
    /// Every rule that matched, in order (jumps, marks, the deciding rule).
    pub path: Vec<RuleRef>,
    pub verdict: Verdict,
    /// The rule that decided the verdict (DNAT, DROP, REJECT, or a DROP policy); `None` for unchanged ACCEPT.
    pub decided_by: Option<RuleRef>,
    /// Set when the packet leaves masqueraded.
    pub masquerade: Option<Masquerade>,
    /// `-m recent` checks passed on the "not seen" path.
    pub affinity: Vec<Affinity>,
    /// Delivered to the node itself (INPUT) rather than forwarded.
    pub delivered_locally: bool,
    /// IPVS mode: the virtual server that scheduled the packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_server: Option<VirtualServerHit>,
    /// Userspace mode: the proxy listener that accepted the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerHit>,
}

/// The IPVS virtual server a packet matched and the real server it was sent to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtualServerHit {
    /// `TCP 10.96.0.10:80`.
    pub service: String,
    pub scheduler: String,
    /// Persistence (ClientIP affinity) timeout in seconds.
    pub persistence_seconds: Option<u32>,
    /// The chosen real server's weight and the sum of the weights it was chosen among.
    pub weight: u32,
    pub total_weight: u32,
}

/// The userspace proxy's listener that accepts a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListenerHit {
    /// `ns/name:port`.
    pub service: String,
    /// `cluster_ip`, `external_ip`, `load_balancer` or `node_port`.
    pub portal: String,
    /// Where the proxy listens (`None`: an ephemeral port chosen at start-up, unknown from manifests).
    pub listen: Option<std::net::SocketAddr>,
    /// Number of backends the proxy round-robins over.
    pub backends: usize,
}

/// What happens to the packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    /// Accepted with its destination rewritten.
    Dnat {
        ip: IpAddr,
        port: u16,
    },
    /// Accepted unchanged.
    Accept,
    Drop,
    Reject,
    /// Redirected to a local port (`-j REDIRECT --to-ports`), keeping the packet on this node.
    Redirect {
        port: u16,
    },
    /// Userspace mode: the proxy accepts the connection and opens its own to this backend (the backend sees
    /// the node's address).
    Proxy {
        ip: IpAddr,
        port: u16,
    },
}

/// The packet is SNATed to the node's address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Masquerade {
    /// The MASQUERADE rule.
    pub by: RuleRef,
    /// The rule that requested it: the jump to the chain that set the mark (e.g. `-j KUBE-MARK-MASQ`).
    pub decided_by: RuleRef,
}

/// Session affinity seen on the way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Affinity {
    /// The `-m recent` list name.
    pub name: String,
    pub seconds: Option<u32>,
    /// The chain the packet sticks to when its source was seen.
    pub target: Option<String>,
    pub rule: RuleRef,
}

/// A rule with matches or a target outside the modelled set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unsupported {
    pub rule: RuleRef,
    pub what: Vec<String>,
}

impl Trace {
    /// Probability of outcomes whose verdict equals `v`.
    pub fn probability_of(&self, v: &Verdict) -> f64 {
        self.outcomes
            .iter()
            .filter(|o| &o.verdict == v)
            .map(|o| o.probability)
            .sum()
    }

    /// A multi-line human-readable report.
    pub fn render_text(&self) -> String {
        let p = &self.packet;
        let mut s = String::new();
        let entry = match p.origin {
            Origin::Inbound => format!(
                "enters PREROUTING via {}",
                p.in_iface.as_deref().unwrap_or("?")
            ),
            Origin::Local => "generated locally (OUTPUT)".to_string(),
        };
        let _ = writeln!(
            s,
            "packet {} {}:{} -> {} {}",
            p.protocol,
            p.src,
            p.src_port,
            sock(p.dst, p.dst_port),
            entry
        );
        let n = self.outcomes.len();
        for (i, o) in self.outcomes.iter().enumerate() {
            let verdict = match &o.verdict {
                Verdict::Dnat { ip, port } => format!("DNAT to {}", sock(*ip, *port)),
                Verdict::Accept => "ACCEPT (unchanged)".to_string(),
                Verdict::Drop => "DROP".to_string(),
                Verdict::Reject => "REJECT".to_string(),
                Verdict::Redirect { port } => format!("REDIRECT to local port {port}"),
                Verdict::Proxy { ip, port } => {
                    format!("proxied by the userspace proxy to {}", sock(*ip, *port))
                }
            };
            let _ = writeln!(
                s,
                "\noutcome {}/{} (probability {:.4}): {}{}",
                i + 1,
                n,
                o.probability,
                verdict,
                if o.delivered_locally {
                    ", delivered to this node"
                } else {
                    ""
                }
            );
            for r in &o.path {
                let _ = writeln!(s, "  {:<6} {:<28} {}", r.table, r.chain, r.rule);
            }
            if let Some(v) = &o.virtual_server {
                let persist = v
                    .persistence_seconds
                    .map(|t| format!(", persistent {t} s"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  ipvs virtual server {} ({}{persist}): weight {} of {}",
                    v.service, v.scheduler, v.weight, v.total_weight
                );
            }
            if let Some(l) = &o.listener {
                let listen = l
                    .listen
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "an ephemeral port".to_string());
                let _ = writeln!(
                    s,
                    "  listener of {} ({}) on {listen}, round robin over {} backend(s)",
                    l.service, l.portal, l.backends
                );
            }
            if let Some(d) = &o.decided_by {
                let _ = writeln!(s, "  decided by {} {}: {}", d.table, d.chain, d.rule);
            }
            match &o.masquerade {
                Some(m) => {
                    let _ = writeln!(
                        s,
                        "  masqueraded: requested by {} {}: {}",
                        m.decided_by.table, m.decided_by.chain, m.decided_by.rule
                    );
                }
                None if matches!(o.verdict, Verdict::Proxy { .. }) => {
                    let _ = writeln!(
                        s,
                        "  the backend sees the node's address (the proxy's own connection)"
                    );
                }
                None => {
                    let _ = writeln!(s, "  not masqueraded");
                }
            }
            for a in &o.affinity {
                let secs = a
                    .seconds
                    .map(|t| format!(" within {t} s"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  affinity: sticks to {} if the source was seen{secs} (list {})",
                    a.target.as_deref().unwrap_or("?"),
                    a.name
                );
            }
        }
        for u in &self.unsupported {
            let _ = writeln!(
                s,
                "\nunsupported ({}): {} {}: {}",
                u.what.join(", "),
                u.rule.table,
                u.rule.chain,
                u.rule.rule
            );
        }
        s
    }
}

fn sock(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}
