//! IPVS generic netlink message bodies: the kernel's command and attribute numbers (`uapi/linux/ip_vs.h`),
//! encoding of services and destinations, and decoding of dump replies. Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kube_proxy_model::Protocol;

use crate::nla::{self, MessageBuilder};
use crate::types::{ForwardMethod, RealServer, ServiceKey, VirtualServer};
use crate::IpvsError;

pub(super) const GENL_ID_CTRL: u16 = 0x10;
pub(super) const CTRL_CMD_GETFAMILY: u8 = 3;
pub(super) const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub(super) const CTRL_ATTR_FAMILY_NAME: u16 = 2;

pub(super) const IPVS_GENL_VERSION: u8 = 1;
pub(super) const CMD_NEW_SERVICE: u8 = 1;
pub(super) const CMD_SET_SERVICE: u8 = 2;
pub(super) const CMD_DEL_SERVICE: u8 = 3;
pub(super) const CMD_GET_SERVICE: u8 = 4;
pub(super) const CMD_NEW_DEST: u8 = 5;
pub(super) const CMD_SET_DEST: u8 = 6;
pub(super) const CMD_DEL_DEST: u8 = 7;
pub(super) const CMD_GET_DEST: u8 = 8;
pub(super) const CMD_SET_CONFIG: u8 = 12;
pub(super) const CMD_FLUSH: u8 = 17;

pub(super) const CMD_ATTR_SERVICE: u16 = 1;
pub(super) const CMD_ATTR_DEST: u16 = 2;
pub(super) const CMD_ATTR_TIMEOUT_TCP: u16 = 4;
pub(super) const CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
pub(super) const CMD_ATTR_TIMEOUT_UDP: u16 = 6;

pub(super) const SVC_ATTR_AF: u16 = 1;
pub(super) const SVC_ATTR_PROTOCOL: u16 = 2;
pub(super) const SVC_ATTR_ADDR: u16 = 3;
pub(super) const SVC_ATTR_PORT: u16 = 4;
pub(super) const SVC_ATTR_FWMARK: u16 = 5;
pub(super) const SVC_ATTR_SCHED_NAME: u16 = 6;
pub(super) const SVC_ATTR_FLAGS: u16 = 7;
pub(super) const SVC_ATTR_TIMEOUT: u16 = 8;
pub(super) const SVC_ATTR_NETMASK: u16 = 9;

pub(super) const DEST_ATTR_ADDR: u16 = 1;
pub(super) const DEST_ATTR_PORT: u16 = 2;
pub(super) const DEST_ATTR_FWD_METHOD: u16 = 3;
pub(super) const DEST_ATTR_WEIGHT: u16 = 4;
pub(super) const DEST_ATTR_U_THRESH: u16 = 5;
pub(super) const DEST_ATTR_L_THRESH: u16 = 6;
pub(super) const DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub(super) const DEST_ATTR_INACT_CONNS: u16 = 8;
pub(super) const DEST_ATTR_ADDR_FAMILY: u16 = 11;

pub(super) const AF_INET: u16 = 2;
pub(super) const AF_INET6: u16 = 10;

