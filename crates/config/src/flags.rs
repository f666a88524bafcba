//! kube-proxy's command-line flags as a clap `Args` struct the binary can flatten into its own
//! parser (and into subcommands such as `render`). Every config-bound flag is an `Option` so
//! the merge step knows which ones were given, as pflag's `Changed` does upstream. Booleans
//! take Go syntax: `--flag`, `--flag=true`, `--flag=false`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ipnet::IpNet;

use crate::duration::GoDuration;

/// Which iptables binaries the iptables dataplane drives (our addition).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum IptablesBackend {
    /// Pick whichever backend already holds rules, like iptables-wrappers do.
    #[default]
    Auto,
    /// `iptables-nft`.
    Nft,
    /// `iptables-legacy`.
    Legacy,
}

/// Parses a Go `strconv.ParseBool` value.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

fn parse_duration(s: &str) -> Result<GoDuration, String> {
    s.parse::<GoDuration>().map_err(|e| e.to_string())
}

/// `--bind-address`: an IP address.
fn parse_ip_string(s: &str) -> Result<String, String> {
    s.parse::<IpAddr>()
        .map(|_| s.to_string())
        .map_err(|_| format!("{s:?} is not a valid IP address"))
}

/// `--healthz-bind-address` / `--metrics-bind-address`: empty, an IP, or IP:port.
fn parse_ip_port(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(String::new());
    }
    if t.parse::<IpAddr>().is_ok() {
        return Ok(t.to_string());
    }
    let ok = crate::v1alpha1::split_host_port(t)
        .is_some_and(|(h, p)| h.parse::<IpAddr>().is_ok() && p.parse::<u16>().is_ok());
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!("{s:?} is not in a valid format (ip or ip:port)"))
    }
}

/// `--feature-gates`: `Name=bool,Name=bool`.
fn parse_feature_gates(s: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("missing bool value for {item}"))?;
        let b =
            parse_go_bool(v.trim()).map_err(|e| format!("invalid value of {k}={v}, err: {e}"))?;
        out.push((k.trim().to_string(), b));
    }
    Ok(out)
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.trim()
        .parse::<IpNet>()
        .map_err(|e| format!("invalid CIDR {s:?}: {e}"))
}

