//! The renderer: a [`ProxyState`] plus [`RenderConfig`] in, `iptables-restore` text for filter and nat out.
//!
//! Follows upstream's `syncProxyRules` layout: top-level chains are always declared (flushed) and rewritten;
//! per-service chains are rewritten for every service in a full render, and only for changed services in a
//! partial one. Pure: no I/O, deterministic output for equal inputs.

use std::collections::BTreeSet;

use kube_proxy_model::{IpFamily, ProxyState, ServicePortName, ServicePortState, StateDiff};

use crate::chains::*;
use crate::config::{NodePortAddresses, RenderConfig, RenderScope};
use crate::exec::Table;
use crate::services::{render_service, ChainRules, Ctx};

/// Upstream's threshold above which comments are dropped from SVC/SEP rules.
pub const LARGE_CLUSTER_ENDPOINTS_THRESHOLD: usize = 1000;

/// `iptables-restore` input for one family, plus counts for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedRules {
    /// `*filter` … `COMMIT`.
    pub filter: String,
    /// `*nat` … `COMMIT`.
    pub nat: String,
    /// `-A` rules written to filter (upstream's `sync_proxy_rules_iptables_last{table="filter"}`, also `_total`).
    pub filter_rules: usize,
    /// `-A` rules written to nat in this render (`sync_proxy_rules_iptables_last{table="nat"}`).
    pub nat_rules: usize,
    /// nat rules kube-proxy owns after this render, counting unchanged chains a partial render skipped
    /// (`sync_proxy_rules_iptables_total{table="nat"}`).
    pub nat_rules_total: usize,
    /// The per-service nat chains of every service whose chains this render writes (every service in a full
    /// render).
    pub active_nat_chains: BTreeSet<String>,
    /// Per-service chains deleted by this render (`-X`).
    pub deleted_chains: BTreeSet<String>,
    /// Services with internal / external Local policy but no local endpoints.
    pub no_local_endpoints_internal: usize,
    pub no_local_endpoints_external: usize,
    /// Whether this render was partial.
    pub partial: bool,
    nat_chain_lines: Vec<String>,
    nat_rule_lines: Vec<String>,
    nat_tail: Vec<String>,
}

impl RenderedRules {
    /// Both tables as one `iptables-restore` input (filter first, as upstream).
    pub fn restore_input(&self) -> String {
        format!("{}{}", self.filter, self.nat)
    }

    /// Adds flush-and-delete lines for every per-service chain in `existing` (as listed by `iptables-save`)
    /// that this render does not use. The applier calls this on full syncs.
    pub fn delete_stale_chains<'a>(&mut self, existing: impl IntoIterator<Item = &'a str>) {
        let stale: Vec<String> = existing
            .into_iter()
            .filter(|c| is_service_chain(c) && !self.active_nat_chains.contains(*c))
            .filter(|c| !self.deleted_chains.contains(*c))
            .map(str::to_string)
            .collect();
        for c in stale {
            self.push_delete(&c);
        }
        self.nat = self.assemble_nat();
    }

    /// Whether these rules declare (create or flush) `chain` in `table`.
    pub fn declares(&self, table: Table, chain: &str) -> bool {
        let line = format!(":{chain} - [0:0]");
        match table {
            Table::Filter => self.filter.lines().any(|l| l == line),
            Table::Nat => self.nat_chain_lines.contains(&line),
            Table::Mangle | Table::Raw => false,
        }
    }

    fn push_delete(&mut self, chain: &str) {
        self.nat_chain_lines.push(format!(":{chain} - [0:0]"));
        self.nat_rule_lines.push(format!("-X {chain}"));
        self.deleted_chains.insert(chain.to_string());
    }

    fn assemble_nat(&self) -> String {
        let mut s = String::from("*nat\n");
        for l in self
            .nat_chain_lines
            .iter()
            .chain(&self.nat_rule_lines)
            .chain(&self.nat_tail)
        {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("COMMIT\n");
        s
    }
}

