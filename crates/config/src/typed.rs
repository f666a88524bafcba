//! `ProxyConfig`: the validated, Rust-typed configuration the binary and the dataplanes consume.
//! Built only from a configuration that passed validation, so conversions here cannot fail on
//! user input.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::duration::GoDuration;
use crate::flags::{IptablesBackend, ProxyFlags};
use crate::internal::Internal;
use crate::validation::parse_cidr;

/// The dataplane kube-proxy programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Iptables,
    Ipvs,
    Nftables,
    /// This project's user-space forwarder.
    Userspace,
}

impl ProxyMode {
    /// The name used in flags, files and `/proxyMode`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Ipvs => "ipvs",
            ProxyMode::Nftables => "nftables",
            ProxyMode::Userspace => "userspace",
        }
    }
}

/// How traffic is recognised as coming from a local pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectLocal {
    /// Source IP inside the cluster CIDR(s). Empty: no local detection (upstream warns).
    ClusterCidr(Vec<IpNet>),
    /// Source IP inside the Node's `spec.podCIDRs` (learned from the Node object).
    NodeCidr,
    /// Packets arriving on this bridge.
    BridgeInterface(String),
    /// Packets arriving on interfaces whose names start with this prefix.
    InterfaceNamePrefix(String),
}

/// Which node addresses accept NodePort traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortAddresses {
    /// Every local address (upstream's empty list).
    All,
    /// Only the node's primary IP(s).
    Primary,
    /// Local addresses inside these CIDRs.
    Cidrs(Vec<IpNet>),
}

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConnection {
    pub kubeconfig: Option<PathBuf>,
    /// `--master`: overrides the kubeconfig's server URL.
    pub master: Option<String>,
    pub qps: f32,
    pub burst: i32,
    pub content_type: String,
    pub accept_content_types: String,
}

/// IPVS-only settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsConfig {
    /// Empty means the default (rr).
    pub scheduler: String,
    pub exclude_cidrs: Vec<IpNet>,
    pub strict_arp: bool,
    /// Zero means leave the kernel's value.
    pub tcp_timeout: Duration,
    pub tcp_fin_timeout: Duration,
    pub udp_timeout: Duration,
}

/// Conntrack sysctls kube-proxy sets at start. Zero values mean "leave as is".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConntrackConfig {
    pub max_per_core: u32,
    pub min: u32,
    pub tcp_established_timeout: Duration,
    pub tcp_close_wait_timeout: Duration,
    pub tcp_be_liberal: bool,
    pub udp_timeout: Duration,
    pub udp_stream_timeout: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub mode: ProxyMode,
    /// `--hostname-override` / `hostnameOverride`, trimmed and lower-cased as upstream does
    /// before using it as the node name; `None` means "use the hostname".
    pub hostname_override: Option<String>,
    /// The node's primary IP override (`bindAddress`); `0.0.0.0`/`::` means "detect".
    pub bind_address: IpAddr,
    pub bind_address_hard_fail: bool,
    /// `None`: health server disabled.
    pub healthz_bind_address: Option<SocketAddr>,
    pub metrics_bind_address: Option<SocketAddr>,
    pub enable_profiling: bool,
    pub show_hidden_metrics_for_version: Option<String>,
    pub client: ClientConnection,
    /// Full resync period of the active mode.
    pub sync_period: Duration,
    /// Minimum time between syncs of the active mode.
    pub min_sync_period: Duration,
    pub config_sync_period: Duration,
    pub masquerade_all: bool,
    /// The fwmark bit for SNAT (nftables' own setting in nftables mode, else iptables').
    pub masquerade_bit: u32,
    /// iptables mode, IPv4: allow NodePorts on 127.0.0.1.
    pub localhost_node_ports: bool,
    pub ipvs: IpvsConfig,
    pub conntrack: ConntrackConfig,
    pub oom_score_adj: i32,
    pub detect_local: DetectLocal,
    pub node_port_addresses: NodePortAddresses,
    pub feature_gates: BTreeMap<String, bool>,
    /// Log verbosity (`-v`).
    pub verbosity: u32,
    pub logging_format: String,
    /// Run mode switches.
    pub cleanup: bool,
    pub init_only: bool,
    /// The `--config` file, if one was used.
    pub config_file: Option<PathBuf>,
    /// Ours: serve objects from this manifests directory instead of a cluster.
    pub manifests: Option<PathBuf>,
    /// Ours: which iptables binaries to drive.
    pub iptables_backend: IptablesBackend,
    /// Ours: the Service cluster IP ranges.
    pub service_cluster_ip_range: Vec<IpNet>,
    /// Ours: userspace mode binds its listeners on the service addresses (no NAT rules).
    pub userspace_bind_vips: bool,
}

fn std_dur(d: GoDuration) -> Duration {
    d.to_std().unwrap_or_default()
}

