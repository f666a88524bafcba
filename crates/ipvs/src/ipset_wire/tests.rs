//! Byte-level checks of one message of each kind (little-endian host: netlink lengths, types and flags are
//! host order; addresses, ports and the hash options network order), and LIST dump decoding.

use super::*;

/// nlmsghdr (length filled in by the caller's total), then nfgenmsg.
fn hdr(len: u32, cmd: u8, flags: u16, seq: u32, family: u8) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&[cmd, 6]); // type = NFNL_SUBSYS_IPSET << 8 | cmd, little-endian
    v.extend_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]); // pid
    v.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, NFNETLINK_V0, res_id 0
    v
}

const PROTO6: [u8; 8] = [5, 0, 1, 0, 6, 0, 0, 0]; // IPSET_ATTR_PROTOCOL = 6

fn check(got: Vec<u8>, want: Vec<u8>) {
    assert_eq!(got.len(), want.len(), "length\n got {got:?}\nwant {want:?}");
    assert_eq!(got, want);
}

#[cfg(target_endian = "little")]
#[test]
fn create_hash_ip_port() {
    let spec = SetSpec {
        name: "KUBE-CLUSTER-IP".into(),
        set_type: SetType::HashIpPort,
        family: IpFamily::V4,
    };
    let mut want = hdr(104, CMD_CREATE, 0x0005, 1, 2); // REQUEST|ACK, no EXCL (-exist)
    want.extend_from_slice(&PROTO6);
    want.extend_from_slice(&[20, 0, 2, 0]); // SETNAME
    want.extend_from_slice(b"KUBE-CLUSTER-IP\0");
    want.extend_from_slice(&[17, 0, 3, 0]); // TYPENAME
    want.extend_from_slice(b"hash:ip,port\0\0\0\0");
    want.extend_from_slice(&[5, 0, 4, 0, 6, 0, 0, 0]); // REVISION 6
    want.extend_from_slice(&[5, 0, 5, 0, 2, 0, 0, 0]); // FAMILY NFPROTO_IPV4
    want.extend_from_slice(&[20, 0, 7, 0x80]); // DATA | NLA_F_NESTED
    want.extend_from_slice(&[8, 0, 18, 0x40, 0, 0, 4, 0]); // HASHSIZE 1024, NET_BYTEORDER
    want.extend_from_slice(&[8, 0, 19, 0x40, 0, 1, 0, 0]); // MAXELEM 65536
    check(create(1, &spec, 6), want);
}

