//! The IPVS applier: diffs the kernel's IPVS table and kube-ipvs0 addresses against an [`IpvsPlan`] and sends
//! only the difference, drains removed real servers gracefully, diffs the ipsets likewise, and writes the
//! iptables chains.
//!
//! All kernel access goes through the seams: [`Ipvs`], [`DummyLink`], [`IpsetHandle`], [`IptablesExec`],
//! [`Sysctl`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use kube_proxy_iptables::sysctl::{ensure, ProcSysctl, Sysctl};
use kube_proxy_iptables::{Backend, IptablesExec, RealExec, Table};
use kube_proxy_model::{Protocol, ProxyState};

use crate::config::{IpvsConfig, DUMMY_DEVICE};
use crate::genl::GenlIpvs;
use crate::handle::Ipvs;
use crate::ipset_kernel::{sync_ipsets, IpsetHandle, NetlinkIpset};
use crate::link::{DummyLink, RtnlLink};
use crate::render::{render, IpvsPlan};
use crate::rules::{jump_rule, JUMPS};
use crate::types::{RealServer, ServiceKey};
use crate::IpvsError;

/// What one sync changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpvsSyncReport {
    pub services_added: usize,
    pub services_updated: usize,
    pub services_deleted: usize,
    pub reals_added: usize,
    /// Weight changes of kept real servers (including weights left at 0 by an earlier run).
    pub reals_updated: usize,
    /// Removed real servers set to weight 0 to drain.
    pub reals_draining: usize,
    pub reals_deleted: usize,
    pub addresses_added: usize,
    pub addresses_deleted: usize,
    /// ipset elements added and deleted (only the difference to the kernel's sets is sent).
    pub ipset_entries_added: usize,
    pub ipset_entries_deleted: usize,
    /// Real servers still draining after this sync.
    pub pending_graceful: usize,
}

/// A real server being drained: when it started.
type GracefulKey = (ServiceKey, IpAddr, u16);

/// The IPVS dataplane of one IP family.
pub struct IpvsDataplane {
    cfg: IpvsConfig,
    ipvs: Arc<dyn Ipvs>,
    link: Arc<dyn DummyLink>,
    ipset: Arc<dyn IpsetHandle>,
    iptables: Arc<dyn IptablesExec>,
    graceful: BTreeMap<GracefulKey, Instant>,
    /// Virtual and real servers of the last applied plan.
    last_counts: (usize, usize),
}

/// The sysctls upstream's IPVS mode sets (name, value); the ARP ones only with `--ipvs-strict-arp`.
pub fn required_sysctls(cfg: &IpvsConfig) -> Vec<(&'static str, i64)> {
    let mut v = vec![
        ("net/ipv4/vs/conntrack", 1),
        ("net/ipv4/vs/expire_nodest_conn", 1),
        ("net/ipv4/vs/expire_quiescent_template", 1),
        ("net/ipv4/ip_forward", 1),
    ];
    if cfg.strict_arp {
        v.push(("net/ipv4/conf/all/arp_ignore", 1));
        v.push(("net/ipv4/conf/all/arp_announce", 2));
    }
    v
}

impl IpvsDataplane {
    /// Sets the sysctls and IPVS timeouts, then returns a dataplane using the given seams.
    pub fn new(
        cfg: IpvsConfig,
        ipvs: Arc<dyn Ipvs>,
        link: Arc<dyn DummyLink>,
        ipset: Arc<dyn IpsetHandle>,
        iptables: Arc<dyn IptablesExec>,
        sysctl: &dyn Sysctl,
    ) -> Result<IpvsDataplane, IpvsError> {
        for (name, value) in required_sysctls(&cfg) {
            ensure(sysctl, name, value).map_err(IpvsError::Sysctl)?;
        }
        let t = cfg.timeouts;
        if t.tcp > 0 || t.tcp_fin > 0 || t.udp > 0 {
            ipvs.set_timeouts(&t)?;
        }
        Ok(IpvsDataplane {
            cfg,
            ipvs,
            link,
            ipset,
            iptables,
            graceful: BTreeMap::new(),
            last_counts: (0, 0),
        })
    }

    /// The production dataplane: IPVS over generic netlink, kube-ipvs0 over rtnetlink, ipsets over nfnetlink,
    /// the iptables binaries of `backend`, `/proc/sys`.
    pub fn with_real_system(cfg: IpvsConfig, backend: Backend) -> Result<IpvsDataplane, IpvsError> {
        IpvsDataplane::new(
            cfg,
            Arc::new(GenlIpvs::new()?),
            Arc::new(RtnlLink::new(DUMMY_DEVICE)?),
            Arc::new(NetlinkIpset::new()?),
            Arc::new(RealExec::new(backend)),
            &ProcSysctl,
        )
    }

