//! ipset's netlink protocol: the nfnetlink subsystem `NFNL_SUBSYS_IPSET` (6), as described by the kernel's
//! `include/uapi/linux/netfilter/ipset/ip_set.h`. Pure encoding and decoding, no sockets (see
//! [`crate::ipset_kernel`] for those).
//!
//! Every request is an nfnetlink message (`type = 6 << 8 | command`, a 4-byte `nfgenmsg` header) carrying
//! `IPSET_ATTR_PROTOCOL` and the set name. Set options and elements sit in a nested `IPSET_ATTR_DATA`; an
//! address is a nested `IPSET_ATTR_IP` holding `IPSET_ATTR_IPADDR_IPV4`/`_IPV6`. Ports and the hash options
//! travel in network byte order with `NLA_F_NET_BYTEORDER` set (the kernel refuses them otherwise). A LIST
//! dump answers with one message holding the set's header (type, family, revision, options) and then
//! messages whose nested `IPSET_ATTR_ADT` holds one `IPSET_ATTR_DATA` per element.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kube_proxy_model::IpFamily;

use crate::nla::{self, MessageBuilder, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::IpvsError;

pub const NFNL_SUBSYS_IPSET: u16 = 6;
/// The protocol version we speak: `IPSET_PROTOCOL_MIN`, accepted by every kernel with netlink ipset.
pub const PROTOCOL_VERSION: u8 = 6;

pub const CMD_PROTOCOL: u8 = 1;
pub const CMD_CREATE: u8 = 2;
pub const CMD_DESTROY: u8 = 3;
pub const CMD_FLUSH: u8 = 4;
pub const CMD_SWAP: u8 = 6;
pub const CMD_LIST: u8 = 7;
pub const CMD_ADD: u8 = 9;
pub const CMD_DEL: u8 = 10;
pub const CMD_TYPE: u8 = 13;

// Command-level attributes.
pub const ATTR_PROTOCOL: u16 = 1;
pub const ATTR_SETNAME: u16 = 2;
pub const ATTR_TYPENAME: u16 = 3;
pub const ATTR_SETNAME2: u16 = 3;
pub const ATTR_REVISION: u16 = 4;
pub const ATTR_FAMILY: u16 = 5;
pub const ATTR_DATA: u16 = 7;
pub const ATTR_ADT: u16 = 8;
pub const ATTR_PROTOCOL_MIN: u16 = 10;
pub const ATTR_REVISION_MIN: u16 = 10;

// Attributes inside IPSET_ATTR_DATA.
pub const ATTR_IP: u16 = 1;
pub const ATTR_CIDR: u16 = 3;
pub const ATTR_PORT: u16 = 4;
pub const ATTR_PORT_TO: u16 = 5;
pub const ATTR_PROTO: u16 = 7;
pub const ATTR_CADT_FLAGS: u16 = 8;
pub const ATTR_HASHSIZE: u16 = 18;
pub const ATTR_MAXELEM: u16 = 19;
pub const ATTR_ELEMENTS: u16 = 24;
pub const ATTR_REFERENCES: u16 = 25;
pub const ATTR_IP2: u16 = 20;
pub const ATTR_CIDR2: u16 = 21;

// Inside IPSET_ATTR_IP / IPSET_ATTR_IP2.
pub const ATTR_IPADDR_IPV4: u16 = 1;
pub const ATTR_IPADDR_IPV6: u16 = 2;

/// `IPSET_FLAG_NOMATCH` in `IPSET_ATTR_CADT_FLAGS`.
pub const FLAG_NOMATCH: u32 = 1 << 2;

pub const NFPROTO_UNSPEC: u8 = 0;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;

/// `hashsize 1024 maxelem 65536`, the options upstream creates its hash sets with.
pub const HASHSIZE: u32 = 1024;
pub const MAXELEM: u32 = 65536;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;

pub fn msg_type(cmd: u8) -> u16 {
    (NFNL_SUBSYS_IPSET << 8) | cmd as u16
}

pub fn nfproto(family: IpFamily) -> u8 {
    match family {
        IpFamily::V4 => NFPROTO_IPV4,
        IpFamily::V6 => NFPROTO_IPV6,
    }
}

/// The set types IPVS mode uses (and `hash:net`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetType {
    HashIp,
    HashNet,
    HashIpPort,
    HashIpPortIp,
    HashIpPortNet,
    BitmapPort,
}

