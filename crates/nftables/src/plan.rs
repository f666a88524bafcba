//! The typed plan: the nf_tables objects this mode programs (table, chains, sets/maps, elements, rules) and the
//! operations of one transaction on them.
//!
//! The rule language is a small expression AST holding only what this mode needs. Both encoders (nft text in
//! `text.rs`, netlink in `netlink/`) take a [`Transaction`]; neither adds anything the plan does not say.
//! Nothing here performs I/O.

use std::net::IpAddr;

use ipnet::IpNet;
use kube_proxy_model::{IpFamily, Protocol};

/// The one table this mode owns, in family `ip` and in family `ip6`.
pub const TABLE: &str = "kube-proxy";

/// An nf_tables table family (only the two this mode uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ip,
    Ip6,
}

impl Family {
    /// The family a proxier for `f` programs.
    pub fn of(f: IpFamily) -> Family {
        match f {
            IpFamily::V4 => Family::Ip,
            IpFamily::V6 => Family::Ip6,
        }
    }

    /// nft's spelling: `ip` / `ip6` (also the payload protocol keyword).
    pub fn as_str(&self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }

    /// The address data type of this family.
    pub fn addr_type(&self) -> DataType {
        match self {
            Family::Ip => DataType::Ipv4Addr,
            Family::Ip6 => DataType::Ipv6Addr,
        }
    }
}

/// A netfilter hook a base chain attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    pub fn as_str(&self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// The type of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainType {
    Filter,
    Nat,
}

impl ChainType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
    }
}

/// Hook, type and priority of a base chain (policy is always accept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseChain {
    pub chain_type: ChainType,
    pub hook: Hook,
    /// Numeric priority (`dstnat` is -100, `srcnat` is 100).
    pub priority: i32,
}

/// A chain; `base` is set for chains attached to a hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub base: Option<BaseChain>,
    pub comment: Option<String>,
}

impl Chain {
    /// A regular (non-base) chain without a comment.
    pub fn regular(name: impl Into<String>) -> Chain {
        Chain {
            name: name.into(),
            base: None,
            comment: None,
        }
    }
}

/// Data types of set keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Ipv4Addr,
    Ipv6Addr,
    InetProto,
    InetService,
    /// The key of the `backends-K` maps: a slot, as `numgen random mod N offset BASE` yields it (host order).
    Slot,
}

impl DataType {
    pub fn as_str(&self) -> &'static str {
        match self {
            DataType::Ipv4Addr => "ipv4_addr",
            DataType::Ipv6Addr => "ipv6_addr",
            DataType::InetProto => "inet_proto",
            DataType::InetService => "inet_service",
            DataType::Slot => "integer",
        }
    }
}

/// A named set, or a verdict map when `verdict_map` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    /// Key fields; more than one is a concatenation.
    pub key: Vec<DataType>,
    pub verdict_map: bool,
    /// Data fields of a data map (empty for sets and verdict maps).
    pub data: Vec<DataType>,
    /// `flags dynamic,timeout` with this default timeout (seconds): affinity sets.
    pub timeout_secs: Option<u32>,
    pub comment: Option<String>,
}

/// A value inside a set key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Addr(IpAddr),
    Proto(Protocol),
    Port(u16),
    /// A slot of a `backends-K` map.
    Slot(u32),
}

/// A verdict, in a rule or as the data of a verdict-map element.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}

/// One element of a set or verdict map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub set: String,
    pub key: Vec<Value>,
    /// The verdict of a verdict-map element (None for plain sets).
    pub verdict: Option<Verdict>,
    /// The data of a data-map element (`backends-K`: address . port).
    pub data: Option<Vec<Value>>,
    pub comment: Option<String>,
}

/// Which address of the packet's network header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrField {
    Saddr,
    Daddr,
}

impl AddrField {
    pub fn as_str(&self) -> &'static str {
        match self {
            AddrField::Saddr => "saddr",
            AddrField::Daddr => "daddr",
        }
    }
}

/// A field of a concatenated lookup key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyField {
    Addr(AddrField),
    L4Proto,
    ThDport,
}

/// Equality or inequality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
}