/// All flags of `kube-proxy` (upstream names and meanings) plus this project's additions.
/// Repeating a flag is allowed; the last value wins (list flags accumulate), as with pflag.
#[derive(Debug, Clone, Default, Args)]
#[command(args_override_self = true)]
pub struct ProxyFlags {
    /// The path to the configuration file.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// If set, write the default configuration values to this file and exit.
    #[arg(long = "write-config-to", value_name = "FILE")]
    pub write_config_to: Option<PathBuf>,
    /// If true cleanup iptables and ipvs rules and exit.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub cleanup: Option<bool>,
    /// If true, perform any initialization steps that must be done with full root privileges, and then exit.
    #[arg(long = "init-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub init_only: Option<bool>,
    /// A set of key=value pairs that describe feature gates (ignored with --config).
    #[arg(long = "feature-gates", value_parser = parse_feature_gates, action = clap::ArgAction::Append)]
    pub feature_gates: Vec<Vec<(String, bool)>>,
    /// Path to kubeconfig file with authorization information.
    #[arg(long)]
    pub kubeconfig: Option<String>,
    /// The address of the Kubernetes API server (overrides any value in kubeconfig).
    #[arg(long)]
    pub master: Option<String>,
    /// Content type of requests sent to apiserver.
    #[arg(long = "kube-api-content-type")]
    pub kube_api_content_type: Option<String>,
    /// Burst to use while talking with kubernetes apiserver.
    #[arg(long = "kube-api-burst", allow_negative_numbers = true)]
    pub kube_api_burst: Option<i32>,
    /// QPS to use while talking with kubernetes apiserver.
    #[arg(long = "kube-api-qps", allow_negative_numbers = true)]
    pub kube_api_qps: Option<f32>,
    /// The name of the Node kube-proxy runs on, instead of the hostname (applies even with --config).
    #[arg(long = "hostname-override")]
    pub hostname_override: Option<String>,
    /// Overrides kube-proxy's idea of what its node's primary IP is.
    #[arg(long = "bind-address", value_parser = parse_ip_string)]
    pub bind_address: Option<String>,
    /// The IP address and port for the health check server (default 0.0.0.0:10256).
    #[arg(long = "healthz-bind-address", value_parser = parse_ip_port)]
    pub healthz_bind_address: Option<String>,
    /// The IP address and port for the metrics server (default 127.0.0.1:10249).
    #[arg(long = "metrics-bind-address", value_parser = parse_ip_port)]
    pub metrics_bind_address: Option<String>,
    /// If true kube-proxy will treat failure to bind to a port as fatal and exit.
    #[arg(long = "bind-address-hard-fail", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub bind_address_hard_fail: Option<bool>,
    /// If true enables profiling via web interface on /debug/pprof handler.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub profiling: Option<bool>,
    /// The previous version for which you want to show hidden metrics.
    #[arg(long = "show-hidden-metrics-for-version")]
    pub show_hidden_metrics_for_version: Option<String>,
    /// Which proxy mode to use: iptables (default), ipvs, nftables, or userspace.
    #[arg(long = "proxy-mode")]
    pub proxy_mode: Option<String>,
    /// The bit of the fwmark space to mark packets requiring SNAT with; within [0, 31].
    #[arg(long = "iptables-masquerade-bit", allow_negative_numbers = true)]
    pub iptables_masquerade_bit: Option<i32>,
    /// SNAT all traffic sent via Service cluster IPs.
    #[arg(long = "masquerade-all", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub masquerade_all: Option<bool>,
    /// If false, do not allow NodePort services to be reached via localhost.
    #[arg(long = "iptables-localhost-nodeports", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub iptables_localhost_nodeports: Option<bool>,
    /// How often rules are fully resynchronised (iptables and nftables modes).
    #[arg(long = "iptables-sync-period", value_parser = parse_duration, allow_hyphen_values = true)]
    pub iptables_sync_period: Option<GoDuration>,
    /// The minimum period between rule resyncs (iptables and nftables modes).
    #[arg(long = "iptables-min-sync-period", value_parser = parse_duration, allow_hyphen_values = true)]
    pub iptables_min_sync_period: Option<GoDuration>,
    /// How often IPVS rules are fully resynchronised.
    #[arg(long = "ipvs-sync-period", value_parser = parse_duration, allow_hyphen_values = true)]
    pub ipvs_sync_period: Option<GoDuration>,
    /// The minimum period between IPVS rule resyncs.
    #[arg(long = "ipvs-min-sync-period", value_parser = parse_duration, allow_hyphen_values = true)]
    pub ipvs_min_sync_period: Option<GoDuration>,
    /// The ipvs scheduler type when proxy mode is ipvs.
    #[arg(long = "ipvs-scheduler")]
    pub ipvs_scheduler: Option<String>,
    /// A comma-separated list of CIDRs which the ipvs proxier should not touch when cleaning up.
    #[arg(long = "ipvs-exclude-cidrs", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub ipvs_exclude_cidrs: Option<Vec<String>>,
    /// Enable strict ARP by setting arp_ignore to 1 and arp_announce to 2.
    #[arg(long = "ipvs-strict-arp", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub ipvs_strict_arp: Option<bool>,
    /// The timeout for idle IPVS TCP connections, 0 to leave as-is.
    #[arg(long = "ipvs-tcp-timeout", value_parser = parse_duration, allow_hyphen_values = true)]
    pub ipvs_tcp_timeout: Option<GoDuration>,
    /// The timeout for IPVS TCP connections after receiving a FIN packet, 0 to leave as-is.
    #[arg(long = "ipvs-tcpfin-timeout", value_parser = parse_duration, allow_hyphen_values = true)]
    pub ipvs_tcpfin_timeout: Option<GoDuration>,
    /// The timeout for IPVS UDP packets, 0 to leave as-is.
    #[arg(long = "ipvs-udp-timeout", value_parser = parse_duration, allow_hyphen_values = true)]
    pub ipvs_udp_timeout: Option<GoDuration>,
    /// Mode to use to detect local traffic: ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix.
    #[arg(long = "detect-local-mode")]
    pub detect_local_mode: Option<String>,
    /// A bridge interface name (detect-local-mode BridgeInterface).
    #[arg(long = "pod-bridge-interface")]
    pub pod_bridge_interface: Option<String>,
    /// An interface name prefix (detect-local-mode InterfaceNamePrefix).
    #[arg(long = "pod-interface-name-prefix")]
    pub pod_interface_name_prefix: Option<String>,
    /// The CIDR range(s) of the pods in the cluster (comma-separated dual-stack pair allowed).
    #[arg(long = "cluster-cidr")]
    pub cluster_cidr: Option<String>,
    /// CIDR ranges that contain valid node IPs for NodePorts, or the single string 'primary'.
    #[arg(long = "nodeport-addresses", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub nodeport_addresses: Option<Vec<String>>,
    /// The oom-score-adj value for kube-proxy process; within [-1000, 1000].
    #[arg(long = "oom-score-adj", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,
    /// Maximum number of NAT connections to track per CPU core (0 to leave as-is).
    #[arg(long = "conntrack-max-per-core", allow_negative_numbers = true)]
    pub conntrack_max_per_core: Option<i32>,
    /// Minimum number of conntrack entries to allocate.
    #[arg(long = "conntrack-min", allow_negative_numbers = true)]
    pub conntrack_min: Option<i32>,
    /// Idle timeout for established TCP connections (0 to leave as-is).
    #[arg(long = "conntrack-tcp-timeout-established", value_parser = parse_duration, allow_hyphen_values = true)]
    pub conntrack_tcp_timeout_established: Option<GoDuration>,
    /// NAT timeout for TCP connections in the CLOSE_WAIT state.
    #[arg(long = "conntrack-tcp-timeout-close-wait", value_parser = parse_duration, allow_hyphen_values = true)]
    pub conntrack_tcp_timeout_close_wait: Option<GoDuration>,
    /// Enable liberal mode for tracking TCP packets (nf_conntrack_tcp_be_liberal=1).
    #[arg(long = "conntrack-tcp-be-liberal", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub conntrack_tcp_be_liberal: Option<bool>,
    /// Idle timeout for UNREPLIED UDP connections (0 to leave as-is).
    #[arg(long = "conntrack-udp-timeout", value_parser = parse_duration, allow_hyphen_values = true)]
    pub conntrack_udp_timeout: Option<GoDuration>,
    /// Idle timeout for ASSURED UDP connections (0 to leave as-is).
    #[arg(long = "conntrack-udp-timeout-stream", value_parser = parse_duration, allow_hyphen_values = true)]
    pub conntrack_udp_timeout_stream: Option<GoDuration>,
    /// How often configuration from the apiserver is refreshed.
    #[arg(long = "config-sync-period", value_parser = parse_duration, allow_hyphen_values = true)]
    pub config_sync_period: Option<GoDuration>,
    /// Deprecated: the port of the health check server; 0 disables it.
    #[arg(long = "healthz-port", hide = true, allow_negative_numbers = true)]
    pub healthz_port: Option<u16>,
    /// Deprecated: the port of the metrics server; 0 disables it.
    #[arg(long = "metrics-port", hide = true, allow_negative_numbers = true)]
    pub metrics_port: Option<u16>,
    /// Log verbosity (applies even with --config).
    #[arg(short = 'v', long = "v", value_name = "LEVEL")]
    pub verbosity: Option<u32>,
    /// Per-file verbosity, pattern=N,... (applies even with --config).
    #[arg(long = "vmodule")]
    pub vmodule: Option<String>,
    /// Log format: text or json (applies even with --config).
    #[arg(long = "logging-format")]
    pub logging_format: Option<String>,
    /// Maximum time between log flushes (applies even with --config).
    #[arg(long = "log-flush-frequency", value_parser = parse_duration)]
    pub log_flush_frequency: Option<GoDuration>,