fn total_endpoints(state: &ProxyState) -> usize {
    // Upstream counts every endpoint known for each service port.
    state.services.values().map(|s| s.endpoints.len()).sum()
}

fn is_large(state: &ProxyState) -> bool {
    total_endpoints(state) > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
}

/// The per-service nat chains `svc` owns under `cfg` (used to find chains to delete in partial renders).
fn service_chains(
    svc: &ServicePortState,
    cfg: &RenderConfig,
    family: IpFamily,
) -> BTreeSet<String> {
    let ctx = Ctx {
        cfg,
        family,
        large_cluster: false,
    };
    render_service(svc, &ctx, true).chains
}

/// Renders `state` for `cfg`. See [`RenderScope`] for what a partial render rewrites.
pub fn render(state: &ProxyState, cfg: &RenderConfig, scope: &RenderScope) -> RenderedRules {
    let family = state.family;
    let large_cluster = is_large(state);
    let mark = cfg.masquerade_mark();
    let localhost_np = cfg.localhost_nodeports_effective(family);

    // Which services get their own chains rewritten.
    let rewrite: Option<BTreeSet<ServicePortName>> = match scope {
        RenderScope::Full => None,
        RenderScope::Partial { changed, previous } => {
            if previous.family != family || is_large(previous) != large_cluster {
                // Comments (large cluster mode) or family differ everywhere: only a full rewrite is correct.
                None
            } else {
                let mut set = changed.clone();
                set.extend(StateDiff::between(previous, state).touched());
                Some(set)
            }
        }
    };

    let mut filter_chains: Vec<String> = [
        KUBE_SERVICES,
        KUBE_EXTERNAL_SERVICES,
        KUBE_FORWARD,
        KUBE_NODEPORTS,
        KUBE_PROXY_FIREWALL,
    ]
    .iter()
    .map(|c| format!(":{c} - [0:0]"))
    .collect();
    let mut filter_rules: Vec<String> = Vec::new();
    let mut nat_chain_lines: Vec<String> = [
        KUBE_SERVICES,
        KUBE_NODEPORTS,
        KUBE_POSTROUTING,
        KUBE_MARK_MASQ,
    ]
    .iter()
    .map(|c| format!(":{c} - [0:0]"))
    .collect();
    let mut nat_rule_lines: Vec<String> = Vec::new();

    nat_rule_lines.push(format!(
        "-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN"
    ));
    nat_rule_lines.push(format!("-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}"));
    let random_fully = if cfg.random_fully {
        " --random-fully"
    } else {
        ""
    };
    nat_rule_lines.push(format!(
        "-A {KUBE_POSTROUTING} -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE{random_fully}"
    ));
    nat_rule_lines.push(format!("-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}"));
    // Rules written to nat (`-A` lines; the `-X` of deleted chains do not count).
    let mut nat_rules_written = nat_rule_lines.len();

    if localhost_np {
        filter_chains.push(format!(":{KUBE_FIREWALL} - [0:0]"));
        filter_rules.push(format!(
            "-A {KUBE_FIREWALL} -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
        ));
    }

    let ctx = Ctx {
        cfg,
        family,
        large_cluster,
    };
    let mut active = BTreeSet::new();
    let mut skipped_nat_rules = 0usize;
    let (mut no_local_int, mut no_local_ext) = (0, 0);
    for (name, svc) in &state.services {
        let write = rewrite.as_ref().is_none_or(|set| set.contains(name));
        let out = render_service(svc, &ctx, write);
        filter_rules.extend(out.filter_rules);
        nat_rules_written += out.top_nat_rules.len();
        nat_rule_lines.extend(out.top_nat_rules);
        no_local_int += usize::from(out.no_local_internal);
        no_local_ext += usize::from(out.no_local_external);
        active.extend(out.chains);
        match out.chain_rules {
            ChainRules::Lines { mut text, rules } => {
                nat_chain_lines.extend(out.chain_lines);
                if text.pop().is_some() {
                    // One element holding every rule of the service's chains, newline-separated.
                    nat_rule_lines.push(text);
                }
                nat_rules_written += rules;
            }
            ChainRules::Counted(n) => skipped_nat_rules += n,
        }
    }

    let mut rendered = RenderedRules {
        filter: String::new(),
        nat: String::new(),
        filter_rules: 0,
        nat_rules: 0,
        nat_rules_total: 0,
        active_nat_chains: active,
        deleted_chains: BTreeSet::new(),
        no_local_endpoints_internal: no_local_int,
        no_local_endpoints_external: no_local_ext,
        partial: rewrite.is_some(),
        nat_chain_lines,
        nat_rule_lines,
        nat_tail: Vec::new(),
    };

    // Partial renders delete the chains that changed or removed services no longer use. (If a partial render
    // had to fall back to rewriting everything, every service of `previous` is a candidate.)
    if let RenderScope::Partial { previous, .. } = scope {
        let candidates: BTreeSet<ServicePortName> = match &rewrite {
            Some(set) => set.clone(),
            None => previous.services.keys().cloned().collect(),
        };
        for name in &candidates {
            if let Some(prev) = previous.services.get(name) {
                for chain in service_chains(prev, cfg, family) {
                    if !rendered.active_nat_chains.contains(&chain) {
                        rendered.push_delete(&chain);
                    }
                }
            }
        }
    }

    rendered.nat_tail = nodeports_tail(cfg, family, localhost_np);

    let mut fwd = Vec::new();
    if !cfg.conntrack_tcp_be_liberal {
        let nfacct = if cfg.nfacct {
            format!(" -m nfacct --nfacct-name {NFACCT_CT_STATE_INVALID}")
        } else {
            String::new()
        };
        fwd.push(format!(
            "-A {KUBE_FORWARD} -m conntrack --ctstate INVALID{nfacct} -j DROP"
        ));
    }
    fwd.push(format!(
        "-A {KUBE_FORWARD} -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {mark}/{mark} -j ACCEPT"
    ));
    fwd.push(format!(
        "-A {KUBE_FORWARD} -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    ));
    filter_rules.extend(fwd);

    let mut filter = String::from("*filter\n");
    for l in filter_chains.iter().chain(&filter_rules) {
        filter.push_str(l);
        filter.push('\n');
    }
    filter.push_str("COMMIT\n");
    rendered.filter = filter;
    rendered.filter_rules = filter_rules.len();
    let written_nat = nat_rules_written + rendered.nat_tail.len();
    rendered.nat_rules = written_nat;
    rendered.nat_rules_total = written_nat + skipped_nat_rules;
    rendered.nat = rendered.assemble_nat();
    rendered
}

/// The final KUBE-SERVICES rule(s) sending NodePort traffic to KUBE-NODEPORTS.
fn nodeports_tail(cfg: &RenderConfig, family: IpFamily, localhost_np: bool) -> Vec<String> {
    let comment =
        "\"kubernetes service nodeports; NOTE: this must be the last rule in this chain\"";
    match &cfg.node_port_addresses {
        NodePortAddresses::All => {
            let extra = match family {
                IpFamily::V6 => " ! -d ::1/128",
                IpFamily::V4 if !localhost_np => " ! -d 127.0.0.0/8",
                IpFamily::V4 => "",
            };
            vec![format!(
                "-A {KUBE_SERVICES} -m comment --comment {comment} -m addrtype --dst-type LOCAL{extra} -j {KUBE_NODEPORTS}"
            )]
        }
        NodePortAddresses::Ips(ips) => ips
            .iter()
            .filter(|ip| family.contains(ip))
            .filter(|ip| !ip.is_loopback() || (family == IpFamily::V4 && localhost_np))
            .map(|ip| {
                format!(
                    "-A {KUBE_SERVICES} -m comment --comment {comment} -d {ip} -j {KUBE_NODEPORTS}"
                )
            })
            .collect(),
    }
}
