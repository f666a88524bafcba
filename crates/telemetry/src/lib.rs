//! kube-proxy-telemetry: what kube-proxy reports about itself, without serving it.
//!
//! - [`Metrics`]: a prometheus-client registry holding every upstream `kubeproxy_*` metric (same exposed names,
//!   types, labels and buckets) plus a few clearly prefixed `kubeproxy_rs_*` extras, and its text encodings.
//! - [`ProxyHealth`]: upstream's proxy health state machine (per-family last update / oldest queued update,
//!   node eligibility, timeout of 2 × syncPeriod), evaluated as a pure function of a clock.
//! - [`status::StatusBoard`]: the last programmed services, endpoints and rule counts per family (`/statusz`).
//! - [`go_time`]: timestamps formatted the way Go's `encoding/json` writes a `time.Time`.
//!
//! This crate performs no I/O and has no HTTP: `kube-proxy-servers` serves what is here.
#![forbid(unsafe_code)]

mod clock;
mod error;
pub mod go_time;
mod health;
mod metrics;
pub mod status;

pub use clock::{Clock, FakeClock, SystemClock};
pub use error::TelemetryError;
pub use health::{FamilyHealth, HealthStatus, NodeInfo, ProxyHealth, TO_BE_DELETED_TAINT};
pub use metrics::{
    family_label, Metrics, SyncKind, TrafficPolicy, UserspaceCollector, UserspaceServiceSample,
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE,
};
pub use status::{FamilyStatus, ServiceStatus, StatusBoard, StatusSnapshot};
