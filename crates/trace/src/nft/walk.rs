//! Walks a packet through table `kube-proxy`'s base chains in hook and priority order, following jumps,
//! gotos, verdict maps, `numgen` branches and `backends-K` map slots, one [`Outcome`] per branch.

use kube_proxy_nftables::names::MARK_MASQ_CHAIN;
use kube_proxy_nftables::plan::{Family, Hook, KeyField, Rule, Stmt, Value, Verdict as NftVerdict};
use kube_proxy_nftables::text::{rule_body, verdict as verdict_text};

use super::eval::{eval, Eval, NftState};
use super::table::NftTable;
use crate::packet::{Origin, Packet, TraceOptions};
use crate::ruleset::RuleRef;
use crate::trace::{Affinity, Masquerade, Outcome, Trace, Unsupported, Verdict};

#[derive(Clone, Debug)]
struct Branch {
    st: NftState,
    probability: f64,
    path: Vec<RuleRef>,
    /// Jump rules that led into the chain being walked (innermost last).
    stack: Vec<RuleRef>,
    mark_set_by: Option<RuleRef>,
    dnat_by: Option<RuleRef>,
    masquerade: Option<Masquerade>,
    affinity: Vec<Affinity>,
}

/// How a rule or chain ended for one branch.
#[derive(Clone, Debug, PartialEq)]
enum Flow {
    /// The rule did not match (or finished without a verdict): next rule.
    Next,
    Return,
    /// accept, or a NAT statement (ends this base chain).
    Accept,
    Drop(RuleRef),
    Reject(RuleRef),
}

type Out = Vec<(Branch, Flow)>;

/// The rule being run, where it sits, and how deep in jumps.
struct RuleCtx<'a> {
    rule: &'a Rule,
    here: &'a RuleRef,
    depth: usize,
}

struct Walker<'a> {
    table: &'a NftTable,
    opts: &'a TraceOptions,
    tname: String,
    unsupported: Vec<Unsupported>,
}

/// Traces `packet` through `table`.
pub fn walk(table: &NftTable, packet: &Packet, opts: &TraceOptions) -> Trace {
    let mut w = Walker {
        table,
        opts,
        tname: format!("{} kube-proxy", table.family.as_str()),
        unsupported: Vec::new(),
    };
    let start = Branch {
        st: NftState {
            src: packet.src,
            dst: packet.dst,
            dst_port: packet.dst_port,
            protocol: packet.protocol,
            iif: match packet.origin {
                Origin::Inbound => packet.in_iface.clone(),
                Origin::Local => None,
            },
            mark: 0,
            dnatted: false,
        },
        probability: 1.0,
        path: Vec::new(),
        stack: Vec::new(),
        mark_set_by: None,
        dnat_by: None,
        masquerade: None,
        affinity: Vec::new(),
    };
    let mut outcomes = Vec::new();
    let first = match packet.origin {
        Origin::Inbound => Hook::Prerouting,
        Origin::Local => Hook::Output,
    };
    for b in w.hook(vec![start], first, &mut outcomes) {
        let local = opts.is_local(&b.st.dst);
        let mut alive = match (packet.origin, local) {
            (Origin::Inbound, true) => w.hook(vec![b], Hook::Input, &mut outcomes),
            (Origin::Inbound, false) => {
                let alive = w.hook(vec![b], Hook::Forward, &mut outcomes);
                w.hook(alive, Hook::Postrouting, &mut outcomes)
            }
            (Origin::Local, _) => w.hook(vec![b], Hook::Postrouting, &mut outcomes),
        };
        if packet.origin == Origin::Local && local {
            for b in &mut alive {
                b.st.iif = Some("lo".to_string());
            }
            alive = w.hook(alive, Hook::Input, &mut outcomes);
        }
        for b in alive {
            let verdict = match &b.dnat_by {
                Some(_) => Verdict::Dnat {
                    ip: b.st.dst,
                    port: b.st.dst_port,
                },
                None => Verdict::Accept,
            };
            let by = b.dnat_by.clone();
            outcomes.push(finish(b, verdict, by, local));
        }
    }
    Trace {
        packet: packet.clone(),
        outcomes,
        unsupported: w.unsupported,
    }
}

fn finish(b: Branch, verdict: Verdict, decided_by: Option<RuleRef>, local: bool) -> Outcome {
    Outcome {
        probability: b.probability,
        path: b.path,
        verdict,
        decided_by,
        masquerade: b.masquerade,
        affinity: b.affinity,
        delivered_locally: local,
        virtual_server: None,
        listener: None,
    }
}

