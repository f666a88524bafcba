//! Rule statements as nf_tables expressions (payload, meta, cmp, bitwise, immediate, lookup, ct, numgen, fib,
//! nat, masq, reject, dynset, counter), written the way `nft` compiles the same text.

use std::net::IpAddr;

use kube_proxy_model::Protocol;

use super::attr::consts::*;
use super::attr::AttrWriter;
use crate::plan::*;

const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
const REG32_00: u32 = 8;

const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const META_MARK: u32 = 3;
const META_IIFNAME: u32 = 6;
const META_L4PROTO: u32 = 16;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
const CT_STATUS_DST_NAT: u32 = 0x20;
const CT_STATE_NEW_BIT: u32 = 8;
const NG_RANDOM: u32 = 1;
const FIB_RESULT_ADDRTYPE: u32 = 3;
const FIB_F_SADDR: u32 = 1;
const FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;
const NAT_DNAT: u32 = 1;
const NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 0x10;
const REJECT_ICMP_UNREACH: u32 = 0;
const DYNSET_OP_UPDATE: u32 = 1;

/// Protocol number of a Service protocol.
pub fn proto_num(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Offset and length of an address field in the network header.
fn addr_loc(f: Family, field: AddrField) -> (u32, u32) {
    match (f, field) {
        (Family::Ip, AddrField::Saddr) => (12, 4),
        (Family::Ip, AddrField::Daddr) => (16, 4),
        (Family::Ip6, AddrField::Saddr) => (8, 16),
        (Family::Ip6, AddrField::Daddr) => (24, 16),
    }
}

struct Exprs<'a> {
    w: &'a mut AttrWriter,
}

impl Exprs<'_> {
    fn expr(&mut self, name: &str, body: impl FnOnce(&mut AttrWriter)) {
        self.w.begin(NFTA_LIST_ELEM);
        self.w.str(NFTA_EXPR_NAME, name);
        self.w.begin(NFTA_EXPR_DATA);
        body(self.w);
        self.w.end();
        self.w.end();
    }

    fn payload(&mut self, dreg: u32, base: u32, offset: u32, len: u32) {
        self.expr("payload", |w| {
            w.u32be(1, dreg)
                .u32be(2, base)
                .u32be(3, offset)
                .u32be(4, len);
        });
    }

    fn meta_load(&mut self, dreg: u32, key: u32) {
        self.expr("meta", |w| {
            w.u32be(1, dreg).u32be(2, key);
        });
    }

    fn cmp(&mut self, sreg: u32, op: u32, data: &[u8]) {
        self.expr("cmp", |w| {
            w.u32be(1, sreg).u32be(2, op);
            w.begin(3).bytes(NFTA_DATA_VALUE, data).end();
        });
    }

    fn bitwise(&mut self, reg: u32, mask: &[u8], xor: &[u8]) {
        let len = u32::try_from(mask.len()).unwrap_or(0);
        self.expr("bitwise", |w| {
            w.u32be(1, reg).u32be(2, reg).u32be(3, len);
            w.begin(4).bytes(NFTA_DATA_VALUE, mask).end();
            w.begin(5).bytes(NFTA_DATA_VALUE, xor).end();
        });
    }

    fn immediate_data(&mut self, dreg: u32, data: &[u8]) {
        self.expr("immediate", |w| {
            w.u32be(1, dreg);
            w.begin(2).bytes(NFTA_DATA_VALUE, data).end();
        });
    }

    fn verdict(&mut self, v: &Verdict) {
        self.expr("immediate", |w| {
            w.u32be(1, REG_VERDICT);
            w.begin(2);
            write_verdict(w, v);
            w.end();
        });
    }

    fn l4proto_is(&mut self, p: Protocol) {
        self.meta_load(REG_1, META_L4PROTO);
        self.cmp(REG_1, CMP_EQ, &[proto_num(p)]);
    }

    fn lookup(&mut self, sreg: u32, set: &str, dreg: Option<u32>) {
        self.expr("lookup", |w| {
            w.str(1, set).u32be(2, sreg);
            if let Some(d) = dreg {
                w.u32be(3, d);
            }
        });
    }
}

/// `NFTA_DATA_VERDICT { code, chain }` inside an already opened data attribute.
pub fn write_verdict(w: &mut AttrWriter, v: &Verdict) {
    let (code, chain) = match v {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Return => (NFT_RETURN, None),
        Verdict::Jump(c) => (NFT_JUMP, Some(c)),
        Verdict::Goto(c) => (NFT_GOTO, Some(c)),
    };
    w.begin(NFTA_DATA_VERDICT);
    w.bytes(NFTA_VERDICT_CODE, &code.to_be_bytes());
    if let Some(c) = chain {
        w.str(NFTA_VERDICT_CHAIN, c);
    }
    w.end();
}

