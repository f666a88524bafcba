//! Evaluates one nftables match against the packet's current state. Set lookups consult the table's
//! elements; an affinity set (dynamic, with a timeout) that does not hold the source is reported as the
//! "not seen yet" path, as `-m recent` is in iptables mode.

use std::net::IpAddr;

use kube_proxy_model::Protocol;
use kube_proxy_nftables::plan::{AddrField, CmpOp, Match, Value};

use super::table::NftTable;
use crate::packet::TraceOptions;

/// The mutable part of a packet while it walks the hooks.
#[derive(Clone, Debug)]
pub(crate) struct NftState {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub protocol: Protocol,
    pub iif: Option<String>,
    pub mark: u32,
    pub dnatted: bool,
}

impl NftState {
    pub fn addr(&self, f: AddrField) -> IpAddr {
        match f {
            AddrField::Saddr => self.src,
            AddrField::Daddr => self.dst,
        }
    }
}

/// The answer for one match.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Eval {
    No,
    Yes,
    /// Holds with this probability (`numgen`).
    Probability(f64),
    /// A set lookup that hit this element (its text, for reports).
    Element(String),
    /// The source is not (yet) in this affinity set.
    AffinityMiss {
        set: String,
        seconds: Option<u32>,
    },
}

pub(crate) fn eval(m: &Match, st: &NftState, table: &NftTable, opts: &TraceOptions) -> Eval {
    let yes = |b: bool| if b { Eval::Yes } else { Eval::No };
    match m {
        Match::Addr { field, op, net } => {
            let hit = net.contains(&st.addr(*field));
            yes(hit == (*op == CmpOp::Eq))
        }
        Match::AddrInSet { field, set } => {
            let key = [Value::Addr(st.addr(*field))];
            let Some(s) = table.sets.get(set) else {
                return Eval::No;
            };
            let hit = s.get(&key).is_some();
            match s.def.timeout_secs {
                Some(seconds) if !hit && !opts.recent_seen.contains(set) => Eval::AffinityMiss {
                    set: set.clone(),
                    seconds: Some(seconds),
                },
                Some(_) => Eval::Yes,
                None if hit => Eval::Element(format!("@{set} {{ {} }}", st.addr(*field))),
                None => Eval::No,
            }
        }
        Match::Iifname { op, name } => {
            let hit = st
                .iif
                .as_deref()
                .is_some_and(|i| match name.strip_suffix('*') {
                    Some(prefix) => i.starts_with(prefix),
                    None => i == name,
                });
            yes(hit == (*op == CmpOp::Eq))
        }
        Match::L4Proto(p) => yes(*p == st.protocol),
        Match::Dport(p, port) => yes(*p == st.protocol && *port == st.dst_port),
        Match::FibDaddrLocal => yes(opts.is_local(&st.dst)),
        Match::FibSaddrLocal => yes(opts.is_local(&st.src)),
        Match::MarkMaskZero(mask) => yes(st.mark & mask == 0),
        // Every traced packet opens a new connection.
        Match::CtStateNew => Eval::Yes,
        Match::NumgenModZero(n) => Eval::Probability(1.0 / f64::from((*n).max(1))),
        Match::SaddrDaddrInSet(set) => {
            let key = [Value::Addr(st.src), Value::Addr(st.dst)];
            match table.sets.get(set).and_then(|s| s.get(&key)) {
                Some(_) => Eval::Element(format!("@{set} {{ {} . {} }}", st.src, st.dst)),
                None => Eval::No,
            }
        }
        Match::CtStatusDnat => yes(st.dnatted),
    }
}
