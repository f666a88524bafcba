//! The nft text encoder: a [`Transaction`] as an `nft -f` script, one command per line, in plan order.
//!
//! Used by `render`, golden tests and the tests that load the text with `nft -f` and compare `nft list`
//! output with what the netlink encoder produced.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::plan::*;

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "'"))
}

fn value(v: &Value) -> String {
    match v {
        Value::Addr(ip) => ip.to_string(),
        Value::Proto(p) => p.as_lower().to_string(),
        Value::Port(p) => p.to_string(),
        Value::Slot(s) => s.to_string(),
    }
}

/// `goto X`, `drop`, ...
pub fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Return => "return".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
    }
}

fn op_str(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "",
        CmpOp::Neq => "!= ",
    }
}

fn key_field(f: Family, k: &KeyField) -> String {
    match k {
        KeyField::Addr(a) => format!("{} {}", f.as_str(), a.as_str()),
        KeyField::L4Proto => "meta l4proto".into(),
        KeyField::ThDport => "th dport".into(),
    }
}

fn match_str(f: Family, m: &Match) -> String {
    match m {
        Match::Addr { field, op, net } => {
            let full = matches!(
                (net.addr(), net.prefix_len()),
                (IpAddr::V4(_), 32) | (IpAddr::V6(_), 128)
            );
            let v = if full {
                net.addr().to_string()
            } else {
                net.to_string()
            };
            format!("{} {} {}{}", f.as_str(), field.as_str(), op_str(*op), v)
        }
        Match::AddrInSet { field, set } => format!("{} {} @{}", f.as_str(), field.as_str(), set),
        Match::Iifname { op, name } => format!("iifname {}{}", op_str(*op), quote(name)),
        Match::L4Proto(p) => format!("meta l4proto {}", p.as_lower()),
        Match::Dport(p, port) => format!("{} dport {}", p.as_lower(), port),
        Match::FibDaddrLocal => "fib daddr type local".into(),
        Match::FibSaddrLocal => "fib saddr type local".into(),
        Match::MarkMaskZero(m) => format!("meta mark & 0x{m:08x} == 0"),
        Match::CtStateNew => "ct state new".into(),
        Match::NumgenModZero(n) => format!("numgen random mod {n} == 0"),
        Match::SaddrDaddrInSet(set) => {
            format!("{0} saddr . {0} daddr @{set}", f.as_str())
        }
        Match::CtStatusDnat => "ct status dnat".into(),
    }
}

fn stmt_str(f: Family, s: &Stmt) -> String {
    match s {
        Stmt::Match(m) => match_str(f, m),
        Stmt::Counter => "counter".into(),
        Stmt::MarkOr(m) => format!("meta mark set meta mark | 0x{m:08x}"),
        Stmt::MarkXor(m) => format!("meta mark set meta mark ^ 0x{m:08x}"),
        Stmt::UpdateSaddr { set } => format!("update @{set} {{ {} saddr }}", f.as_str()),
        Stmt::Dnat { addr, port } => match addr {
            IpAddr::V4(a) => format!("dnat to {a}:{port}"),
            IpAddr::V6(a) => format!("dnat to [{a}]:{port}"),
        },
        Stmt::DnatNumgenMap {
            modulus,
            offset,
            map,
        } => format!(
            "dnat {} to numgen random mod {modulus} offset {offset} map @{map}",
            f.as_str()
        ),
        Stmt::Masquerade { fully_random } => {
            if *fully_random {
                "masquerade fully-random".into()
            } else {
                "masquerade".into()
            }
        }
        Stmt::Reject => "reject".into(),
        Stmt::Vmap { key, map } => {
            let k: Vec<String> = key.iter().map(|k| key_field(f, k)).collect();
            format!("{} vmap @{}", k.join(" . "), map)
        }
        Stmt::Verdict(v) => verdict(v),
    }
}