    pub fn config(&self) -> &IpvsConfig {
        &self.cfg
    }

    /// Sizes of the last applied plan for metrics and status: `virtual_servers`, `real_servers`, and
    /// `draining` (real servers at weight 0 waiting for their connections).
    pub fn counts(&self) -> Vec<(String, u64)> {
        vec![
            ("virtual_servers".into(), self.last_counts.0 as u64),
            ("real_servers".into(), self.last_counts.1 as u64),
            ("draining".into(), self.graceful.len() as u64),
        ]
    }

    /// Real servers currently draining (weight 0, waiting for their connections to end).
    pub fn draining(&self) -> Vec<(ServiceKey, SocketAddr)> {
        self.graceful
            .keys()
            .map(|(k, ip, port)| (*k, SocketAddr::new(*ip, *port)))
            .collect()
    }

    /// Renders `state` and applies it (see [`IpvsDataplane::apply`]).
    pub fn sync(&mut self, state: &ProxyState) -> Result<IpvsSyncReport, IpvsError> {
        let plan = render(state, &self.cfg);
        self.apply(&plan, Instant::now())
    }

    /// Brings the kernel to `plan`: IPVS services and real servers, kube-ipvs0 addresses, ipsets, iptables.
    /// `now` drives the graceful-termination bound.
    pub fn apply(&mut self, plan: &IpvsPlan, now: Instant) -> Result<IpvsSyncReport, IpvsError> {
        let mut report = IpvsSyncReport::default();
        self.link.ensure()?;
        self.sync_ipvs(plan, now, &mut report)?;
        self.sync_addresses(plan, &mut report)?;
        let sets = sync_ipsets(&*self.ipset, &plan.ipsets)?;
        report.ipset_entries_added = sets.added;
        report.ipset_entries_deleted = sets.deleted;
        self.iptables
            .restore(self.cfg.family, &plan.iptables, true)?;
        self.ensure_jumps()?;
        report.pending_graceful = self.graceful.len();
        self.last_counts = (
            plan.services.len(),
            plan.services.values().map(|d| d.reals.len()).sum(),
        );
        Ok(report)
    }

    fn excluded(&self, ip: &IpAddr) -> bool {
        self.cfg.exclude_cidrs.iter().any(|c| c.contains(ip))
    }

    fn sync_ipvs(
        &mut self,
        plan: &IpvsPlan,
        now: Instant,
        report: &mut IpvsSyncReport,
    ) -> Result<(), IpvsError> {
        let current: BTreeMap<ServiceKey, _> = self
            .ipvs
            .services()?
            .into_iter()
            .filter(|vs| self.cfg.family.contains(&vs.key.addr))
            .map(|vs| (vs.key, vs))
            .collect();
        for (key, want) in &plan.services {
            match current.get(key) {
                None => {
                    self.ipvs.add_service(&want.vs)?;
                    report.services_added += 1;
                }
                Some(have) if !have.same_settings(&want.vs) => {
                    self.ipvs.update_service(&want.vs)?;
                    report.services_updated += 1;
                }
                Some(_) => {}
            }
            let have: BTreeMap<(IpAddr, u16), RealServer> = if current.contains_key(key) {
                self.ipvs
                    .real_servers(key)?
                    .into_iter()
                    .map(|r| ((r.addr, r.port), r))
                    .collect()
            } else {
                BTreeMap::new()
            };
            for (&(ip, port), &weight) in &want.reals {
                let rs = RealServer::masq(ip, port, weight);
                self.graceful.remove(&(*key, ip, port));
                match have.get(&(ip, port)) {
                    None => {
                        self.ipvs.add_real_server(key, &rs)?;
                        report.reals_added += 1;
                    }
                    Some(h) if h.weight != weight || h.forward != rs.forward => {
                        self.ipvs.update_real_server(key, &rs)?;
                        report.reals_updated += 1;
                    }
                    Some(_) => {}
                }
            }
            for ((ip, port), h) in &have {
                if want.reals.contains_key(&(*ip, *port)) {
                    continue;
                }
                self.retire_real(key, h, now, report)?;
            }
        }
        for (key, vs) in &current {
            if plan.services.contains_key(key) || self.excluded(&vs.key.addr) {
                continue;
            }
            self.ipvs.delete_service(key)?;
            self.graceful.retain(|(k, _, _), _| k != key);
            report.services_deleted += 1;
        }
        self.process_graceful_at(now, report)?;
        Ok(())
    }

