//! The benchmark's error type: one variant per step that can fail.

use kube_proxy_testkit::apiserver::ApiServerError;
use kube_proxy_testkit::netns::NetnsError;

/// What went wrong during a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The benchmark must run as root (namespaces, iptables, nft).
    #[error("the benchmark needs root")]
    NotRoot,
    /// The proxy binary given does not exist.
    #[error("proxy binary {0} not found (build it with `cargo build --release -p kube-proxy-rs`)")]
    MissingBinary(String),
    /// Building a namespace, link or route failed.
    #[error("setting up namespaces: {0}")]
    Namespaces(#[from] NetnsError),
    /// Starting the test API server or loading objects into it failed.
    #[error("test API server: {0}")]
    ApiServer(#[from] ApiServerError),
    /// Writing the manifests directory or the rendered rules failed.
    #[error("writing {what}: {source}")]
    WriteFile {
        what: String,
        source: std::io::Error,
    },
    /// `kube-proxy-rs render` failed.
    #[error("kube-proxy-rs render: {0}")]
    Render(String),
    /// Loading the rendered rules with the bare tool failed.
    #[error("kernel floor ({tool}): {message}")]
    KernelFloor { tool: String, message: String },
    /// The proxy process could not be started or exited early.
    #[error("proxy process: {0}")]
    Proxy(String),
    /// The proxy never programmed what was expected in time.
    #[error("timed out waiting for {what} (proxy log tail:\n{log})")]
    Timeout { what: String, log: String },
    /// Reading the kernel's rules failed.
    #[error("reading the kernel's rules: {0}")]
    KernelRead(String),
    /// The dataplane probe could not connect.
    #[error("dataplane probe: {0}")]
    Dataplane(String),
    /// The proxy mode asked for is not supported by the benchmark.
    #[error("unsupported mode {0}")]
    UnsupportedMode(String),
}

/// Result alias of this crate.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
