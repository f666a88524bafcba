//! Evaluates one rule's matches against the packet's current state. A rule either matches, does not, or
//! matches with a probability (`-m statistic`); `-m recent` checks are answered from the options.

use std::net::IpAddr;

use crate::packet::TraceOptions;
use crate::rule::{Match, Rule};

/// The mutable part of a packet while it walks the tables.
#[derive(Clone, Debug)]
pub(crate) struct PacketState {
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub protocol: &'static str,
    pub in_iface: Option<String>,
    pub out_iface: Option<String>,
    pub mark: u32,
    pub dnatted: bool,
    pub snatted: bool,
}

/// The answer for one rule.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RuleMatch {
    No,
    /// Matches with this probability (1.0: always).
    Yes(f64),
    /// Would match if the source were in this recent list; otherwise does not match.
    RecentMiss {
        name: String,
        seconds: Option<u32>,
    },
}

pub(crate) fn eval_rule(rule: &Rule, st: &PacketState, opts: &TraceOptions) -> RuleMatch {
    let mut p = 1.0;
    let mut recent_miss = None;
    for m in &rule.matches {
        match m {
            Match::Probability { p: q, negated } => p *= if *negated { 1.0 - q } else { *q },
            Match::RecentCheck { name, seconds } => {
                if !opts.recent_seen.contains(name) {
                    recent_miss = Some(RuleMatch::RecentMiss {
                        name: name.clone(),
                        seconds: *seconds,
                    });
                }
            }
            m => {
                if !eval_match(m, st, opts) {
                    return RuleMatch::No;
                }
            }
        }
    }
    match recent_miss {
        Some(r) => r,
        None if p <= 0.0 => RuleMatch::No,
        None => RuleMatch::Yes(p.min(1.0)),
    }
}

fn eval_match(m: &Match, st: &PacketState, opts: &TraceOptions) -> bool {
    let (hit, negated) = match m {
        Match::Source { net, negated } => (net.contains(&st.src), *negated),
        Match::Destination { net, negated } => (net.contains(&st.dst), *negated),
        Match::Protocol { proto, negated } => {
            (proto.as_deref().is_none_or(|p| p == st.protocol), *negated)
        }
        Match::InInterface { name, negated } => (iface(name, st.in_iface.as_deref()), *negated),
        Match::OutInterface { name, negated } => (iface(name, st.out_iface.as_deref()), *negated),
        Match::DstPort { lo, hi, negated } => ((*lo..=*hi).contains(&st.dst_port), *negated),
        Match::SrcPort { lo, hi, negated } => ((*lo..=*hi).contains(&st.src_port), *negated),
        Match::SrcTypeLocal { negated } => (opts.is_local(&st.src), *negated),
        Match::DstTypeLocal { negated } => (opts.is_local(&st.dst), *negated),
        Match::Mark {
            value,
            mask,
            negated,
        } => (st.mark & mask == value & mask, *negated),
        Match::CtState { states, negated } => {
            let hit = states.iter().any(|s| match s.as_str() {
                "NEW" => true,
                "DNAT" => st.dnatted,
                "SNAT" => st.snatted,
                _ => false,
            });
            (hit, *negated)
        }
        Match::RecentSet { .. } => (true, false),
        Match::Set {
            name,
            dirs,
            negated,
        } => (
            opts.ipsets
                .get(name)
                .is_some_and(|entries| entries.iter().any(|e| ipset_entry_matches(e, dirs, st))),
            *negated,
        ),
        Match::PhysdevIsIn { negated } => (false, *negated),
        // Handled by eval_rule; unknown matches never match.
        Match::Probability { .. } | Match::RecentCheck { .. } | Match::Unsupported(_) => {
            return false
        }
    };
    hit != negated
}

/// `-i eth0` / `-i cali+`; no interface never matches.
fn iface(pattern: &str, actual: Option<&str>) -> bool {
    let Some(actual) = actual else { return false };
    match pattern.strip_suffix('+') {
        Some(prefix) => actual.starts_with(prefix),
        None => actual == pattern,
    }
}

/// Whether an `ipset save` entry (`10.96.0.10,tcp:80`, `30080`, `1.2.3.4,tcp:80,10.0.0.0/8`) holds the
/// packet's fields named by `dirs` (one per component; `true`: source address/port).
fn ipset_entry_matches(entry: &str, dirs: &[bool], st: &PacketState) -> bool {
    let parts: Vec<&str> = entry.split(',').collect();
    if parts.len() != dirs.len() {
        return false;
    }
    parts.iter().zip(dirs).all(|(part, src)| {
        let (addr, port) = if *src {
            (st.src, st.src_port)
        } else {
            (st.dst, st.dst_port)
        };
        if let Some((proto, p)) = part.split_once(':') {
            return proto.eq_ignore_ascii_case(st.protocol) && p.parse() == Ok(port);
        }
        if let Ok(p) = part.parse::<u16>() {
            return p == port;
        }
        if let Ok(ip) = part.parse::<IpAddr>() {
            return ip == addr;
        }
        part.parse::<ipnet::IpNet>()
            .is_ok_and(|net| net.contains(&addr))
    })
}
