//! kube-proxy-rs' iptables dataplane.
//!
//! Two halves: a pure renderer ([`render`]) that turns a [`kube_proxy_model::ProxyState`] into
//! `iptables-restore` text with upstream kube-proxy's exact chain and rule layout, and a thin applier
//! ([`IptablesDataplane`]) that feeds that text to `iptables-restore --noflush` through the [`IptablesExec`]
//! seam. Only `exec.rs` and `sysctl.rs` touch the system. See README.md for chains, hooks and guarantees.
#![forbid(unsafe_code)]

pub mod applier;
mod base;
pub mod chains;
mod cleanup;
mod config;
mod error;
pub mod exec;
mod jumps;
mod render;
mod services;
pub mod sim;
pub mod sysctl;

pub use applier::{IptablesDataplane, SyncKind, SyncReport, CANARY_CHECK_PERIOD, FULL_SYNC_PERIOD};
pub use cleanup::{cleanup, cleanup_host};
pub use config::{LocalDetector, NodePortAddresses, RenderConfig, RenderScope};
pub use error::IptablesError;
pub use exec::{choose_backend, detect_backend, Backend, IptablesExec, RealExec, Table};
pub use render::{render, RenderedRules, LARGE_CLUSTER_ENDPOINTS_THRESHOLD};
pub use services::probability;
pub use sysctl::{ProcSysctl, Sysctl};
