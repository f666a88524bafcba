//! The TCP side of a portal: accept clients, pick and dial a backend (retrying the next endpoint on failure or
//! timeout), then relay until both directions end.
//!
//! Each connection is its own task holding the service runtime, so it outlives its listener, the service's
//! removal and its endpoint's removal: it ends only when its peers end it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::metrics::ServiceMetrics;
use crate::portal::PortalKind;
use crate::service::ServiceRuntime;

/// Pause after an accept error (e.g. out of file descriptors) so that it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts forever; each client gets its own task.
pub(crate) async fn serve(listener: TcpListener, kind: PortalKind, rt: Arc<ServiceRuntime>) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(handle(client, peer, kind, Arc::clone(&rt)));
            }
            Err(e) => {
                tracing::warn!(service = %rt.spec.load().name, error = %e, "userspace proxy: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

async fn handle(client: TcpStream, peer: SocketAddr, kind: PortalKind, rt: Arc<ServiceRuntime>) {
    let Some(_active) = rt.admit() else {
        tracing::debug!(service = %rt.spec.load().name, client = %peer, "userspace proxy: connection limit reached");
        return;
    };
    let Some(backend) = dial(&rt, kind, peer).await else {
        ServiceMetrics::add(&rt.metrics.no_endpoint_drops, 1);
        tracing::debug!(service = %rt.spec.load().name, client = %peer, "userspace proxy: no backend reachable");
        return;
    };
    // Small writes are forwarded as they come; Nagle would only add latency on top of the client's own.
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let config = &rt.config;
    if let Some(size) = config.socket_buffer_size {
        for s in [&client, &backend] {
            if let Err(e) = crate::socket::set_buffer_sizes(s, size) {
                tracing::debug!(service = %rt.spec.load().name, client = %peer, error = %e, "userspace proxy: cannot size socket buffers");
            }
        }
    }
    if let Err(e) = crate::relay::relay(
        client,
        backend,
        &rt.metrics,
        config.copy_buffer_size,
        config.use_splice,
    )
    .await
    {
        tracing::debug!(service = %rt.spec.load().name, client = %peer, error = %e, "userspace proxy: connection ended with an error");
    }
}

/// Tries the candidate endpoints in order; the first that accepts within the dial timeout wins.
async fn dial(rt: &ServiceRuntime, kind: PortalKind, peer: SocketAddr) -> Option<TcpStream> {
    let client_ip = peer.ip();
    for backend in rt.candidates(kind, client_ip) {
        match tokio::time::timeout(rt.config.dial_timeout, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => {
                rt.balancer
                    .record_success(client_ip, backend, rt.affinity());
                return Some(stream);
            }
            Ok(Err(e)) => rt.dial_failed(client_ip, backend, &e),
            Err(_) => rt.dial_failed(client_ip, backend, &"timed out"),
        }
    }
    None
}
