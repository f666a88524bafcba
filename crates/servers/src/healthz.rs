//! The proxy health server: `/healthz` and `/livez` (pkg/proxy/healthcheck/proxy_health.go behaviour).
//!
//! Both answer JSON `{"lastUpdated", "currentTime", ["nodeEligible",] "healthy", "status": {family: {...}}}`
//! with Go's time format. `/healthz` is 200 only when every proxier is healthy and the node is eligible;
//! `/livez` ignores the node and omits `nodeEligible`. On 200, `lastUpdated` is the current time (upstream
//! keeps that for compatibility with old releases). Each response is counted by status code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use kube_proxy_telemetry::{family_label, go_time, HealthStatus, Metrics, ProxyHealth};
use serde::Serialize;

use crate::running::{bind, RunningServer};
use crate::ServersError;

/// Which probe a body answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Healthz,
    Livez,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FamilyBody {
    last_updated: String,
    healthy: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthBody {
    last_updated: String,
    current_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_eligible: Option<bool>,
    healthy: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    status: BTreeMap<&'static str, FamilyBody>,
}

/// The HTTP status and JSON body upstream would answer `probe` with, given `status`.
pub fn health_body(status: &HealthStatus, probe: Probe) -> (StatusCode, String) {
    let ok = match probe {
        Probe::Healthz => status.healthz_ok(),
        Probe::Livez => status.livez_ok(),
    };
    let last_updated = if ok {
        go_time::rfc3339_nano(status.current_time)
    } else {
        status
            .last_updated
            .map_or_else(|| go_time::ZERO_TIME.to_string(), go_time::rfc3339_nano)
    };
    let body = HealthBody {
        last_updated,
        current_time: go_time::rfc3339_nano(status.current_time),
        node_eligible: (probe == Probe::Healthz).then_some(status.node_eligible),
        healthy: status.healthy,
        status: status
            .families
            .iter()
            .map(|(family, f)| {
                let body = FamilyBody {
                    last_updated: go_time::rfc3339_nano(f.last_updated),
                    healthy: f.healthy,
                };
                (family_label(*family), body)
            })
            .collect(),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Serializing plain strings and booleans cannot fail.
    (code, serde_json::to_string(&body).unwrap_or_default())
}

#[derive(Clone)]
struct HealthzState {
    health: Arc<ProxyHealth>,
    metrics: Arc<Metrics>,
}

/// Binds `addr` and serves `/healthz` and `/livez` from `health`, counting responses in `metrics`.
pub async fn serve_healthz(
    addr: SocketAddr,
    health: Arc<ProxyHealth>,
    metrics: Arc<Metrics>,
) -> Result<RunningServer, ServersError> {
    let listener = bind("healthz", addr).await?;
    let router = Router::new()
        .route("/healthz", any(healthz))
        .route("/livez", any(livez))
        .with_state(HealthzState { health, metrics });
    RunningServer::spawn("healthz", listener, router)
}

async fn healthz(State(st): State<HealthzState>) -> Response {
    let (code, body) = health_body(&st.health.status(), Probe::Healthz);
    st.metrics.inc_healthz(code.as_u16());
    json(code, body)
}

async fn livez(State(st): State<HealthzState>) -> Response {
    let (code, body) = health_body(&st.health.status(), Probe::Livez);
    st.metrics.inc_livez(code.as_u16());
    json(code, body)
}

pub(crate) fn json(code: StatusCode, body: String) -> Response {
    (
        code,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_model::IpFamily;
    use kube_proxy_telemetry::FamilyHealth;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64, nanos: u32) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn bodies_match_upstream_shape() {
        let mut status = HealthStatus {
            healthy: true,
            node_eligible: true,
            last_updated: Some(at(1_700_000_000, 0)),
            current_time: at(1_700_000_010, 500_000_000),
            families: BTreeMap::from([(
                IpFamily::V4,
                FamilyHealth {
                    last_updated: at(1_700_000_000, 0),
                    healthy: true,
                },
            )]),
        };
        let (code, body) = health_body(&status, Probe::Healthz);
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            body,
            r#"{"lastUpdated":"2023-11-14T22:13:30.5Z","currentTime":"2023-11-14T22:13:30.5Z","nodeEligible":true,"healthy":true,"status":{"IPv4":{"lastUpdated":"2023-11-14T22:13:20Z","healthy":true}}}"#
        );

        status.node_eligible = false;
        let (code, body) = health_body(&status, Probe::Healthz);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with(r#"{"lastUpdated":"2023-11-14T22:13:20Z","#),
            "{body}"
        );
        assert!(
            body.contains(r#""nodeEligible":false,"healthy":true"#),
            "{body}"
        );

        let (code, body) = health_body(&status, Probe::Livez);
        assert_eq!(code, StatusCode::OK);
        assert!(!body.contains("nodeEligible"), "{body}");

        let fresh = HealthStatus {
            healthy: true,
            node_eligible: true,
            last_updated: None,
            current_time: at(0, 0),
            families: BTreeMap::new(),
        };
        let (_, body) = health_body(
            &HealthStatus {
                healthy: false,
                ..fresh
            },
            Probe::Livez,
        );
        assert_eq!(
            body,
            r#"{"lastUpdated":"0001-01-01T00:00:00Z","currentTime":"1970-01-01T00:00:00Z","healthy":false}"#
        );
    }
}