fn socket(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

impl ProxyConfig {
    /// The configuration kube-proxy runs with when given no flags at all (handy in tests).
    pub fn defaults() -> Self {
        match crate::load::resolve(&ProxyFlags::default()) {
            Ok(loaded) => loaded.config,
            Err(e) => unreachable!("built-in defaults are valid: {e}"),
        }
    }

    /// Types a validated internal configuration.
    pub(crate) fn from_internal(c: &Internal, flags: &ProxyFlags) -> Self {
        let v = &c.v;
        let mode = match v.mode.as_str() {
            "ipvs" => ProxyMode::Ipvs,
            "nftables" => ProxyMode::Nftables,
            "userspace" => ProxyMode::Userspace,
            _ => ProxyMode::Iptables,
        };
        let cidrs = |list: &[String]| {
            list.iter()
                .filter_map(|s| parse_cidr(s))
                .collect::<Vec<_>>()
        };
        let detect_local = match v.detect_local_mode.as_str() {
            "NodeCIDR" => DetectLocal::NodeCidr,
            "BridgeInterface" => {
                DetectLocal::BridgeInterface(v.detect_local.bridge_interface.clone())
            }
            "InterfaceNamePrefix" => {
                DetectLocal::InterfaceNamePrefix(v.detect_local.interface_name_prefix.clone())
            }
            _ => DetectLocal::ClusterCidr(cidrs(&c.cluster_cidrs)),
        };
        let npa = v.node_port_addresses.clone().unwrap_or_default();
        let node_port_addresses = match npa.as_slice() {
            [] => NodePortAddresses::All,
            [p] if p == "primary" => NodePortAddresses::Primary,
            list => NodePortAddresses::Cidrs(cidrs(list)),
        };
        let masquerade_bit = if mode == ProxyMode::Nftables {
            v.nftables.masquerade_bit
        } else {
            v.iptables.masquerade_bit
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let ct = &v.conntrack;
        ProxyConfig {
            mode,
            hostname_override: non_empty(v.hostname_override.trim()).map(|h| h.to_lowercase()),
            bind_address: v.bind_address.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            bind_address_hard_fail: v.bind_address_hard_fail,
            healthz_bind_address: socket(&v.healthz_bind_address),
            metrics_bind_address: socket(&v.metrics_bind_address),
            enable_profiling: v.enable_profiling,
            show_hidden_metrics_for_version: non_empty(&v.show_hidden_metrics_for_version),
            client: ClientConnection {
                kubeconfig: non_empty(&v.client_connection.kubeconfig).map(PathBuf::from),
                master: flags.master.clone().filter(|m| !m.is_empty()),
                qps: v.client_connection.qps,
                burst: v.client_connection.burst,
                content_type: v.client_connection.content_type.clone(),
                accept_content_types: v.client_connection.accept_content_types.clone(),
            },
            sync_period: std_dur(c.sync_period),
            min_sync_period: std_dur(c.min_sync_period),
            config_sync_period: std_dur(v.config_sync_period),
            masquerade_all: c.masquerade_all,
            masquerade_bit: masquerade_bit.unwrap_or(14).clamp(0, 31) as u32,
            localhost_node_ports: v.iptables.localhost_node_ports.unwrap_or(true),
            ipvs: IpvsConfig {
                scheduler: v.ipvs.scheduler.clone(),
                exclude_cidrs: cidrs(v.ipvs.exclude_cidrs.as_deref().unwrap_or_default()),
                strict_arp: v.ipvs.strict_arp,
                tcp_timeout: std_dur(v.ipvs.tcp_timeout),
                tcp_fin_timeout: std_dur(v.ipvs.tcp_fin_timeout),
                udp_timeout: std_dur(v.ipvs.udp_timeout),
            },
            conntrack: ConntrackConfig {
                max_per_core: ct.max_per_core.unwrap_or(0).max(0) as u32,
                min: ct.min.unwrap_or(0).max(0) as u32,
                tcp_established_timeout: std_dur(ct.tcp_established_timeout.unwrap_or_default()),
                tcp_close_wait_timeout: std_dur(ct.tcp_close_wait_timeout.unwrap_or_default()),
                tcp_be_liberal: ct.tcp_be_liberal,
                udp_timeout: std_dur(ct.udp_timeout),
                udp_stream_timeout: std_dur(ct.udp_stream_timeout),
            },
            oom_score_adj: v.oom_score_adj.unwrap_or(-999),
            detect_local,
            node_port_addresses,
            feature_gates: v.feature_gates.clone(),
            verbosity: v.logging.verbosity,
            logging_format: v.logging.format.clone(),
            cleanup: flags.cleanup.unwrap_or(false),
            init_only: flags.init_only.unwrap_or(false),
            config_file: flags.config.clone(),
            manifests: flags.manifests.clone(),
            iptables_backend: flags.iptables_backend.unwrap_or_default(),
            service_cluster_ip_range: flags.service_cluster_ip_range.clone().unwrap_or_default(),
            userspace_bind_vips: flags.userspace_bind_vips.unwrap_or(false),
        }
    }
}
