//! `/statusz` on the metrics server: what this node last programmed, from a [`StatusBoard`].
//!
//! HTML for people by default; JSON when the request's Accept header names `application/json`. Both show the
//! mode, the last full and partial sync per family, the dataplane's rule or element counts and, per service
//! port, the Cluster and Local endpoint sets this node uses. Rendering is pure ([`statusz_json`],
//! [`statusz_html`]); this module only reads the board.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kube_proxy_model::IpFamily;
use kube_proxy_telemetry::go_time::rfc3339_nano;
use kube_proxy_telemetry::{FamilyStatus, ServiceStatus, StatusBoard, StatusSnapshot};
use serde_json::{json, Value};

/// The axum handler behind `/statusz`.
pub(crate) async fn statusz_handler(
    State(board): State<Arc<StatusBoard>>,
    headers: HeaderMap,
) -> Response {
    let snap = board.snapshot();
    let wants_json = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    let (body, content_type) = if wants_json {
        (
            statusz_json(&snap).to_string(),
            "application/json; charset=utf-8",
        )
    } else {
        (statusz_html(&snap), "text/html; charset=utf-8")
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

fn family_name(f: IpFamily) -> &'static str {
    match f {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    }
}

fn time(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339_nano(t)))
}

fn service_json(s: &ServiceStatus) -> Value {
    json!({
        "name": s.name,
        "protocol": s.protocol,
        "clusterIP": s.cluster_ip.to_string(),
        "port": s.port,
        "nodePort": s.node_port,
        "externalIPs": s.external_ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "loadBalancerIPs": s.load_balancer_ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "internalTrafficPolicy": if s.internal_policy_local { "Local" } else { "Cluster" },
        "externalTrafficPolicy": if s.external_policy_local { "Local" } else { "Cluster" },
        "healthCheckNodePort": s.health_check_node_port,
        "sessionAffinity": if s.session_affinity_timeout.is_some() { "ClientIP" } else { "None" },
        "sessionAffinityTimeoutSeconds": s.session_affinity_timeout,
        "clusterEndpoints": s.cluster_endpoints,
        "localEndpoints": s.local_endpoints,
        "totalEndpoints": s.total_endpoints,
    })
}

fn family_json(f: &FamilyStatus) -> Value {
    let counts: serde_json::Map<String, Value> = f
        .counts
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "family": family_name(f.family),
        "lastFullSync": time(f.last_full_sync),
        "lastPartialSync": time(f.last_partial_sync),
        "fullSyncs": f.full_syncs,
        "partialSyncs": f.partial_syncs,
        "counts": counts,
        "podCIDRs": f.pod_cidrs,
        "services": f.services.iter().map(service_json).collect::<Vec<_>>(),
    })
}

/// The JSON document of `/statusz`.
pub fn statusz_json(snap: &StatusSnapshot) -> Value {
    json!({
        "mode": snap.mode,
        "currentTime": rfc3339_nano(snap.now),
        "families": snap.families.iter().map(family_json).collect::<Vec<_>>(),
    })
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time_text(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "never".to_string(), rfc3339_nano)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "<em>none</em>".to_string()
    } else {
        esc(&items.join(", "))
    }
}

fn affinity(s: &ServiceStatus) -> String {
    match s.session_affinity_timeout {
        Some(secs) => format!("ClientIP ({secs} s)"),
        None => "None".to_string(),
    }
}

fn addresses(s: &ServiceStatus) -> String {
    let mut parts = vec![format!("{}:{}", s.cluster_ip, s.port)];
    if let Some(np) = s.node_port {
        parts.push(format!("nodePort {np}"));
    }
    parts.extend(s.external_ips.iter().map(|i| format!("externalIP {i}")));
    parts.extend(s.load_balancer_ips.iter().map(|i| format!("LB {i}")));
    esc(&parts.join(", "))
}

/// The HTML page of `/statusz`.
pub fn statusz_html(snap: &StatusSnapshot) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kube-proxy-rs statusz</title>\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style></head><body>\n\
         <h1>kube-proxy-rs status</h1>\n<p>Mode: <b>{}</b>. Current time: {}.</p>\n",
        esc(&snap.mode),
        rfc3339_nano(snap.now)
    );
    if snap.families.is_empty() {
        h.push_str("<p>No successful sync yet.</p>\n");
    }
    for f in &snap.families {
        let _ = write!(
            h,
            "<h2>{}</h2>\n<p>Last full sync: {} ({} so far). Last partial sync: {} ({} so far).</p>\n",
            family_name(f.family),
            time_text(f.last_full_sync),
            f.full_syncs,
            time_text(f.last_partial_sync),
            f.partial_syncs
        );
        let _ = writeln!(h, "<p>Pod CIDRs: {}.</p>", list(&f.pod_cidrs));
        h.push_str("<table><tr><th>counted</th><th>number</th></tr>\n");
        for (k, v) in &f.counts {
            let _ = writeln!(h, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
        }
        h.push_str(
            "</table>\n<table><tr><th>service port</th><th>protocol</th><th>addresses</th>\
                    <th>policies (internal / external)</th><th>session affinity</th>\
                    <th>cluster endpoints</th><th>local endpoints</th></tr>\n",
        );
        for s in &f.services {
            let _ =
                writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.name),
                esc(&s.protocol),
                addresses(s),
                if s.internal_policy_local { "Local" } else { "Cluster" },
                if s.external_policy_local { "Local" } else { "Cluster" },
                affinity(s),
                list(&s.cluster_endpoints),
                list(&s.local_endpoints),
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
