//! Exposed names, labels, buckets and movement of the metrics.

use super::*;
use IpFamily::{V4, V6};

/// Every upstream metric as exposed (sample base name) with its type.
const UPSTREAM: &[(&str, &str)] = &[
    ("kubeproxy_sync_proxy_rules_duration_seconds", "histogram"),
    (
        "kubeproxy_sync_full_proxy_rules_duration_seconds",
        "histogram",
    ),
    (
        "kubeproxy_sync_partial_proxy_rules_duration_seconds",
        "histogram",
    ),
    ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge"),
    (
        "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
        "gauge",
    ),
    (
        "kubeproxy_network_programming_duration_seconds",
        "histogram",
    ),
    (
        "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
        "gauge",
    ),
    (
        "kubeproxy_sync_proxy_rules_endpoint_changes_total",
        "counter",
    ),
    (
        "kubeproxy_sync_proxy_rules_service_changes_pending",
        "gauge",
    ),
    (
        "kubeproxy_sync_proxy_rules_service_changes_total",
        "counter",
    ),
    ("kubeproxy_sync_proxy_rules_iptables_total", "gauge"),
    ("kubeproxy_sync_proxy_rules_iptables_last", "gauge"),
    (
        "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
        "counter",
    ),
    (
        "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
        "counter",
    ),
    (
        "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
        "counter",
    ),
    (
        "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total",
        "counter",
    ),
    (
        "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
        "gauge",
    ),
    ("kubeproxy_proxy_healthz_total", "counter"),
    ("kubeproxy_proxy_livez_total", "counter"),
    (
        "kubeproxy_conntrack_reconciler_sync_duration_seconds",
        "histogram",
    ),
    (
        "kubeproxy_conntrack_reconciler_deleted_entries_total",
        "counter",
    ),
    (
        "kubeproxy_iptables_ct_state_invalid_dropped_packets_total",
        "counter",
    ),
    (
        "kubeproxy_iptables_localhost_nodeports_accepted_packets_total",
        "counter",
    ),
];

/// Touches every metric once so labelled families have samples.
fn exercised() -> Metrics {
    let m = Metrics::new();
    m.observe_sync(V4, SyncKind::Full, Duration::from_millis(3));
    m.observe_sync(V4, SyncKind::Partial, Duration::from_millis(1));
    m.set_last_sync_at(V4, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    m.set_last_queued_at(V4, UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
    m.observe_network_programming(V4, Duration::from_millis(700));
    m.set_pending_changes(2, 5);
    m.add_changes(3, 7);
    m.set_iptables_rule_counts(V4, "nat", 42);
    m.set_iptables_rules_last(V4, "filter", 9);
    m.inc_restore_failure(V4, false);
    m.inc_restore_failure(V4, true);
    m.inc_nftables_sync_failure(V6);
    m.inc_nftables_cleanup_failure(V6);
    m.set_no_local_endpoints(V4, TrafficPolicy::Internal, 1);
    m.inc_healthz(200);
    m.inc_livez(503);
    m.inc_sync_failure(V6, "nftables");
    m.observe_kernel_time(V4, Duration::from_millis(4));
    m.observe_conntrack_reconcile(V4, Duration::from_millis(20), 4);
    m.set_iptables_nfacct_packets(Some(11), Some(12));
    m
}

/// The value of the sample named exactly `series` (name plus label set as encoded).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn sample_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn exposed_sample_names_equal_upstream() {
    let text = exercised().encode_openmetrics().unwrap();
    let names = sample_names(&text);
    for (name, kind) in UPSTREAM {
        let want = if *kind == "histogram" {
            format!("{name}_bucket")
        } else {
            name.to_string()
        };
        assert!(names.contains(&want), "{want} not exposed in:\n{text}");
    }
    for name in &names {
        assert!(
            name.starts_with("kubeproxy_") && !name.starts_with("kubeproxy_rs_")
                || name.starts_with("kubeproxy_rs_"),
            "unexpected metric {name}"
        );
    }
    assert!(names.contains(&"kubeproxy_rs_sync_failures_total".to_string()));
}

#[test]
fn prometheus_text_types_name_the_exposed_metric() {
    let text = exercised().encode_prometheus_text().unwrap();
    for (name, kind) in UPSTREAM {
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n")),
            "# TYPE {name} {kind} missing in:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} [ALPHA] ")),
            "# HELP {name} missing"
        );
    }
    assert!(!text.contains("# EOF"));
    // Unlabelled metrics are exposed before anything happened.
    let fresh = Metrics::new().encode_prometheus_text().unwrap();
    assert_eq!(
        sample(&fresh, "kubeproxy_sync_proxy_rules_service_changes_total"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &fresh,
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending"
        ),
        Some(0.0)
    );
}

