//! The crate's error type: only parsing the inputs (rule text, packet descriptions) can fail; tracing never does.

/// What went wrong, named after the step that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// A line of iptables-save / iptables-restore text could not be understood.
    #[error("parse rules, line {line}: {message}")]
    ParseRules { line: usize, message: String },
    /// A packet description (address, port, protocol) could not be understood.
    #[error("parse packet: {0}")]
    ParsePacket(String),
}
