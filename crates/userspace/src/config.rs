//! Settings of the userspace proxy: how listeners are addressed, dial timeouts and attempts, UDP idle timeout,
//! the per-service connection limit and the copy strategy.
//!
//! Plain data with upstream-like defaults; parsing flags into it is the binary's job.

use std::net::IpAddr;
use std::time::Duration;

/// Where a listener for a service address binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// Bind directly to the virtual address and the service port (`--userspace-bind-vips` style). On Linux the
    /// socket sets IP_FREEBIND, so the address need not be assigned to any interface and no netfilter rule is
    /// needed for traffic that reaches this host addressed to it.
    BindVips,
    /// Bind to an ephemeral port on `listen_ip` (the unspecified address of the proxied family when `None` or of
    /// another family). [`crate::Portal`]s then report `(vip, port, protocol) → proxy port` for a REDIRECT rule
    /// writer, as upstream's KUBE-PORTALS-CONTAINER / KUBE-PORTALS-HOST chains did.
    Redirect { listen_ip: Option<IpAddr> },
}

/// Configuration of one [`crate::UserspaceProxy`].
#[derive(Clone, Debug)]
pub struct UserspaceConfig {
    pub addressing: Addressing,
    /// Addresses NodePort listeners open on (those of the proxied family are used). An unspecified address
    /// (`0.0.0.0`, `::`) means every local address. Empty: no NodePort listeners.
    pub node_port_addresses: Vec<IpAddr>,
    /// How long one connection attempt to a backend may take before the next endpoint is tried.
    pub dial_timeout: Duration,
    /// At most this many distinct endpoints are tried for one client connection (bounded by the endpoint count).
    pub max_dial_attempts: usize,
    /// A UDP flow without traffic in either direction for this long is closed (upstream's `--udp-timeout`).
    pub udp_idle_timeout: Duration,
    /// Concurrent TCP connections plus UDP flows allowed per service port; `None` is unlimited. Over the limit a
    /// TCP connection is closed at once and a UDP datagram that would open a flow is dropped.
    pub max_connections_per_service: Option<usize>,
    /// Size of each direction's buffer when copying through user space.
    pub copy_buffer_size: usize,
    /// Move TCP payload with splice(2) through a pipe (Linux only; ignored elsewhere).
    pub use_splice: bool,
    /// SO_RCVBUF and SO_SNDBUF of both sockets of every relayed TCP connection (Linux only; ignored elsewhere).
    /// `None` (the default, as upstream) leaves the kernel's buffer autotuning alone. A size fixes each buffer (the
    /// kernel doubles it for bookkeeping) and turns autotuning off: less data in flight through the node, which
    /// measurably lowers CPU per byte when client, proxy and server share a few cores (see BENCHMARKS.md), but it
    /// also caps each connection at about size ÷ round-trip time, so it suits only short round trips. Keep it well
    /// above the largest segment (64 KiB on loopback): smaller buffers stall on TCP's silly-window avoidance.
    pub socket_buffer_size: Option<usize>,
}

impl Default for UserspaceConfig {
    fn default() -> Self {
        UserspaceConfig {
            addressing: Addressing::BindVips,
            node_port_addresses: Vec::new(),
            dial_timeout: Duration::from_secs(1),
            max_dial_attempts: 3,
            udp_idle_timeout: Duration::from_millis(250),
            max_connections_per_service: None,
            copy_buffer_size: 64 * 1024,
            use_splice: true,
            socket_buffer_size: None,
        }
    }
}
