//! The real [`Ipvs`] implementation: IPVS' generic netlink family ("IPVS", version 1) on a netlink-sys socket.
//!
//! Message layout follows the kernel's `include/uapi/linux/ip_vs.h`: a command, then a nested
//! `IPVS_CMD_ATTR_SERVICE` (and `IPVS_CMD_ATTR_DEST` for real servers). Requests are synchronous: each waits
//! for its acknowledgement (or the end of its dump) before returning.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use crate::handle::Ipvs;
use crate::nla::{self, MessageBuilder};
use crate::types::{RealServer, ServiceKey, Timeouts, VirtualServer};

mod msg;
use crate::IpvsError;
use msg::*;

/// A generic netlink socket bound to the IPVS family.
pub struct GenlIpvs {
    socket: Mutex<Socket>,
    family: u16,
    seq: AtomicU32,
}

impl GenlIpvs {
    /// Opens a socket and resolves the "IPVS" family. Fails with [`IpvsError::ResolveFamily`] when the kernel
    /// has no IPVS (module absent or not loadable).
    pub fn new() -> Result<GenlIpvs, IpvsError> {
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(IpvsError::OpenSocket)?;
        socket.bind_auto().map_err(IpvsError::OpenSocket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(IpvsError::OpenSocket)?;
        let mut this = GenlIpvs {
            socket: Mutex::new(socket),
            family: GENL_ID_CTRL,
            seq: AtomicU32::new(1),
        };
        this.family = this.resolve_family("IPVS")?;
        Ok(this)
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn resolve_family(&self, name: &str) -> Result<u16, IpvsError> {
        let seq = self.next_seq();
        let mut b = MessageBuilder::new(
            GENL_ID_CTRL,
            nla::NLM_F_REQUEST | nla::NLM_F_ACK,
            seq,
            CTRL_CMD_GETFAMILY,
            1,
        );
        b.string(CTRL_ATTR_FAMILY_NAME, name);
        let replies = self
            .transact(b.finish(), seq, "resolve family")
            .map_err(|e| IpvsError::ResolveFamily(e.to_string()))?;
        for payload in replies {
            for (kind, v) in nla::attrs(payload.get(nla::GENL_HDRLEN..).unwrap_or(&[]))? {
                if kind == CTRL_ATTR_FAMILY_ID {
                    return nla::get_u16(v);
                }
            }
        }
        Err(IpvsError::ResolveFamily(format!("no family id for {name}")))
    }

    /// Sends one request and collects the payloads of the replies until the ack (or the end of the dump).
    fn transact(
        &self,
        msg: Vec<u8>,
        seq: u32,
        op: &'static str,
    ) -> Result<Vec<Vec<u8>>, IpvsError> {
        let socket = self.socket.lock().unwrap();
        socket.send(&msg, 0).map_err(IpvsError::Send)?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = socket.recv_from_full().map_err(IpvsError::Receive)?;
            for m in nla::messages(&buf)? {
                if m.seq != seq {
                    continue;
                }
                match m.msg_type {
                    nla::NLMSG_ERROR => {
                        let errno = nla::error_code(m.payload)?;
                        if errno != 0 {
                            return Err(IpvsError::Kernel { op, errno });
                        }
                        return Ok(out);
                    }
                    nla::NLMSG_DONE => {
                        let errno = nla::error_code(m.payload)?;
                        if errno != 0 {
                            return Err(IpvsError::Kernel { op, errno });
                        }
                        return Ok(out);
                    }
                    // Dump parts and single replies alike; the ack or NLMSG_DONE ends the exchange.
                    _ => out.push(m.payload.to_vec()),
                }
            }
        }
    }

    fn request(
        &self,
        cmd: u8,
        fill: impl FnOnce(&mut MessageBuilder),
        op: &'static str,
    ) -> Result<(), IpvsError> {
        let seq = self.next_seq();
        let mut b = MessageBuilder::new(
            self.family,
            nla::NLM_F_REQUEST | nla::NLM_F_ACK,
            seq,
            cmd,
            IPVS_GENL_VERSION,
        );
        fill(&mut b);
        self.transact(b.finish(), seq, op).map(|_| ())
    }

    fn dump(
        &self,
        cmd: u8,
        fill: impl FnOnce(&mut MessageBuilder),
        op: &'static str,
    ) -> Result<Vec<Vec<u8>>, IpvsError> {
        let seq = self.next_seq();
        let mut b = MessageBuilder::new(
            self.family,
            nla::NLM_F_REQUEST | nla::NLM_F_DUMP,
            seq,
            cmd,
            IPVS_GENL_VERSION,
        );
        fill(&mut b);
        self.transact(b.finish(), seq, op)
    }
}

impl Ipvs for GenlIpvs {
    fn services(&self) -> Result<Vec<VirtualServer>, IpvsError> {
        let mut out = Vec::new();
        for payload in self.dump(CMD_GET_SERVICE, |_| {}, "list services")? {
            for (kind, v) in nla::attrs(payload.get(nla::GENL_HDRLEN..).unwrap_or(&[]))? {
                if kind == CMD_ATTR_SERVICE {
                    if let Some(vs) = decode_service(v)? {
                        out.push(vs);
                    }
                }
            }
        }
        Ok(out)
    }

