//! The UDP side of a portal: one flow per client address, each with its own connected socket towards the chosen
//! backend. Replies go back through the portal's socket, so their source is the service address (or, behind a
//! REDIRECT rule, is translated back to it by conntrack).
//!
//! A flow closes after the idle timeout without traffic either way, or when the backend answers "port
//! unreachable" (counted as a dial failure; the client's next datagram picks another endpoint). Flows belong to
//! their portal's task and end with it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use crate::metrics::{ActiveGuard, ServiceMetrics};
use crate::portal::PortalKind;
use crate::service::ServiceRuntime;

/// Largest datagram handled.
const MAX_DATAGRAM: usize = 65535;

/// Shortest wait for a reply before the idle check runs again (keeps a zero timeout from spinning).
const MIN_IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

struct Flow {
    backend: SocketAddr,
    socket: UdpSocket,
    /// Milliseconds since `epoch` of the last datagram in either direction.
    last_active: AtomicU64,
    epoch: Instant,
}

impl Flow {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_active.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>>;

/// Receives client datagrams forever, forwarding each through its client's flow.
pub(crate) async fn serve(socket: UdpSocket, kind: PortalKind, rt: Arc<ServiceRuntime>) {
    let socket = Arc::new(socket);
    let flows: Flows = Arc::default();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while tasks.try_join_next().is_some() {}
        let (n, client) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(service = %rt.spec.load().name, error = %e, "userspace proxy: UDP receive failed");
                continue;
            }
        };
        let existing = flows.lock().ok().and_then(|f| f.get(&client).cloned());
        let flow = match existing {
            Some(flow) => flow,
            None => match open_flow(&rt, kind, client).await {
                Some((flow, guard)) => {
                    if let Ok(mut f) = flows.lock() {
                        f.insert(client, Arc::clone(&flow));
                    }
                    tasks.spawn(replies(
                        Arc::clone(&flow),
                        client,
                        Arc::clone(&socket),
                        Arc::clone(&flows),
                        Arc::clone(&rt),
                        guard,
                    ));
                    flow
                }
                None => continue,
            },
        };
        flow.touch();
        match flow.socket.send(&buf[..n]).await {
            Ok(sent) => ServiceMetrics::add(&rt.metrics.bytes_in, sent),
            Err(e) => {
                tracing::debug!(service = %rt.spec.load().name, endpoint = %flow.backend, error = %e, "userspace proxy: UDP send to backend failed");
            }
        }
    }
}

/// A new flow towards the first candidate endpoint whose socket could be set up.
async fn open_flow(
    rt: &ServiceRuntime,
    kind: PortalKind,
    client: SocketAddr,
) -> Option<(Arc<Flow>, ActiveGuard)> {
    let guard = rt.admit()?;
    for backend in rt.candidates(kind, client.ip()) {
        match connected_socket(backend).await {
            Ok(socket) => {
                rt.balancer
                    .record_success(client.ip(), backend, rt.affinity());
                let flow = Flow {
                    backend,
                    socket,
                    last_active: AtomicU64::new(0),
                    epoch: Instant::now(),
                };
                return Some((Arc::new(flow), guard));
            }
            Err(e) => rt.dial_failed(client.ip(), backend, &e),
        }
    }
    ServiceMetrics::add(&rt.metrics.no_endpoint_drops, 1);
    None
}

async fn connected_socket(backend: SocketAddr) -> io::Result<UdpSocket> {
    let local: IpAddr = if backend.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    socket.connect(backend).await?;
    Ok(socket)
}

/// Forwards the backend's replies to the client until the flow is idle or the backend is unreachable.
async fn replies(
    flow: Arc<Flow>,
    client: SocketAddr,
    portal: Arc<UdpSocket>,
    flows: Flows,
    rt: Arc<ServiceRuntime>,
    _guard: ActiveGuard,
) {
    let idle = rt.config.udp_idle_timeout;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        // Wait only for what is left of the idle period since the last datagram in either direction.
        let left = idle.saturating_sub(flow.idle_for()).max(MIN_IDLE_WAIT);
        match tokio::time::timeout(left, flow.socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                flow.touch();
                match portal.send_to(&buf[..n], client).await {
                    Ok(sent) => ServiceMetrics::add(&rt.metrics.bytes_out, sent),
                    Err(e) => {
                        tracing::debug!(service = %rt.spec.load().name, client = %client, error = %e, "userspace proxy: UDP reply failed");
                    }
                }
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                rt.dial_failed(client.ip(), flow.backend, &e);
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(service = %rt.spec.load().name, endpoint = %flow.backend, error = %e, "userspace proxy: UDP receive from backend failed");
                break;
            }
            Err(_) if flow.idle_for() >= idle => break,
            Err(_) => {}
        }
    }
    if let Ok(mut f) = flows.lock() {
        if f.get(&client).is_some_and(|cur| Arc::ptr_eq(cur, &flow)) {
            f.remove(&client);
        }
    }
}
