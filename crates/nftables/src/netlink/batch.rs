//! A [`Transaction`] as one nfnetlink batch: `NFNL_MSG_BATCH_BEGIN`, one nf_tables message per operation
//! (consecutive element operations on one set share a message), `NFNL_MSG_BATCH_END`. Only the last message
//! asks for an acknowledgement; errors are reported for any message.

use netlink_packet_core::{Emitable, NetlinkHeader};

use super::attr::consts::*;
use super::attr::{udata_comment, AttrWriter};
use super::expr::write_rule_exprs;
use super::sets::{write_elem, write_set};
use crate::plan::*;

/// An encoded batch, ready to send in one `sendmsg`.
#[derive(Clone, Debug)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// Sequence number of the batch-begin message; message k of the batch has `first_seq + k`.
    pub first_seq: u32,
    /// Sequence number of the last nf_tables message (the one that asks for an ACK).
    pub last_seq: u32,
    /// For each nf_tables message (in order), the index of the first plan operation it encodes.
    pub op_index: Vec<usize>,
}

impl Batch {
    /// Index of the plan operation encoded by the message with sequence number `seq`.
    pub fn op_for_seq(&self, seq: u32) -> Option<usize> {
        let k = seq.checked_sub(self.first_seq)?.checked_sub(1)?;
        self.op_index.get(k as usize).copied()
    }

    /// Number of nf_tables messages (without begin/end).
    pub fn messages(&self) -> usize {
        self.op_index.len()
    }
}

fn family_num(f: Family) -> u8 {
    match f {
        Family::Ip => NFPROTO_IPV4,
        Family::Ip6 => NFPROTO_IPV6,
    }
}

fn hook_num(h: Hook) -> u32 {
    match h {
        Hook::Prerouting => 0,
        Hook::Input => 1,
        Hook::Forward => 2,
        Hook::Output => 3,
        Hook::Postrouting => 4,
    }
}

/// Largest element payload per message (the nested attribute length is 16 bits).
pub(super) const MAX_ELEMS_BYTES: usize = 60_000;

/// The element message being filled: its kind, set, and where its header and element list start.
#[derive(Debug)]
struct OpenElems {
    add: bool,
    set: String,
    msg_start: usize,
    body_start: usize,
}

/// A streaming batch encoder: operations are written into the batch as they are pushed, so the caller need
/// not hold a whole [`Transaction`] (the full sync's lean route, see `render::render_full_into`). Consecutive
/// element operations of one kind on one set share a message until its element list exceeds
/// `MAX_ELEMS_BYTES`. [`encode`] is this encoder over a transaction's operations.
#[derive(Debug)]
pub struct Encoder {
    family: Family,
    /// The batch so far; the open element list, if any, is the writer's open nest.
    w: AttrWriter,
    first_seq: u32,
    seq: u32,
    op_index: Vec<usize>,
    ops: usize,
    counts: OpCounts,
    set_id: u32,
    last_msg_offset: Option<usize>,
    open: Option<OpenElems>,
}

impl Encoder {
    /// A batch whose batch-begin message has sequence number `first_seq`.
    pub fn new(family: Family, first_seq: u32) -> Encoder {
        let mut e = Encoder {
            family,
            w: AttrWriter::new(),
            first_seq,
            seq: first_seq,
            op_index: Vec::new(),
            ops: 0,
            counts: OpCounts::default(),
            set_id: 1,
            last_msg_offset: None,
            open: None,
        };
        e.begin_msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        e.end_msg(0);
        e
    }

    /// Reserves room for `additional` more bytes of batch (avoids doubling the buffer when the caller knows
    /// what is coming).
    pub fn reserve(&mut self, additional: usize) {
        self.w.buf.reserve_exact(additional);
    }

    /// Operations pushed so far.
    pub fn ops(&self) -> usize {
        self.ops
    }

    /// Counts of the operations pushed so far, as [`Transaction::counts`] would give them.
    pub fn counts(&self) -> OpCounts {
        self.counts
    }

