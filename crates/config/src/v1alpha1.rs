//! The on-disk `kubeproxy.config.k8s.io/v1alpha1` KubeProxyConfiguration: serde types with
//! upstream's exact keys, and upstream's v1alpha1 defaulting. Fields are declared in the
//! alphabetical order of their keys so written YAML reads like upstream's (which sorts keys).
//! Nothing here validates; see `validation`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::GoDuration;

/// The API group/version this crate reads and writes.
pub const API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";
/// The only kind accepted.
pub const KIND: &str = "KubeProxyConfiguration";

/// A KubeProxyConfiguration as written in a `--config` file (and served on /configz).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KubeProxyConfiguration {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    #[serde(rename = "bindAddress")]
    pub bind_address: String,
    #[serde(rename = "bindAddressHardFail")]
    pub bind_address_hard_fail: bool,
    #[serde(rename = "clientConnection")]
    pub client_connection: ClientConnection,
    /// Comma-separated pod CIDRs (at most one per IP family).
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: String,
    #[serde(rename = "configSyncPeriod")]
    pub config_sync_period: GoDuration,
    #[serde(rename = "conntrack")]
    pub conntrack: Conntrack,
    #[serde(rename = "detectLocal")]
    pub detect_local: DetectLocal,
    #[serde(rename = "detectLocalMode")]
    pub detect_local_mode: String,
    #[serde(rename = "enableProfiling")]
    pub enable_profiling: bool,
    #[serde(rename = "featureGates", skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    #[serde(rename = "healthzBindAddress")]
    pub healthz_bind_address: String,
    #[serde(rename = "hostnameOverride")]
    pub hostname_override: String,
    #[serde(rename = "iptables")]
    pub iptables: IptablesSection,
    #[serde(rename = "ipvs")]
    pub ipvs: IpvsSection,
    #[serde(rename = "kind")]
    pub kind: String,
    #[serde(rename = "logging")]
    pub logging: Logging,
    #[serde(rename = "metricsBindAddress")]
    pub metrics_bind_address: String,
    #[serde(rename = "mode")]
    pub mode: String,
    #[serde(rename = "nftables")]
    pub nftables: NftablesSection,
    /// CIDRs, or the single word `primary`; empty means all local addresses.
    #[serde(rename = "nodePortAddresses")]
    pub node_port_addresses: Option<Vec<String>>,
    #[serde(rename = "oomScoreAdj", skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// Deprecated and unused by the iptables/ipvs/nftables proxiers; kept for compatibility.
    #[serde(rename = "portRange")]
    pub port_range: String,
    #[serde(rename = "showHiddenMetricsForVersion")]
    pub show_hidden_metrics_for_version: String,
    #[serde(rename = "windowsRunAsService", skip_serializing_if = "is_false")]
    pub windows_run_as_service: bool,
    #[serde(rename = "winkernel")]
    pub winkernel: Winkernel,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Go prints a whole float32 without a fraction (`qps: 5`); keep that look.
fn qps_like_go<S: serde::Serializer>(qps: &f32, s: S) -> Result<S::Ok, S::Error> {
    if qps.fract() == 0.0 && qps.abs() < 1e9 {
        s.serialize_i64(*qps as i64)
    } else {
        s.serialize_f32(*qps)
    }
}

/// `clientConnection`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientConnection {
    #[serde(rename = "acceptContentTypes")]
    pub accept_content_types: String,
    #[serde(rename = "burst")]
    pub burst: i32,
    #[serde(rename = "contentType")]
    pub content_type: String,
    #[serde(rename = "kubeconfig")]
    pub kubeconfig: String,
    #[serde(rename = "qps", serialize_with = "qps_like_go")]
    pub qps: f32,
}