    fn add_service(&self, vs: &VirtualServer) -> Result<(), IpvsError> {
        self.request(CMD_NEW_SERVICE, |b| put_service(b, vs), "add service")
    }

    fn update_service(&self, vs: &VirtualServer) -> Result<(), IpvsError> {
        self.request(CMD_SET_SERVICE, |b| put_service(b, vs), "update service")
    }

    fn delete_service(&self, key: &ServiceKey) -> Result<(), IpvsError> {
        self.request(CMD_DEL_SERVICE, |b| put_key_only(b, key), "delete service")
    }

    fn real_servers(&self, key: &ServiceKey) -> Result<Vec<RealServer>, IpvsError> {
        let af = af_of(&key.addr);
        let mut out = Vec::new();
        for payload in self.dump(CMD_GET_DEST, |b| put_key_only(b, key), "list real servers")? {
            for (kind, v) in nla::attrs(payload.get(nla::GENL_HDRLEN..).unwrap_or(&[]))? {
                if kind == CMD_ATTR_DEST {
                    out.push(decode_dest(v, af)?);
                }
            }
        }
        Ok(out)
    }

    fn add_real_server(&self, key: &ServiceKey, rs: &RealServer) -> Result<(), IpvsError> {
        self.request(
            CMD_NEW_DEST,
            |b| {
                put_key_only(b, key);
                put_dest(b, rs, true);
            },
            "add real server",
        )
    }

    fn update_real_server(&self, key: &ServiceKey, rs: &RealServer) -> Result<(), IpvsError> {
        self.request(
            CMD_SET_DEST,
            |b| {
                put_key_only(b, key);
                put_dest(b, rs, true);
            },
            "update real server",
        )
    }

    fn delete_real_server(
        &self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), IpvsError> {
        let rs = RealServer::masq(addr, port, 0);
        self.request(
            CMD_DEL_DEST,
            |b| {
                put_key_only(b, key);
                put_dest(b, &rs, false);
            },
            "delete real server",
        )
    }

    fn flush(&self) -> Result<(), IpvsError> {
        self.request(CMD_FLUSH, |_| {}, "flush")
    }

    fn set_timeouts(&self, t: &Timeouts) -> Result<(), IpvsError> {
        self.request(
            CMD_SET_CONFIG,
            |b| {
                b.u32(CMD_ATTR_TIMEOUT_TCP, t.tcp)
                    .u32(CMD_ATTR_TIMEOUT_TCP_FIN, t.tcp_fin)
                    .u32(CMD_ATTR_TIMEOUT_UDP, t.udp);
            },
            "set timeouts",
        )
    }
}
