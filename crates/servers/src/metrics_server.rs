//! The metrics server (`--metrics-bind-address`): `/metrics`, `/proxyMode`, `/configz` and a plain `/healthz`,
//! like upstream's `serveMetrics` mux (minus profiling and flagz), plus `/statusz` (see [`crate::statusz`]).
//!
//! `/metrics` answers OpenMetrics when the scraper's Accept header asks for it and the classic Prometheus text
//! format otherwise, as Go's client library does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use kube_proxy_telemetry::{
    Metrics, StatusBoard, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE,
};

use crate::healthz::json;
use crate::running::{bind, RunningServer};
use crate::statusz::statusz_handler;
use crate::ServersError;

/// The key upstream's configz handler files kube-proxy's configuration under.
const CONFIGZ_KEY: &str = "kubeproxy.config.k8s.io";

#[derive(Clone)]
struct MetricsState {
    metrics: Arc<Metrics>,
    proxy_mode: Arc<str>,
    configz: Arc<str>,
}

/// Binds `addr` and serves `/metrics` from `metrics`, `/proxyMode` as `proxy_mode`, `/configz` as
/// `{"kubeproxy.config.k8s.io": configz}` and `/healthz` as `ok`. `/statusz` shows an empty board; use
/// [`serve_metrics_with_status`] to show what the proxy programs.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    proxy_mode: String,
    configz: serde_json::Value,
) -> Result<RunningServer, ServersError> {
    let status = Arc::new(StatusBoard::new(proxy_mode.clone()));
    serve_metrics_with_status(addr, metrics, proxy_mode, configz, status).await
}

/// Like [`serve_metrics`], with `/statusz` rendered from `status`.
pub async fn serve_metrics_with_status(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    proxy_mode: String,
    configz: serde_json::Value,
    status: Arc<StatusBoard>,
) -> Result<RunningServer, ServersError> {
    let listener = bind("metrics", addr).await?;
    let configz = serde_json::json!({ CONFIGZ_KEY: configz }).to_string();
    let state = MetricsState {
        metrics,
        proxy_mode: proxy_mode.into(),
        configz: configz.into(),
    };
    let router = Router::new()
        .route("/metrics", any(metrics_handler))
        .route("/proxyMode", any(proxy_mode_handler))
        .route("/configz", any(configz_handler))
        .route("/healthz", any(healthz_ok))
        .with_state(state)
        .merge(
            Router::new()
                .route("/statusz", any(statusz_handler))
                .with_state(status),
        );
    RunningServer::spawn("metrics", listener, router)
}

async fn metrics_handler(State(st): State<MetricsState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (encoded, content_type) = if openmetrics {
        (st.metrics.encode_openmetrics(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (
            st.metrics.encode_prometheus_text(),
            PROMETHEUS_TEXT_CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(body) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn proxy_mode_handler(State(st): State<MetricsState>) -> Response {
    text(st.proxy_mode.to_string())
}

async fn configz_handler(State(st): State<MetricsState>) -> Response {
    json(StatusCode::OK, st.configz.to_string())
}

async fn healthz_ok() -> Response {
    text("ok".to_string())
}

fn text(body: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
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
