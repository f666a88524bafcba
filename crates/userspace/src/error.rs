//! The error type of the userspace proxy: one variant per step that can fail while opening a listener.
//!
//! Data-path failures (a backend that refuses, a client that resets) are not errors of this type: they are logged
//! and counted in the per-service metrics, because they concern one connection, never the proxy.

use std::io;
use std::net::SocketAddr;

use kube_proxy_model::{Protocol, ServicePortName};

/// Why a listener for a service address could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UserspaceError {
    /// `socket(2)` failed.
    #[error("creating {protocol} socket for {addr}: {source}")]
    CreateSocket {
        addr: SocketAddr,
        protocol: Protocol,
        source: io::Error,
    },
    /// A socket option (SO_REUSEADDR, IPV6_V6ONLY, IP_FREEBIND) could not be set.
    #[error("setting {option} on {protocol} socket for {addr}: {source}")]
    SetSocketOption {
        addr: SocketAddr,
        protocol: Protocol,
        option: &'static str,
        source: io::Error,
    },
    /// `bind(2)` failed (address in use, or not local and FREEBIND unavailable).
    #[error("binding {protocol} listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        protocol: Protocol,
        source: io::Error,
    },
    /// `listen(2)` failed, or the socket could not be registered with the runtime.
    #[error("listening on {protocol} {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        protocol: Protocol,
        source: io::Error,
    },
    /// The service port uses a protocol this mode does not proxy (SCTP, as upstream's userspace mode).
    #[error("{service}: protocol {protocol} is not supported by the userspace proxy")]
    UnsupportedProtocol {
        service: ServicePortName,
        protocol: Protocol,
    },
}