#[test]
fn labels_follow_upstream() {
    let text = exercised().encode_openmetrics().unwrap();
    let cases = [
        ("kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"}", 2.0),
        ("kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"}", 1.0),
        ("kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"}", 1.0),
        ("kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"}", 1_700_000_000.0),
        ("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family=\"IPv4\"}", 1_700_000_000.5),
        ("kubeproxy_network_programming_duration_seconds_count{ip_family=\"IPv4\"}", 1.0),
        ("kubeproxy_sync_proxy_rules_service_changes_pending", 2.0),
        ("kubeproxy_sync_proxy_rules_endpoint_changes_pending", 5.0),
        ("kubeproxy_sync_proxy_rules_service_changes_total", 3.0),
        ("kubeproxy_sync_proxy_rules_endpoint_changes_total", 7.0),
        ("kubeproxy_sync_proxy_rules_iptables_total{ip_family=\"IPv4\",table=\"nat\"}", 42.0),
        ("kubeproxy_sync_proxy_rules_iptables_last{ip_family=\"IPv4\",table=\"filter\"}", 9.0),
        ("kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family=\"IPv4\"}", 1.0),
        ("kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family=\"IPv4\"}", 1.0),
        ("kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv6\"}", 1.0),
        ("kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total{ip_family=\"IPv6\"}", 1.0),
        ("kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family=\"IPv4\",traffic_policy=\"internal\"}", 1.0),
        ("kubeproxy_proxy_healthz_total{code=\"200\"}", 1.0),
        ("kubeproxy_proxy_livez_total{code=\"503\"}", 1.0),
        ("kubeproxy_rs_sync_failures_total{ip_family=\"IPv6\",mode=\"nftables\"}", 1.0),
        ("kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_count{ip_family=\"IPv4\"}", 1.0),
        ("kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_sum{ip_family=\"IPv4\"}", 0.004),
        ("kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family=\"IPv4\"}", 4.0),
        ("kubeproxy_conntrack_reconciler_sync_duration_seconds_count{ip_family=\"IPv4\"}", 1.0),
        ("kubeproxy_iptables_ct_state_invalid_dropped_packets_total", 11.0),
        ("kubeproxy_iptables_localhost_nodeports_accepted_packets_total", 12.0),
    ];
    for (series, want) in cases {
        assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
    }
}

#[test]
fn counters_and_gauges_move() {
    let m = Metrics::new();
    let healthz_200 = "kubeproxy_proxy_healthz_total{code=\"200\"}";
    m.inc_healthz(200);
    m.inc_healthz(200);
    m.inc_healthz(503);
    m.add_changes(1, 0);
    m.add_changes(2, 4);
    m.inc_restore_failure(V6, true);
    m.inc_restore_failure(V6, true);
    m.set_iptables_rule_counts(V4, "nat", 10);
    m.set_iptables_rule_counts(V4, "nat", 8);
    m.set_no_local_endpoints(V6, TrafficPolicy::External, 3);
    m.set_no_local_endpoints(V6, TrafficPolicy::External, 0);
    let text = m.encode_openmetrics().unwrap();
    assert_eq!(sample(&text, healthz_200), Some(2.0));
    assert_eq!(
        sample(&text, "kubeproxy_proxy_healthz_total{code=\"503\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "kubeproxy_sync_proxy_rules_service_changes_total"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "kubeproxy_sync_proxy_rules_endpoint_changes_total"),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family=\"IPv6\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family=\"IPv6\"}"
        ),
        None
    );
    assert_eq!(
        sample(
            &text,
            "kubeproxy_sync_proxy_rules_iptables_total{ip_family=\"IPv4\",table=\"nat\"}"
        ),
        Some(8.0)
    );
    assert_eq!(
        sample(&text, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family=\"IPv6\",traffic_policy=\"external\"}"),
        Some(0.0)
    );
}

#[test]
fn histogram_buckets_match_upstream() {
    let m = Metrics::new();
    m.observe_sync(V4, SyncKind::Full, Duration::from_millis(5));
    m.observe_network_programming(V4, Duration::from_secs(61));
    m.observe_conntrack_reconcile(V6, Duration::from_millis(2), 0);
    let text = m.encode_openmetrics().unwrap();
    let buckets = |name: &str| -> Vec<f64> {
        let prefix = format!("{name}_bucket{{");
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect()
    };
    let sync = buckets("kubeproxy_sync_proxy_rules_duration_seconds");
    let mut want: Vec<f64> = (0..15).map(|i| 0.001 * f64::from(1u32 << i)).collect();
    want.push(f64::INFINITY);
    assert_eq!(sync, want);
    assert_eq!(
        buckets("kubeproxy_sync_full_proxy_rules_duration_seconds"),
        want
    );

    let np = buckets("kubeproxy_network_programming_duration_seconds");
    assert_eq!(np.len(), 1 + 2 + 59 + 12 + 7 + 1);
    assert_eq!(&np[..5], &[0.0, 0.25, 0.5, 1.0, 2.0]);
    assert!(np.contains(&59.0) && np.contains(&115.0) && np.contains(&150.0));
    assert_eq!(np[np.len() - 2], 300.0);
    // 61 s lands in the 65 s bucket, not the 60 s one.
    let count_at = |le: &str| {
        sample(&text, &format!("kubeproxy_network_programming_duration_seconds_bucket{{le=\"{le}\",ip_family=\"IPv4\"}}"))
    };
    assert_eq!(count_at("60.0"), Some(0.0));
    assert_eq!(count_at("65.0"), Some(1.0));
}

#[test]
fn nfacct_counters_expose_only_what_was_read() {
    let m = Metrics::new();
    let names = |m: &Metrics| sample_names(&m.encode_openmetrics().unwrap());
    assert!(!names(&m)
        .iter()
        .any(|n| n.starts_with("kubeproxy_iptables_")));
    m.set_iptables_nfacct_packets(None, Some(3));
    let text = m.encode_openmetrics().unwrap();
    assert_eq!(
        sample(
            &text,
            "kubeproxy_iptables_localhost_nodeports_accepted_packets_total"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "kubeproxy_iptables_ct_state_invalid_dropped_packets_total"
        ),
        None
    );
    m.set_iptables_nfacct_packets(Some(7), Some(5));
    let text = m.encode_prometheus_text().unwrap();
    assert!(
        text.contains("# TYPE kubeproxy_iptables_ct_state_invalid_dropped_packets_total counter\n")
    );
    assert_eq!(
        sample(
            &text,
            "kubeproxy_iptables_localhost_nodeports_accepted_packets_total"
        ),
        Some(5.0)
    );
}