    /// A real server no longer wanted: delete it when idle (or UDP/SCTP), else weight 0 and drain.
    fn retire_real(
        &mut self,
        key: &ServiceKey,
        h: &RealServer,
        now: Instant,
        report: &mut IpvsSyncReport,
    ) -> Result<(), IpvsError> {
        let gk = (*key, h.addr, h.port);
        if key.protocol != Protocol::Tcp || !has_connections(h) {
            self.ipvs.delete_real_server(key, h.addr, h.port)?;
            self.graceful.remove(&gk);
            report.reals_deleted += 1;
            return Ok(());
        }
        if h.weight != 0 {
            let mut zero = h.clone();
            zero.weight = 0;
            self.ipvs.update_real_server(key, &zero)?;
            report.reals_draining += 1;
        }
        self.graceful.entry(gk).or_insert(now);
        Ok(())
    }

    /// Deletes draining real servers whose connections (active and inactive) ended or whose bound passed. Returns how many
    /// are still draining. The sync runner may call this between syncs.
    pub fn process_graceful(&mut self, now: Instant) -> Result<usize, IpvsError> {
        let mut report = IpvsSyncReport::default();
        self.process_graceful_at(now, &mut report)?;
        Ok(self.graceful.len())
    }

    fn process_graceful_at(
        &mut self,
        now: Instant,
        report: &mut IpvsSyncReport,
    ) -> Result<(), IpvsError> {
        let keys: BTreeSet<ServiceKey> = self.graceful.keys().map(|(k, _, _)| *k).collect();
        for key in keys {
            let reals = match self.ipvs.real_servers(&key) {
                Ok(r) => r,
                Err(IpvsError::Kernel { .. }) => {
                    self.graceful.retain(|(k, _, _), _| *k != key);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let entries: Vec<(GracefulKey, Instant)> = self
                .graceful
                .iter()
                .filter(|((k, _, _), _)| *k == key)
                .map(|(k, t)| (*k, *t))
                .collect();
            for (gk, since) in entries {
                let (_, ip, port) = gk;
                let Some(rs) = reals.iter().find(|r| r.addr == ip && r.port == port) else {
                    self.graceful.remove(&gk);
                    continue;
                };
                let expired =
                    now.saturating_duration_since(since) >= self.cfg.graceful_termination_bound;
                if !has_connections(rs) || expired {
                    self.ipvs.delete_real_server(&key, ip, port)?;
                    self.graceful.remove(&gk);
                    report.reals_deleted += 1;
                }
            }
        }
        Ok(())
    }

    fn sync_addresses(
        &mut self,
        plan: &IpvsPlan,
        report: &mut IpvsSyncReport,
    ) -> Result<(), IpvsError> {
        let have = self.link.addresses(self.cfg.family)?;
        for ip in plan.bound_addresses.difference(&have) {
            self.link.add_address(*ip)?;
            report.addresses_added += 1;
        }
        for ip in have.difference(&plan.bound_addresses) {
            self.link.delete_address(*ip)?;
            report.addresses_deleted += 1;
        }
        Ok(())
    }

    /// Inserts the jumps from built-in chains that are missing (at position 1, as upstream's prepend).
    fn ensure_jumps(&self) -> Result<(), IpvsError> {
        for (table, name) in [(Table::Nat, "nat"), (Table::Filter, "filter")] {
            let saved = self.iptables.save(self.cfg.family, table)?;
            let mut missing = String::new();
            for j in JUMPS.iter().filter(|j| j.0 == name) {
                let rule = jump_rule(j);
                if !saved
                    .lines()
                    .any(|l| l.trim() == format!("-A {} {rule}", j.1))
                {
                    missing.push_str(&format!("-I {} 1 {rule}\n", j.1));
                }
            }
            if !missing.is_empty() {
                let input = format!("*{name}\n{missing}COMMIT\n");
                self.iptables.restore(self.cfg.family, &input, true)?;
            }
        }
        Ok(())
    }
}

/// Whether IPVS still tracks connections to `rs`. Inactive ones count too, as upstream's graceful termination
/// counts them: a half-closed connection (the client sent FIN while the server still sends) or one finishing
/// its close is inactive, and deleting its real server would drop its remaining packets
/// (`expire_nodest_conn=1`).
fn has_connections(rs: &RealServer) -> bool {
    rs.active_conns + rs.inactive_conns != 0
}
