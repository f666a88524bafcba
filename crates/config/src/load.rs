//! The loading pipeline: defaults, then either the `--config` file or the flags (never both,
//! as upstream), then platform defaults, `--hostname-override`, validation, and typing.
//!
//! Upstream's precedence, reproduced here: when `--config` is given, the file replaces every
//! config-bound flag (they are ignored; we warn about each one given). Still applied on top
//! of a file: the logging flags (`-v`, `--vmodule`, `--logging-format`,
//! `--log-flush-frequency`), `--hostname-override`, `--master`, `--cleanup`, `--init-only`,
//! `--write-config-to`, and this project's own flags.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{FromArgMatches, Parser};

use crate::error::ConfigError;
use crate::file::read_config_file;
use crate::flags::{string_slice, ProxyFlags};
use crate::internal::Internal;
use crate::typed::{DetectLocal, ProxyConfig};
use crate::v1alpha1::{append_port_if_needed, KubeProxyConfiguration, HEALTHZ_PORT, METRICS_PORT};
use crate::validation::validate;

/// The result of loading: the typed config, the effective v1alpha1 object, and notes.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What the binary and the dataplanes run with.
    pub config: ProxyConfig,
    /// The effective configuration in v1alpha1 form: for `/configz` (serde_json) and for
    /// `--write-config-to` (YAML).
    pub raw: KubeProxyConfiguration,
    /// Things worth logging at startup (lenient decoding, ignored flags, no cluster CIDR).
    pub warnings: Vec<String>,
    /// `--write-config-to`: write `raw` there (see [`crate::write_config_file`]) and exit 0.
    pub write_config_to: Option<PathBuf>,
}

/// A stand-alone `kube-proxy` command line (no subcommands), for [`load`] and tests.
#[derive(Debug, Parser)]
#[command(
    name = "kube-proxy",
    about = "The Kubernetes network proxy runs on each node."
)]
struct KubeProxyCli {
    #[command(flatten)]
    flags: ProxyFlags,
}

/// Parses a kube-proxy command line (the first item is the program name) and resolves it.
pub fn load<I, T>(args: I) -> Result<Loaded, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let flags = parse_flags(args)?;
    resolve(&flags)
}

/// Parses a command line into [`ProxyFlags`] only.
pub fn parse_flags<I, T>(args: I) -> Result<ProxyFlags, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = <KubeProxyCli as clap::CommandFactory>::command().try_get_matches_from(args)?;
    Ok(KubeProxyCli::from_arg_matches(&matches)?.flags)
}

/// Resolves parsed flags (and the `--config` file they name) into a validated configuration.
pub fn resolve(flags: &ProxyFlags) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let mut internal;
    if let Some(path) = &flags.config {
        let decoded = read_config_file(path)?;
        warnings.extend(decoded.warnings);
        let mut file = decoded.config;
        file.set_defaults();
        internal = Internal::from_v1alpha1(file);
        let ignored = flags.config_bound_flags_given();
        if !ignored.is_empty() {
            warnings.push(format!(
                "flags ignored because --config is set: --{}",
                ignored.join(", --")
            ));
        }
    } else {
        internal = Internal::from_v1alpha1(KubeProxyConfiguration::defaulted());
        apply_config_flags(&mut internal, flags);
        if flags.write_config_to.is_none() {
            let v = &mut internal.v;
            v.healthz_bind_address = address_from_port(
                &v.healthz_bind_address,
                flags.healthz_port.unwrap_or(HEALTHZ_PORT),
            );
            v.metrics_bind_address = address_from_port(
                &v.metrics_bind_address,
                flags.metrics_port.unwrap_or(METRICS_PORT),
            );
        }
        apply_sync_and_cidr_flags(&mut internal, flags);
    }
    apply_logging_flags(&mut internal, flags);
    internal.apply_platform_defaults();
    if let Some(name) = &flags.hostname_override {
        let trimmed = name.trim();
        if !name.is_empty() {
            if trimmed.is_empty() {
                return Err(ConfigError::HostnameOverride);
            }
            internal.v.hostname_override = trimmed.to_lowercase();
        }
    }
    let file_name = &internal.v.hostname_override;
    if !file_name.is_empty() && file_name.trim().is_empty() {
        return Err(ConfigError::HostnameOverride);
    }
    let errs = validate(&internal);
    if !errs.is_empty() {
        return Err(ConfigError::Validate(errs));
    }
    let config = ProxyConfig::from_internal(&internal, flags);
    if matches!(&config.detect_local, DetectLocal::ClusterCidr(c) if c.is_empty()) {
        warnings.push(
            "detect-local-mode is ClusterCIDR but no cluster CIDR is set: traffic from pods is not told apart".into(),
        );
    }
    Ok(Loaded {
        config,
        raw: internal.to_v1alpha1(),
        warnings,
        write_config_to: flags.write_config_to.clone(),
    })
}

impl Loaded {
    /// Does what `--write-config-to` asks, if it was given: writes [`Loaded::raw`] as YAML and
    /// returns `true` (the binary then exits 0). Returns `false` when the flag is absent.
    pub fn write_config_if_requested(&self) -> Result<bool, ConfigError> {
        match &self.write_config_to {
            Some(path) => crate::file::write_config_file(&self.raw, path).map(|()| true),
            None => Ok(false),
        }
    }
}

/// Upstream's deprecated `--healthz-port`/`--metrics-port` handling: port 0 disables the
/// server, otherwise a bare IP gets the port.
fn address_from_port(addr: &str, port: u16) -> String {
    if port == 0 {
        String::new()
    } else {
        append_port_if_needed(addr, port)
    }
}

