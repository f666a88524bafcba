//! Object sources of kube-proxy-rs: where Services, EndpointSlices and this node's Node come from.
//!
//! [`api`] watches the Kubernetes API with kube-runtime; [`manifests`] reads a directory of YAML/JSON files.
//! Both feed a [`ChangeTracker`], which tells the sync runner when something changed and hands out consistent
//! snapshots only after every kind finished its initial list. [`events`] posts kube-proxy's own Events (node
//! `Starting`, failed health-check node ports). This crate does not build proxy state.
#![forbid(unsafe_code)]

pub mod api;
mod error;
pub mod events;
pub mod manifests;
pub mod tracker;
pub mod trim;

pub use api::{run_api_sources, run_api_sources_with, ApiSourceOptions, PROXY_LABEL_SELECTOR};
pub use error::SourceError;
pub use events::{EventError, EventRecorder};
pub use manifests::{load_manifests, run_manifest_source, ManifestWarning};
pub use tracker::{Change, ChangeCounters, ChangeTracker, ObjectKind};
pub use trim::Trim;