/// `conntrack`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Conntrack {
    #[serde(rename = "maxPerCore", skip_serializing_if = "Option::is_none")]
    pub max_per_core: Option<i32>,
    #[serde(rename = "min", skip_serializing_if = "Option::is_none")]
    pub min: Option<i32>,
    #[serde(rename = "tcpBeLiberal")]
    pub tcp_be_liberal: bool,
    #[serde(
        rename = "tcpCloseWaitTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_close_wait_timeout: Option<GoDuration>,
    #[serde(
        rename = "tcpEstablishedTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_established_timeout: Option<GoDuration>,
    #[serde(rename = "udpStreamTimeout")]
    pub udp_stream_timeout: GoDuration,
    #[serde(rename = "udpTimeout")]
    pub udp_timeout: GoDuration,
}

/// `detectLocal`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectLocal {
    #[serde(rename = "bridgeInterface")]
    pub bridge_interface: String,
    #[serde(rename = "interfaceNamePrefix")]
    pub interface_name_prefix: String,
}

/// `iptables`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IptablesSection {
    #[serde(rename = "localhostNodePorts", skip_serializing_if = "Option::is_none")]
    pub localhost_node_ports: Option<bool>,
    #[serde(rename = "masqueradeAll")]
    pub masquerade_all: bool,
    #[serde(rename = "masqueradeBit", skip_serializing_if = "Option::is_none")]
    pub masquerade_bit: Option<i32>,
    #[serde(rename = "minSyncPeriod")]
    pub min_sync_period: GoDuration,
    /// Accepted from newer upstream files; not used.
    #[serde(rename = "snatNodeInternalIP", skip_serializing_if = "Option::is_none")]
    pub snat_node_internal_ip: Option<bool>,
    #[serde(rename = "syncPeriod")]
    pub sync_period: GoDuration,
}

/// `ipvs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpvsSection {
    #[serde(rename = "excludeCIDRs")]
    pub exclude_cidrs: Option<Vec<String>>,
    #[serde(rename = "minSyncPeriod")]
    pub min_sync_period: GoDuration,
    #[serde(rename = "scheduler")]
    pub scheduler: String,
    #[serde(rename = "strictARP")]
    pub strict_arp: bool,
    #[serde(rename = "syncPeriod")]
    pub sync_period: GoDuration,
    #[serde(rename = "tcpFinTimeout")]
    pub tcp_fin_timeout: GoDuration,
    #[serde(rename = "tcpTimeout")]
    pub tcp_timeout: GoDuration,
    #[serde(rename = "udpTimeout")]
    pub udp_timeout: GoDuration,
}

/// `nftables`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NftablesSection {
    #[serde(rename = "masqueradeAll")]
    pub masquerade_all: bool,
    #[serde(rename = "masqueradeBit", skip_serializing_if = "Option::is_none")]
    pub masquerade_bit: Option<i32>,
    #[serde(rename = "minSyncPeriod")]
    pub min_sync_period: GoDuration,
    #[serde(rename = "syncPeriod")]
    pub sync_period: GoDuration,
}

/// `winkernel`: accepted and carried so files written for Windows still load; unused on Linux.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Winkernel {
    #[serde(rename = "enableDSR")]
    pub enable_dsr: bool,
    #[serde(rename = "forwardHealthCheckVip")]
    pub forward_health_check_vip: bool,
    #[serde(rename = "networkName")]
    pub network_name: String,
    #[serde(rename = "rootHnsEndpointName")]
    pub root_hns_endpoint_name: String,
    #[serde(rename = "sourceVip")]
    pub source_vip: String,
}

/// `logging` (component-base LoggingConfiguration). `vmodule` and `options` are carried as
/// opaque values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Logging {
    #[serde(rename = "flushFrequency", deserialize_with = "duration_or_nanos")]
    pub flush_frequency: GoDuration,
    #[serde(rename = "format")]
    pub format: String,
    #[serde(rename = "options", skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    #[serde(rename = "verbosity")]
    pub verbosity: u32,
    #[serde(rename = "vmodule", skip_serializing_if = "Option::is_none")]
    pub vmodule: Option<serde_json::Value>,
}

/// `flushFrequency` may be a duration string or an integer count of nanoseconds.
fn duration_or_nanos<'de, D: serde::Deserializer<'de>>(d: D) -> Result<GoDuration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Nanos(i64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Nanos(n) => Ok(GoDuration(n)),
        Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

/// Appends `port` to `addr` when it is a bare IP; anything else is returned unchanged.
pub(crate) fn append_port_if_needed(addr: &str, port: u16) -> String {
    if split_host_port(addr).is_some() {
        return addr.to_string();
    }
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => format!("{ip}:{port}"),
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Err(_) => addr.to_string(),
    }
}

