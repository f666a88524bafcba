//! [`ConntrackOps`] over ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK), using netlink-packet-netfilter's
//! conntrack messages on a blocking netlink-sys socket.
//!
//! A fresh socket is opened for every call, so the calls act in the network namespace of the calling thread at
//! the time of the call. Listing is a per-family table dump filtered to UDP here; deletion sends one
//! `IPCTNL_MSG_CT_DELETE` per flow keyed on its original tuple and zone (batched, several per datagram) and
//! matches the acknowledgements by sequence number.
//! Blocking: call from a blocking context (e.g. `tokio::task::spawn_blocking`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use kube_proxy_model::IpFamily;
use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol as NfProtocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::ConntrackError;
use crate::flow::{Flow, FlowTuple, IPPROTO_UDP};
use crate::ops::ConntrackOps;
use crate::Result;

/// `CTA_ZONE` attribute (u16, network byte order).
const CTA_ZONE: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const ENOENT: i32 = 2;
/// Deletions sent per datagram.
const DELETE_BATCH: usize = 128;

/// The kernel's conntrack table, reached over netlink.
#[derive(Debug, Default)]
pub struct NetlinkConntrack {
    seq: AtomicU32,
}

impl NetlinkConntrack {
    /// A handle; sockets are opened per call.
    pub fn new() -> NetlinkConntrack {
        NetlinkConntrack {
            seq: AtomicU32::new(1),
        }
    }

    fn open() -> Result<Socket> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(ConntrackError::OpenSocket)?;
        sock.bind_auto().map_err(ConntrackError::OpenSocket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(ConntrackError::OpenSocket)?;
        Ok(sock)
    }

    /// Appends one request to `buf` and returns its sequence number.
    fn encode(
        &self,
        buf: &mut Vec<u8>,
        family: IpFamily,
        flags: u16,
        msg: ConntrackMessage,
    ) -> u32 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(
            header,
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(nfproto(family), 0, 0),
                msg,
            )),
        );
        packet.finalize();
        let start = buf.len();
        buf.resize(start + packet.buffer_len(), 0);
        packet.serialize(&mut buf[start..]);
        seq
    }
}

fn nfproto(family: IpFamily) -> NetfilterProtoFamily {
    match family {
        IpFamily::V4 => NetfilterProtoFamily::IPv4,
        IpFamily::V6 => NetfilterProtoFamily::IPv6,
    }
}

/// One message received from the kernel, reduced to what the callers need.
enum Reply {
    Entry(Option<Flow>),
    /// Acknowledgement of the request with this sequence number.
    Ack(u32),
    /// Error answer (positive errno) to the request with this sequence number.
    Error(u32, i32),
    Done,
}

/// Receives one datagram and decodes every netlink message in it.
fn recv_batch(sock: &Socket) -> Result<Vec<Reply>> {
    let (buf, _) = sock
        .recv_from_full()
        .map_err(ConntrackError::ReceiveReply)?;
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
        if len < 16 || off + len > buf.len() {
            return Err(ConntrackError::DecodeReply(format!(
                "bad netlink message length {len}"
            )));
        }
        let bytes = &buf[off..off + len];
        off += (len + 3) & !3;
        match NetlinkMessage::<NetfilterMessage>::deserialize(bytes) {
            Ok(msg) => out.push(match msg.payload {
                NetlinkPayload::Done(_) => Reply::Done,
                NetlinkPayload::Error(e) => match e.code {
                    None => Reply::Ack(msg.header.sequence_number),
                    Some(code) => Reply::Error(msg.header.sequence_number, -code.get()),
                },
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                    ..
                }) => Reply::Entry(flow_of(&attrs)),
                _ => Reply::Entry(None),
            }),
            // Entries we cannot decode are skipped; control messages must decode.
            Err(e) if kind != NLMSG_ERROR && kind != NLMSG_DONE => {
                tracing::warn!(error = %e, "skipping undecodable conntrack entry");
                out.push(Reply::Entry(None));
            }
            Err(e) => return Err(ConntrackError::DecodeReply(e.to_string())),
        }
    }
    Ok(out)
}

