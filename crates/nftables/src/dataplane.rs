//! The applier: keeps the last applied state, decides between full and incremental syncs, detects tampering
//! cheaply (table handle and use count, one small netlink query), and sends one batch per sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_proxy_model::{IpFamily, ProxyState};

use crate::config::RenderConfig;
use crate::error::NftError;
use crate::netlink::{encode, encode_full, NetlinkTransport, NfTransport, SendFailure, TableInfo};
use crate::plan::{Family, Op, OpCounts, Transaction};
use crate::render::{no_local_endpoints, render_full_with, render_incremental_with};
use crate::slots::Slots;
use crate::text::op_line;

/// Full or incremental.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Partial,
}

/// Why a sync was full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullReason {
    /// Nothing applied yet (start-up) or the last sync failed.
    NoPreviousState,
    /// The caller asked for it.
    Forced,
    /// The table's handle or use count differs from what we left.
    Tampered,
    /// The full-sync period (default one hour, as upstream) has passed since the last full sync.
    Periodic,
}

/// Upstream's period between unconditional full syncs.
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// What one sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    pub kind: SyncKind,
    pub full_reason: Option<FullReason>,
    /// Plan operations and their counts.
    pub ops: usize,
    pub counts: OpCounts,
    /// nf_tables messages in the batch and its size in bytes (0 when nothing changed and nothing was sent).
    pub messages: usize,
    pub bytes: usize,
    /// Service ports with a Local policy and no local endpoint: (internal, external).
    pub no_local_endpoints: (usize, usize),
    /// From the batch's first send to its last ACK (`None` when nothing was sent).
    pub kernel_time: Option<Duration>,
}

/// The nftables dataplane of one family.
pub struct NftablesDataplane<T: NfTransport = NetlinkTransport> {
    family: Family,
    cfg: RenderConfig,
    transport: T,
    applied: Option<Arc<ProxyState>>,
    /// The `backends-K` maps slot ranges `applied` was programmed with.
    slots: Slots,
    expected: Option<TableInfo>,
    seq: u32,
    last_full: Option<Instant>,
    full_sync_period: Duration,
}

impl<T: NfTransport> std::fmt::Debug for NftablesDataplane<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftablesDataplane")
            .field("family", &self.family)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl NftablesDataplane<NetlinkTransport> {
    /// The production constructor: a netlink socket in the current network namespace.
    pub fn new(family: IpFamily, cfg: RenderConfig) -> Result<Self, NftError> {
        Ok(Self::with_transport(family, cfg, NetlinkTransport::open()?))
    }
}

fn use_delta(tx: &Transaction) -> i64 {
    tx.ops
        .iter()
        .map(|op| match op {
            Op::AddChain(_) | Op::AddSet(_) => 1,
            Op::DeleteChain(_) | Op::DeleteSet { .. } => -1,
            _ => 0,
        })
        .sum()
}

impl<T: NfTransport> NftablesDataplane<T> {
    /// A dataplane on any transport (tests use [`crate::netlink::FakeTransport`]).
    pub fn with_transport(family: IpFamily, cfg: RenderConfig, transport: T) -> Self {
        NftablesDataplane {
            family: Family::of(family),
            cfg,
            transport,
            applied: None,
            slots: Slots::default(),
            expected: None,
            seq: 1,
            last_full: None,
            full_sync_period: FULL_SYNC_PERIOD,
        }
    }

    /// Replaces the mode configuration; the next sync is full when it changed.
    pub fn set_config(&mut self, cfg: RenderConfig) {
        if cfg != self.cfg {
            self.cfg = cfg;
            self.applied = None;
        }
    }

    /// Changes the period between unconditional full syncs.
    pub fn set_full_sync_period(&mut self, period: Duration) {
        self.full_sync_period = period;
    }

    /// The transport (tests inspect fakes through it).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Programs `state`: incrementally from the last applied state when possible, else in full. Any error
    /// makes the next sync full.
    pub fn sync(
        &mut self,
        state: &Arc<ProxyState>,
        force_full: bool,
    ) -> Result<SyncReport, NftError> {
        let result = self.sync_inner(state, force_full);
        if result.is_err() {
            self.applied = None;
            self.expected = None;
        }
        result
    }

