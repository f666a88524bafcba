//! One parsed iptables rule: the matches and the target kube-proxy emits, typed. Options this tracer does not
//! model are kept as [`Match::Unsupported`] (the rule then never matches) rather than rejected, so any
//! `iptables-save` dump parses. Pure data and parsing; evaluation lives in `eval.rs`.

use std::net::IpAddr;

use ipnet::IpNet;

use serde::Serialize;
use target::{parse_mark, parse_net, parse_port_range};

/// A match of one rule; `negated` ones had a `!` in front.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    Source {
        net: IpNet,
        negated: bool,
    },
    Destination {
        net: IpNet,
        negated: bool,
    },
    /// `-p`; `None` for `all`/`0`. The value is the lower-case name (`tcp`, `udp`, `sctp`, `icmp`, ...).
    Protocol {
        proto: Option<String>,
        negated: bool,
    },
    InInterface {
        name: String,
        negated: bool,
    },
    OutInterface {
        name: String,
        negated: bool,
    },
    DstPort {
        lo: u16,
        hi: u16,
        negated: bool,
    },
    SrcPort {
        lo: u16,
        hi: u16,
        negated: bool,
    },
    /// `-m addrtype --src-type LOCAL` (only `LOCAL` is modelled).
    SrcTypeLocal {
        negated: bool,
    },
    /// `-m addrtype --dst-type LOCAL`.
    DstTypeLocal {
        negated: bool,
    },
    Mark {
        value: u32,
        mask: u32,
        negated: bool,
    },
    /// `-m conntrack --ctstate` / `-m state --state`, upper-case state names.
    CtState {
        states: Vec<String>,
        negated: bool,
    },
    /// `-m statistic --mode random --probability p`.
    Probability {
        p: f64,
        negated: bool,
    },
    /// `-m recent --rcheck|--update --name N [--seconds T]`: matches when the source was seen recently.
    RecentCheck {
        name: String,
        seconds: Option<u32>,
    },
    /// `-m recent --set --name N`: records the source and always matches.
    RecentSet {
        name: String,
    },
    /// `-m set --match-set NAME dst,dst`: the packet's fields named by `dirs` (`true`: source) form an entry
    /// of ipset NAME (contents in `TraceOptions::ipsets`).
    Set {
        name: String,
        dirs: Vec<bool>,
        negated: bool,
    },
    /// `-m physdev --physdev-is-in`: arrived through a bridge port (never, for traced packets).
    PhysdevIsIn {
        negated: bool,
    },
    /// Something the tracer does not model, e.g. `-m foo --bar`; the rule never matches.
    Unsupported(String),
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// `-j CHAIN`: a user chain.
    Jump(String),
    /// `-g CHAIN`.
    Goto(String),
    Return,
    Accept,
    Drop,
    Reject,
    Dnat(DnatTo),
    /// `REDIRECT [--to-ports P]`: DNAT to this node (`None` keeps the port).
    Redirect(Option<u16>),
    Masquerade,
    /// `MARK`: new mark = `(mark & and) | or) ^ xor`.
    Mark {
        and: u32,
        or: u32,
        xor: u32,
    },
    /// A target the tracer does not model (treated as non-terminating and reported).
    Unsupported(String),
}

/// `DNAT --to-destination`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DnatTo {
    pub ip: IpAddr,
    /// `None` keeps the original port.
    pub port: Option<u16>,
}

/// A rule of a chain, with its original text.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub chain: String,
    /// The `-A CHAIN ...` line as written.
    pub text: String,
    pub matches: Vec<Match>,
    pub target: Option<Target>,
}

impl Rule {
    /// Parses the words after `-A CHAIN` (or `-I CHAIN [n]`).
    pub fn parse(chain: &str, text: &str, words: &[String]) -> Rule {
        let mut p = Parser {
            words,
            i: 0,
            matches: Vec::new(),
            target: None,
            module: String::new(),
        };
        p.run();
        Rule {
            chain: chain.to_string(),
            text: text.to_string(),
            matches: p.matches,
            target: p.target,
        }
    }