pub(super) fn af_of(ip: &IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

pub(super) fn proto_num(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

pub(super) fn proto_from_num(n: u16) -> Option<Protocol> {
    match n {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        132 => Some(Protocol::Sctp),
        _ => None,
    }
}

pub(super) fn addr_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(super) fn addr_from(af: u16, p: &[u8]) -> Result<IpAddr, IpvsError> {
    match af {
        AF_INET if p.len() >= 4 => Ok(IpAddr::V4(Ipv4Addr::new(p[0], p[1], p[2], p[3]))),
        AF_INET6 if p.len() >= 16 => {
            let b: [u8; 16] = p[0..16].try_into().unwrap();
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => Err(IpvsError::Decode(format!(
            "address of family {af} with {} bytes",
            p.len()
        ))),
    }
}

pub(super) fn port_from(p: &[u8]) -> Result<u16, IpvsError> {
    p.get(0..2)
        .map(|b| u16::from_be_bytes(b.try_into().unwrap()))
        .ok_or_else(|| IpvsError::Decode("short port".into()))
}

/// Writes the identifying part of a service (family, protocol, address, port).
pub(super) fn put_service_key(b: &mut MessageBuilder, key: &ServiceKey) {
    b.u16(SVC_ATTR_AF, af_of(&key.addr))
        .u16(SVC_ATTR_PROTOCOL, proto_num(key.protocol))
        .attr(SVC_ATTR_ADDR, &addr_bytes(&key.addr))
        .attr(SVC_ATTR_PORT, &key.port.to_be_bytes());
}

/// Writes a complete service (what NEW_SERVICE and SET_SERVICE require).
pub(super) fn put_service(b: &mut MessageBuilder, vs: &VirtualServer) {
    b.begin_nested(CMD_ATTR_SERVICE);
    put_service_key(b, &vs.key);
    let netmask = match vs.key.addr {
        IpAddr::V4(_) => u32::MAX,
        IpAddr::V6(_) => 128,
    };
    let mut flags = Vec::with_capacity(8);
    flags.extend_from_slice(&vs.flags.to_ne_bytes());
    flags.extend_from_slice(&u32::MAX.to_ne_bytes());
    b.string(SVC_ATTR_SCHED_NAME, &vs.scheduler)
        .attr(SVC_ATTR_FLAGS, &flags)
        .u32(SVC_ATTR_TIMEOUT, vs.timeout)
        .u32(SVC_ATTR_NETMASK, netmask);
    b.end_nested();
}

pub(super) fn put_key_only(b: &mut MessageBuilder, key: &ServiceKey) {
    b.begin_nested(CMD_ATTR_SERVICE);
    put_service_key(b, key);
    b.end_nested();
}

pub(super) fn put_dest(b: &mut MessageBuilder, rs: &RealServer, full: bool) {
    b.begin_nested(CMD_ATTR_DEST)
        .attr(DEST_ATTR_ADDR, &addr_bytes(&rs.addr))
        .attr(DEST_ATTR_PORT, &rs.port.to_be_bytes())
        .u16(DEST_ATTR_ADDR_FAMILY, af_of(&rs.addr));
    if full {
        b.u32(DEST_ATTR_FWD_METHOD, rs.forward.to_kernel())
            .u32(DEST_ATTR_WEIGHT, rs.weight)
            .u32(DEST_ATTR_U_THRESH, 0)
            .u32(DEST_ATTR_L_THRESH, 0);
    }
    b.end_nested();
}

/// Decodes a nested `IPVS_CMD_ATTR_SERVICE`; `None` for firewall-mark or unknown-protocol services.
pub(super) fn decode_service(p: &[u8]) -> Result<Option<VirtualServer>, IpvsError> {
    let (mut af, mut proto, mut addr, mut port) = (0u16, 0u16, None, 0u16);
    let (mut sched, mut flags, mut timeout, mut fwmark) = (String::new(), 0u32, 0u32, 0u32);
    for (kind, v) in nla::attrs(p)? {
        match kind {
            SVC_ATTR_AF => af = nla::get_u16(v)?,
            SVC_ATTR_PROTOCOL => proto = nla::get_u16(v)?,
            SVC_ATTR_ADDR => addr = Some(v),
            SVC_ATTR_PORT => port = port_from(v)?,
            SVC_ATTR_FWMARK => fwmark = nla::get_u32(v)?,
            SVC_ATTR_SCHED_NAME => sched = nla::get_string(v),
            SVC_ATTR_FLAGS => flags = nla::get_u32(v)?,
            SVC_ATTR_TIMEOUT => timeout = nla::get_u32(v)?,
            _ => {}
        }
    }
    let (Some(addr), Some(protocol)) = (addr, proto_from_num(proto)) else {
        return Ok(None);
    };
    if fwmark != 0 {
        return Ok(None);
    }
    Ok(Some(VirtualServer {
        key: ServiceKey {
            protocol,
            addr: addr_from(af, addr)?,
            port,
        },
        scheduler: sched,
        flags,
        timeout,
    }))
}

pub(super) fn decode_dest(p: &[u8], svc_af: u16) -> Result<RealServer, IpvsError> {
    let mut af = svc_af;
    let mut addr = None;
    let mut rs = RealServer::masq(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 0);
    for (kind, v) in nla::attrs(p)? {
        match kind {
            DEST_ATTR_ADDR => addr = Some(v),
            DEST_ATTR_PORT => rs.port = port_from(v)?,
            DEST_ATTR_FWD_METHOD => rs.forward = ForwardMethod::from_kernel(nla::get_u32(v)?),
            DEST_ATTR_WEIGHT => rs.weight = nla::get_u32(v)?,
            DEST_ATTR_ACTIVE_CONNS => rs.active_conns = nla::get_u32(v)?,
            DEST_ATTR_INACT_CONNS => rs.inactive_conns = nla::get_u32(v)?,
            DEST_ATTR_ADDR_FAMILY => af = nla::get_u16(v)?,
            _ => {}
        }
    }
    rs.addr = addr_from(
        af,
        addr.ok_or_else(|| IpvsError::Decode("destination without address".into()))?,
    )?;
    Ok(rs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_round_trips_through_attributes() {
        let vs = VirtualServer {
            key: ServiceKey {
                protocol: Protocol::Udp,
                addr: "fd00::10".parse().unwrap(),
                port: 53,
            },
            scheduler: "sh".into(),
            flags: crate::types::SVC_F_PERSISTENT,
            timeout: 10800,
        };
        let mut b = MessageBuilder::new(0x20, 0, 1, CMD_NEW_SERVICE, 1);
        put_service(&mut b, &vs);
        let msg = b.finish();
        let m = &nla::messages(&msg).unwrap()[0];
        let top = nla::attrs(&m.payload[nla::GENL_HDRLEN..]).unwrap();
        let decoded = decode_service(top[0].1).unwrap().unwrap();
        assert_eq!(decoded, vs);
    }

    #[test]
    fn port_is_network_order_and_dest_decodes() {
        let rs = RealServer::masq("10.1.2.3".parse().unwrap(), 0x1f90, 3);
        let mut b = MessageBuilder::new(0x20, 0, 1, CMD_NEW_DEST, 1);
        put_dest(&mut b, &rs, true);
        let msg = b.finish();
        let m = &nla::messages(&msg).unwrap()[0];
        let top = nla::attrs(&m.payload[nla::GENL_HDRLEN..]).unwrap();
        let inner = nla::attrs(top[0].1).unwrap();
        assert_eq!(inner[1], (DEST_ATTR_PORT, &[0x1f, 0x90][..]));
        assert_eq!(decode_dest(top[0].1, AF_INET).unwrap(), rs);
    }
}
