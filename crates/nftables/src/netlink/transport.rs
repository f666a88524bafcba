//! The kernel seam: [`NfTransport`] sends an encoded batch and answers the cheap table query used for tamper
//! detection. [`NetlinkTransport`] talks to the kernel over a `NETLINK_NETFILTER` socket (netlink-sys);
//! [`FakeTransport`] records batches for unit tests.

use std::sync::{Arc, Mutex};

use netlink_packet_core::{ErrorBuffer, NetlinkBuffer, NlasIterator, NLMSG_ERROR};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::attr::consts::*;
use super::attr::AttrWriter;
use super::batch::Batch;
use crate::error::NftError;
use crate::plan::{Family, Op, Transaction, TABLE};

/// What the kernel says about our table: its handle (changes when the table is recreated) and its use
/// count (number of chains and sets in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableInfo {
    pub handle: u64,
    pub use_count: u32,
}

/// Why a batch failed.
#[derive(Debug)]
pub enum SendFailure {
    /// The transport failed (socket, parse, no ACK).
    Transport(NftError),
    /// The kernel rejected message `seq` with `errno`; nothing was committed.
    Kernel { seq: u32, errno: i32 },
}

/// The kernel seam of the applier.
pub trait NfTransport: Send {
    /// Sends `batch` (the encoding of `tx`); `Ok` once the kernel committed it.
    fn send_batch(&mut self, tx: &Transaction, batch: &Batch) -> Result<(), SendFailure>;
    /// Sends a full sync's `batch`, encoded without a typed transaction (see
    /// [`super::encode_full`]); `plan` builds that transaction for transports that need it. The default
    /// builds it and calls [`NfTransport::send_batch`]; the real transport sends the bytes alone.
    fn send_full_batch(
        &mut self,
        batch: &Batch,
        plan: &mut dyn FnMut() -> Transaction,
    ) -> Result<(), SendFailure> {
        let tx = plan();
        self.send_batch(&tx, batch)
    }
    /// Handle and use count of table `kube-proxy` in `family`, `None` when it does not exist.
    fn table_info(&mut self, family: Family) -> Result<Option<TableInfo>, NftError>;
}

/// The real transport: one `NETLINK_NETFILTER` socket.
pub struct NetlinkTransport {
    sock: Socket,
    sndbuf: usize,
    seq: u32,
}

impl std::fmt::Debug for NetlinkTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkTransport").finish_non_exhaustive()
    }
}

fn family_num(f: Family) -> u8 {
    match f {
        Family::Ip => NFPROTO_IPV4,
        Family::Ip6 => NFPROTO_IPV6,
    }
}

impl NetlinkTransport {
    /// Opens and connects the socket in the caller's network namespace.
    pub fn open() -> Result<NetlinkTransport, NftError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(NftError::OpenSocket)?;
        sock.bind_auto().map_err(NftError::OpenSocket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(NftError::OpenSocket)?;
        // Error answers need not repeat the (possibly large) failing message.
        sock.set_cap_ack(true).map_err(NftError::OpenSocket)?;
        sock.set_rx_buf_sz(4 << 20).map_err(NftError::OpenSocket)?;
        Ok(NetlinkTransport {
            sock,
            sndbuf: 0,
            seq: 0x4b50_0000,
        })
    }

    fn ensure_sndbuf(&mut self, len: usize) -> Result<(), NftError> {
        if len + 4096 > self.sndbuf {
            let want = (len + 65536).next_power_of_two();
            nix::sys::socket::setsockopt(&self.sock, nix::sys::socket::sockopt::SndBufForce, &want)
                .map_err(|e| NftError::OpenSocket(e.into()))?;
            self.sndbuf = want;
        }
        Ok(())
    }