    /// Starts a message (header with length 0, nfgenmsg); returns its offset.
    fn begin_msg(&mut self, msg_type: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let mut h = NetlinkHeader::default();
        h.message_type = msg_type;
        h.flags = flags;
        h.sequence_number = self.seq;
        h.port_number = 0;
        let out = &mut self.w.buf;
        let start = out.len();
        out.resize(start + 16, 0);
        h.emit(&mut out[start..start + 16]);
        let r = res_id.to_be_bytes();
        out.extend_from_slice(&[family, 0, r[0], r[1]]);
        start
    }

    /// Writes the length of the message at `start` (its attributes are already 4-byte aligned).
    fn end_msg(&mut self, start: usize) {
        let out = &mut self.w.buf;
        let len = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
        out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Starts the nf_tables message of operation `self.ops` (the next sequence number).
    fn begin_nft_msg(&mut self, ty: u16, flags: u16) -> usize {
        self.seq = self.seq.wrapping_add(1);
        let start = self.begin_msg(
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            NLM_F_REQUEST | flags,
            family_num(self.family),
            0,
        );
        self.last_msg_offset = Some(start);
        self.op_index.push(self.ops);
        start
    }

    fn close_elems(&mut self) {
        if let Some(open) = self.open.take() {
            self.w.end();
            self.end_msg(open.msg_start);
        }
    }

    /// Makes the open element message one for `set` that can take another element (starting a new one when
    /// the kind or set differs or the list is full).
    fn elems_msg(&mut self, set: &str, add: bool) {
        if let Some(open) = &self.open {
            if open.add == add
                && open.set == set
                && self.w.buf.len() - open.body_start <= MAX_ELEMS_BYTES
            {
                return;
            }
        }
        self.close_elems();
        let (ty, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, 0)
        };
        let msg_start = self.begin_nft_msg(ty, flags);
        self.w
            .str(NFTA_SET_ELEM_LIST_TABLE, TABLE)
            .str(NFTA_SET_ELEM_LIST_SET, set);
        self.w.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        self.open = Some(OpenElems {
            add,
            set: set.to_string(),
            msg_start,
            body_start: self.w.buf.len(),
        });
    }

    /// Appends one operation.
    pub fn push(&mut self, op: &Op) {
        self.counts.add(op);
        if let Op::AddElement(e) | Op::DeleteElement(e) = op {
            let add = matches!(op, Op::AddElement(_));
            self.elems_msg(&e.set, add);
            write_elem(&mut self.w, e, add);
            self.ops += 1;
            return;
        }
        self.close_elems();
        let (ty, flags) = match op {
            Op::AddTable { .. } => (NFT_MSG_NEWTABLE, NLM_F_CREATE),
            Op::DeleteTable => (NFT_MSG_DELTABLE, 0),
            Op::AddChain(_) => (NFT_MSG_NEWCHAIN, NLM_F_CREATE),
            Op::FlushChain(_) => (NFT_MSG_DELRULE, 0),
            Op::DeleteChain(_) => (NFT_MSG_DELCHAIN, 0),
            Op::AddSet(_) => (NFT_MSG_NEWSET, NLM_F_CREATE),
            Op::FlushSet { .. } => (NFT_MSG_DELSETELEM, 0),
            Op::DeleteSet { .. } => (NFT_MSG_DELSET, 0),
            Op::AddRule(_) => (NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND),
            Op::AddElement(_) | Op::DeleteElement(_) => unreachable!("handled above"),
        };
        let start = self.begin_nft_msg(ty, flags);
        let w = &mut self.w;
        match op {
            Op::AddTable { comment } => {
                w.str(NFTA_TABLE_NAME, TABLE);
                if let Some(c) = comment {
                    w.bytes(NFTA_TABLE_USERDATA, &udata_comment(UDATA_TABLE_COMMENT, c));
                }
            }
            Op::DeleteTable => {
                w.str(NFTA_TABLE_NAME, TABLE);
            }
            Op::AddChain(c) => {
                w.str(NFTA_CHAIN_TABLE, TABLE).str(NFTA_CHAIN_NAME, &c.name);
                if let Some(b) = &c.base {
                    w.begin(NFTA_CHAIN_HOOK)
                        .u32be(NFTA_HOOK_HOOKNUM, hook_num(b.hook))
                        .bytes(NFTA_HOOK_PRIORITY, &b.priority.to_be_bytes())
                        .end();
                    w.u32be(NFTA_CHAIN_POLICY, 1);
                    w.str(NFTA_CHAIN_TYPE, b.chain_type.as_str());
                }
                if let Some(cm) = &c.comment {
                    w.bytes(NFTA_CHAIN_USERDATA, &udata_comment(UDATA_CHAIN_COMMENT, cm));
                }
            }
            Op::FlushChain(c) => {
                w.str(NFTA_RULE_TABLE, TABLE).str(NFTA_RULE_CHAIN, c);
            }
            Op::DeleteChain(c) => {
                w.str(NFTA_CHAIN_TABLE, TABLE).str(NFTA_CHAIN_NAME, c);
            }
            Op::AddSet(s) => {
                write_set(w, s, self.set_id);
                self.set_id += 1;
            }
            Op::FlushSet { name, .. } => {
                w.str(NFTA_SET_ELEM_LIST_TABLE, TABLE)
                    .str(NFTA_SET_ELEM_LIST_SET, name);
            }
            Op::DeleteSet { name, .. } => {
                w.str(NFTA_SET_TABLE, TABLE).str(NFTA_SET_NAME, name);
            }
            Op::AddRule(r) => {
                w.str(NFTA_RULE_TABLE, TABLE).str(NFTA_RULE_CHAIN, &r.chain);
                write_rule_exprs(w, self.family, &r.stmts);
                if let Some(c) = &r.comment {
                    w.bytes(NFTA_RULE_USERDATA, &udata_comment(UDATA_RULE_COMMENT, c));
                }
            }
            Op::AddElement(_) | Op::DeleteElement(_) => {}
        }
        self.end_msg(start);
        self.ops += 1;
    }

