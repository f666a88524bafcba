//! Opening listener sockets: TCP listeners and UDP sockets bound to a portal's listen address, with
//! IP_FREEBIND on Linux when binding a virtual address that may not be assigned to this host.
//!
//! On other targets the address must be local (no FREEBIND there) and the standard library binds it.

use std::net::SocketAddr;

use kube_proxy_model::Protocol;
use tokio::net::{TcpListener, UdpSocket};

use crate::error::UserspaceError;

/// Backlog of each TCP listener.
#[cfg(target_os = "linux")]
const BACKLOG: i32 = 1024;

/// Binds a TCP listener on `addr`; `freebind` allows a non-local address on Linux.
pub(crate) fn bind_tcp(addr: SocketAddr, freebind: bool) -> Result<TcpListener, UserspaceError> {
    #[cfg(target_os = "linux")]
    {
        let fd = linux::bound_socket(addr, Protocol::Tcp, freebind)?;
        let listen_err = |source| UserspaceError::Listen {
            addr,
            protocol: Protocol::Tcp,
            source,
        };
        let backlog = nix::sys::socket::Backlog::new(BACKLOG)
            .map_err(|e| listen_err(std::io::Error::from(e)))?;
        nix::sys::socket::listen(&fd, backlog).map_err(|e| listen_err(e.into()))?;
        TcpListener::from_std(std::net::TcpListener::from(fd)).map_err(listen_err)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = freebind;
        let std = std::net::TcpListener::bind(addr).map_err(|source| UserspaceError::Bind {
            addr,
            protocol: Protocol::Tcp,
            source,
        })?;
        let listen_err = |source| UserspaceError::Listen {
            addr,
            protocol: Protocol::Tcp,
            source,
        };
        std.set_nonblocking(true).map_err(listen_err)?;
        TcpListener::from_std(std).map_err(listen_err)
    }
}

/// Binds a UDP socket on `addr`; `freebind` allows a non-local address on Linux.
pub(crate) fn bind_udp(addr: SocketAddr, freebind: bool) -> Result<UdpSocket, UserspaceError> {
    let listen_err = |source| UserspaceError::Listen {
        addr,
        protocol: Protocol::Udp,
        source,
    };
    #[cfg(target_os = "linux")]
    {
        let fd = linux::bound_socket(addr, Protocol::Udp, freebind)?;
        UdpSocket::from_std(std::net::UdpSocket::from(fd)).map_err(listen_err)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = freebind;
        let std = std::net::UdpSocket::bind(addr).map_err(|source| UserspaceError::Bind {
            addr,
            protocol: Protocol::Udp,
            source,
        })?;
        std.set_nonblocking(true).map_err(listen_err)?;
        UdpSocket::from_std(std).map_err(listen_err)
    }
}

/// Fixes SO_RCVBUF and SO_SNDBUF of a connected socket to `size` (Linux; a no-op elsewhere).
pub(crate) fn set_buffer_sizes(stream: &tokio::net::TcpStream, size: usize) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        setsockopt(stream, sockopt::RcvBuf, &size)?;
        setsockopt(stream, sockopt::SndBuf, &size)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (stream, size);
    Ok(())
}

#[cfg(target_os = "linux")]
mod linux {
    //! Socket creation through nix, so that options can be set before `bind(2)`.

    use std::net::SocketAddr;
    use std::os::fd::{AsRawFd, OwnedFd};

    use kube_proxy_model::Protocol;
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
    };

    use crate::error::UserspaceError;

    /// A non-blocking, close-on-exec socket bound to `addr`.
    pub(super) fn bound_socket(
        addr: SocketAddr,
        protocol: Protocol,
        freebind: bool,
    ) -> Result<OwnedFd, UserspaceError> {
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let kind = match protocol {
            Protocol::Udp => SockType::Datagram,
            _ => SockType::Stream,
        };
        let fd = socket(
            family,
            kind,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| UserspaceError::CreateSocket {
            addr,
            protocol,
            source: e.into(),
        })?;
        let opt_err = |option: &'static str| {
            move |e: nix::Error| UserspaceError::SetSocketOption {
                addr,
                protocol,
                option,
                source: e.into(),
            }
        };
        if protocol == Protocol::Tcp {
            setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(opt_err("SO_REUSEADDR"))?;
        }
        if addr.is_ipv6() {
            setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(opt_err("IPV6_V6ONLY"))?;
        }
        if freebind {
            // IP_FREEBIND at the IP level also governs IPv6 sockets on Linux (it sets the same flag as
            // IPV6_FREEBIND), which nix does not wrap.
            setsockopt(&fd, sockopt::IpFreebind, &true).map_err(opt_err("IP_FREEBIND"))?;
        }
        bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(|e| UserspaceError::Bind {
            addr,
            protocol,
            source: e.into(),
        })?;
        Ok(fd)
    }
}