    /// Ours: serve Services and EndpointSlices from the YAML manifests in DIR instead of a cluster.
    #[arg(long = "manifests", value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Ours: which iptables backend to drive.
    #[arg(long = "iptables-backend", value_enum)]
    pub iptables_backend: Option<IptablesBackend>,
    /// Ours: the Service cluster IP range(s), comma-separated.
    #[arg(long = "service-cluster-ip-range", value_delimiter = ',', value_parser = parse_cidr, action = clap::ArgAction::Append)]
    pub service_cluster_ip_range: Option<Vec<IpNet>>,
    /// Ours: in userspace mode, bind the listeners on the service addresses themselves (local routes deliver
    /// them; no NAT rules at all) instead of on ephemeral ports behind REDIRECT/DNAT rules.
    #[arg(long = "userspace-bind-vips", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub userspace_bind_vips: Option<bool>,
}

/// Turns a pflag string-slice value into a list: a lone empty value means an empty list.
pub(crate) fn string_slice(values: &[String]) -> Vec<String> {
    if values.iter().all(|v| v.trim().is_empty()) {
        return Vec::new();
    }
    values.iter().map(|v| v.trim().to_string()).collect()
}

impl ProxyFlags {
    /// Names of config-bound flags that were given; upstream ignores them when `--config` is set.
    pub fn config_bound_flags_given(&self) -> Vec<&'static str> {
        let checks: [(&'static str, bool); 37] = [
            ("feature-gates", !self.feature_gates.is_empty()),
            ("kubeconfig", self.kubeconfig.is_some()),
            (
                "kube-api-content-type",
                self.kube_api_content_type.is_some(),
            ),
            ("kube-api-burst", self.kube_api_burst.is_some()),
            ("kube-api-qps", self.kube_api_qps.is_some()),
            ("bind-address", self.bind_address.is_some()),
            ("healthz-bind-address", self.healthz_bind_address.is_some()),
            ("metrics-bind-address", self.metrics_bind_address.is_some()),
            (
                "bind-address-hard-fail",
                self.bind_address_hard_fail.is_some(),
            ),
            ("profiling", self.profiling.is_some()),
            (
                "show-hidden-metrics-for-version",
                self.show_hidden_metrics_for_version.is_some(),
            ),
            ("proxy-mode", self.proxy_mode.is_some()),
            (
                "iptables-masquerade-bit",
                self.iptables_masquerade_bit.is_some(),
            ),
            ("masquerade-all", self.masquerade_all.is_some()),
            (
                "iptables-localhost-nodeports",
                self.iptables_localhost_nodeports.is_some(),
            ),
            ("iptables-sync-period", self.iptables_sync_period.is_some()),
            (
                "iptables-min-sync-period",
                self.iptables_min_sync_period.is_some(),
            ),
            ("ipvs-sync-period", self.ipvs_sync_period.is_some()),
            ("ipvs-min-sync-period", self.ipvs_min_sync_period.is_some()),
            ("ipvs-scheduler", self.ipvs_scheduler.is_some()),
            ("ipvs-exclude-cidrs", self.ipvs_exclude_cidrs.is_some()),
            ("ipvs-strict-arp", self.ipvs_strict_arp.is_some()),
            ("ipvs-tcp-timeout", self.ipvs_tcp_timeout.is_some()),
            ("ipvs-tcpfin-timeout", self.ipvs_tcpfin_timeout.is_some()),
            ("ipvs-udp-timeout", self.ipvs_udp_timeout.is_some()),
            ("detect-local-mode", self.detect_local_mode.is_some()),
            ("pod-bridge-interface", self.pod_bridge_interface.is_some()),
            (
                "pod-interface-name-prefix",
                self.pod_interface_name_prefix.is_some(),
            ),
            ("cluster-cidr", self.cluster_cidr.is_some()),
            ("nodeport-addresses", self.nodeport_addresses.is_some()),
            ("oom-score-adj", self.oom_score_adj.is_some()),
            (
                "conntrack-max-per-core",
                self.conntrack_max_per_core.is_some(),
            ),
            ("conntrack-min", self.conntrack_min.is_some()),
            (
                "conntrack-tcp-timeout-established",
                self.conntrack_tcp_timeout_established.is_some(),
            ),
            (
                "conntrack-tcp-timeout-close-wait",
                self.conntrack_tcp_timeout_close_wait.is_some(),
            ),
            (
                "conntrack-tcp-be-liberal",
                self.conntrack_tcp_be_liberal.is_some(),
            ),
            (
                "conntrack-udp-timeout",
                self.conntrack_udp_timeout.is_some(),
            ),
        ];
        let mut given: Vec<&'static str> =
            checks.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect();
        for (name, g) in [
            (
                "conntrack-udp-timeout-stream",
                self.conntrack_udp_timeout_stream.is_some(),
            ),
            ("config-sync-period", self.config_sync_period.is_some()),
            ("healthz-port", self.healthz_port.is_some()),
            ("metrics-port", self.metrics_port.is_some()),
        ] {
            if g {
                given.push(name);
            }
        }
        given
    }
}