fn tuple_of(tuples: &[Tuple]) -> Option<(u8, FlowTuple)> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, 0, 0);
    for t in tuples {
        match t {
            Tuple::Ip(ips) => {
                for i in ips {
                    match i {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(ps) => {
                for p in ps {
                    match p {
                        ProtoTuple::Protocol(n) => proto = Some(u8::from(*n)),
                        ProtoTuple::SourcePort(n) => sport = *n,
                        ProtoTuple::DestinationPort(n) => dport = *n,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some((proto?, FlowTuple::new(src?, sport, dst?, dport)))
}

fn flow_of(attrs: &[ConntrackAttribute]) -> Option<Flow> {
    let (mut original, mut reply, mut zone) = (None, None, 0);
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => original = tuple_of(t),
            ConntrackAttribute::CtaTupleReply(t) => reply = tuple_of(t),
            ConntrackAttribute::Other(nla) if nla.kind() == CTA_ZONE && nla.value_len() == 2 => {
                let mut v = [0u8; 2];
                nla.emit_value(&mut v);
                zone = u16::from_be_bytes(v);
            }
            _ => {}
        }
    }
    let (protocol, original) = original?;
    let (_, reply) = reply?;
    Some(Flow {
        protocol,
        original,
        reply,
        zone,
    })
}

/// The `IPCTNL_MSG_CT_DELETE` attributes selecting `flow` (original tuple and zone).
fn delete_attributes(flow: &Flow) -> Vec<ConntrackAttribute> {
    let o = &flow.original;
    let mut attrs = vec![ConntrackAttribute::CtaTupleOrig(vec![
        Tuple::Ip(vec![
            IPTuple::SourceAddress(o.src),
            IPTuple::DestinationAddress(o.dst),
        ]),
        Tuple::Proto(vec![
            ProtoTuple::Protocol(NfProtocol::from(flow.protocol)),
            ProtoTuple::SourcePort(o.src_port),
            ProtoTuple::DestinationPort(o.dst_port),
        ]),
    ])];
    if flow.zone != 0 {
        attrs.push(ConntrackAttribute::Other(DefaultNla::new(
            CTA_ZONE,
            flow.zone.to_be_bytes().to_vec(),
        )));
    }
    attrs
}

impl ConntrackOps for NetlinkConntrack {
    fn list_udp(&self, family: IpFamily) -> Result<Vec<Flow>> {
        let sock = Self::open()?;
        let mut buf = Vec::new();
        self.encode(
            &mut buf,
            family,
            NLM_F_REQUEST | NLM_F_DUMP,
            ConntrackMessage::Get(vec![]),
        );
        sock.send(&buf, 0).map_err(ConntrackError::SendRequest)?;
        let mut flows = Vec::new();
        loop {
            for reply in recv_batch(&sock)? {
                match reply {
                    Reply::Entry(Some(f))
                        if f.protocol == IPPROTO_UDP && family.contains(&f.original.src) =>
                    {
                        flows.push(f)
                    }
                    Reply::Entry(_) | Reply::Ack(_) => {}
                    Reply::Error(_, errno) => return Err(ConntrackError::DumpFlows { errno }),
                    Reply::Done => return Ok(flows),
                }
            }
        }
    }

    fn delete(&self, flows: &[Flow]) -> Result<usize> {
        if flows.is_empty() {
            return Ok(0);
        }
        let sock = Self::open()?;
        let (mut deleted, mut failed, mut first) = (0, 0, None);
        for chunk in flows.chunks(DELETE_BATCH) {
            // One datagram carries the whole chunk; the kernel acknowledges each request by sequence number.
            let mut buf = Vec::new();
            let mut pending = HashMap::new();
            for flow in chunk {
                let family = IpFamily::of(&flow.original.src);
                let msg = ConntrackMessage::Delete(delete_attributes(flow));
                pending.insert(
                    self.encode(&mut buf, family, NLM_F_REQUEST | NLM_F_ACK, msg),
                    flow,
                );
            }
            sock.send(&buf, 0).map_err(ConntrackError::SendRequest)?;
            while !pending.is_empty() {
                for reply in recv_batch(&sock)? {
                    let (seq, errno) = match reply {
                        Reply::Ack(seq) => (seq, 0),
                        Reply::Error(seq, errno) => (seq, errno),
                        Reply::Entry(_) | Reply::Done => continue,
                    };
                    let Some(flow) = pending.remove(&seq) else {
                        continue;
                    };
                    match errno {
                        0 => deleted += 1,
                        ENOENT => tracing::debug!(%flow, "conntrack entry already gone"),
                        errno => {
                            failed += 1;
                            first.get_or_insert((flow.to_string(), errno));
                        }
                    }
                }
            }
        }
        match first {
            None => Ok(deleted),
            Some((first_flow, first_errno)) => Err(ConntrackError::DeleteFlows {
                deleted,
                failed,
                first_flow,
                first_errno,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_entry_round_trips_through_delete_attributes() {
        let flow = Flow {
            protocol: IPPROTO_UDP,
            original: FlowTuple::new(
                "10.0.0.1".parse().unwrap(),
                1234,
                "10.96.0.10".parse().unwrap(),
                53,
            ),
            reply: FlowTuple::new(
                "10.244.1.5".parse().unwrap(),
                53,
                "10.0.0.1".parse().unwrap(),
                1234,
            ),
            zone: 7,
        };
        let mut attrs = delete_attributes(&flow);
        assert_eq!(attrs.len(), 2, "zone is sent when non-zero");
        attrs.push(ConntrackAttribute::CtaTupleReply(vec![
            Tuple::Ip(vec![
                IPTuple::SourceAddress(flow.reply.src),
                IPTuple::DestinationAddress(flow.reply.dst),
            ]),
            Tuple::Proto(vec![
                ProtoTuple::Protocol(NfProtocol::Udp),
                ProtoTuple::SourcePort(53),
                ProtoTuple::DestinationPort(1234),
            ]),
        ]));
        assert_eq!(flow_of(&attrs), Some(flow));
        assert_eq!(
            delete_attributes(&Flow { zone: 0, ..flow }).len(),
            1,
            "default zone is implicit"
        );
    }

    #[test]
    fn entry_without_reply_tuple_is_not_a_flow() {
        let flow = Flow::udp(
            FlowTuple::new("fd00::1".parse().unwrap(), 1, "fd00::2".parse().unwrap(), 2),
            FlowTuple::new("fd00::2".parse().unwrap(), 2, "fd00::1".parse().unwrap(), 1),
        );
        assert_eq!(flow_of(&delete_attributes(&flow)), None);
    }
}
