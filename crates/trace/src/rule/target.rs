//! Parsing of a rule's target (`-j`/`-g` and the target's options) and of the values rules carry (addresses,
//! port ranges, marks, DNAT destinations).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::{DnatTo, Parser, Target};

impl Parser<'_> {
    pub(super) fn target_options(&mut self, name: &str, goto: bool) -> Target {
        let mut opts: Vec<String> = Vec::new();
        while let Some(w) = self.words.get(self.i) {
            if !w.starts_with("--") {
                break;
            }
            opts.push(w.clone());
            self.i += 1;
            if let Some(v) = self.words.get(self.i) {
                if !v.starts_with("--") {
                    opts.push(v.clone());
                    self.i += 1;
                }
            }
        }
        let opt = |key: &str| {
            opts.iter()
                .position(|o| o == key)
                .and_then(|i| opts.get(i + 1))
                .cloned()
        };
        let unsupported =
            || Target::Unsupported(format!("-j {name} {}", opts.join(" ")).trim().to_string());
        if goto {
            return Target::Goto(name.to_string());
        }
        match name {
            "RETURN" => Target::Return,
            "ACCEPT" => Target::Accept,
            "DROP" => Target::Drop,
            "REJECT" => Target::Reject,
            "MASQUERADE" => Target::Masquerade,
            "DNAT" => match opt("--to-destination").and_then(|v| parse_dnat(&v)) {
                Some(to) => Target::Dnat(to),
                None => unsupported(),
            },
            "REDIRECT" => match opt("--to-ports") {
                None => Target::Redirect(None),
                Some(v) => match v.parse() {
                    Ok(p) => Target::Redirect(Some(p)),
                    Err(_) => unsupported(),
                },
            },
            "MARK" => parse_mark_target(&opt).unwrap_or_else(unsupported),
            n if n
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
                && is_builtin_target(n) =>
            {
                unsupported()
            }
            n => Target::Jump(n.to_string()),
        }
    }
}

/// Targets implemented by kernel modules (not user chains) that the tracer does not model.
fn is_builtin_target(name: &str) -> bool {
    matches!(
        name,
        "SNAT"
            | "LOG"
            | "NFLOG"
            | "CT"
            | "NOTRACK"
            | "TPROXY"
            | "CONNMARK"
            | "TCPMSS"
            | "CHECKSUM"
            | "NETMAP"
            | "TRACE"
            | "AUDIT"
            | "CLASSIFY"
            | "DSCP"
            | "TOS"
            | "TTL"
            | "SET"
            | "NFQUEUE"
            | "QUEUE"
            | "ULOG"
            | "HMARK"
            | "IDLETIMER"
            | "LED"
            | "SECMARK"
            | "CONNSECMARK"
            | "SYNPROXY"
            | "TEE"
    )
}

fn parse_mark_target(opt: &dyn Fn(&str) -> Option<String>) -> Option<Target> {
    if let Some(v) = opt("--set-xmark") {
        let (value, mask) = parse_mark(&v)?;
        return Some(Target::Mark {
            and: !mask,
            or: 0,
            xor: value,
        });
    }
    if let Some(v) = opt("--set-mark") {
        let (value, mask) = parse_mark(&v)?;
        return Some(Target::Mark {
            and: !mask,
            or: value,
            xor: 0,
        });
    }
    if let Some(v) = opt("--or-mark") {
        return Some(Target::Mark {
            and: u32::MAX,
            or: parse_u32(&v)?,
            xor: 0,
        });
    }
    if let Some(v) = opt("--xor-mark") {
        return Some(Target::Mark {
            and: u32::MAX,
            or: 0,
            xor: parse_u32(&v)?,
        });
    }
    if let Some(v) = opt("--and-mark") {
        return Some(Target::Mark {
            and: parse_u32(&v)?,
            or: 0,
            xor: 0,
        });
    }
    None
}

/// `1.2.3.4`, `1.2.3.0/24`, `fd00::1`, `fd00::/64`.
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

pub(super) fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once(':') {
        Some((a, b)) => {
            let lo = if a.is_empty() { 0 } else { a.parse().ok()? };
            let hi = if b.is_empty() {
                u16::MAX
            } else {
                b.parse().ok()?
            };
            Some((lo, hi))
        }
        None => {
            let p = s.parse().ok()?;
            Some((p, p))
        }
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `value[/mask]`; a missing mask is all ones.
pub(super) fn parse_mark(s: &str) -> Option<(u32, u32)> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, parse_u32(m)?)),
        None => Some((parse_u32(s)?, u32::MAX)),
    }
}

/// `ip`, `ip:port`, `[v6]:port`, `v6`.
fn parse_dnat(s: &str) -> Option<DnatTo> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(DnatTo {
            ip: sa.ip(),
            port: Some(sa.port()),
        });
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| DnatTo { ip, port: None })
}