impl SetType {
    pub const ALL: [SetType; 6] = [
        SetType::HashIp,
        SetType::HashNet,
        SetType::HashIpPort,
        SetType::HashIpPortIp,
        SetType::HashIpPortNet,
        SetType::BitmapPort,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            SetType::HashIp => "hash:ip",
            SetType::HashNet => "hash:net",
            SetType::HashIpPort => "hash:ip,port",
            SetType::HashIpPortIp => "hash:ip,port,ip",
            SetType::HashIpPortNet => "hash:ip,port,net",
            SetType::BitmapPort => "bitmap:port",
        }
    }

    pub fn from_name(name: &str) -> Option<SetType> {
        SetType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The family sent for this type: bitmap:port has none (`NFPROTO_UNSPEC`, as `ipset` sends it).
    pub fn nfproto(&self, family: IpFamily) -> u8 {
        match self {
            SetType::BitmapPort => NFPROTO_UNSPEC,
            _ => nfproto(family),
        }
    }
}

/// A set to create: name, type and family (options are upstream's: `hashsize 1024 maxelem 65536`, or
/// `range 0-65535` for bitmap:port).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetSpec {
    pub name: String,
    pub set_type: SetType,
    pub family: IpFamily,
}

/// One element of a set, typed by the set's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member {
    /// bitmap:port
    Port(u16),
    /// hash:ip
    Ip(IpAddr),
    /// hash:net (address already masked to the prefix)
    Net(IpAddr, u8),
    /// hash:ip,port: address, IP protocol number, port
    IpPort(IpAddr, u8, u16),
    /// hash:ip,port,ip
    IpPortIp(IpAddr, u8, u16, IpAddr),
    /// hash:ip,port,net (network masked to the prefix)
    IpPortNet(IpAddr, u8, u16, IpAddr, u8),
}

fn bad(set_type: SetType, s: &str) -> IpvsError {
    IpvsError::BadIpsetEntry(format!("{s:?} is not a {} entry", set_type.name()))
}

fn parse_proto(s: &str) -> Option<u8> {
    match s {
        "tcp" => Some(IPPROTO_TCP),
        "udp" => Some(IPPROTO_UDP),
        "sctp" => Some(IPPROTO_SCTP),
        n => n.parse().ok().filter(|p| *p != 0),
    }
}

fn proto_name(p: u8) -> String {
    match p {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_SCTP => "sctp".into(),
        n => n.to_string(),
    }
}

fn host_len(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// `a.b.c.d/len` (or a bare address: a host), masked as the kernel stores it.
fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let net: ipnet::IpNet = match s.parse() {
        Ok(n) => n,
        Err(_) => {
            let ip: IpAddr = s.parse().ok()?;
            ipnet::IpNet::new(ip, host_len(&ip)).ok()?
        }
    };
    Some((net.trunc().addr(), net.prefix_len()))
}