impl Walker<'_> {
    fn rref(&self, chain: &str, rule: String) -> RuleRef {
        RuleRef {
            table: self.tname.clone(),
            chain: chain.to_string(),
            rule,
        }
    }

    fn family(&self) -> Family {
        self.table.family
    }

    /// Runs branches through every base chain of `hook`; dropped or rejected ones become outcomes.
    fn hook(&mut self, mut alive: Vec<Branch>, hook: Hook, out: &mut Vec<Outcome>) -> Vec<Branch> {
        for chain in self.table.hook_chains(hook) {
            let mut next = Vec::new();
            for b in alive {
                for (b, flow) in self.chain(b, chain, 0) {
                    match flow {
                        Flow::Drop(r) => out.push(finish(b, Verdict::Drop, Some(r), false)),
                        Flow::Reject(r) => out.push(finish(b, Verdict::Reject, Some(r), false)),
                        _ => next.push(b),
                    }
                }
            }
            alive = next;
        }
        alive
    }

    /// Walks one chain; every branch leaves with Return, Accept, Drop or Reject.
    fn chain(&mut self, b: Branch, name: &str, depth: usize) -> Vec<(Branch, Flow)> {
        let table = self.table;
        let Some(c) = table.chains.get(name) else {
            let r = self.rref(name, String::new());
            self.report(&r, format!("missing chain {name}"));
            return vec![(b, Flow::Return)];
        };
        let mut active = vec![b];
        let mut done = Vec::new();
        for rule in &c.rules {
            if active.is_empty() {
                break;
            }
            let here = self.rref(name, rule_body(self.family(), rule));
            let mut next = Vec::new();
            for b in active {
                let mut results = Vec::new();
                let ctx = RuleCtx {
                    rule,
                    here: &here,
                    depth,
                };
                self.run(b, &ctx, 0, Vec::new(), false, &mut results);
                for (b, flow) in results {
                    match flow {
                        Flow::Next => next.push(b),
                        f => done.push((b, f)),
                    }
                }
            }
            active = next;
        }
        done.extend(active.into_iter().map(|b| (b, Flow::Return)));
        done
    }

    /// Runs statement `i` onwards of `rule` (`r`). `els` are the set elements the rule's matches hit; the
    /// rule is recorded in the path (with them) at its first non-match statement, unless `entered` already.
    fn run(
        &mut self,
        mut b: Branch,
        r: &RuleCtx,
        i: usize,
        els: Vec<String>,
        entered: bool,
        out: &mut Out,
    ) {
        let (rule, here) = (r.rule, r.here);
        let Some(stmt) = rule.stmts.get(i) else {
            out.push((b, Flow::Next));
            return;
        };
        if let Stmt::Match(m) = stmt {
            let mut els = els;
            match eval(m, &b.st, self.table, self.opts) {
                Eval::No => out.push((b, Flow::Next)),
                Eval::Yes => self.run(b, r, i + 1, els, entered, out),
                Eval::Element(e) => {
                    els.push(e);
                    self.run(b, r, i + 1, els, entered, out)
                }
                Eval::Probability(p) => {
                    let mut miss = b.clone();
                    miss.probability *= 1.0 - p;
                    out.push((miss, Flow::Next));
                    b.probability *= p;
                    self.run(b, r, i + 1, els, entered, out)
                }
                Eval::AffinityMiss { set, seconds } => {
                    let target = rule.stmts.iter().find_map(|s| match s {
                        Stmt::Verdict(NftVerdict::Goto(t) | NftVerdict::Jump(t)) => Some(t.clone()),
                        _ => None,
                    });
                    b.affinity.push(Affinity {
                        name: set,
                        seconds,
                        target,
                        rule: here.clone(),
                    });
                    out.push((b, Flow::Next));
                }
            }
            return;
        }
        let decider = if els.is_empty() {
            here.clone()
        } else {
            self.rref(
                &here.chain,
                format!("{} (element {})", here.rule, els.join(", ")),
            )
        };
        // A verdict-map lookup only counts as a match when it finds an element.
        if !entered && !matches!(stmt, Stmt::Vmap { .. }) {
            b.path.push(decider.clone());
        }
        match stmt {
            Stmt::Match(_) => unreachable!("handled above"),
            Stmt::Counter | Stmt::UpdateSaddr { .. } => self.run(b, r, i + 1, els, true, out),
            Stmt::MarkOr(bits) => {
                b.st.mark |= bits;
                b.mark_set_by = Some(if here.chain == MARK_MASQ_CHAIN {
                    b.stack.last().cloned().unwrap_or_else(|| here.clone())
                } else {
                    decider
                });
                self.run(b, r, i + 1, els, true, out)
            }
            Stmt::MarkXor(bits) => {
                b.st.mark ^= bits;
                self.run(b, r, i + 1, els, true, out)
            }
            Stmt::Dnat { addr, port } => {
                b.st.dst = *addr;
                b.st.dst_port = *port;
                b.st.dnatted = true;
                b.dnat_by = Some(here.clone());
                out.push((b, Flow::Accept));
            }
            Stmt::DnatNumgenMap {
                modulus,
                offset,
                map,
            } => self.dnat_map(b, here, *modulus, *offset, map, out),
            Stmt::Masquerade { .. } => {
                let decided_by = b.mark_set_by.clone().unwrap_or_else(|| here.clone());
                b.masquerade = Some(Masquerade {
                    by: here.clone(),
                    decided_by,
                });
                out.push((b, Flow::Accept));
            }
            Stmt::Reject => out.push((b, Flow::Reject(here.clone()))),
            Stmt::Vmap { key, map } => {
                let k: Vec<Value> = key
                    .iter()
                    .map(|f| match f {
                        KeyField::Addr(a) => Value::Addr(b.st.addr(*a)),
                        KeyField::L4Proto => Value::Proto(b.st.protocol),
                        KeyField::ThDport => Value::Port(b.st.dst_port),
                    })
                    .collect();
                let hit = self
                    .table
                    .sets
                    .get(map)
                    .and_then(|s| s.get(&k))
                    .and_then(|e| e.verdict.clone().map(|v| (e.key.clone(), v)));
                match hit {
                    None => out.push((b, Flow::Next)),
                    Some((key, v)) => {
                        if !entered {
                            b.path.push(decider.clone());
                        }
                        let keys: Vec<String> = key.iter().map(value_text).collect();
                        let eref = self.rref(
                            &format!("@{map}"),
                            format!("{} : {}", keys.join(" . "), verdict_text(&v)),
                        );
                        b.path.push(eref.clone());
                        self.verdict(b, &v, &eref, r, i, out);
                    }
                }
            }
            Stmt::Verdict(v) => self.verdict(b, v, &decider, r, i, out),
        }
    }

    /// Applies a verdict reached at statement `i`; `by` is what decided it (the rule or a map element).
    fn verdict(
        &mut self,
        mut b: Branch,
        v: &NftVerdict,
        by: &RuleRef,
        r: &RuleCtx,
        i: usize,
        out: &mut Out,
    ) {
        match v {
            NftVerdict::Accept => out.push((b, Flow::Accept)),
            NftVerdict::Drop => out.push((b, Flow::Drop(by.clone()))),
            NftVerdict::Return => out.push((b, Flow::Return)),
            NftVerdict::Jump(c) | NftVerdict::Goto(c) => {
                let goto = matches!(v, NftVerdict::Goto(_));
                if r.depth >= self.opts.max_depth {
                    self.report(r.here, format!("jump depth above {}", self.opts.max_depth));
                    out.push((b, Flow::Next));
                    return;
                }
                b.stack.push(r.here.clone());
                for (mut b, flow) in self.chain(b, c, r.depth + 1) {
                    b.stack.pop();
                    match flow {
                        // The end of a goto's chain returns from the calling chain too.
                        Flow::Return | Flow::Next if goto => out.push((b, Flow::Return)),
                        Flow::Return | Flow::Next => self.run(b, r, i + 1, Vec::new(), true, out),
                        f => out.push((b, f)),
                    }
                }
            }
        }
    }

    /// `dnat to numgen random mod N offset B map @M`: one branch per slot.
    fn dnat_map(
        &mut self,
        b: Branch,
        here: &RuleRef,
        modulus: u32,
        offset: u32,
        map: &str,
        out: &mut Out,
    ) {
        let n = modulus.max(1);
        for k in 0..n {
            let slot = offset + k;
            let mut b = b.clone();
            b.probability /= f64::from(n);
            let data = self
                .table
                .sets
                .get(map)
                .and_then(|s| s.get(&[Value::Slot(slot)]))
                .and_then(|e| e.data.clone());
            match data.as_deref() {
                Some([Value::Addr(ip), Value::Port(port)]) => {
                    b.path
                        .push(self.rref(&format!("@{map}"), format!("{slot} : {ip} . {port}")));
                    b.st.dst = *ip;
                    b.st.dst_port = *port;
                    b.st.dnatted = true;
                    b.dnat_by = Some(here.clone());
                    out.push((b, Flow::Accept));
                }
                _ => {
                    self.report(here, format!("@{map} has no element for slot {slot}"));
                    out.push((b, Flow::Next));
                }
            }
        }
    }

    fn report(&mut self, here: &RuleRef, what: String) {
        if let Some(u) = self.unsupported.iter_mut().find(|u| &u.rule == here) {
            if !u.what.contains(&what) {
                u.what.push(what);
            }
            return;
        }
        self.unsupported.push(Unsupported {
            rule: here.clone(),
            what: vec![what],
        });
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Addr(ip) => ip.to_string(),
        Value::Proto(p) => p.as_lower().to_string(),
        Value::Port(p) => p.to_string(),
        Value::Slot(s) => s.to_string(),
    }
}
