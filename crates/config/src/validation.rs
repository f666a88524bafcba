//! Validation of the merged configuration, before anything touches the kernel. Rules follow
//! upstream's `pkg/proxy/apis/config/validation`; field paths use v1alpha1 spelling
//! (`iptables.masqueradeBit`, `conntrack.min`, `nodePortAddresses[1]`, ...), and the sync
//! period fields are reported under the section of the active mode.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::duration::GoDuration;
use crate::error::{quote, FieldError};
use crate::internal::{sync_section, Internal};
use crate::v1alpha1::split_host_port;

/// Proxy modes accepted on Linux (`userspace` is this project's addition).
pub const VALID_MODES: &[&str] = &["iptables", "ipvs", "nftables", "userspace"];
/// Local-traffic detection modes.
pub const DETECT_LOCAL_MODES: &[&str] = &[
    "ClusterCIDR",
    "NodeCIDR",
    "BridgeInterface",
    "InterfaceNamePrefix",
    "",
];

fn dur(d: GoDuration) -> String {
    quote(&d.to_string())
}

fn non_negative(errs: &mut Vec<FieldError>, field: &str, d: GoDuration) {
    if d.is_negative() {
        errs.push(FieldError::invalid(
            field,
            dur(d),
            "must be greater than or equal to 0",
        ));
    }
}

fn masquerade_bit(errs: &mut Vec<FieldError>, field: &str, bit: Option<i32>) {
    if let Some(b) = bit.filter(|b| !(0..=31).contains(b)) {
        errs.push(FieldError::invalid(
            field,
            b.to_string(),
            "must be within the range [0, 31]",
        ));
    }
}

/// Parses a CIDR the way Go's `net.ParseCIDR` accepts it (host bits may be set).
pub(crate) fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok()
}

/// Checks the whole configuration; an empty list means valid.
pub(crate) fn validate(c: &Internal) -> Vec<FieldError> {
    let v = &c.v;
    let mut errs = Vec::new();

    masquerade_bit(
        &mut errs,
        "iptables.masqueradeBit",
        v.iptables.masquerade_bit,
    );
    match v.mode.as_str() {
        "ipvs" => {
            non_negative(&mut errs, "ipvs.tcpTimeout", v.ipvs.tcp_timeout);
            non_negative(&mut errs, "ipvs.tcpFinTimeout", v.ipvs.tcp_fin_timeout);
            non_negative(&mut errs, "ipvs.udpTimeout", v.ipvs.udp_timeout);
            for (i, cidr) in v.ipvs.exclude_cidrs.iter().flatten().enumerate() {
                if parse_cidr(cidr).is_none() {
                    errs.push(FieldError::invalid(
                        format!("ipvs.excludeCIDRs[{i}]"),
                        quote(cidr),
                        "must be a valid CIDR",
                    ));
                }
            }
        }
        "nftables" => masquerade_bit(
            &mut errs,
            "nftables.masqueradeBit",
            v.nftables.masquerade_bit,
        ),
        _ => {}
    }

    let ct = &v.conntrack;
    for (field, value) in [
        ("conntrack.maxPerCore", ct.max_per_core),
        ("conntrack.min", ct.min),
    ] {
        if let Some(n) = value.filter(|n| *n < 0) {
            errs.push(FieldError::invalid(
                field,
                n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    non_negative(
        &mut errs,
        "conntrack.tcpEstablishedTimeout",
        ct.tcp_established_timeout.unwrap_or_default(),
    );
    non_negative(
        &mut errs,
        "conntrack.tcpCloseWaitTimeout",
        ct.tcp_close_wait_timeout.unwrap_or_default(),
    );
    non_negative(&mut errs, "conntrack.udpTimeout", ct.udp_timeout);
    non_negative(
        &mut errs,
        "conntrack.udpStreamTimeout",
        ct.udp_stream_timeout,
    );
    if let Some(adj) = v.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
        errs.push(FieldError::invalid(
            "oomScoreAdj",
            adj.to_string(),
            "must be within the range [-1000, 1000]",
        ));
    }

    if !v.mode.is_empty() && !VALID_MODES.contains(&v.mode.as_str()) {
        errs.push(FieldError::invalid(
            "mode",
            quote(&v.mode),
            format!(
                "must be {} or blank (blank means the best-available proxy [currently iptables])",
                VALID_MODES.join(", ")
            ),
        ));
    }
    if v.client_connection.burst < 0 {
        errs.push(FieldError::invalid(
            "clientConnection.burst",
            v.client_connection.burst.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if v.config_sync_period.0 <= 0 {
        errs.push(FieldError::invalid(
            "configSyncPeriod",
            dur(v.config_sync_period),
            "must be greater than 0",
        ));
    }

    let prefix = sync_section(&v.mode);
    if c.sync_period.0 <= 0 {
        errs.push(FieldError::invalid(
            format!("{prefix}.syncPeriod"),
            dur(c.sync_period),
            "must be greater than 0",
        ));
    }
    if c.min_sync_period.is_negative() {
        errs.push(FieldError::invalid(
            format!("{prefix}.minSyncPeriod"),
            dur(c.min_sync_period),
            "must be greater than or equal to 0",
        ));
    }
    if c.min_sync_period > c.sync_period {
        errs.push(FieldError::invalid(
            format!("{prefix}.syncPeriod"),
            dur(c.min_sync_period),
            format!("must be greater than or equal to {prefix}.minSyncPeriod"),
        ));
    }

    if v.bind_address.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            "bindAddress",
            quote(&v.bind_address),
            "not a valid textual representation of an IP address",
        ));
    }
    if !v.healthz_bind_address.is_empty() {
        validate_host_port(&mut errs, "healthzBindAddress", &v.healthz_bind_address);
    }
    validate_host_port(&mut errs, "metricsBindAddress", &v.metrics_bind_address);

    if parse_port_range(&v.port_range).is_none() {
        errs.push(FieldError::invalid(
            "portRange",
            quote(&v.port_range),
            "must be a valid port range (e.g. 300-2000)",
        ));
    }
    validate_node_port_addresses(
        &mut errs,
        v.node_port_addresses.as_deref().unwrap_or_default(),
    );
    if !v.show_hidden_metrics_for_version.is_empty()
        && !is_major_minor(&v.show_hidden_metrics_for_version)
    {
        errs.push(FieldError::invalid(
            "showHiddenMetricsForVersion",
            quote(&v.show_hidden_metrics_for_version),
            "must be in the format <major>.<minor>, e.g. 1.16",
        ));
    }

    if !DETECT_LOCAL_MODES.contains(&v.detect_local_mode.as_str()) {
        errs.push(FieldError::not_supported(
            "detectLocalMode",
            &v.detect_local_mode,
            DETECT_LOCAL_MODES,
        ));
    }
    match v.detect_local_mode.as_str() {
        "BridgeInterface" if v.detect_local.bridge_interface.is_empty() => {
            errs.push(FieldError::invalid(
                "detectLocal.bridgeInterface",
                quote(""),
                "must not be empty",
            ));
        }
        "InterfaceNamePrefix" if v.detect_local.interface_name_prefix.is_empty() => {
            errs.push(FieldError::invalid(
                "detectLocal.interfaceNamePrefix",
                quote(""),
                "must not be empty",
            ));
        }
        "ClusterCIDR" if !c.cluster_cidrs.is_empty() => {
            validate_cluster_cidrs(&mut errs, &c.cluster_cidrs)
        }
        _ => {}
    }
    if !matches!(v.logging.format.as_str(), "text" | "json") {
        errs.push(FieldError::invalid(
            "logging.format",
            quote(&v.logging.format),
            "Unsupported log format",
        ));
    }
    errs
}

fn validate_host_port(errs: &mut Vec<FieldError>, field: &str, input: &str) {
    let Some((host, port)) = split_host_port(input) else {
        errs.push(FieldError::invalid(field, quote(input), "must be IP:port"));
        return;
    };
    if host.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            field,
            quote(host),
            "must be a valid IP",
        ));
    }
    if !matches!(port.parse::<u32>(), Ok(1..=65535)) {
        errs.push(FieldError::invalid(
            field,
            quote(port),
            "must be a valid port",
        ));
    }
}