    /// Appends an `AddElement` of `set` already encoded by [`encode_element`] (one `NFTA_LIST_ELEM`).
    pub fn push_encoded_element(&mut self, set: &str, elem: &[u8]) {
        self.counts.elements_added += 1;
        self.elems_msg(set, true);
        self.w.buf.extend_from_slice(elem);
        self.ops += 1;
    }

    /// Closes the batch: the last nf_tables message asks for an acknowledgement, then `NFNL_MSG_BATCH_END`.
    pub fn finish(mut self) -> Batch {
        self.close_elems();
        if let Some(off) = self.last_msg_offset {
            // nlmsghdr: len u32, type u16, flags u16 (native endian).
            let out = &mut self.w.buf;
            let flags = u16::from_ne_bytes([out[off + 6], out[off + 7]]) | NLM_F_ACK;
            out[off + 6..off + 8].copy_from_slice(&flags.to_ne_bytes());
        }
        let last_seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let start = self.begin_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.end_msg(start);
        Batch {
            bytes: self.w.buf,
            first_seq: self.first_seq,
            last_seq,
            op_index: self.op_index,
        }
    }
}

/// `e` as one `NFTA_LIST_ELEM` of an `AddElement` message, appended to `w`.
pub(super) fn encode_element(w: &mut AttrWriter, e: &Element) {
    write_elem(w, e, true);
}

/// Upper bound of the bytes an element message adds around its elements (header, table, set, list).
pub(super) fn element_msg_overhead(set: &str) -> usize {
    16 + 4 + 16 + (4 + set.len() + 1).div_ceil(4) * 4 + 4
}

