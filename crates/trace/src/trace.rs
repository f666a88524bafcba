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
