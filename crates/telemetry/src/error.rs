//! The error type of this crate: only encoding the registry can fail.

/// Errors of kube-proxy-telemetry, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Writing the registry as OpenMetrics text failed.
    #[error("encoding metrics as text failed: {0}")]
    EncodeMetrics(#[from] std::fmt::Error),
}
