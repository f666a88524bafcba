//! One conntrack entry as plain data: protocol, original and reply tuples, zone.
//!
//! Holds no I/O. [`Flow`] is what the netlink layer decodes from a dump and what a deletion is keyed on (the
//! original-direction tuple plus the zone).

use std::fmt;
use std::net::IpAddr;

/// IANA protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// One direction of a connection: addresses and ports as the kernel saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

impl FlowTuple {
    /// A tuple from `src:src_port` to `dst:dst_port`.
    pub fn new(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> FlowTuple {
        FlowTuple {
            src,
            dst,
            src_port,
            dst_port,
        }
    }
}

/// A conntrack entry. For a DNATed service flow, `original.dst` is the service address and `reply.src` the
/// endpoint the kernel translated it to; without NAT, `reply.src == original.dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flow {
    /// IANA protocol number ([`IPPROTO_UDP`], ...).
    pub protocol: u8,
    pub original: FlowTuple,
    pub reply: FlowTuple,
    /// Conntrack zone (0 is the default zone).
    pub zone: u16,
}

impl Flow {
    /// A UDP flow in the default zone.
    pub fn udp(original: FlowTuple, reply: FlowTuple) -> Flow {
        Flow {
            protocol: IPPROTO_UDP,
            original,
            reply,
            zone: 0,
        }
    }
}

impl fmt::Display for Flow {
    /// Formats like one line of `conntrack -L`, without the state columns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            IPPROTO_UDP => "udp".to_string(),
            IPPROTO_TCP => "tcp".to_string(),
            p => p.to_string(),
        };
        write!(
            f,
            "{proto} src={} dst={} sport={} dport={} src={} dst={} sport={} dport={}",
            self.original.src,
            self.original.dst,
            self.original.src_port,
            self.original.dst_port,
            self.reply.src,
            self.reply.dst,
            self.reply.src_port,
            self.reply.dst_port
        )?;
        if self.zone != 0 {
            write!(f, " zone={}", self.zone)?;
        }
        Ok(())
    }
}