    /// Reads every answer already queued (the kernel answers while processing `send`).
    fn drain(&self) -> Result<Vec<Vec<u8>>, NftError> {
        let mut msgs = Vec::new();
        loop {
            let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
            match self.sock.recv(&mut buf, libc::MSG_DONTWAIT) {
                Ok(_) => {
                    let mut off = 0;
                    while off + 16 <= buf.len() {
                        let nl = NetlinkBuffer::new_checked(&buf[off..])
                            .map_err(|e| NftError::Malformed(e.to_string()))?;
                        let len = nl.length() as usize;
                        if len < 16 {
                            break;
                        }
                        msgs.push(buf[off..off + len.min(buf.len() - off)].to_vec());
                        off += len.div_ceil(4) * 4;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(msgs),
                Err(e) => return Err(NftError::Receive(e)),
            }
        }
    }
}

/// (seq, errno) of an NLMSG_ERROR message, errno 0 for an ACK.
fn error_of(msg: &[u8]) -> Option<(u32, i32)> {
    let nl = NetlinkBuffer::new_checked(msg).ok()?;
    if nl.message_type() != NLMSG_ERROR {
        return None;
    }
    let seq = nl.sequence_number();
    let err = ErrorBuffer::new_checked(nl.payload()).ok()?;
    Some((seq, err.code().map(|c| -c.get()).unwrap_or(0)))
}

impl NetlinkTransport {
    fn send(&mut self, batch: &Batch) -> Result<(), SendFailure> {
        self.ensure_sndbuf(batch.bytes.len())
            .map_err(SendFailure::Transport)?;
        self.drain().map_err(SendFailure::Transport)?;
        self.sock.send(&batch.bytes, 0).map_err(|e| {
            SendFailure::Transport(NftError::SendBatch {
                bytes: batch.bytes.len(),
                source: e,
            })
        })?;
        let mut acked = false;
        for m in self.drain().map_err(SendFailure::Transport)? {
            if let Some((seq, errno)) = error_of(&m) {
                if errno != 0 {
                    return Err(SendFailure::Kernel { seq, errno });
                }
                if seq == batch.last_seq {
                    acked = true;
                }
            }
        }
        if acked {
            Ok(())
        } else {
            Err(SendFailure::Transport(NftError::NoAck))
        }
    }
}

impl NfTransport for NetlinkTransport {
    fn send_batch(&mut self, _tx: &Transaction, batch: &Batch) -> Result<(), SendFailure> {
        self.send(batch)
    }

    fn send_full_batch(
        &mut self,
        batch: &Batch,
        _plan: &mut dyn FnMut() -> Transaction,
    ) -> Result<(), SendFailure> {
        self.send(batch)
    }

    fn table_info(&mut self, family: Family) -> Result<Option<TableInfo>, NftError> {
        self.seq = self.seq.wrapping_add(1);
        let mut w = AttrWriter::new();
        w.str(NFTA_TABLE_NAME, TABLE);
        let mut h = netlink_packet_core::NetlinkHeader::default();
        h.length = u32::try_from(20 + w.buf.len()).unwrap_or(u32::MAX);
        h.message_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
        h.flags = NLM_F_REQUEST | NLM_F_ACK;
        h.sequence_number = self.seq;
        let mut out = vec![0u8; 16];
        netlink_packet_core::Emitable::emit(&h, &mut out[..]);
        out.extend_from_slice(&[family_num(family), 0, 0, 0]);
        out.extend_from_slice(&w.buf);
        self.drain()?;
        self.sock.send(&out, 0).map_err(|e| NftError::SendBatch {
            bytes: out.len(),
            source: e,
        })?;
        let mut info = None;
        for m in self.drain()? {
            if let Some((_, errno)) = error_of(&m) {
                if errno == libc::ENOENT {
                    return Ok(None);
                }
                if errno != 0 {
                    return Err(NftError::QueryTable {
                        table: TABLE.into(),
                        errno,
                    });
                }
                continue;
            }
            let nl = NetlinkBuffer::new_checked(&m[..])
                .map_err(|e| NftError::Malformed(e.to_string()))?;
            let payload = nl.payload();
            if payload.len() < 4 {
                return Err(NftError::Malformed("short table reply".into()));
            }
            let mut t = TableInfo {
                handle: 0,
                use_count: 0,
            };
            for nla in NlasIterator::new(&payload[4..]) {
                let nla = nla.map_err(|e| NftError::Malformed(e.to_string()))?;
                let v = nla.value();
                match nla.kind() {
                    NFTA_TABLE_HANDLE if v.len() == 8 => {
                        t.handle = u64::from_be_bytes(v.try_into().unwrap_or([0; 8]));
                    }
                    NFTA_TABLE_USE if v.len() == 4 => {
                        t.use_count = u32::from_be_bytes(v.try_into().unwrap_or([0; 4]));
                    }
                    _ => {}
                }
            }
            info = Some(t);
        }
        Ok(info)
    }
}

/// What a [`FakeTransport`] holds; shared so tests can look inside and tamper with it.
#[derive(Debug, Default)]
pub struct FakeKernel {
    /// Every committed transaction with its encoded size in bytes.
    pub committed: Vec<(Transaction, usize)>,
    /// The simulated table per family.
    pub tables: Vec<(Family, TableInfo)>,
    /// Fail the next batch with this errno.
    pub fail_next: Option<i32>,
    next_handle: u64,
}

impl FakeKernel {
    /// Simulated table of `family`.
    pub fn table(&self, family: Family) -> Option<TableInfo> {
        self.tables
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, t)| *t)
    }

    fn set_table(&mut self, family: Family, t: Option<TableInfo>) {
        self.tables.retain(|(f, _)| *f != family);
        if let Some(t) = t {
            self.tables.push((family, t));
        }
    }

    /// Deletes the simulated table (as another program might).
    pub fn delete_table(&mut self, family: Family) {
        self.set_table(family, None);
    }
}

/// A transport that applies batches to a [`FakeKernel`] (use counts and handles only).
#[derive(Clone, Debug, Default)]
pub struct FakeTransport {
    pub kernel: Arc<Mutex<FakeKernel>>,
}

impl NfTransport for FakeTransport {
    fn send_batch(&mut self, tx: &Transaction, batch: &Batch) -> Result<(), SendFailure> {
        let mut k = self.kernel.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(errno) = k.fail_next.take() {
            return Err(SendFailure::Kernel {
                seq: batch.last_seq,
                errno,
            });
        }
        let mut table = k.table(tx.family);
        for op in &tx.ops {
            match op {
                Op::AddTable { .. } if table.is_none() => {
                    k.next_handle += 1;
                    table = Some(TableInfo {
                        handle: k.next_handle,
                        use_count: 0,
                    });
                }
                Op::DeleteTable => table = None,
                Op::AddChain(_) | Op::AddSet(_) => {
                    if let Some(t) = table.as_mut() {
                        t.use_count += 1;
                    }
                }
                Op::DeleteChain(_) | Op::DeleteSet { .. } => {
                    if let Some(t) = table.as_mut() {
                        t.use_count = t.use_count.saturating_sub(1);
                    }
                }
                _ => {}
            }
        }
        k.set_table(tx.family, table);
        k.committed.push((tx.clone(), batch.bytes.len()));
        Ok(())
    }

    fn table_info(&mut self, family: Family) -> Result<Option<TableInfo>, NftError> {
        Ok(self
            .kernel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .table(family))
    }
}
