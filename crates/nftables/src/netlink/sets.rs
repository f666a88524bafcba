//! Sets and maps as nf_tables attributes: key/data types and lengths, element key/data bytes, set flags and
//! user data (comments, and the `typeof` description nft writes for the `backends-K` maps).

use super::attr::consts::*;
use super::attr::{udata_comment, AttrWriter};
use super::expr::{proto_num, write_verdict};
use crate::plan::*;

/// nft's datatype id and byte length of a key field.
pub(super) fn dtype(d: DataType) -> (u32, u32) {
    match d {
        DataType::Ipv4Addr => (7, 4),
        DataType::Ipv6Addr => (8, 16),
        DataType::InetProto => (12, 1),
        DataType::InetService => (13, 2),
        DataType::Slot => (4, 4),
    }
}

/// Key bytes of an element: each field padded to 4 bytes.
pub(super) fn key_bytes(key: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in key {
        match v {
            Value::Addr(std::net::IpAddr::V4(a)) => out.extend_from_slice(&a.octets()),
            Value::Addr(std::net::IpAddr::V6(a)) => out.extend_from_slice(&a.octets()),
            Value::Proto(p) => out.push(proto_num(*p)),
            Value::Port(p) => out.extend_from_slice(&p.to_be_bytes()),
            Value::Slot(s) => out.extend_from_slice(&s.to_ne_bytes()),
        }
        if key.len() > 1 {
            while out.len() & 3 != 0 {
                out.push(0);
            }
        }
    }
    out
}

pub(super) fn write_set(w: &mut AttrWriter, s: &Set, id: u32) {
    w.str(NFTA_SET_TABLE, TABLE).str(NFTA_SET_NAME, &s.name);
    let mut flags = 0;
    if s.verdict_map || !s.data.is_empty() {
        flags |= NFT_SET_MAP;
    }
    if s.timeout_secs.is_some() {
        flags |= NFT_SET_TIMEOUT | NFT_SET_EVAL;
    }
    if s.key.len() > 1 {
        // The kernel wants the concat flag whenever field lengths are described.
        flags |= NFT_SET_CONCAT;
    }
    w.u32be(NFTA_SET_FLAGS, flags);
    let mut ty = 0u32;
    let mut len = 0u32;
    for d in &s.key {
        let (t, l) = dtype(*d);
        ty = (ty << 6) | t;
        len += if s.key.len() > 1 {
            l.div_ceil(4) * 4
        } else {
            l
        };
    }
    w.u32be(NFTA_SET_KEY_TYPE, ty).u32be(NFTA_SET_KEY_LEN, len);
    if s.verdict_map {
        w.u32be(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT)
            .u32be(NFTA_SET_DATA_LEN, 0);
    } else if !s.data.is_empty() {
        let mut ty = 0u32;
        let mut len = 0u32;
        for d in &s.data {
            let (t, l) = dtype(*d);
            ty = (ty << 6) | t;
            len += if s.data.len() > 1 {
                l.div_ceil(4) * 4
            } else {
                l
            };
        }
        w.u32be(NFTA_SET_DATA_TYPE, ty)
            .u32be(NFTA_SET_DATA_LEN, len);
    }
    if let Some(t) = s.timeout_secs {
        w.u64be(NFTA_SET_TIMEOUT, u64::from(t) * 1000);
    }
    w.u32be(NFTA_SET_ID, id);
    if s.key.len() > 1 {
        w.begin(NFTA_SET_DESC).begin(NFTA_SET_DESC_CONCAT);
        for d in &s.key {
            w.begin(NFTA_LIST_ELEM)
                .u32be(NFTA_SET_FIELD_LEN, dtype(*d).1)
                .end();
        }
        w.end().end();
    }
    let mut udata = Vec::new();
    if s.key == [DataType::Slot] {
        udata.extend_from_slice(typeof_backends_udata(
            s.data.first() == Some(&DataType::Ipv6Addr),
        ));
    }
    if let Some(c) = &s.comment {
        udata.extend_from_slice(&udata_comment(UDATA_SET_COMMENT, c));
    }
    if !udata.is_empty() {
        w.bytes(NFTA_SET_USERDATA, &udata);
    }
}

/// The set user data nft 1.0.6 writes for `typeof numgen random mod 2 : ip[6] daddr . tcp dport` (key and
/// data byte order, key and data `typeof` expressions), so that `nft list` prints the map as it was written.
fn typeof_backends_udata(v6: bool) -> &'static [u8] {
    const V4: [u8; 100] = [
        0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x1a, 0x00,
        0x04, 0x17, 0x00, 0x00, 0x00, 0x01, 0x12, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04,
        0x02, 0x00, 0x00, 0x00, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x04, 0x34, 0x00, 0x04, 0x0d,
        0x00, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x14, 0x00, 0x04, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0c,
        0x00, 0x04, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x04, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x14, 0x00,
        0x04, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x01, 0x04,
        0x02, 0x00, 0x00, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
    ];
    const V6: [u8; 100] = [
        0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x1a, 0x00,
        0x04, 0x17, 0x00, 0x00, 0x00, 0x01, 0x12, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04,
        0x02, 0x00, 0x00, 0x00, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x04, 0x34, 0x00, 0x04, 0x0d,
        0x00, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x14, 0x00, 0x04, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0c,
        0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x04, 0x09, 0x00, 0x00, 0x00, 0x01, 0x14, 0x00,
        0x04, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x01, 0x04,
        0x02, 0x00, 0x00, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
    ];
    if v6 {
        &V6
    } else {
        &V4
    }
}

pub(super) fn write_elem(w: &mut AttrWriter, e: &Element, with_data: bool) {
    w.begin(NFTA_LIST_ELEM);
    w.begin(NFTA_SET_ELEM_KEY)
        .bytes(NFTA_DATA_VALUE, &key_bytes(&e.key))
        .end();
    if with_data {
        if let Some(v) = &e.verdict {
            w.begin(NFTA_SET_ELEM_DATA);
            write_verdict(w, v);
            w.end();
        }
        if let Some(d) = &e.data {
            w.begin(NFTA_SET_ELEM_DATA)
                .bytes(NFTA_DATA_VALUE, &key_bytes(d))
                .end();
        }
        if let Some(c) = &e.comment {
            w.bytes(
                NFTA_SET_ELEM_USERDATA,
                &udata_comment(UDATA_SET_ELEM_COMMENT, c),
            );
        }
    }
    w.end();
}

/// The key bytes of an element written by [`write_elem`]: `NFTA_LIST_ELEM` { `NFTA_SET_ELEM_KEY` {
/// `NFTA_DATA_VALUE` key } ...}. Within one set (one key type) equal keys have equal bytes and vice versa.
pub(super) fn written_elem_key(elem: &[u8]) -> &[u8] {
    let len = usize::from(u16::from_ne_bytes([elem[8], elem[9]]));
    &elem[12..8 + len]
}
