//! kube-proxy-bench: scale benchmarks of the real kube-proxy-rs binary. As root, in network namespaces it
//! creates and removes, it serves N Services × M endpoints through the test kit's API server to the proxy in a
//! chosen mode and measures the initial sync, single changes, CPU and peak RSS, the kernel floor (the bare tool
//! loading the same ruleset) and the dataplane (new connections via a ClusterIP vs the pod IP).
//!
//! The binary (`kube-proxy-bench`) runs a matrix and writes JSON and markdown; [`run_once`] is one run, which
//! the smoke test calls directly.
#![forbid(unsafe_code)]

pub mod config;
pub mod dataplane;
pub mod error;
pub mod floor;
pub mod kernel;
pub mod proxy;
pub mod report;
pub mod run;
pub mod stats;
pub mod workload;

pub use config::{BenchConfig, Variant};
pub use error::{BenchError, Result};
pub use run::{run_once, ChangeResult, RunResult};
