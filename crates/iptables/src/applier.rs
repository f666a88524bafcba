//! The applier: decides full vs partial syncs, adds the canary chains and the jump rules from the built-in
//! chains that a full sync finds missing ([`crate::base`]), and applies rendered rules through [`IptablesExec`]
//! in one restore per sync.
//!
//! Holds no rendering logic of its own; all kernel access goes through the `IptablesExec` and `Sysctl` seams.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_proxy_model::{IpFamily, ProxyState};

use crate::base::{split_save, BaseAdditions};
use crate::chains::KUBE_PROXY_CANARY;
use crate::exec::{chains_in_save, choose_backend, Backend, IptablesExec, RealExec, Table};
use crate::sysctl::{self, ProcSysctl, Sysctl};
use crate::{render, IptablesError, RenderConfig, RenderScope};

/// Whether a sync rewrote everything or only changed services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Partial,
}

/// What one successful sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    pub kind: SyncKind,
    /// Rules written to filter / nat in this sync (`sync_proxy_rules_iptables_last`).
    pub filter_rules: usize,
    pub nat_rules: usize,
    /// Rules kube-proxy owns per table after this sync (`sync_proxy_rules_iptables_total`).
    pub filter_rules_total: usize,
    pub nat_rules_total: usize,
    /// Stale per-service chains deleted.
    pub deleted_chains: usize,
    /// `sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal"|"external"}`.
    pub no_local_endpoints_internal: usize,
    pub no_local_endpoints_external: usize,
    /// How long `iptables-restore` ran (spawn to exit): the bare cost of loading this sync's input.
    pub restore_time: Duration,
}

/// One family's iptables proxier.
pub struct IptablesDataplane {
    exec: Arc<dyn IptablesExec>,
    family: IpFamily,
    cfg: RenderConfig,
    last_applied: Option<Arc<ProxyState>>,
    need_full: bool,
    full_sync_period: Duration,
    last_full: Option<Instant>,
    canary_check_period: Duration,
    last_canary_check: Option<Instant>,
}

/// Upstream's `FullSyncPeriod`: a full resync at least this often even when nothing asks for one.
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// How often a partial sync first checks that the canary chain still exists: upstream watches it on a timer of
/// `syncPeriod` (default 30 s), so a flush is repaired within about one period rather than before every sync.
pub const CANARY_CHECK_PERIOD: Duration = Duration::from_secs(30);

impl IptablesDataplane {
    /// Prepares the host: sets `route_localnet=1` when IPv4 localhost NodePorts are in effect, and skips the
    /// INVALID DROP rule when `nf_conntrack_tcp_be_liberal` is set (both as upstream).
    pub fn new(
        exec: Arc<dyn IptablesExec>,
        sysctl: &dyn Sysctl,
        family: IpFamily,
        mut cfg: RenderConfig,
    ) -> Result<IptablesDataplane, IptablesError> {
        if cfg.localhost_nodeports_effective(family) {
            tracing::info!("setting route_localnet=1 to allow node-ports on localhost");
            sysctl::ensure(sysctl, sysctl::ROUTE_LOCALNET, 1)?;
        }
        if matches!(sysctl.get(sysctl::TCP_BE_LIBERAL), Ok(v) if v != 0) {
            tracing::info!(
                "nf_conntrack_tcp_be_liberal set, not installing DROP rules for INVALID packets"
            );
            cfg.conntrack_tcp_be_liberal = true;
        }
        Ok(IptablesDataplane {
            exec,
            family,
            cfg,
            last_applied: None,
            need_full: true,
            full_sync_period: FULL_SYNC_PERIOD,
            last_full: None,
            canary_check_period: CANARY_CHECK_PERIOD,
            last_canary_check: None,
        })
    }

    /// A dataplane on the real binaries of `backend` (detected like iptables-wrapper when `None`) and the real
    /// `/proc/sys`.
    pub fn with_real_exec(
        family: IpFamily,
        cfg: RenderConfig,
        backend: Option<Backend>,
    ) -> Result<IptablesDataplane, IptablesError> {
        let exec = Arc::new(RealExec::new(choose_backend(backend)));
        IptablesDataplane::new(exec, &ProcSysctl, family, cfg)
    }