/// A condition; a rule's statements run only when all its matches hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// `ip saddr [!=] 10.0.0.0/8` (a host address is a full-length prefix).
    Addr {
        field: AddrField,
        op: CmpOp,
        net: IpNet,
    },
    /// `ip daddr @set`.
    AddrInSet { field: AddrField, set: String },
    /// `iifname [!=] "name"`; a trailing `*` matches a prefix.
    Iifname { op: CmpOp, name: String },
    /// `meta l4proto tcp`.
    L4Proto(Protocol),
    /// `tcp dport 80` (implies `meta l4proto tcp`).
    Dport(Protocol, u16),
    /// `fib daddr type local`.
    FibDaddrLocal,
    /// `fib saddr type local`.
    FibSaddrLocal,
    /// `meta mark & MASK == 0`.
    MarkMaskZero(u32),
    /// `ct state new`.
    CtStateNew,
    /// `numgen random mod N == 0`: true with probability 1/N.
    NumgenModZero(u32),
    /// `ip saddr . ip daddr @set`.
    SaddrDaddrInSet(String),
    /// `ct status dnat`.
    CtStatusDnat,
}

/// A statement of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    Match(Match),
    Counter,
    /// `meta mark set meta mark | BITS`.
    MarkOr(u32),
    /// `meta mark set meta mark ^ BITS`.
    MarkXor(u32),
    /// `update @set { ip saddr }` (refreshes the set's default timeout).
    UpdateSaddr {
        set: String,
    },
    /// `dnat to ADDR:PORT` (write after a `Match::L4Proto`).
    Dnat {
        addr: IpAddr,
        port: u16,
    },
    /// `dnat ip to numgen random mod MODULUS offset OFFSET map @MAP` (write after a `Match::L4Proto`): the
    /// destination is the address . port stored in slot `OFFSET + random % MODULUS` of a data map.
    DnatNumgenMap {
        modulus: u32,
        offset: u32,
        map: String,
    },
    /// `masquerade [fully-random]`.
    Masquerade {
        fully_random: bool,
    },
    /// `reject` (ICMP port unreachable).
    Reject,
    /// `KEY vmap @map`, KEY a concatenation of fields.
    Vmap {
        key: Vec<KeyField>,
        map: String,
    },
    Verdict(Verdict),
}

/// A rule appended to `chain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub chain: String,
    pub stmts: Vec<Stmt>,
    pub comment: Option<String>,
}

impl Rule {
    pub fn new(chain: impl Into<String>, stmts: Vec<Stmt>) -> Rule {
        Rule {
            chain: chain.into(),
            stmts,
            comment: None,
        }
    }

    pub fn with_comment(mut self, c: impl Into<String>) -> Rule {
        self.comment = Some(c.into());
        self
    }
}

/// One operation of a transaction, on the table `kube-proxy` of the transaction's family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create the table if missing (idempotent).
    AddTable {
        comment: Option<String>,
    },
    DeleteTable,
    /// Create the chain if missing (idempotent).
    AddChain(Chain),
    /// Remove every rule of the chain.
    FlushChain(String),
    DeleteChain(String),
    /// Create the set if missing (idempotent).
    AddSet(Set),
    /// Remove every element (`verdict_map` says set or map, for the text form).
    FlushSet {
        name: String,
        verdict_map: bool,
    },
    DeleteSet {
        name: String,
        verdict_map: bool,
    },
    AddElement(Element),
    DeleteElement(Element),
    AddRule(Rule),
}

/// An ordered list of operations applied atomically (all or nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub family: Family,
    pub ops: Vec<Op>,
}

impl Transaction {
    pub fn new(family: Family) -> Transaction {
        Transaction {
            family,
            ops: Vec::new(),
        }
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Counts by kind: (chains added, rules added, elements added or deleted).
    pub fn counts(&self) -> OpCounts {
        let mut c = OpCounts::default();
        for op in &self.ops {
            c.add(op);
        }
        c
    }
}

/// Operation counts of a transaction (for logs, metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub chains_added: usize,
    pub chains_deleted: usize,
    pub rules_added: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
    pub sets_added: usize,
    pub other: usize,
}

impl OpCounts {
    /// Counts `op`.
    pub fn add(&mut self, op: &Op) {
        match op {
            Op::AddChain(_) => self.chains_added += 1,
            Op::DeleteChain(_) => self.chains_deleted += 1,
            Op::AddRule(_) => self.rules_added += 1,
            Op::AddElement(_) => self.elements_added += 1,
            Op::DeleteElement(_) => self.elements_deleted += 1,
            Op::AddSet(_) => self.sets_added += 1,
            _ => self.other += 1,
        }
    }
}