impl Member {
    /// Parses an entry in `ipset` syntax as the renderer writes it (`10.96.0.10,tcp:80`,
    /// `10.96.0.10,tcp:80,10.0.0.0/8`, `30080`, ...).
    pub fn parse(set_type: SetType, s: &str) -> Result<Member, IpvsError> {
        let err = || bad(set_type, s);
        let ip_proto_port = |a: &str, pp: &str| -> Result<(IpAddr, u8, u16), IpvsError> {
            let ip: IpAddr = a.parse().map_err(|_| err())?;
            let (proto, port) = pp.split_once(':').ok_or_else(err)?;
            Ok((
                ip,
                parse_proto(proto).ok_or_else(err)?,
                port.parse().map_err(|_| err())?,
            ))
        };
        let parts: Vec<&str> = s.split(',').collect();
        Ok(match (set_type, parts.as_slice()) {
            (SetType::BitmapPort, [p]) => Member::Port(p.parse().map_err(|_| err())?),
            (SetType::HashIp, [ip]) => Member::Ip(ip.parse().map_err(|_| err())?),
            (SetType::HashNet, [net]) => {
                let (ip, len) = parse_net(net).ok_or_else(err)?;
                Member::Net(ip, len)
            }
            (SetType::HashIpPort, [a, pp]) => {
                let (ip, proto, port) = ip_proto_port(a, pp)?;
                Member::IpPort(ip, proto, port)
            }
            (SetType::HashIpPortIp, [a, pp, b]) => {
                let (ip, proto, port) = ip_proto_port(a, pp)?;
                Member::IpPortIp(ip, proto, port, b.parse().map_err(|_| err())?)
            }
            (SetType::HashIpPortNet, [a, pp, net]) => {
                let (ip, proto, port) = ip_proto_port(a, pp)?;
                let (n, len) = parse_net(net).ok_or_else(err)?;
                Member::IpPortNet(ip, proto, port, n, len)
            }
            _ => return Err(err()),
        })
    }

    /// The address family of the element (None for a port).
    pub fn family(&self) -> Option<IpFamily> {
        match self {
            Member::Port(_) => None,
            Member::Ip(ip)
            | Member::Net(ip, _)
            | Member::IpPort(ip, _, _)
            | Member::IpPortIp(ip, _, _, _)
            | Member::IpPortNet(ip, _, _, _, _) => Some(if ip.is_ipv4() {
                IpFamily::V4
            } else {
                IpFamily::V6
            }),
        }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::Port(p) => write!(f, "{p}"),
            Member::Ip(ip) => write!(f, "{ip}"),
            Member::Net(ip, len) => write!(f, "{ip}/{len}"),
            Member::IpPort(ip, proto, port) => write!(f, "{ip},{}:{port}", proto_name(*proto)),
            Member::IpPortIp(ip, proto, port, ip2) => {
                write!(f, "{ip},{}:{port},{ip2}", proto_name(*proto))
            }
            Member::IpPortNet(ip, proto, port, net, len) => {
                write!(f, "{ip},{}:{port},{net}/{len}", proto_name(*proto))
            }
        }
    }
}

fn start(cmd: u8, flags: u16, seq: u32, family: u8) -> MessageBuilder {
    let mut b = MessageBuilder::nfnl(msg_type(cmd), flags, seq, family);
    b.u8(ATTR_PROTOCOL, PROTOCOL_VERSION);
    b
}

fn put_ip(b: &mut MessageBuilder, kind: u16, ip: &IpAddr) {
    b.begin_nested(kind);
    match ip {
        IpAddr::V4(v4) => b.attr(ATTR_IPADDR_IPV4 | nla::NLA_F_NET_BYTEORDER, &v4.octets()),
        IpAddr::V6(v6) => b.attr(ATTR_IPADDR_IPV6 | nla::NLA_F_NET_BYTEORDER, &v6.octets()),
    };
    b.end_nested();
}

/// The element's attributes (inside an open `IPSET_ATTR_DATA`).
fn put_member(b: &mut MessageBuilder, m: &Member) {
    let ip_proto_port = |b: &mut MessageBuilder, ip: &IpAddr, proto: u8, port: u16| {
        put_ip(b, ATTR_IP, ip);
        b.be16(ATTR_PORT, port).u8(ATTR_PROTO, proto);
    };
    match m {
        Member::Port(p) => {
            b.be16(ATTR_PORT, *p);
        }
        Member::Ip(ip) => put_ip(b, ATTR_IP, ip),
        Member::Net(ip, len) => {
            put_ip(b, ATTR_IP, ip);
            b.u8(ATTR_CIDR, *len);
        }
        Member::IpPort(ip, proto, port) => ip_proto_port(b, ip, *proto, *port),
        Member::IpPortIp(ip, proto, port, ip2) => {
            ip_proto_port(b, ip, *proto, *port);
            put_ip(b, ATTR_IP2, ip2);
        }
        Member::IpPortNet(ip, proto, port, net, len) => {
            ip_proto_port(b, ip, *proto, *port);
            put_ip(b, ATTR_IP2, net);
            b.u8(ATTR_CIDR2, *len);
        }
    }
}