    fn sync_inner(
        &mut self,
        state: &Arc<ProxyState>,
        force_full: bool,
    ) -> Result<SyncReport, NftError> {
        let full_reason = if force_full {
            Some(FullReason::Forced)
        } else if self.applied.is_none() {
            Some(FullReason::NoPreviousState)
        } else if self
            .last_full
            .is_none_or(|t| t.elapsed() >= self.full_sync_period)
        {
            Some(FullReason::Periodic)
        } else if self.transport.table_info(self.family)? != self.expected {
            tracing::warn!(family = ?self.family, "nftables table kube-proxy changed behind our back; full resync");
            Some(FullReason::Tampered)
        } else {
            None
        };
        // The slot ranges are updated in place: if this sync fails, the next one is full and starts afresh.
        // A full sync streams its operations into the batch (`encode_full`, byte for byte the encoding of
        // `render_full_with`) so that the typed transaction of every object never exists; it is rendered
        // only for a transport that wants it and to name the operation the kernel rejected.
        let incremental = match (&full_reason, &self.applied) {
            (None, Some(prev)) => Some(render_incremental_with(
                prev,
                state,
                &self.cfg,
                &mut self.slots,
            )),
            _ => {
                self.slots = Slots::fresh(state);
                None
            }
        };
        let kind = if full_reason.is_some() {
            SyncKind::Full
        } else {
            SyncKind::Partial
        };
        let mut report = SyncReport {
            kind,
            full_reason,
            ops: 0,
            counts: OpCounts::default(),
            messages: 0,
            bytes: 0,
            no_local_endpoints: no_local_endpoints(state),
            kernel_time: None,
        };
        let (batch, sent) = match &incremental {
            Some(tx) => {
                (report.ops, report.counts) = (tx.len(), tx.counts());
                if tx.is_empty() {
                    // Only an incremental transaction can be empty (a full one always recreates the table).
                    self.applied = Some(Arc::clone(state));
                    return Ok(report);
                }
                let batch = encode(tx, self.seq);
                let started = Instant::now();
                let sent = self.transport.send_batch(tx, &batch);
                report.kernel_time = Some(started.elapsed());
                (batch, sent)
            }
            None => {
                let full = encode_full(state, &self.cfg, &self.slots, self.seq);
                (report.ops, report.counts) = (full.ops, full.counts);
                let (cfg, slots) = (&self.cfg, &self.slots);
                let started = Instant::now();
                let sent = self
                    .transport
                    .send_full_batch(&full.batch, &mut || render_full_with(state, cfg, slots));
                report.kernel_time = Some(started.elapsed());
                (full.batch, sent)
            }
        };
        self.seq = batch.last_seq.wrapping_add(2);
        report.messages = batch.messages();
        report.bytes = batch.bytes.len();
        match sent {
            Ok(()) => {}
            Err(SendFailure::Transport(e)) => return Err(e),
            Err(SendFailure::Kernel { seq, errno }) => {
                let index = batch.op_for_seq(seq);
                drop(batch);
                let full_tx;
                let tx = match &incremental {
                    Some(tx) => tx,
                    None => {
                        full_tx = render_full_with(state, &self.cfg, &self.slots);
                        &full_tx
                    }
                };
                let op = index
                    .and_then(|i| tx.ops.get(i))
                    .map(|op| op_line(tx.family, op))
                    .unwrap_or_else(|| format!("message seq {seq}"));
                return Err(NftError::Rejected { op, errno });
            }
        }
        drop(batch);
        self.expected = match kind {
            SyncKind::Full => {
                self.last_full = Some(Instant::now());
                self.transport.table_info(self.family)?
            }
            SyncKind::Partial => self.expected.map(|t| TableInfo {
                handle: t.handle,
                use_count: u32::try_from(
                    i64::from(t.use_count) + incremental.as_ref().map_or(0, use_delta),
                )
                .unwrap_or(0),
            }),
        };
        self.applied = Some(Arc::clone(state));
        Ok(report)
    }

    /// Deletes this family's table (for `--cleanup` and when switching modes). Missing tables are fine.
    pub fn cleanup(&mut self) -> Result<(), NftError> {
        self.applied = None;
        self.expected = None;
        cleanup_family(&mut self.transport, self.family, &mut self.seq)
    }
}

fn cleanup_family<T: NfTransport>(
    t: &mut T,
    family: Family,
    seq: &mut u32,
) -> Result<(), NftError> {
    if t.table_info(family)?.is_none() {
        return Ok(());
    }
    let tx = Transaction {
        family,
        ops: vec![Op::DeleteTable],
    };
    let batch = encode(&tx, *seq);
    *seq = batch.last_seq.wrapping_add(2);
    match t.send_batch(&tx, &batch) {
        Ok(()) => Ok(()),
        Err(SendFailure::Kernel { errno, .. }) if errno == libc::ENOENT => Ok(()),
        Err(SendFailure::Kernel { errno, .. }) => Err(NftError::Rejected {
            op: op_line(family, &Op::DeleteTable),
            errno,
        }),
        Err(SendFailure::Transport(e)) => Err(e),
    }
}

/// `--cleanup`: deletes table `kube-proxy` in families `ip` and `ip6` of the current network namespace.
pub fn cleanup() -> Result<(), NftError> {
    let mut t = NetlinkTransport::open()?;
    let mut seq = 1;
    cleanup_family(&mut t, Family::Ip, &mut seq)?;
    cleanup_family(&mut t, Family::Ip6, &mut seq)
}