/// Splits `host:port` / `[host]:port` like Go's `net.SplitHostPort` (host not checked).
pub(crate) fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return (!port.contains(':')).then_some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    (!host.contains(':') && !host.contains('[')).then_some((host, port))
}

/// The health and metrics ports used when an address has none.
pub const HEALTHZ_PORT: u16 = 10256;
/// See [`HEALTHZ_PORT`].
pub const METRICS_PORT: u16 = 10249;

impl KubeProxyConfiguration {
    /// Fills every unset field with upstream's v1alpha1 default, in place. Zero durations and
    /// empty strings count as unset, as upstream's defaulting treats them.
    pub fn set_defaults(&mut self) {
        if self.bind_address.is_empty() {
            self.bind_address = "0.0.0.0".into();
        }
        let ipv4 = matches!(self.bind_address.parse(), Ok(std::net::IpAddr::V4(_)));
        let (healthz_host, metrics_host) = if ipv4 {
            ("0.0.0.0", "127.0.0.1")
        } else {
            ("[::]", "[::1]")
        };
        self.healthz_bind_address = if self.healthz_bind_address.is_empty() {
            format!("{healthz_host}:{HEALTHZ_PORT}")
        } else {
            append_port_if_needed(&self.healthz_bind_address, HEALTHZ_PORT)
        };
        self.metrics_bind_address = if self.metrics_bind_address.is_empty() {
            format!("{metrics_host}:{METRICS_PORT}")
        } else {
            append_port_if_needed(&self.metrics_bind_address, METRICS_PORT)
        };
        self.oom_score_adj.get_or_insert(-999);
        default_zero(&mut self.iptables.sync_period, GoDuration::from_secs(30));
        default_zero(&mut self.iptables.min_sync_period, GoDuration::from_secs(1));
        self.iptables.masquerade_bit.get_or_insert(14);
        self.iptables.localhost_node_ports.get_or_insert(true);
        default_zero(&mut self.ipvs.sync_period, GoDuration::from_secs(30));
        default_zero(&mut self.nftables.sync_period, GoDuration::from_secs(30));
        default_zero(&mut self.nftables.min_sync_period, GoDuration::from_secs(1));
        self.nftables.masquerade_bit.get_or_insert(14);
        self.conntrack.max_per_core.get_or_insert(32 * 1024);
        self.conntrack.min.get_or_insert(128 * 1024);
        self.conntrack
            .tcp_established_timeout
            .get_or_insert(GoDuration::from_secs(24 * 3600));
        self.conntrack
            .tcp_close_wait_timeout
            .get_or_insert(GoDuration::from_secs(3600));
        default_zero(&mut self.config_sync_period, GoDuration::from_secs(15 * 60));
        if self.client_connection.content_type.is_empty() {
            self.client_connection.content_type = "application/vnd.kubernetes.protobuf".into();
        }
        if self.client_connection.qps == 0.0 {
            self.client_connection.qps = 5.0;
        }
        if self.client_connection.burst == 0 {
            self.client_connection.burst = 10;
        }
        if self.logging.format.is_empty() {
            self.logging.format = "text".into();
        }
        default_zero(&mut self.logging.flush_frequency, GoDuration::from_secs(5));
        if self.logging.options.is_none() {
            self.logging.options = Some(serde_json::json!({
                "json": {"infoBufferSize": "0"},
                "text": {"infoBufferSize": "0"},
            }));
        }
        self.api_version = API_VERSION.into();
        self.kind = KIND.into();
    }

    /// A fully defaulted configuration, as `kube-proxy --write-config-to` starts from.
    pub fn defaulted() -> Self {
        let mut c = KubeProxyConfiguration::default();
        c.set_defaults();
        c
    }
}

fn default_zero(d: &mut GoDuration, default: GoDuration) {
    if d.0 == 0 {
        *d = default;
    }
}