fn cmp_op(op: CmpOp) -> u32 {
    match op {
        CmpOp::Eq => CMP_EQ,
        CmpOp::Neq => CMP_NEQ,
    }
}

fn match_exprs(e: &mut Exprs<'_>, f: Family, m: &Match) {
    match m {
        Match::Addr { field, op, net } => {
            let (off, len) = addr_loc(f, *field);
            let addr = ip_bytes(&net.network());
            let bits = u32::from(net.prefix_len());
            if bits == len * 8 {
                e.payload(REG_1, PAYLOAD_NETWORK, off, len);
                e.cmp(REG_1, cmp_op(*op), &addr);
            } else if bits % 8 == 0 {
                let n = bits / 8;
                e.payload(REG_1, PAYLOAD_NETWORK, off, n);
                e.cmp(REG_1, cmp_op(*op), &addr[..n as usize]);
            } else {
                let mask = ip_bytes(&net.netmask());
                e.payload(REG_1, PAYLOAD_NETWORK, off, len);
                e.bitwise(REG_1, &mask, &vec![0u8; mask.len()]);
                e.cmp(REG_1, cmp_op(*op), &addr);
            }
        }
        Match::AddrInSet { field, set } => {
            let (off, len) = addr_loc(f, *field);
            e.payload(REG_1, PAYLOAD_NETWORK, off, len);
            e.lookup(REG_1, set, None);
        }
        Match::Iifname { op, name } => {
            e.meta_load(REG_1, META_IIFNAME);
            let data = match name.strip_suffix('*') {
                Some(prefix) => prefix.as_bytes().to_vec(),
                None => {
                    let mut d = vec![0u8; 16];
                    let b = name.as_bytes();
                    let n = b.len().min(15);
                    d[..n].copy_from_slice(&b[..n]);
                    d
                }
            };
            e.cmp(REG_1, cmp_op(*op), &data);
        }
        Match::L4Proto(p) => e.l4proto_is(*p),
        Match::Dport(p, port) => {
            e.l4proto_is(*p);
            e.payload(REG_1, PAYLOAD_TRANSPORT, 2, 2);
            e.cmp(REG_1, CMP_EQ, &port.to_be_bytes());
        }
        Match::FibDaddrLocal | Match::FibSaddrLocal => {
            let flags = if matches!(m, Match::FibDaddrLocal) {
                FIB_F_DADDR
            } else {
                FIB_F_SADDR
            };
            e.expr("fib", |w| {
                w.u32be(1, REG_1)
                    .u32be(2, FIB_RESULT_ADDRTYPE)
                    .u32be(3, flags);
            });
            e.cmp(REG_1, CMP_EQ, &RTN_LOCAL.to_ne_bytes());
        }
        Match::MarkMaskZero(mask) => {
            e.meta_load(REG_1, META_MARK);
            e.bitwise(REG_1, &mask.to_ne_bytes(), &0u32.to_ne_bytes());
            e.cmp(REG_1, CMP_EQ, &0u32.to_ne_bytes());
        }
        Match::CtStateNew => {
            e.expr("ct", |w| {
                w.u32be(1, REG_1).u32be(2, CT_STATE);
            });
            e.bitwise(REG_1, &CT_STATE_NEW_BIT.to_ne_bytes(), &0u32.to_ne_bytes());
            e.cmp(REG_1, CMP_NEQ, &0u32.to_ne_bytes());
        }
        Match::SaddrDaddrInSet(set) => {
            load_key(
                e,
                f,
                &[
                    KeyField::Addr(AddrField::Saddr),
                    KeyField::Addr(AddrField::Daddr),
                ],
            );
            e.lookup(REG_1, set, None);
        }
        Match::CtStatusDnat => {
            e.expr("ct", |w| {
                w.u32be(1, REG_1).u32be(2, CT_STATUS);
            });
            e.bitwise(REG_1, &CT_STATUS_DST_NAT.to_ne_bytes(), &0u32.to_ne_bytes());
            e.cmp(REG_1, CMP_NEQ, &0u32.to_ne_bytes());
        }
        Match::NumgenModZero(n) => {
            e.expr("numgen", |w| {
                w.u32be(1, REG_1).u32be(2, *n).u32be(3, NG_RANDOM);
            });
            e.cmp(REG_1, CMP_EQ, &0u32.to_ne_bytes());
        }
    }
}

