//! The mode-independent ("internal") shape upstream works on between loading and validation:
//! one sync period pair, one masquerade-all switch and a list of cluster CIDRs, instead of
//! v1alpha1's per-backend copies. Conversions both ways follow upstream's rules: the section of
//! the active mode (iptables for anything but ipvs/nftables) is the one that counts.

use crate::duration::GoDuration;
use crate::v1alpha1::KubeProxyConfiguration;

/// The configuration while flags are merged and before it is validated and typed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Internal {
    /// Everything that maps one to one. Its per-mode sync periods, masqueradeAll flags and
    /// clusterCIDR are zeroed: the fields below are authoritative.
    pub v: KubeProxyConfiguration,
    pub sync_period: GoDuration,
    pub min_sync_period: GoDuration,
    pub masquerade_all: bool,
    pub cluster_cidrs: Vec<String>,
}

/// Which v1alpha1 section holds the sync periods for `mode`.
pub(crate) fn sync_section(mode: &str) -> &'static str {
    match mode {
        "ipvs" => "ipvs",
        "nftables" => "nftables",
        _ => "iptables",
    }
}

impl Internal {
    /// Converts a (defaulted) v1alpha1 object.
    pub fn from_v1alpha1(mut v: KubeProxyConfiguration) -> Self {
        let (sync_period, min_sync_period) = match sync_section(&v.mode) {
            "ipvs" => (v.ipvs.sync_period, v.ipvs.min_sync_period),
            "nftables" => (v.nftables.sync_period, v.nftables.min_sync_period),
            _ => (v.iptables.sync_period, v.iptables.min_sync_period),
        };
        let masquerade_all = if v.mode == "nftables" {
            v.nftables.masquerade_all
        } else {
            v.iptables.masquerade_all
        };
        let cluster_cidrs = if v.cluster_cidr.is_empty() {
            Vec::new()
        } else {
            v.cluster_cidr.split(',').map(str::to_string).collect()
        };
        clear_mode_specific(&mut v);
        Internal {
            v,
            sync_period,
            min_sync_period,
            masquerade_all,
            cluster_cidrs,
        }
    }

    /// Converts back to v1alpha1, putting the mode-dependent values where upstream does.
    pub fn to_v1alpha1(&self) -> KubeProxyConfiguration {
        let mut v = self.v.clone();
        clear_mode_specific(&mut v);
        match sync_section(&v.mode) {
            "ipvs" => {
                v.ipvs.sync_period = self.sync_period;
                v.ipvs.min_sync_period = self.min_sync_period;
            }
            "nftables" => {
                v.nftables.sync_period = self.sync_period;
                v.nftables.min_sync_period = self.min_sync_period;
            }
            _ => {
                v.iptables.sync_period = self.sync_period;
                v.iptables.min_sync_period = self.min_sync_period;
            }
        }
        if v.mode == "nftables" {
            v.nftables.masquerade_all = self.masquerade_all;
        } else {
            v.iptables.masquerade_all = self.masquerade_all;
        }
        v.cluster_cidr = self.cluster_cidrs.join(",");
        v.api_version = crate::v1alpha1::API_VERSION.into();
        v.kind = crate::v1alpha1::KIND.into();
        v
    }

    /// Upstream's Linux platform defaults, applied after flags and file are merged.
    pub fn apply_platform_defaults(&mut self) {
        if self.v.mode.is_empty() {
            self.v.mode = "iptables".into();
        }
        let no_node_port_addresses = self
            .v
            .node_port_addresses
            .as_ref()
            .is_none_or(Vec::is_empty);
        if self.v.mode == "nftables" && no_node_port_addresses {
            self.v.node_port_addresses = Some(vec!["primary".into()]);
        }
        if self.v.detect_local_mode.is_empty() {
            self.v.detect_local_mode = "ClusterCIDR".into();
        }
    }
}

fn clear_mode_specific(v: &mut KubeProxyConfiguration) {
    v.iptables.sync_period = GoDuration::ZERO;
    v.iptables.min_sync_period = GoDuration::ZERO;
    v.ipvs.sync_period = GoDuration::ZERO;
    v.ipvs.min_sync_period = GoDuration::ZERO;
    v.nftables.sync_period = GoDuration::ZERO;
    v.nftables.min_sync_period = GoDuration::ZERO;
    v.iptables.masquerade_all = false;
    v.nftables.masquerade_all = false;
    v.cluster_cidr.clear();
}