/// `IPSET_CMD_PROTOCOL`: asks for the kernel's protocol range.
pub fn protocol(seq: u32) -> Vec<u8> {
    start(CMD_PROTOCOL, NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_IPV4).finish()
}

/// `IPSET_CMD_TYPE`: asks for the revision range of `set_type` in `family`.
pub fn type_query(seq: u32, set_type: SetType, family: IpFamily) -> Vec<u8> {
    let fam = set_type.nfproto(family);
    let mut b = start(CMD_TYPE, NLM_F_REQUEST | NLM_F_ACK, seq, fam);
    b.string(ATTR_TYPENAME, set_type.name())
        .u8(ATTR_FAMILY, fam);
    b.finish()
}

/// `IPSET_CMD_CREATE` without `NLM_F_EXCL`: an existing set of the same type and options is accepted
/// (`ipset create -exist`).
pub fn create(seq: u32, spec: &SetSpec, revision: u8) -> Vec<u8> {
    let fam = spec.set_type.nfproto(spec.family);
    let mut b = start(CMD_CREATE, NLM_F_REQUEST | NLM_F_ACK, seq, fam);
    b.string(ATTR_SETNAME, &spec.name)
        .string(ATTR_TYPENAME, spec.set_type.name())
        .u8(ATTR_REVISION, revision)
        .u8(ATTR_FAMILY, fam)
        .begin_nested(ATTR_DATA);
    match spec.set_type {
        SetType::BitmapPort => b.be16(ATTR_PORT, 0).be16(ATTR_PORT_TO, 65535),
        _ => b.be32(ATTR_HASHSIZE, HASHSIZE).be32(ATTR_MAXELEM, MAXELEM),
    };
    b.end_nested();
    b.finish()
}

fn by_name(cmd: u8, seq: u32, name: &str) -> Vec<u8> {
    let mut b = start(cmd, NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_IPV4);
    b.string(ATTR_SETNAME, name);
    b.finish()
}

/// `IPSET_CMD_DESTROY` of one set.
pub fn destroy(seq: u32, name: &str) -> Vec<u8> {
    by_name(CMD_DESTROY, seq, name)
}

/// `IPSET_CMD_FLUSH` of one set.
pub fn flush(seq: u32, name: &str) -> Vec<u8> {
    by_name(CMD_FLUSH, seq, name)
}

/// `IPSET_CMD_SWAP`: exchanges the contents (and types) of two compatible sets.
pub fn swap(seq: u32, from: &str, to: &str) -> Vec<u8> {
    let mut b = start(CMD_SWAP, NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_IPV4);
    b.string(ATTR_SETNAME, from).string(ATTR_SETNAME2, to);
    b.finish()
}

/// `IPSET_CMD_LIST` as a dump: one set, or all sets when `name` is None.
pub fn list(seq: u32, name: Option<&str>) -> Vec<u8> {
    let mut b = start(CMD_LIST, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_IPV4);
    if let Some(n) = name {
        b.string(ATTR_SETNAME, n);
    }
    b.finish()
}

/// `IPSET_CMD_ADD` (`add` true) or `IPSET_CMD_DEL` of one element, without `NLM_F_EXCL`: adding an element
/// that is there or deleting one that is not is no error (`-exist`).
pub fn add_del(seq: u32, add: bool, set: &str, family: u8, m: &Member) -> Vec<u8> {
    let cmd = if add { CMD_ADD } else { CMD_DEL };
    let mut b = start(cmd, NLM_F_REQUEST | NLM_F_ACK, seq, family);
    b.string(ATTR_SETNAME, set).begin_nested(ATTR_DATA);
    put_member(&mut b, m);
    b.end_nested();
    b.finish()
}

