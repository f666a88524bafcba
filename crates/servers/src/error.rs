//! The error type of this crate, one variant per step that can fail.

use std::io;
use std::net::SocketAddr;

use crate::NamespacedName;

/// Errors of kube-proxy-servers.
#[derive(Debug, thiserror::Error)]
pub enum ServersError {
    /// Binding the listening socket of a server failed (address in use, no such address, permission).
    #[error("binding the {server} server to {addr} failed: {source}")]
    Bind {
        server: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Reading back the bound address of a listener failed.
    #[error("reading the bound address of the {server} server failed: {source}")]
    LocalAddr {
        server: &'static str,
        #[source]
        source: io::Error,
    },
    /// Opening the health-check node port of a service failed; retried on the next `sync_services`.
    #[error("starting the health check of service {service} on {addr} failed: {source}")]
    BindHealthCheck {
        service: NamespacedName,
        port: u16,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}