/// Flags bound directly to configuration fields (used only without `--config`).
fn apply_config_flags(c: &mut Internal, f: &ProxyFlags) {
    let v = &mut c.v;
    for gates in &f.feature_gates {
        for (name, on) in gates {
            v.feature_gates.insert(name.clone(), *on);
        }
    }
    fn set<T: Clone>(target: &mut T, value: &Option<T>) {
        if let Some(x) = value {
            *target = x.clone();
        }
    }
    set(&mut v.client_connection.kubeconfig, &f.kubeconfig);
    set(
        &mut v.client_connection.content_type,
        &f.kube_api_content_type,
    );
    set(&mut v.client_connection.burst, &f.kube_api_burst);
    set(&mut v.client_connection.qps, &f.kube_api_qps);
    set(&mut v.bind_address, &f.bind_address);
    set(&mut v.healthz_bind_address, &f.healthz_bind_address);
    set(&mut v.metrics_bind_address, &f.metrics_bind_address);
    set(&mut v.bind_address_hard_fail, &f.bind_address_hard_fail);
    set(&mut v.enable_profiling, &f.profiling);
    set(
        &mut v.show_hidden_metrics_for_version,
        &f.show_hidden_metrics_for_version,
    );
    set(&mut v.mode, &f.proxy_mode);
    if f.iptables_masquerade_bit.is_some() {
        v.iptables.masquerade_bit = f.iptables_masquerade_bit;
    }
    set(&mut c.masquerade_all, &f.masquerade_all);
    if f.iptables_localhost_nodeports.is_some() {
        v.iptables.localhost_node_ports = f.iptables_localhost_nodeports;
    }
    set(&mut v.ipvs.scheduler, &f.ipvs_scheduler);
    if let Some(list) = &f.ipvs_exclude_cidrs {
        v.ipvs.exclude_cidrs = Some(string_slice(list));
    }
    set(&mut v.ipvs.strict_arp, &f.ipvs_strict_arp);
    set(&mut v.ipvs.tcp_timeout, &f.ipvs_tcp_timeout);
    set(&mut v.ipvs.tcp_fin_timeout, &f.ipvs_tcpfin_timeout);
    set(&mut v.ipvs.udp_timeout, &f.ipvs_udp_timeout);
    set(&mut v.detect_local_mode, &f.detect_local_mode);
    set(
        &mut v.detect_local.bridge_interface,
        &f.pod_bridge_interface,
    );
    set(
        &mut v.detect_local.interface_name_prefix,
        &f.pod_interface_name_prefix,
    );
    if let Some(list) = &f.nodeport_addresses {
        v.node_port_addresses = Some(string_slice(list));
    }
    if f.oom_score_adj.is_some() {
        v.oom_score_adj = f.oom_score_adj;
    }
    let ct = &mut v.conntrack;
    if f.conntrack_max_per_core.is_some() {
        ct.max_per_core = f.conntrack_max_per_core;
    }
    if f.conntrack_min.is_some() {
        ct.min = f.conntrack_min;
    }
    if f.conntrack_tcp_timeout_established.is_some() {
        ct.tcp_established_timeout = f.conntrack_tcp_timeout_established;
    }
    if f.conntrack_tcp_timeout_close_wait.is_some() {
        ct.tcp_close_wait_timeout = f.conntrack_tcp_timeout_close_wait;
    }
    set(&mut ct.tcp_be_liberal, &f.conntrack_tcp_be_liberal);
    set(&mut ct.udp_timeout, &f.conntrack_udp_timeout);
    set(&mut ct.udp_stream_timeout, &f.conntrack_udp_timeout_stream);
    set(&mut v.config_sync_period, &f.config_sync_period);
}

/// Upstream's `processV1Alpha1Flags`: the per-backend sync flags count only for their mode
/// (the iptables ones for every mode but ipvs), and `--cluster-cidr` is split on commas.
fn apply_sync_and_cidr_flags(c: &mut Internal, f: &ProxyFlags) {
    let ipvs = c.v.mode == "ipvs";
    let (sync, min_sync) = if ipvs {
        (f.ipvs_sync_period, f.ipvs_min_sync_period)
    } else {
        (f.iptables_sync_period, f.iptables_min_sync_period)
    };
    if let Some(d) = sync {
        c.sync_period = d;
    }
    if let Some(d) = min_sync {
        c.min_sync_period = d;
    }
    if let Some(cidrs) = &f.cluster_cidr {
        c.cluster_cidrs = cidrs.split(',').map(str::to_string).collect();
    }
}

/// Logging flags win over the file, as upstream's `copyLogsFromFlags`.
fn apply_logging_flags(c: &mut Internal, f: &ProxyFlags) {
    let l = &mut c.v.logging;
    if let Some(v) = f.verbosity {
        l.verbosity = v;
    }
    if let Some(fmt) = &f.logging_format {
        l.format = fmt.clone();
    }
    if let Some(d) = f.log_flush_frequency {
        l.flush_frequency = d;
    }
    if let Some(vm) = &f.vmodule {
        let mut items: Vec<serde_json::Value> = Vec::new();
        for part in vm.split(',').filter(|p| !p.is_empty()) {
            let (pattern, level) = part.split_once('=').unwrap_or((part, "0"));
            items.push(serde_json::json!({
                "filePattern": pattern,
                "verbosity": level.parse::<u32>().unwrap_or(0),
            }));
        }
        if let Some(serde_json::Value::Array(existing)) = &l.vmodule {
            items.extend(existing.iter().cloned());
        }
        l.vmodule = Some(serde_json::Value::Array(items));
    }
}