    /// The matches this tracer could not model.
    pub fn unsupported(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .matches
            .iter()
            .filter_map(|m| match m {
                Match::Unsupported(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        if let Some(Target::Unsupported(s)) = &self.target {
            out.push(s.clone());
        }
        out
    }
}

struct Parser<'a> {
    words: &'a [String],
    i: usize,
    matches: Vec<Match>,
    target: Option<Target>,
    module: String,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<&str> {
        let w = self.words.get(self.i).map(String::as_str);
        self.i += 1;
        w
    }

    fn value(&mut self) -> String {
        self.next().unwrap_or_default().to_string()
    }

    fn run(&mut self) {
        let mut negated = false;
        while let Some(w) = self.next().map(str::to_string) {
            if w == "!" {
                negated = true;
                continue;
            }
            let m = self.option(&w, negated);
            negated = false;
            if let Some(m) = m {
                self.matches.push(m);
            }
        }
    }

    fn unsupported(&self, opt: &str, value: &str) -> Match {
        let module = if self.module.is_empty() {
            String::new()
        } else {
            format!("-m {} ", self.module)
        };
        Match::Unsupported(format!("{module}{opt} {value}").trim_end().to_string())
    }

    fn option(&mut self, opt: &str, negated: bool) -> Option<Match> {
        let m = match opt {
            "-s" | "--source" | "-d" | "--destination" => {
                let v = self.value();
                match parse_net(&v) {
                    Some(net) if opt.starts_with("-s") || opt == "--source" => {
                        Match::Source { net, negated }
                    }
                    Some(net) => Match::Destination { net, negated },
                    None => self.unsupported(opt, &v),
                }
            }
            "-p" | "--protocol" => {
                let v = self.value().to_ascii_lowercase();
                let proto = match v.as_str() {
                    "all" | "0" => None,
                    "6" => Some("tcp".to_string()),
                    "17" => Some("udp".to_string()),
                    "132" => Some("sctp".to_string()),
                    _ => Some(v),
                };
                Match::Protocol { proto, negated }
            }
            "-i" | "--in-interface" => Match::InInterface {
                name: self.value(),
                negated,
            },
            "-o" | "--out-interface" => Match::OutInterface {
                name: self.value(),
                negated,
            },
            "-m" | "--match" => {
                self.module = self.value();
                return None;
            }
            "-c" | "--set-counters" => {
                self.i += 2;
                return None;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let name = self.value();
                let goto = opt == "-g" || opt == "--goto";
                self.target = Some(self.target_options(&name, goto));
                return None;
            }
            "--dport" | "--destination-port" | "--sport" | "--source-port"
                if matches!(self.module.as_str(), "tcp" | "udp" | "sctp") =>
            {
                let v = self.value();
                match parse_port_range(&v) {
                    Some((lo, hi)) if matches!(opt, "--dport" | "--destination-port") => {
                        Match::DstPort { lo, hi, negated }
                    }
                    Some((lo, hi)) => Match::SrcPort { lo, hi, negated },
                    None => self.unsupported(opt, &v),
                }
            }
            "--src-type" | "--dst-type" if self.module == "addrtype" => {
                let v = self.value();
                match (opt, v.as_str()) {
                    ("--src-type", "LOCAL") => Match::SrcTypeLocal { negated },
                    ("--dst-type", "LOCAL") => Match::DstTypeLocal { negated },
                    _ => self.unsupported(opt, &v),
                }
            }
            "--comment" if self.module == "comment" => {
                self.i += 1;
                return None;
            }
            "--nfacct-name" if self.module == "nfacct" => {
                self.i += 1;
                return None;
            }
            "--mark" if self.module == "mark" => {
                let v = self.value();
                match parse_mark(&v) {
                    Some((value, mask)) => Match::Mark {
                        value,
                        mask,
                        negated,
                    },
                    None => self.unsupported(opt, &v),
                }
            }
            "--ctstate" | "--state" if matches!(self.module.as_str(), "conntrack" | "state") => {
                let states = self
                    .value()
                    .split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .collect();
                Match::CtState { states, negated }
            }
            "--match-set" if self.module == "set" => {
                let name = self.value();
                let dirs = self.value().split(',').map(|d| d == "src").collect();
                Match::Set {
                    name,
                    dirs,
                    negated,
                }
            }
            "--physdev-is-in" if self.module == "physdev" => Match::PhysdevIsIn { negated },
            "--mode" if self.module == "statistic" => {
                let v = self.value();
                if v == "random" {
                    return None;
                }
                self.unsupported(opt, &v)
            }
            "--probability" if self.module == "statistic" => {
                let v = self.value();
                match v.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Match::Probability { p, negated },
                    _ => self.unsupported(opt, &v),
                }
            }
            "--name" | "--seconds" | "--reap" | "--rsource" | "--rdest" | "--rcheck"
            | "--update" | "--set"
                if self.module == "recent" =>
            {
                return self.recent(opt);
            }
            "--mask" if self.module == "recent" => {
                // kube-proxy's lists are per source address; a mask only widens the key.
                self.i += 1;
                return None;
            }
            _ => {
                // Unknown option: swallow a following value (anything not starting with '-' or '!').
                let value = match self.words.get(self.i) {
                    Some(v) if !v.starts_with('-') && v != "!" => {
                        self.i += 1;
                        v.clone()
                    }
                    _ => String::new(),
                };
                let neg = if negated { "! " } else { "" };
                let m = self.unsupported(opt, &value);
                match m {
                    Match::Unsupported(s) => Match::Unsupported(format!("{neg}{s}")),
                    other => other,
                }
            }
        };
        Some(m)
    }

    /// Collects `-m recent` options into one match: the first option seen creates it, later ones amend it.
    fn recent(&mut self, opt: &str) -> Option<Match> {
        let existing = match self.matches.last_mut() {
            Some(m @ (Match::RecentCheck { .. } | Match::RecentSet { .. })) => Some(m),
            _ => None,
        };
        let fresh = existing.is_none();
        let mut m = match existing {
            Some(m) => m.clone(),
            None => Match::RecentSet {
                name: "DEFAULT".to_string(),
            },
        };
        match opt {
            "--name" => {
                let v = self.value();
                match &mut m {
                    Match::RecentCheck { name, .. } | Match::RecentSet { name } => *name = v,
                    _ => {}
                }
            }
            "--seconds" => {
                let v = self.value().parse().ok();
                if let Match::RecentCheck { seconds, .. } = &mut m {
                    *seconds = v;
                } else if let Match::RecentSet { name } = &m {
                    m = Match::RecentCheck {
                        name: name.clone(),
                        seconds: v,
                    };
                }
            }
            "--rcheck" | "--update" => {
                if let Match::RecentSet { name } = &m {
                    m = Match::RecentCheck {
                        name: name.clone(),
                        seconds: None,
                    };
                }
            }
            _ => {}
        }
        if fresh {
            Some(m)
        } else {
            *self.matches.last_mut().expect("checked above") = m;
            None
        }
    }
}

mod target;
#[cfg(test)]
mod tests;
