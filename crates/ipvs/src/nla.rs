//! Netlink message and attribute encoding/decoding (just what IPVS' generic netlink family and ipset's
//! nfnetlink subsystem need).
//!
//! Pure byte manipulation: no sockets here. Integers are host-endian as netlink requires, except ports
//! (network order, as IPVS stores them) and addresses (raw network bytes); attributes that ipset wants in
//! network order carry [`NLA_F_NET_BYTEORDER`].

use crate::IpvsError;

pub const NLMSG_HDRLEN: usize = 16;
pub const GENL_HDRLEN: usize = 4;
pub const NLA_HDRLEN: usize = 4;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
pub const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one generic netlink message: header, genl header, then attributes (nesting supported).
pub struct MessageBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MessageBuilder {
    pub fn new(msg_type: u16, flags: u16, seq: u32, cmd: u8, version: u8) -> MessageBuilder {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[cmd, version, 0, 0]);
        MessageBuilder {
            buf,
            nests: Vec::new(),
        }
    }

    /// An nfnetlink message: the 4-byte `nfgenmsg` header (family, version 0, resource id 0) has the
    /// generic netlink header's layout with `family` in the command byte and version 0.
    pub fn nfnl(msg_type: u16, flags: u16, seq: u32, family: u8) -> MessageBuilder {
        MessageBuilder::new(msg_type, flags, seq, family, 0)
    }

    pub fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = NLA_HDRLEN + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    pub fn u8(&mut self, kind: u16, v: u8) -> &mut Self {
        self.attr(kind, &[v])
    }

    /// A u16 in network byte order, flagged as such.
    pub fn be16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.attr(kind | NLA_F_NET_BYTEORDER, &v.to_be_bytes())
    }

    /// A u32 in network byte order, flagged as such.
    pub fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind | NLA_F_NET_BYTEORDER, &v.to_be_bytes())
    }

    pub fn u16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A NUL-terminated string.
    pub fn string(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    pub fn begin_nested(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end_nested(&mut self) -> &mut Self {
        let start = self.nests.pop().expect("end_nested without begin_nested");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.nests.is_empty(), "unterminated nested attribute");
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// One received netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Splits a datagram into messages.
pub fn messages(buf: &[u8]) -> Result<Vec<Message<'_>>, IpvsError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return Err(IpvsError::Decode(format!("bad nlmsg length {len}")));
        }
        out.push(Message {
            msg_type: u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap()),
            flags: u16::from_ne_bytes(buf[off + 6..off + 8].try_into().unwrap()),
            seq: u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap()),
            payload: &buf[off + NLMSG_HDRLEN..off + len],
        });
        off += align4(len);
    }
    Ok(out)
}

/// The errno of an NLMSG_ERROR / NLMSG_DONE payload (0 = ack).
pub fn error_code(payload: &[u8]) -> Result<i32, IpvsError> {
    if payload.len() < 4 {
        return Ok(0);
    }
    Ok(-i32::from_ne_bytes(payload[0..4].try_into().unwrap()))
}

/// Iterates over the attributes in `buf` as (type without flags, payload).
pub fn attrs(buf: &[u8]) -> Result<Vec<(u16, &[u8])>, IpvsError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLA_HDRLEN <= buf.len() {
        let len = u16::from_ne_bytes(buf[off..off + 2].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(buf[off + 2..off + 4].try_into().unwrap()) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || off + len > buf.len() {
            return Err(IpvsError::Decode(format!("bad attribute length {len}")));
        }
        out.push((kind, &buf[off + NLA_HDRLEN..off + len]));
        off += align4(len);
    }
    Ok(out)
}

pub fn get_u16(p: &[u8]) -> Result<u16, IpvsError> {
    p.get(0..2)
        .map(|b| u16::from_ne_bytes(b.try_into().unwrap()))
        .ok_or_else(|| IpvsError::Decode("short u16 attribute".into()))
}

pub fn get_u32(p: &[u8]) -> Result<u32, IpvsError> {
    p.get(0..4)
        .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
        .ok_or_else(|| IpvsError::Decode("short u32 attribute".into()))
}

pub fn get_u8(p: &[u8]) -> Result<u8, IpvsError> {
    p.first()
        .copied()
        .ok_or_else(|| IpvsError::Decode("short u8 attribute".into()))
}

/// A u16 carried in network byte order.
pub fn get_be16(p: &[u8]) -> Result<u16, IpvsError> {
    p.get(0..2)
        .map(|b| u16::from_be_bytes(b.try_into().unwrap()))
        .ok_or_else(|| IpvsError::Decode("short u16 attribute".into()))
}

/// A u32 carried in network byte order.
pub fn get_be32(p: &[u8]) -> Result<u32, IpvsError> {
    p.get(0..4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        .ok_or_else(|| IpvsError::Decode("short u32 attribute".into()))
}

pub fn get_string(p: &[u8]) -> String {
    let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_header_lengths_and_nested_attributes() {
        let mut b = MessageBuilder::new(0x20, NLM_F_REQUEST | NLM_F_ACK, 7, 1, 1);
        b.begin_nested(1).u16(1, 2).string(6, "rr").end_nested();
        let msg = b.finish();
        assert_eq!(
            msg.len() as u32,
            u32::from_ne_bytes(msg[0..4].try_into().unwrap())
        );
        let parsed = messages(&msg).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].seq, 7);
        let top = attrs(&parsed[0].payload[GENL_HDRLEN..]).unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, 1, "nested flag is masked off");
        let inner = attrs(top[0].1).unwrap();
        assert_eq!(inner[0], (1, &2u16.to_ne_bytes()[..]));
        assert_eq!(get_string(inner[1].1), "rr");
        // "rr\0" is 3 bytes: attribute padded to 8.
        assert_eq!(top[0].1.len(), 8 + 8);
    }

    #[test]
    fn rejects_truncated_messages() {
        let mut msg = MessageBuilder::new(0x20, 0, 1, 1, 1).finish();
        msg.truncate(18);
        msg[0] = 40;
        assert!(messages(&msg).is_err());
    }
}
