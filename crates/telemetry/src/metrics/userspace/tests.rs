//! What the userspace collector exposes: names, labels, values read at scrape time, and nothing for gone ports.

use std::sync::{Arc, Mutex};

use kube_proxy_model::IpFamily;

use super::{UserspaceCollector, UserspaceServiceSample};
use crate::Metrics;

fn web(family: IpFamily, active: u64, bytes_in: u64) -> UserspaceServiceSample {
    UserspaceServiceSample {
        family,
        service: "default/web:http".into(),
        protocol: "TCP".into(),
        active_connections: active,
        accepted: 4,
        bytes_in,
        bytes_out: 20,
        dial_failures: 2,
        no_endpoint_drops: 1,
        over_limit_drops: 0,
        failed_endpoints: vec![("10.0.0.9:8080".into(), 2)],
    }
}

/// Metrics with a collector whose samples the test sets; returns both.
fn with_source() -> (Metrics, Arc<Mutex<Vec<UserspaceServiceSample>>>) {
    let m = Metrics::new();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let source = samples.clone();
    m.register_collector(Box::new(UserspaceCollector::new(move || {
        source.lock().unwrap().clone()
    })));
    (m, samples)
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

const L4: &str = r#"ip_family="IPv4",service="default/web:http",protocol="TCP""#;

#[test]
fn every_counter_is_exposed_with_service_labels() {
    let (m, samples) = with_source();
    *samples.lock().unwrap() = vec![web(IpFamily::V4, 3, 10)];
    let text = m.encode_openmetrics().unwrap();
    let cases = [
        (format!("kubeproxy_rs_userspace_active_connections{{{L4}}}"), 3.0),
        (format!("kubeproxy_rs_userspace_accepted_connections_total{{{L4}}}"), 4.0),
        (format!("kubeproxy_rs_userspace_bytes_total{{{L4},direction=\"in\"}}"), 10.0),
        (format!("kubeproxy_rs_userspace_bytes_total{{{L4},direction=\"out\"}}"), 20.0),
        (format!("kubeproxy_rs_userspace_dial_failures_total{{{L4}}}"), 2.0),
        (
            format!("kubeproxy_rs_userspace_dropped_connections_total{{{L4},reason=\"no_endpoint\"}}"),
            1.0,
        ),
        (
            format!("kubeproxy_rs_userspace_dropped_connections_total{{{L4},reason=\"over_limit\"}}"),
            0.0,
        ),
        (
            format!(
                "kubeproxy_rs_userspace_endpoint_dial_failures_total{{{L4},endpoint=\"10.0.0.9:8080\"}}"
            ),
            2.0,
        ),
    ];
    for (series, want) in cases {
        assert_eq!(value(&text, &series), Some(want), "{series} in:\n{text}");
    }
    assert!(text.contains("# TYPE kubeproxy_rs_userspace_active_connections gauge\n"));
    assert!(text.contains("# TYPE kubeproxy_rs_userspace_bytes counter\n"));
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    // The upstream metrics are still there.
    assert!(text.contains("kubeproxy_sync_proxy_rules_service_changes_total 0"));
}

#[test]
fn values_are_read_at_scrape_time() {
    let (m, samples) = with_source();
    *samples.lock().unwrap() = vec![web(IpFamily::V4, 1, 10)];
    let series = format!("kubeproxy_rs_userspace_bytes_total{{{L4},direction=\"in\"}}");
    assert_eq!(value(&m.encode_openmetrics().unwrap(), &series), Some(10.0));
    *samples.lock().unwrap() = vec![web(IpFamily::V4, 0, 99), web(IpFamily::V6, 2, 5)];
    let text = m.encode_openmetrics().unwrap();
    assert_eq!(value(&text, &series), Some(99.0));
    let v6 = r#"ip_family="IPv6",service="default/web:http",protocol="TCP""#;
    assert_eq!(
        value(
            &text,
            &format!("kubeproxy_rs_userspace_active_connections{{{v6}}}")
        ),
        Some(2.0)
    );
    // One descriptor per metric even with two families.
    assert_eq!(
        text.matches("# TYPE kubeproxy_rs_userspace_active_connections ")
            .count(),
        1
    );
}

#[test]
fn gone_service_ports_disappear() {
    let (m, samples) = with_source();
    *samples.lock().unwrap() = vec![web(IpFamily::V4, 1, 1)];
    assert!(m
        .encode_openmetrics()
        .unwrap()
        .contains("kubeproxy_rs_userspace_"));
    samples.lock().unwrap().clear();
    let text = m.encode_openmetrics().unwrap();
    assert!(!text.contains("kubeproxy_rs_userspace_"), "{text}");
    let prom = m.encode_prometheus_text().unwrap();
    assert!(!prom.contains("# EOF"));
}

#[test]
fn prometheus_text_names_counters_with_total() {
    let (m, samples) = with_source();
    *samples.lock().unwrap() = vec![web(IpFamily::V4, 1, 1)];
    let text = m.encode_prometheus_text().unwrap();
    assert!(
        text.contains("# TYPE kubeproxy_rs_userspace_dial_failures_total counter\n"),
        "{text}"
    );
}
