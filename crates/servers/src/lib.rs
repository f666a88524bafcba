//! kube-proxy-servers: the HTTP endpoints kube-proxy exposes, with upstream's paths, bodies and headers.
//!
//! - [`serve_healthz`]: the proxy health server (`--healthz-bind-address`, default :10256): `/healthz` and
//!   `/livez` as JSON, 200 or 503, counted in `kubeproxy_proxy_healthz_total` / `kubeproxy_proxy_livez_total`.
//! - [`serve_metrics`]: the metrics server (`--metrics-bind-address`, default 127.0.0.1:10249): `/metrics`,
//!   `/proxyMode`, `/configz`, a plain `/healthz` and `/statusz` ([`serve_metrics_with_status`]: HTML, or JSON
//!   on `Accept: application/json`, from a `kube_proxy_telemetry::StatusBoard`).
//! - [`ServiceHealthServer`]: one listener per `healthCheckNodePort` of `externalTrafficPolicy: Local`
//!   services, answering load balancers' probes from the local endpoint count.
//!
//! Every server runs as a tokio task owned by a [`RunningServer`]; binding failures are returned as typed
//! [`ServersError`]s, never panics. The state served lives in `kube-proxy-telemetry`.
#![forbid(unsafe_code)]

mod error;
mod healthz;
mod metrics_server;
mod running;
mod service_health;
mod statusz;

pub use error::ServersError;
pub use healthz::{health_body, serve_healthz, Probe};
pub use metrics_server::{serve_metrics, serve_metrics_with_status};
pub use running::RunningServer;
pub use service_health::{
    service_health_body, ListenAddresses, NamespacedName, ServiceHealthServer,
};
pub use statusz::{statusz_html, statusz_json};
