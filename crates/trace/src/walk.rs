//! Walks a packet through the tables in netfilter's hook order and follows every jump, goto, RETURN and
//! probabilistic branch, producing one [`Outcome`] per branch. Never panics on odd input: missing chains,
//! jump loops and unknown matches are reported and skipped.

use crate::eval::{eval_rule, PacketState, RuleMatch};
use crate::ipvs::{IpvsTable, Scheduled};
use crate::packet::{Origin, Packet, TraceOptions};
use crate::rule::{Rule, Target};
use crate::ruleset::{is_builtin, RuleRef, Ruleset};
use crate::trace::{Affinity, Masquerade, Outcome, Trace, Unsupported, Verdict, VirtualServerHit};

/// One branch in flight.
#[derive(Clone, Debug)]
struct Branch {
    pkt: PacketState,
    probability: f64,
    path: Vec<RuleRef>,
    /// Jump rules that led into the chain being walked (innermost last).
    stack: Vec<RuleRef>,
    mark_set_by: Option<RuleRef>,
    dnat_by: Option<RuleRef>,
    masquerade: Option<Masquerade>,
    affinity: Vec<Affinity>,
    delivered_locally: bool,
    /// `REDIRECT --to-ports`: the port, and the rule.
    redirect: Option<u16>,
    virtual_server: Option<VirtualServerHit>,
}

/// How a chain walk ended for one branch.
#[derive(Clone, Debug, PartialEq)]
enum Flow {
    /// RETURN or end of chain.
    Return,
    /// ACCEPT, or a NAT target (which ends the table's traversal for this hook).
    Accept,
    Drop(RuleRef),
    Reject(RuleRef),
}

struct Walker<'a> {
    rules: &'a Ruleset,
    ipvs: Option<&'a IpvsTable>,
    opts: &'a TraceOptions,
    unsupported: Vec<Unsupported>,
}

/// Traces `packet` through `rules` (which must already contain the built-in jumps; see
/// [`crate::trace_packet`] for the convenience entry point).
pub fn walk(rules: &Ruleset, packet: &Packet, opts: &TraceOptions) -> Trace {
    walk_with(rules, packet, opts, None)
}

/// [`walk`], with IPVS's virtual servers scheduling packets to local virtual addresses.
pub(crate) fn walk_with(
    rules: &Ruleset,
    packet: &Packet,
    opts: &TraceOptions,
    ipvs: Option<&IpvsTable>,
) -> Trace {
    let mut w = Walker {
        rules,
        ipvs,
        opts,
        unsupported: Vec::new(),
    };
    let start = Branch {
        pkt: PacketState {
            src: packet.src,
            src_port: packet.src_port,
            dst: packet.dst,
            dst_port: packet.dst_port,
            protocol: packet.protocol.as_lower(),
            in_iface: match packet.origin {
                Origin::Inbound => packet.in_iface.clone(),
                Origin::Local => None,
            },
            out_iface: packet.out_iface.clone(),
            mark: 0,
            dnatted: false,
            snatted: false,
        },
        probability: 1.0,
        path: Vec::new(),
        stack: Vec::new(),
        mark_set_by: None,
        dnat_by: None,
        masquerade: None,
        affinity: Vec::new(),
        delivered_locally: false,
        redirect: None,
        virtual_server: None,
    };
    let mut outcomes = Vec::new();
    let first: &[(&str, &str)] = match packet.origin {
        Origin::Inbound => &[("mangle", "PREROUTING"), ("nat", "PREROUTING")],
        Origin::Local => &[
            ("mangle", "OUTPUT"),
            ("nat", "OUTPUT"),
            ("filter", "OUTPUT"),
        ],
    };
    let mut after_output = w.stages(vec![start], first, &mut outcomes);
    if packet.origin == Origin::Local {
        // IPVS schedules the node's own packets at LOCAL_OUT.
        after_output = w.ipvs_stage(after_output, &mut outcomes);
    }
    for b in after_output {
        let local = b.redirect.is_some() || opts.is_local(&b.pkt.dst);
        let rest: &[(&str, &str)] = match (packet.origin, local) {
            (Origin::Inbound, true) => {
                &[("mangle", "INPUT"), ("filter", "INPUT"), ("nat", "INPUT")]
            }
            (Origin::Inbound, false) => &[
                ("mangle", "FORWARD"),
                ("filter", "FORWARD"),
                ("mangle", "POSTROUTING"),
                ("nat", "POSTROUTING"),
            ],
            (Origin::Local, true) => &[("mangle", "POSTROUTING"), ("nat", "POSTROUTING")],
            (Origin::Local, false) => &[("mangle", "POSTROUTING"), ("nat", "POSTROUTING")],
        };
        let mut alive = w.stages(vec![b], rest, &mut outcomes);
        if packet.origin == Origin::Local && local {
            // Looped back: the connection is already NATed, so only the filter table sees it again.
            for b in &mut alive {
                b.pkt.in_iface = Some("lo".to_string());
            }
            alive = w.stages(
                alive,
                &[("mangle", "INPUT"), ("filter", "INPUT")],
                &mut outcomes,
            );
        }
        let mut delivered = Vec::new();
        if packet.origin == Origin::Inbound && local && w.ipvs.is_some() {
            // IPVS at LOCAL_IN: a scheduled packet leaves again through OUTPUT and POSTROUTING.
            let (scheduled, kept): (Vec<Branch>, Vec<Branch>) = w
                .ipvs_stage(alive, &mut outcomes)
                .into_iter()
                .partition(|b| b.virtual_server.is_some());
            delivered = kept;
            alive = w.stages(
                scheduled,
                &[
                    ("filter", "OUTPUT"),
                    ("mangle", "POSTROUTING"),
                    ("nat", "POSTROUTING"),
                ],
                &mut outcomes,
            );
        } else if local {
            delivered = std::mem::take(&mut alive);
        }
        for b in delivered.iter_mut() {
            b.delivered_locally = true;
        }
        for b in alive.into_iter().chain(delivered) {
            let verdict = match (&b.dnat_by, b.redirect) {
                (Some(_), Some(port)) => Verdict::Redirect { port },
                (Some(_), None) => Verdict::Dnat {
                    ip: b.pkt.dst,
                    port: b.pkt.dst_port,
                },
                (None, _) => Verdict::Accept,
            };
            let decided_by = b.dnat_by.clone();
            outcomes.push(finish(b, verdict, decided_by));
        }
    }
    Trace {
        packet: packet.clone(),
        outcomes,
        unsupported: w.unsupported,
    }
}