/// The body of a rule (statements and comment), as `nft` accepts it after `add rule FAMILY TABLE CHAIN`.
pub fn rule_body(f: Family, r: &Rule) -> String {
    let mut parts: Vec<String> = r.stmts.iter().map(|s| stmt_str(f, s)).collect();
    if let Some(c) = &r.comment {
        parts.push(format!("comment {}", quote(c)));
    }
    parts.join(" ")
}

fn element_str(e: &Element) -> String {
    let mut s: String = e.key.iter().map(value).collect::<Vec<_>>().join(" . ");
    if let Some(c) = &e.comment {
        let _ = write!(s, " comment {}", quote(c));
    }
    if let Some(v) = &e.verdict {
        let _ = write!(s, " : {}", verdict(v));
    }
    if let Some(d) = &e.data {
        let d: Vec<String> = d.iter().map(value).collect();
        let _ = write!(s, " : {}", d.join(" . "));
    }
    s
}

fn set_kind(verdict_map: bool) -> &'static str {
    if verdict_map {
        "map"
    } else {
        "set"
    }
}

/// One line of the script for `op`.
pub fn op_line(f: Family, op: &Op) -> String {
    let t = format!("{} {}", f.as_str(), TABLE);
    match op {
        Op::AddTable { comment } => match comment {
            Some(c) => format!("add table {t} {{ comment {} ; }}", quote(c)),
            None => format!("add table {t}"),
        },
        Op::DeleteTable => format!("delete table {t}"),
        Op::AddChain(c) => {
            let mut body = Vec::new();
            if let Some(b) = &c.base {
                body.push(format!(
                    "type {} hook {} priority {} ;",
                    b.chain_type.as_str(),
                    b.hook.as_str(),
                    b.priority
                ));
            }
            if let Some(cm) = &c.comment {
                body.push(format!("comment {} ;", quote(cm)));
            }
            if body.is_empty() {
                format!("add chain {t} {}", c.name)
            } else {
                format!("add chain {t} {} {{ {} }}", c.name, body.join(" "))
            }
        }
        Op::FlushChain(c) => format!("flush chain {t} {c}"),
        Op::DeleteChain(c) => format!("delete chain {t} {c}"),
        Op::AddSet(s) => {
            let key: Vec<&str> = s.key.iter().map(|k| k.as_str()).collect();
            let mut body = if s.key == [DataType::Slot] {
                // nft can only type a numgen key with `typeof`.
                let proto = match f {
                    Family::Ip => "ip",
                    Family::Ip6 => "ip6",
                };
                format!("typeof numgen random mod 2 : {proto} daddr . tcp dport")
            } else {
                format!("type {}", key.join(" . "))
            };
            if s.verdict_map {
                body.push_str(" : verdict");
            }
            body.push_str(" ;");
            if let Some(timeout) = s.timeout_secs {
                let _ = write!(body, " flags dynamic,timeout ; timeout {timeout}s ;");
            }
            if let Some(c) = &s.comment {
                let _ = write!(body, " comment {} ;", quote(c));
            }
            format!(
                "add {} {t} {} {{ {body} }}",
                set_kind(s.verdict_map || !s.data.is_empty()),
                s.name
            )
        }
        Op::FlushSet { name, verdict_map } => {
            format!("flush {} {t} {name}", set_kind(*verdict_map))
        }
        Op::DeleteSet { name, verdict_map } => {
            format!("delete {} {t} {name}", set_kind(*verdict_map))
        }
        Op::AddElement(e) => format!("add element {t} {} {{ {} }}", e.set, element_str(e)),
        Op::DeleteElement(e) => {
            let key: Vec<String> = e.key.iter().map(value).collect();
            format!("delete element {t} {} {{ {} }}", e.set, key.join(" . "))
        }
        Op::AddRule(r) => format!("add rule {t} {} {}", r.chain, rule_body(f, r)),
    }
}

/// The whole transaction as an `nft -f` script (nft applies a file atomically).
pub fn to_nft_script(tx: &Transaction) -> String {
    let mut out = String::new();
    for op in &tx.ops {
        out.push_str(&op_line(tx.family, op));
        out.push('\n');
    }
    out
}