/// Loads a concatenation into consecutive 32-bit registers starting at register 1; returns the key length.
fn load_key(e: &mut Exprs<'_>, f: Family, key: &[KeyField]) {
    let mut word = 0u32;
    for k in key {
        let reg = if word == 0 { REG_1 } else { REG32_00 + word };
        let len = match k {
            KeyField::Addr(a) => {
                let (off, len) = addr_loc(f, *a);
                e.payload(reg, PAYLOAD_NETWORK, off, len);
                len
            }
            KeyField::L4Proto => {
                e.meta_load(reg, META_L4PROTO);
                1
            }
            KeyField::ThDport => {
                e.payload(reg, PAYLOAD_TRANSPORT, 2, 2);
                2
            }
        };
        word += len.div_ceil(4);
    }
}

fn stmt_exprs(e: &mut Exprs<'_>, f: Family, s: &Stmt) {
    match s {
        Stmt::Match(m) => match_exprs(e, f, m),
        Stmt::Counter => e.expr("counter", |w| {
            w.u64be(1, 0).u64be(2, 0);
        }),
        Stmt::MarkOr(bits) | Stmt::MarkXor(bits) => {
            e.meta_load(REG_1, META_MARK);
            let mask = if matches!(s, Stmt::MarkOr(_)) {
                !*bits
            } else {
                u32::MAX
            };
            e.bitwise(REG_1, &mask.to_ne_bytes(), &bits.to_ne_bytes());
            e.expr("meta", |w| {
                w.u32be(2, META_MARK).u32be(3, REG_1);
            });
        }
        Stmt::UpdateSaddr { set } => {
            let (off, len) = addr_loc(f, AddrField::Saddr);
            e.payload(REG_1, PAYLOAD_NETWORK, off, len);
            e.expr("dynset", |w| {
                w.str(1, set).u32be(3, DYNSET_OP_UPDATE).u32be(4, REG_1);
            });
        }
        Stmt::Dnat { addr, port } => {
            e.immediate_data(REG_1, &ip_bytes(addr));
            e.immediate_data(REG_2, &port.to_be_bytes());
            let family = match addr {
                IpAddr::V4(_) => u32::from(NFPROTO_IPV4),
                IpAddr::V6(_) => u32::from(NFPROTO_IPV6),
            };
            e.expr("nat", |w| {
                w.u32be(1, NAT_DNAT)
                    .u32be(2, family)
                    .u32be(3, REG_1)
                    .u32be(5, REG_2);
            });
        }
        Stmt::DnatNumgenMap {
            modulus,
            offset,
            map,
        } => {
            e.expr("numgen", |w| {
                w.u32be(1, REG_1)
                    .u32be(2, *modulus)
                    .u32be(3, NG_RANDOM)
                    .u32be(4, *offset);
            });
            e.lookup(REG_1, map, Some(REG_1));
            // The data is address . port: the port starts in the 32-bit register after the address.
            let (family, port_reg) = match f {
                Family::Ip => (u32::from(NFPROTO_IPV4), REG32_00 + 1),
                Family::Ip6 => (u32::from(NFPROTO_IPV6), REG32_00 + 4),
            };
            e.expr("nat", |w| {
                w.u32be(1, NAT_DNAT)
                    .u32be(2, family)
                    .u32be(3, REG_1)
                    .u32be(5, port_reg);
            });
        }
        Stmt::Masquerade { fully_random } => e.expr("masq", |w| {
            if *fully_random {
                w.u32be(1, NAT_RANGE_PROTO_RANDOM_FULLY);
            }
        }),
        Stmt::Reject => {
            let code = match f {
                Family::Ip => 3u8,
                Family::Ip6 => 4u8,
            };
            e.expr("reject", |w| {
                w.u32be(1, REJECT_ICMP_UNREACH).bytes(2, &[code]);
            });
        }
        Stmt::Vmap { key, map } => {
            load_key(e, f, key);
            e.lookup(REG_1, map, Some(REG_VERDICT));
        }
        Stmt::Verdict(v) => e.verdict(v),
    }
}

/// Writes `NFTA_RULE_EXPRESSIONS` for `stmts`.
pub fn write_rule_exprs(w: &mut AttrWriter, f: Family, stmts: &[Stmt]) {
    w.begin(NFTA_RULE_EXPRESSIONS);
    let mut e = Exprs { w };
    for s in stmts {
        stmt_exprs(&mut e, f, s);
    }
    w.end();
}