fn validate_node_port_addresses(errs: &mut Vec<FieldError>, addrs: &[String]) {
    for (i, a) in addrs.iter().enumerate() {
        let field = format!("nodePortAddresses[{i}]");
        if a == "primary" {
            if i != 0 || addrs.len() != 1 {
                errs.push(FieldError::invalid(
                    field,
                    quote(a),
                    "can't use both 'primary' and CIDRs",
                ));
            }
            break;
        }
        if parse_cidr(a).is_none() {
            errs.push(FieldError::invalid(field, quote(a), "must be a valid CIDR"));
        }
    }
}

fn validate_cluster_cidrs(errs: &mut Vec<FieldError>, cidrs: &[String]) {
    let joined = quote(&cidrs.join(","));
    const PAIR: &str =
        "must be a either a single CIDR or dual-stack pair of CIDRs (e.g. [10.100.0.0/16, fde4:8dba:82e1::/48]";
    if cidrs.len() > 2 {
        errs.push(FieldError::invalid("clusterCIDR", joined, PAIR));
        return;
    }
    let parsed: Vec<Option<IpNet>> = cidrs.iter().map(|s| parse_cidr(s)).collect();
    if parsed.iter().any(Option::is_none) {
        errs.push(FieldError::invalid(
            "clusterCIDR",
            joined,
            "must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)",
        ));
        return;
    }
    if let [Some(a), Some(b)] = parsed.as_slice() {
        if matches!(a, IpNet::V4(_)) == matches!(b, IpNet::V4(_)) {
            errs.push(FieldError::invalid("clusterCIDR", joined, PAIR));
        }
    }
}

/// Parses `""`, `N`, `N-M` or `N+K` like Kubernetes' PortRange; `Some((0,0))` for empty.
pub(crate) fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    if s.is_empty() {
        return Some((0, 0));
    }
    let (lo, hi) = if let Some((a, b)) = s.split_once('-') {
        (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)
    } else if let Some((a, b)) = s.split_once('+') {
        let lo = a.parse::<u16>().ok()?;
        (lo, lo.checked_add(b.parse::<u16>().ok()?)?)
    } else {
        let p = s.parse::<u16>().ok()?;
        (p, p)
    };
    (lo <= hi).then_some((lo, hi))
}

fn is_major_minor(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}