/// One set as a LIST dump describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedSet {
    pub name: String,
    pub type_name: String,
    pub family: u8,
    pub revision: u8,
    pub references: u32,
    /// Elements, in dump order.
    pub members: Vec<Member>,
    /// Elements carrying the `nomatch` flag.
    pub nomatch: Vec<Member>,
}

impl ListedSet {
    pub fn set_type(&self) -> Option<SetType> {
        SetType::from_name(&self.type_name)
    }
}

fn get_ip(p: &[u8]) -> Result<IpAddr, IpvsError> {
    for (kind, v) in nla::attrs(p)? {
        match (kind, v.len()) {
            (ATTR_IPADDR_IPV4, 4) => {
                return Ok(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).unwrap())))
            }
            (ATTR_IPADDR_IPV6, 16) => {
                return Ok(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).unwrap())))
            }
            _ => {}
        }
    }
    Err(IpvsError::Decode(
        "ipset address without IPv4/IPv6 payload".into(),
    ))
}

/// Decodes one element (`IPSET_ATTR_DATA` payload) of a set of `set_type`; the bool is `nomatch`.
pub fn decode_member(set_type: SetType, data: &[u8]) -> Result<(Member, bool), IpvsError> {
    let (mut ip, mut ip2, mut port, mut proto, mut cidr, mut cidr2, mut flags) =
        (None, None, None, None, None, None, 0);
    for (kind, v) in nla::attrs(data)? {
        match kind {
            ATTR_IP => ip = Some(get_ip(v)?),
            ATTR_IP2 => ip2 = Some(get_ip(v)?),
            ATTR_PORT => port = Some(nla::get_be16(v)?),
            ATTR_PROTO => proto = Some(nla::get_u8(v)?),
            ATTR_CIDR => cidr = Some(nla::get_u8(v)?),
            ATTR_CIDR2 => cidr2 = Some(nla::get_u8(v)?),
            ATTR_CADT_FLAGS => flags = nla::get_be32(v)?,
            _ => {}
        }
    }
    let missing =
        |what: &str| IpvsError::Decode(format!("{} element without {what}", set_type.name()));
    let ip_ = || ip.ok_or_else(|| missing("address"));
    let port_ = || port.ok_or_else(|| missing("port"));
    let proto_ = || proto.ok_or_else(|| missing("protocol"));
    let ip2_ = || ip2.ok_or_else(|| missing("second address"));
    let m = match set_type {
        SetType::BitmapPort => Member::Port(port_()?),
        SetType::HashIp => Member::Ip(ip_()?),
        SetType::HashNet => {
            let ip = ip_()?;
            Member::Net(ip, cidr.unwrap_or(host_len(&ip)))
        }
        SetType::HashIpPort => Member::IpPort(ip_()?, proto_()?, port_()?),
        SetType::HashIpPortIp => Member::IpPortIp(ip_()?, proto_()?, port_()?, ip2_()?),
        SetType::HashIpPortNet => {
            let net = ip2_()?;
            Member::IpPortNet(
                ip_()?,
                proto_()?,
                port_()?,
                net,
                cidr2.unwrap_or(host_len(&net)),
            )
        }
    };
    Ok((m, flags & FLAG_NOMATCH != 0))
}