fn finish(b: Branch, verdict: Verdict, decided_by: Option<RuleRef>) -> Outcome {
    Outcome {
        probability: b.probability,
        path: b.path,
        verdict,
        decided_by,
        masquerade: b.masquerade,
        affinity: b.affinity,
        delivered_locally: b.delivered_locally,
        virtual_server: b.virtual_server,
        listener: None,
    }
}

impl Walker<'_> {
    /// IPVS: branches to a virtual server's address and port are scheduled to its real servers (DNAT);
    /// others pass unchanged.
    fn ipvs_stage(&mut self, alive: Vec<Branch>, outcomes: &mut Vec<Outcome>) -> Vec<Branch> {
        let Some(ipvs) = self.ipvs else {
            return alive;
        };
        let mut next = Vec::new();
        for b in alive {
            match ipvs.schedule(b.pkt.protocol, b.pkt.dst, b.pkt.dst_port) {
                Scheduled::NoService => next.push(b),
                Scheduled::NoReals(r) => {
                    let mut b = b;
                    b.path.push(r.clone());
                    outcomes.push(finish(b, Verdict::Reject, Some(r)));
                }
                Scheduled::To(reals) => {
                    for (ip, port, p, r, hit) in reals {
                        let mut b = b.clone();
                        b.probability *= p;
                        b.pkt.dst = ip;
                        b.pkt.dst_port = port;
                        b.pkt.dnatted = true;
                        b.path.push(r.clone());
                        b.dnat_by = Some(r);
                        if let Some(secs) = hit.persistence_seconds {
                            b.affinity.push(Affinity {
                                name: format!("ipvs persistence {}", hit.service),
                                seconds: Some(secs),
                                target: None,
                                rule: b.path.last().cloned().expect("pushed above"),
                            });
                        }
                        b.virtual_server = Some(hit);
                        next.push(b);
                    }
                }
            }
        }
        next
    }

    /// Runs branches through built-in chains in order; dropped/rejected branches become outcomes.
    fn stages(
        &mut self,
        mut alive: Vec<Branch>,
        stages: &[(&str, &str)],
        outcomes: &mut Vec<Outcome>,
    ) -> Vec<Branch> {
        for (table, chain) in stages {
            let Some(c) = self.rules.chain(table, chain) else {
                continue;
            };
            let policy = c.policy.clone().unwrap_or_else(|| "ACCEPT".to_string());
            let mut next = Vec::new();
            for b in alive {
                for (mut b, flow) in self.chain(b, table, chain, 0) {
                    let flow = match flow {
                        Flow::Return if policy == "DROP" => {
                            let r = RuleRef {
                                table: table.to_string(),
                                chain: chain.to_string(),
                                rule: format!("-P {chain} DROP"),
                            };
                            b.path.push(r.clone());
                            Flow::Drop(r)
                        }
                        f => f,
                    };
                    match flow {
                        Flow::Return | Flow::Accept => next.push(b),
                        Flow::Drop(r) => outcomes.push(finish(b, Verdict::Drop, Some(r))),
                        Flow::Reject(r) => outcomes.push(finish(b, Verdict::Reject, Some(r))),
                    }
                }
            }
            alive = next;
        }
        alive
    }

    /// Walks one chain; returns every branch with how it left the chain.
    fn chain(&mut self, b: Branch, table: &str, chain: &str, depth: usize) -> Vec<(Branch, Flow)> {
        let Some(c) = self.rules.chain(table, chain) else {
            return vec![(b, Flow::Return)];
        };
        let mut active = vec![b];
        let mut done = Vec::new();
        for rule in &c.rules {
            if active.is_empty() {
                break;
            }
            let here = RuleRef {
                table: table.to_string(),
                chain: chain.to_string(),
                rule: rule.text.clone(),
            };
            self.note_unsupported(rule, &here);
            let mut next = Vec::new();
            for b in active {
                match eval_rule(rule, &b.pkt, self.opts) {
                    RuleMatch::No => next.push(b),
                    RuleMatch::RecentMiss { name, seconds } => {
                        let mut b = b;
                        let target = match &rule.target {
                            Some(Target::Jump(t) | Target::Goto(t)) => Some(t.clone()),
                            _ => None,
                        };
                        b.affinity.push(Affinity {
                            name,
                            seconds,
                            target,
                            rule: here.clone(),
                        });
                        next.push(b);
                    }
                    RuleMatch::Yes(p) => {
                        if p < 1.0 {
                            let mut miss = b.clone();
                            miss.probability *= 1.0 - p;
                            next.push(miss);
                        }
                        let mut hit = b;
                        hit.probability *= p;
                        self.apply(hit, rule, &here, depth, &mut next, &mut done);
                    }
                }
            }
            active = next;
        }
        done.extend(active.into_iter().map(|b| (b, Flow::Return)));
        done
    }

    /// Applies a matched rule's target: continuing branches go to `next`, finished ones to `done`.
    fn apply(
        &mut self,
        mut b: Branch,
        rule: &Rule,
        here: &RuleRef,
        depth: usize,
        next: &mut Vec<Branch>,
        done: &mut Vec<(Branch, Flow)>,
    ) {
        b.path.push(here.clone());
        let table = here.table.as_str();
        match &rule.target {
            None | Some(Target::Unsupported(_)) => next.push(b),
            Some(Target::Return) => done.push((b, Flow::Return)),
            Some(Target::Accept) => done.push((b, Flow::Accept)),
            Some(Target::Drop) => done.push((b, Flow::Drop(here.clone()))),
            Some(Target::Reject) => done.push((b, Flow::Reject(here.clone()))),
            Some(Target::Dnat(to)) => {
                b.pkt.dst = to.ip;
                if let Some(p) = to.port {
                    b.pkt.dst_port = p;
                }
                b.pkt.dnatted = true;
                b.dnat_by = Some(here.clone());
                done.push((b, Flow::Accept));
            }
            Some(Target::Redirect(port)) => {
                if let Some(p) = port {
                    b.pkt.dst_port = *p;
                }
                b.pkt.dnatted = true;
                b.redirect = Some(b.pkt.dst_port);
                b.dnat_by = Some(here.clone());
                done.push((b, Flow::Accept));
            }
            Some(Target::Masquerade) => {
                b.pkt.snatted = true;
                let decided_by = b.mark_set_by.clone().unwrap_or_else(|| here.clone());
                b.masquerade = Some(Masquerade {
                    by: here.clone(),
                    decided_by,
                });
                done.push((b, Flow::Accept));
            }
            Some(Target::Mark { and, or, xor }) => {
                b.pkt.mark = ((b.pkt.mark & and) | or) ^ xor;
                // The rule that asked for the mark is the jump into this chain (e.g. `-j KUBE-MARK-MASQ`),
                // unless the MARK rule sits in a built-in chain itself.
                if b.pkt.mark != 0 {
                    b.mark_set_by = Some(b.stack.last().cloned().unwrap_or_else(|| here.clone()));
                }
                next.push(b);
            }
            Some(Target::Jump(to) | Target::Goto(to)) => {
                let goto = matches!(rule.target, Some(Target::Goto(_)));
                if self.rules.chain(table, to).is_none() || is_builtin(table, to) {
                    self.report(here, format!("jump to missing chain {to}"));
                    next.push(b);
                    return;
                }
                if depth >= self.opts.max_depth {
                    self.report(here, format!("jump depth above {}", self.opts.max_depth));
                    next.push(b);
                    return;
                }
                b.stack.push(here.clone());
                for (mut b, flow) in self.chain(b, table, to, depth + 1) {
                    b.stack.pop();
                    match flow {
                        // A goto's RETURN returns from the calling chain too.
                        Flow::Return if goto => done.push((b, Flow::Return)),
                        Flow::Return => next.push(b),
                        f => done.push((b, f)),
                    }
                }
            }
        }
    }

    fn note_unsupported(&mut self, rule: &Rule, here: &RuleRef) {
        let what = rule.unsupported();
        if !what.is_empty() {
            self.push_unsupported(here, what);
        }
    }

    fn report(&mut self, here: &RuleRef, what: String) {
        self.push_unsupported(here, vec![what]);
    }

    fn push_unsupported(&mut self, here: &RuleRef, what: Vec<String>) {
        if !self.unsupported.iter().any(|u| &u.rule == here) {
            self.unsupported.push(Unsupported {
                rule: here.clone(),
                what,
            });
        }
    }
}