#[cfg(target_endian = "little")]
#[test]
fn create_bitmap_port() {
    let spec = SetSpec {
        name: "P".into(),
        set_type: SetType::BitmapPort,
        family: IpFamily::V6,
    };
    let mut want = hdr(88, CMD_CREATE, 0x0005, 2, 0); // no family for bitmap:port
    want.extend_from_slice(&PROTO6);
    want.extend_from_slice(&[6, 0, 2, 0, b'P', 0, 0, 0]);
    want.extend_from_slice(&[16, 0, 3, 0]);
    want.extend_from_slice(b"bitmap:port\0");
    want.extend_from_slice(&[5, 0, 4, 0, 3, 0, 0, 0]);
    want.extend_from_slice(&[5, 0, 5, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[20, 0, 7, 0x80]);
    want.extend_from_slice(&[6, 0, 4, 0x40, 0, 0, 0, 0]); // PORT (from) 0
    want.extend_from_slice(&[6, 0, 5, 0x40, 0xff, 0xff, 0, 0]); // PORT_TO 65535
    check(create(2, &spec, 3), want);
}

#[cfg(target_endian = "little")]
#[test]
fn add_hash_ip_port_net_element() {
    let m = Member::parse(SetType::HashIpPortNet, "10.96.0.201,tcp:80,10.1.2.3/8").unwrap();
    assert_eq!(m.to_string(), "10.96.0.201,tcp:80,10.0.0.0/8");
    let mut want = hdr(88, CMD_ADD, 0x0005, 3, 2);
    want.extend_from_slice(&PROTO6);
    want.extend_from_slice(&[6, 0, 2, 0, b'S', 0, 0, 0]);
    want.extend_from_slice(&[52, 0, 7, 0x80]); // DATA
    want.extend_from_slice(&[12, 0, 1, 0x80, 8, 0, 1, 0x40, 10, 96, 0, 201]); // IP { IPADDR_IPV4 }
    want.extend_from_slice(&[6, 0, 4, 0x40, 0, 80, 0, 0]); // PORT 80
    want.extend_from_slice(&[5, 0, 7, 0, 6, 0, 0, 0]); // PROTO tcp
    want.extend_from_slice(&[12, 0, 20, 0x80, 8, 0, 1, 0x40, 10, 0, 0, 0]); // IP2 (masked)
    want.extend_from_slice(&[5, 0, 21, 0, 8, 0, 0, 0]); // CIDR2 8
    check(add_del(3, true, "S", NFPROTO_IPV4, &m), want);
}

#[cfg(target_endian = "little")]
#[test]
fn del_hash_ip_v6_element() {
    let m = Member::parse(SetType::HashIp, "fd00::1").unwrap();
    let mut want = hdr(64, CMD_DEL, 0x0005, 4, 10);
    want.extend_from_slice(&PROTO6);
    want.extend_from_slice(&[6, 0, 2, 0, b'S', 0, 0, 0]);
    want.extend_from_slice(&[28, 0, 7, 0x80]);
    want.extend_from_slice(&[24, 0, 1, 0x80, 20, 0, 2, 0x40]); // IP { IPADDR_IPV6 }
    want.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    check(add_del(4, false, "S", NFPROTO_IPV6, &m), want);
}

#[cfg(target_endian = "little")]
#[test]
fn add_bitmap_port_and_hash_ip_port_ip_elements() {
    let mut want = hdr(48, CMD_ADD, 0x0005, 5, 2);
    want.extend_from_slice(&PROTO6);
    want.extend_from_slice(&[6, 0, 2, 0, b'S', 0, 0, 0]);
    want.extend_from_slice(&[12, 0, 7, 0x80, 6, 0, 4, 0x40, 0x75, 0x80, 0, 0]); // PORT 30080
    check(
        add_del(5, true, "S", NFPROTO_IPV4, &Member::Port(30080)),
        want,
    );

    let m = Member::parse(SetType::HashIpPortIp, "10.244.1.5,udp:53,10.244.1.5").unwrap();
    let mut want = hdr(80, CMD_ADD, 0x0005, 6, 2);
    want.extend_from_slice(&PROTO6);
    want.extend_from_slice(&[6, 0, 2, 0, b'S', 0, 0, 0]);
    want.extend_from_slice(&[44, 0, 7, 0x80]);
    want.extend_from_slice(&[12, 0, 1, 0x80, 8, 0, 1, 0x40, 10, 244, 1, 5]);
    want.extend_from_slice(&[6, 0, 4, 0x40, 0, 53, 0, 0]);
    want.extend_from_slice(&[5, 0, 7, 0, 17, 0, 0, 0]); // udp
    want.extend_from_slice(&[12, 0, 20, 0x80, 8, 0, 1, 0x40, 10, 244, 1, 5]);
    check(add_del(6, true, "S", NFPROTO_IPV4, &m), want);
}

#[cfg(target_endian = "little")]
#[test]
fn destroy_flush_swap_list_type_protocol() {
    let named = |cmd: u8, flags: u16, seq: u32| {
        let mut v = hdr(40, cmd, flags, seq, 2);
        v.extend_from_slice(&PROTO6);
        v.extend_from_slice(&[11, 0, 2, 0]);
        v.extend_from_slice(b"KUBE-X\0\0");
        v
    };
    check(destroy(7, "KUBE-X"), named(CMD_DESTROY, 0x0005, 7));
    check(flush(8, "KUBE-X"), named(CMD_FLUSH, 0x0005, 8));
    check(list(9, Some("KUBE-X")), named(CMD_LIST, 0x0301, 9)); // REQUEST|DUMP

    let mut want = hdr(28, CMD_LIST, 0x0301, 10, 2);
    want.extend_from_slice(&PROTO6);
    check(list(10, None), want);

    let mut want = hdr(44, CMD_SWAP, 0x0005, 11, 2);
    want.extend_from_slice(&PROTO6);
    want.extend_from_slice(&[6, 0, 2, 0, b'A', 0, 0, 0]); // SETNAME
    want.extend_from_slice(&[6, 0, 3, 0, b'B', 0, 0, 0]); // SETNAME2
    check(swap(11, "A", "B"), want);

    let mut want = hdr(48, CMD_TYPE, 0x0005, 12, 10);
    want.extend_from_slice(&PROTO6);
    want.extend_from_slice(&[12, 0, 3, 0]);
    want.extend_from_slice(b"hash:ip\0");
    want.extend_from_slice(&[5, 0, 5, 0, 10, 0, 0, 0]);
    check(type_query(12, SetType::HashIp, IpFamily::V6), want);

    let mut want = hdr(28, CMD_PROTOCOL, 0x0005, 13, 2);
    want.extend_from_slice(&PROTO6);
    check(protocol(13), want);
}

/// A LIST dump as the kernel sends it: a header message, then element messages (members in
/// `IPSET_ATTR_ADT`, one nested `IPSET_ATTR_DATA` each).
fn dump_header(set: &ListedSet) -> Vec<u8> {
    let mut b = MessageBuilder::nfnl(msg_type(CMD_LIST), nla::NLM_F_MULTI, 1, set.family);
    b.u8(ATTR_PROTOCOL, 7)
        .string(ATTR_SETNAME, &set.name)
        .string(ATTR_TYPENAME, &set.type_name)
        .u8(ATTR_FAMILY, set.family)
        .u8(ATTR_REVISION, set.revision)
        .begin_nested(ATTR_DATA)
        .be32(ATTR_HASHSIZE, 1024)
        .be32(ATTR_MAXELEM, 65536)
        .be32(ATTR_REFERENCES, set.references)
        .be32(ATTR_ELEMENTS, 0)
        .end_nested();
    payload(b.finish())
}

fn dump_elements(name: &str, members: &[(Member, bool)]) -> Vec<u8> {
    let mut b = MessageBuilder::nfnl(msg_type(CMD_LIST), nla::NLM_F_MULTI, 1, NFPROTO_IPV4);
    b.u8(ATTR_PROTOCOL, 7)
        .string(ATTR_SETNAME, name)
        .begin_nested(ATTR_ADT);
    for (m, nomatch) in members {
        b.begin_nested(ATTR_DATA);
        put_member(&mut b, m);
        if *nomatch {
            b.be32(ATTR_CADT_FLAGS, FLAG_NOMATCH);
        }
        b.end_nested();
    }
    b.end_nested();
    payload(b.finish())
}

fn payload(msg: Vec<u8>) -> Vec<u8> {
    let parsed = nla::messages(&msg).unwrap();
    parsed[0].payload.to_vec()
}

#[test]
fn list_dumps_round_trip() {
    let p = |t, s| Member::parse(t, s).unwrap();
    let lb = ListedSet {
        name: "KUBE-LOAD-BALANCER-SOURCE-CIDR".into(),
        type_name: "hash:ip,port,net".into(),
        family: NFPROTO_IPV4,
        revision: 7,
        references: 1,
        members: vec![
            p(SetType::HashIpPortNet, "10.96.0.201,tcp:80,10.0.0.0/8"),
            p(SetType::HashIpPortNet, "10.96.0.201,sctp:80,192.168.1.7"),
            p(SetType::HashIpPortNet, "10.96.0.202,udp:53,192.168.0.0/16"),
        ],
        nomatch: vec![p(SetType::HashIpPortNet, "10.96.0.201,tcp:80,10.9.0.0/16")],
    };
    let ports = ListedSet {
        name: "KUBE-NODE-PORT-TCP".into(),
        type_name: "bitmap:port".into(),
        family: NFPROTO_UNSPEC,
        revision: 3,
        references: 0,
        members: vec![Member::Port(30080), Member::Port(30443)],
        nomatch: vec![],
    };
    let v6 = ListedSet {
        name: "KUBE-6-LOOP-BACK".into(),
        type_name: "hash:ip,port,ip".into(),
        family: NFPROTO_IPV6,
        revision: 5,
        references: 2,
        members: vec![p(SetType::HashIpPortIp, "fd00:244::5,tcp:8080,fd00:244::5")],
        nomatch: vec![],
    };
    let foreign = ListedSet {
        name: "SOMEONE-ELSES".into(),
        type_name: "hash:mac".into(),
        family: NFPROTO_UNSPEC,
        revision: 0,
        ..ListedSet::default()
    };
    let with = |m: &[Member], nomatch: bool| -> Vec<(Member, bool)> {
        m.iter().map(|m| (*m, nomatch)).collect()
    };
    let dump = vec![
        dump_header(&lb),
        dump_elements(&lb.name, &with(&lb.members[..2], false)),
        // The kernel continues a large set in further messages (name only, no header).
        dump_elements(&lb.name, &[(lb.members[2], false), (lb.nomatch[0], true)]),
        dump_header(&ports),
        dump_elements(&ports.name, &with(&ports.members, false)),
        dump_header(&foreign),
        dump_header(&v6),
        dump_elements(&v6.name, &with(&v6.members, false)),
    ];
    let got = decode_list(&dump).unwrap();
    assert_eq!(got, vec![lb, ports, foreign, v6]);
    assert_eq!(
        got[0]
            .members
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>(),
        vec![
            "10.96.0.201,tcp:80,10.0.0.0/8",
            "10.96.0.201,sctp:80,192.168.1.7/32",
            "10.96.0.202,udp:53,192.168.0.0/16",
        ]
    );
}

#[test]
fn element_decoding_rejects_missing_parts() {
    let mut b = MessageBuilder::nfnl(msg_type(CMD_LIST), 0, 1, 2);
    b.begin_nested(ATTR_DATA).be16(ATTR_PORT, 80).end_nested();
    let msg = b.finish();
    let top = nla::attrs(&msg[nla::NLMSG_HDRLEN + nla::GENL_HDRLEN..]).unwrap();
    let err = decode_member(SetType::HashIpPort, top[0].1).unwrap_err();
    assert!(err
        .to_string()
        .contains("hash:ip,port element without address"));
    assert_eq!(
        decode_member(SetType::BitmapPort, top[0].1).unwrap(),
        (Member::Port(80), false)
    );
}

#[test]
fn type_and_protocol_replies() {
    let mut b = MessageBuilder::nfnl(msg_type(CMD_TYPE), 0, 1, 2);
    b.u8(ATTR_PROTOCOL, 7)
        .string(ATTR_TYPENAME, "hash:ip,port")
        .u8(ATTR_FAMILY, 2)
        .u8(ATTR_REVISION, 7)
        .u8(ATTR_REVISION_MIN, 0);
    assert_eq!(decode_type_reply(&payload(b.finish())).unwrap(), (0, 7));
    let mut b = MessageBuilder::nfnl(msg_type(CMD_PROTOCOL), 0, 1, 2);
    b.u8(ATTR_PROTOCOL, 7).u8(ATTR_PROTOCOL_MIN, 6);
    assert_eq!(decode_protocol_reply(&payload(b.finish())).unwrap(), (6, 7));
}

#[test]
fn entries_parse_in_ipset_syntax() {
    let ok = [
        (SetType::BitmapPort, "30080", "30080"),
        (SetType::HashIp, "10.96.0.10", "10.96.0.10"),
        (SetType::HashNet, "10.0.0.0/8", "10.0.0.0/8"),
        (SetType::HashNet, "10.0.0.1", "10.0.0.1/32"),
        (
            SetType::HashIpPort,
            "fd00::a,sctp:9000",
            "fd00::a,sctp:9000",
        ),
        (
            SetType::HashIpPort,
            "10.0.0.1,132:9000",
            "10.0.0.1,sctp:9000",
        ),
        (
            SetType::HashIpPortIp,
            "10.244.1.5,tcp:8080,10.244.1.5",
            "10.244.1.5,tcp:8080,10.244.1.5",
        ),
        (
            SetType::HashIpPortNet,
            "fd00::1,udp:53,fd00:1::7/64",
            "fd00::1,udp:53,fd00:1::/64",
        ),
    ];
    for (t, s, shown) in ok {
        assert_eq!(Member::parse(t, s).unwrap().to_string(), shown, "{s}");
    }
    let bad = [
        (SetType::BitmapPort, "70000"),
        (SetType::HashIp, "10.96.0.10,tcp:80"),
        (SetType::HashIpPort, "10.96.0.10"),
        (SetType::HashIpPort, "10.96.0.10,bogus:80"),
        (SetType::HashIpPort, "10.96.0.10,tcp:x"),
        (SetType::HashIpPortIp, "10.96.0.10,tcp:80,net"),
    ];
    for (t, s) in bad {
        let e = Member::parse(t, s).unwrap_err().to_string();
        assert!(e.contains(t.name()), "{e}");
    }
}