/// Encodes `tx` with sequence numbers starting at `first_seq`.
pub fn encode(tx: &Transaction, first_seq: u32) -> Batch {
    let mut e = Encoder::new(tx.family, first_seq);
    for op in &tx.ops {
        e.push(op);
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::super::sets::key_bytes;
    use super::*;
    use netlink_packet_core::NetlinkBuffer;

    /// (type, flags, seq, payload) of every message in the batch.
    fn messages(b: &Batch) -> Vec<(u16, u16, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut off = 0;
        while off < b.bytes.len() {
            let nl = NetlinkBuffer::new_checked(&b.bytes[off..]).unwrap();
            let len = nl.length() as usize;
            out.push((
                nl.message_type(),
                nl.flags(),
                nl.sequence_number(),
                nl.payload().to_vec(),
            ));
            off += len.div_ceil(4) * 4;
        }
        out
    }

    fn element(i: u32) -> Op {
        Op::AddElement(Element {
            set: "cluster-ips".into(),
            key: vec![Value::Addr(
                std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
            )],
            verdict: None,
            data: None,
            comment: None,
        })
    }

    #[test]
    fn batch_is_framed_and_only_the_last_message_asks_for_an_ack() {
        let tx = Transaction {
            family: Family::Ip,
            ops: vec![
                Op::AddTable { comment: None },
                Op::AddChain(Chain::regular("c")),
                Op::AddRule(Rule::new("c", vec![Stmt::Verdict(Verdict::Drop)])),
            ],
        };
        let b = encode(&tx, 100);
        let msgs = messages(&b);
        assert_eq!(msgs.len(), 5);
        assert_eq!(msgs[0].0, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(
            &msgs[0].3[..4],
            &[0, 0, 0, 10],
            "AF_UNSPEC, v0, res_id NFNL_SUBSYS_NFTABLES"
        );
        assert_eq!(msgs[4].0, NFNL_MSG_BATCH_END);
        let types: Vec<u16> = msgs[1..4].iter().map(|m| m.0 & 0xff).collect();
        assert_eq!(
            types,
            vec![NFT_MSG_NEWTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE]
        );
        assert!(msgs[1..4].iter().all(|m| m.0 >> 8 == NFNL_SUBSYS_NFTABLES));
        assert!(msgs[1..4].iter().all(|m| m.3[0] == NFPROTO_IPV4));
        let acks: Vec<bool> = msgs.iter().map(|m| m.1 & NLM_F_ACK != 0).collect();
        assert_eq!(acks, vec![false, false, false, true, false]);
        assert_eq!(msgs[3].1 & NLM_F_APPEND, NLM_F_APPEND, "rules are appended");
        let seqs: Vec<u32> = msgs.iter().map(|m| m.2).collect();
        assert_eq!(seqs, vec![100, 101, 102, 103, 104]);
        assert_eq!(b.last_seq, 103);
        assert_eq!(b.op_for_seq(102), Some(1));
        assert_eq!(
            b.op_for_seq(100),
            None,
            "the batch-begin message is no operation"
        );
    }

    #[test]
    fn consecutive_elements_share_messages_below_the_attribute_limit() {
        let mut ops = vec![Op::AddChain(Chain::regular("c"))];
        ops.extend((0..10_000).map(element));
        ops.push(Op::AddChain(Chain::regular("d")));
        let tx = Transaction {
            family: Family::Ip,
            ops,
        };
        let b = encode(&tx, 1);
        let msgs = messages(&b);
        let elem_msgs: Vec<&(u16, u16, u32, Vec<u8>)> = msgs
            .iter()
            .filter(|m| m.0 & 0xff == NFT_MSG_NEWSETELEM)
            .collect();
        assert!(
            elem_msgs.len() > 1 && elem_msgs.len() < 20,
            "{}",
            elem_msgs.len()
        );
        assert!(elem_msgs.iter().all(|m| m.3.len() < 65_535));
        // Operation indices map back: the chain after the elements is op 10001.
        let last = b.op_index.last().copied();
        assert_eq!(last, Some(10_001));
        assert_eq!(b.messages(), 2 + elem_msgs.len());
    }

    #[test]
    fn concatenated_keys_are_padded_per_field() {
        let key = key_bytes(&[
            Value::Addr("10.0.0.1".parse().unwrap()),
            Value::Proto(kube_proxy_model::Protocol::Udp),
            Value::Port(53),
        ]);
        assert_eq!(key, vec![10, 0, 0, 1, 17, 0, 0, 0, 0, 53, 0, 0]);
        assert_eq!(
            key_bytes(&[Value::Addr("10.0.0.1".parse().unwrap())]),
            vec![10, 0, 0, 1]
        );
    }
}