/// Decodes the messages of a LIST dump (each payload starting with the `nfgenmsg` header) into sets, in
/// the order the kernel listed them. Elements of types outside [`SetType`] are skipped.
pub fn decode_list(payloads: &[Vec<u8>]) -> Result<Vec<ListedSet>, IpvsError> {
    let mut order: Vec<String> = Vec::new();
    let mut sets: BTreeMap<String, ListedSet> = BTreeMap::new();
    for payload in payloads {
        let attrs = nla::attrs(payload.get(nla::GENL_HDRLEN..).unwrap_or(&[]))?;
        let Some(name) = attrs
            .iter()
            .find(|(k, _)| *k == ATTR_SETNAME)
            .map(|(_, v)| nla::get_string(v))
        else {
            continue;
        };
        let set = sets.entry(name.clone()).or_insert_with(|| {
            order.push(name.clone());
            ListedSet {
                name: name.clone(),
                ..ListedSet::default()
            }
        });
        for (kind, v) in &attrs {
            match *kind {
                ATTR_TYPENAME => set.type_name = nla::get_string(v),
                ATTR_FAMILY => set.family = nla::get_u8(v)?,
                ATTR_REVISION => set.revision = nla::get_u8(v)?,
                ATTR_DATA => {
                    for (k, hv) in nla::attrs(v)? {
                        if k == ATTR_REFERENCES {
                            set.references = nla::get_be32(hv)?;
                        }
                    }
                }
                ATTR_ADT => {
                    let Some(t) = set.set_type() else { continue };
                    for (k, data) in nla::attrs(v)? {
                        if k != ATTR_DATA {
                            continue;
                        }
                        let (m, nomatch) = decode_member(t, data)?;
                        if nomatch {
                            set.nomatch.push(m);
                        } else {
                            set.members.push(m);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(order.into_iter().filter_map(|n| sets.remove(&n)).collect())
}

/// The revision range (min, max) of an `IPSET_CMD_TYPE` reply.
pub fn decode_type_reply(payload: &[u8]) -> Result<(u8, u8), IpvsError> {
    let (mut min, mut max) = (None, None);
    for (kind, v) in nla::attrs(payload.get(nla::GENL_HDRLEN..).unwrap_or(&[]))? {
        match kind {
            ATTR_REVISION => max = Some(nla::get_u8(v)?),
            ATTR_REVISION_MIN => min = Some(nla::get_u8(v)?),
            _ => {}
        }
    }
    match (min, max) {
        (Some(min), Some(max)) => Ok((min, max)),
        (None, Some(max)) => Ok((max, max)),
        _ => Err(IpvsError::Decode(
            "ipset type reply without revision".into(),
        )),
    }
}

/// The protocol range (min, max) of an `IPSET_CMD_PROTOCOL` reply.
pub fn decode_protocol_reply(payload: &[u8]) -> Result<(u8, u8), IpvsError> {
    let (mut min, mut max) = (None, None);
    for (kind, v) in nla::attrs(payload.get(nla::GENL_HDRLEN..).unwrap_or(&[]))? {
        match kind {
            ATTR_PROTOCOL => max = Some(nla::get_u8(v)?),
            ATTR_PROTOCOL_MIN => min = Some(nla::get_u8(v)?),
            _ => {}
        }
    }
    let max =
        max.ok_or_else(|| IpvsError::Decode("ipset protocol reply without version".into()))?;
    Ok((min.unwrap_or(max), max))
}

/// What an ipset error number means (the kernel's `IPSET_ERR_*` codes above 4096, else the OS's text).
pub fn describe_errno(errno: i32) -> String {
    let s = match errno {
        4097 => "kernel and userspace protocol versions differ",
        4098 => "set type not supported by the kernel (module missing?)",
        4099 => "maximal number of sets reached",
        4100 => "set busy",
        4101 => "second set does not exist",
        4102 => "the sets' types are not compatible",
        4103 => "a set with this name already exists with another type or options",
        4104 => "invalid CIDR",
        4105 => "invalid netmask",
        4106 => "invalid family",
        4107 => "timeout not supported by the set",
        4108 => "set is in use (referenced, e.g. by an iptables rule)",
        4109 => "invalid IPv4 address",
        4110 => "invalid IPv6 address",
        4352 => "hash is full, or element out of the bitmap's range",
        4353 => "null-valued element, or range too large for the bitmap",
        4354 => "invalid protocol",
        4355 => "missing protocol",
        e if e > 4352 => "set type specific error",
        e => return std::io::Error::from_raw_os_error(e).to_string(),
    };
    s.to_string()
}

#[cfg(test)]
mod tests;