    /// Changes how often a full sync happens regardless of changes (default [`FULL_SYNC_PERIOD`]).
    pub fn set_full_sync_period(&mut self, period: Duration) {
        self.full_sync_period = period;
    }

    /// Changes how often partial syncs look for the canary chain (default [`CANARY_CHECK_PERIOD`]; zero: before
    /// every partial sync).
    pub fn set_canary_check_period(&mut self, period: Duration) {
        self.canary_check_period = period;
    }

    pub fn family(&self) -> IpFamily {
        self.family
    }

    pub fn config(&self) -> &RenderConfig {
        &self.cfg
    }

    /// The state of the last successful sync.
    pub fn last_applied(&self) -> Option<&Arc<ProxyState>> {
        self.last_applied.as_ref()
    }

    /// Programs `state`. Full when asked, on the first sync, after any failure, when the canary chain has
    /// disappeared (someone flushed iptables; looked for at most once per canary-check period), or when the
    /// last full sync is older than the full-sync period; partial otherwise.
    pub fn sync(
        &mut self,
        state: &Arc<ProxyState>,
        force_full: bool,
    ) -> Result<SyncReport, IptablesError> {
        if state.family != self.family {
            return Err(IptablesError::FamilyMismatch {
                want: self.family,
                got: state.family,
            });
        }
        let result = self.try_sync(state, force_full);
        match &result {
            Ok(report) => {
                if report.kind == SyncKind::Full {
                    self.last_full = Some(Instant::now());
                }
                self.last_applied = Some(state.clone());
                self.need_full = false;
            }
            Err(e) => {
                tracing::warn!(family = ?self.family, error = %e, "iptables sync failed; next sync is full");
                self.need_full = true;
            }
        }
        result
    }

    fn try_sync(
        &mut self,
        state: &Arc<ProxyState>,
        force_full: bool,
    ) -> Result<SyncReport, IptablesError> {
        let overdue = self
            .last_full
            .is_none_or(|t| t.elapsed() >= self.full_sync_period);
        let mut full = force_full || self.need_full || self.last_applied.is_none() || overdue;
        let canary_due = self
            .last_canary_check
            .is_none_or(|t| t.elapsed() >= self.canary_check_period);
        if !full && canary_due {
            self.last_canary_check = Some(Instant::now());
            if !self
                .exec
                .chain_exists(self.family, Table::Mangle, KUBE_PROXY_CANARY)?
            {
                tracing::info!(family = ?self.family, "canary chain missing: iptables was flushed, resyncing everything");
                full = true;
            }
        }
        if full {
            // A full sync (re)creates the canary: the next check is one period away.
            self.last_canary_check = Some(Instant::now());
        }
        let scope = match (&self.last_applied, full) {
            (Some(prev), false) => RenderScope::Partial {
                changed: BTreeSet::new(),
                previous: prev.clone(),
            },
            _ => RenderScope::Full,
        };
        let mut rendered = render(state, &self.cfg, &scope);
        // A full sync reads every table once: for stale per-service chains and for the canary chains and
        // jumps it must (re)create, which join the rules in the same restore.
        let input = if full {
            let save = self.exec.save_all(self.family)?;
            let tables = split_save(&save);
            let nat = tables.get(&Table::Nat).copied().unwrap_or_default();
            rendered.delete_stale_chains(chains_in_save(nat));
            BaseAdditions::missing_from(&tables).restore_input(&rendered)
        } else {
            rendered.restore_input()
        };
        let started = Instant::now();
        self.exec.restore(self.family, &input, true)?;
        let restore_time = started.elapsed();
        Ok(SyncReport {
            kind: if rendered.partial {
                SyncKind::Partial
            } else {
                SyncKind::Full
            },
            filter_rules: rendered.filter_rules,
            nat_rules: rendered.nat_rules,
            filter_rules_total: rendered.filter_rules,
            nat_rules_total: rendered.nat_rules_total,
            deleted_chains: rendered.deleted_chains.len(),
            no_local_endpoints_internal: rendered.no_local_endpoints_internal,
            no_local_endpoints_external: rendered.no_local_endpoints_external,
            restore_time,
        })
    }
}
