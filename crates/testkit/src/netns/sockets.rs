//! Echo servers that say who they are and whom they saw, and clients that tell a REJECT (refused/reset/
//! unreachable) from a DROP (timeout).
//!
//! Wire format: a TCP server sends `<identity> <peer-ip>\n` on accept, then echoes; a UDP server answers each
//! datagram with `<identity> <peer-ip>`. `<identity>` is the serving namespace's role (e.g. `pod-a`), so a test
//! learns which backend answered and whether the source address was masqueraded.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Netns, NetnsError, Result};

/// How often server threads look at their stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A running echo server; stopped (and its socket closed) on drop.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind_err(ns: &Netns, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> NetnsError + '_ {
    move |source| NetnsError::BindSocket {
        name: ns.name().to_string(),
        addr,
        source,
    }
}

/// Starts a TCP echo server bound to `addr` inside `ns` that identifies itself as `ns.role()`.
pub fn tcp_echo_server(ns: &Netns, addr: SocketAddr) -> Result<EchoServer> {
    let listener = ns
        .run_in(|| TcpListener::bind(addr))?
        .map_err(bind_err(ns, addr))?;
    let bound = listener.local_addr().map_err(bind_err(ns, addr))?;
    listener.set_nonblocking(true).map_err(bind_err(ns, addr))?;
    let identity = ns.role().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, peer)) => {
                    let identity = identity.clone();
                    std::thread::spawn(move || serve_tcp(conn, peer, &identity));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    });
    Ok(EchoServer {
        addr: bound,
        stop,
        thread: Some(thread),
    })
}

fn serve_tcp(mut conn: TcpStream, peer: SocketAddr, identity: &str) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    if conn
        .write_all(format!("{identity} {}\n", peer.ip()).as_bytes())
        .is_err()
    {
        return;
    }
    let _ = std::io::copy(&mut conn.try_clone().expect("clone tcp stream"), &mut conn);
}

/// Starts a UDP echo server bound to `addr` inside `ns` that identifies itself as `ns.role()`.
pub fn udp_echo_server(ns: &Netns, addr: SocketAddr) -> Result<EchoServer> {
    let sock = ns
        .run_in(|| UdpSocket::bind(addr))?
        .map_err(bind_err(ns, addr))?;
    let bound = sock.local_addr().map_err(bind_err(ns, addr))?;
    sock.set_read_timeout(Some(POLL))
        .map_err(bind_err(ns, addr))?;
    let identity = ns.role().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(format!("{identity} {}", peer.ip()).as_bytes(), peer);
            }
        }
    });
    Ok(EchoServer {
        addr: bound,
        stop,
        thread: Some(thread),
    })
}

/// Which backend answered and the client address it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The backend's identity (its namespace role, e.g. `pod-a`).
    pub backend: String,
    /// The source address of the request as the backend saw it.
    pub source: IpAddr,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Connection refused / ICMP port unreachable: a REJECT, or nothing listening.
    #[error("connection refused")]
    Refused,
    /// Connection reset (e.g. REJECT with tcp-reset).
    #[error("connection reset")]
    Reset,
    /// Host or network unreachable (ICMP unreachable, or no route).
    #[error("unreachable: {0}")]
    Unreachable(std::io::Error),
    /// Nothing came back in time: the traffic was dropped (or blackholed).
    #[error("timed out")]
    Timeout,
    /// A reply that is not in the echo servers' format.
    #[error("malformed reply {0:?}")]
    Malformed(String),
    /// Any other socket error.
    #[error("socket error: {0}")]
    Io(std::io::Error),
    /// Entering the client's namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl RequestError {
    /// The request was actively rejected (refused, reset or unreachable), as opposed to timing out.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self,
            RequestError::Refused | RequestError::Reset | RequestError::Unreachable(_)
        )
    }
}

fn classify(e: std::io::Error) -> RequestError {
    // std's connect_timeout reports a connection torn down by an ICMP error whose code the kernel had already
    // cleared as "no error set after POLLHUP": the peer (a REJECT) refused it.
    if e.kind() == ErrorKind::Other && e.to_string().contains("POLLHUP") {
        return RequestError::Refused;
    }
    match e.kind() {
        ErrorKind::ConnectionRefused => RequestError::Refused,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => RequestError::Reset,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => RequestError::Timeout,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => RequestError::Unreachable(e),
        _ => RequestError::Io(e),
    }
}

fn parse_reply(line: &str) -> Result<Reply, RequestError> {
    let mut it = line.split_whitespace();
    match (it.next(), it.next().and_then(|s| s.parse().ok())) {
        (Some(backend), Some(source)) => Ok(Reply {
            backend: backend.to_string(),
            source,
        }),
        _ => Err(RequestError::Malformed(line.to_string())),
    }
}

/// Connects from `ns` to `dst`, reads the greeting and checks that an echo comes back. `timeout` bounds the
/// connect and each read.
pub fn tcp_exchange(ns: &Netns, dst: SocketAddr, timeout: Duration) -> Result<Reply, RequestError> {
    let conn = ns
        .run_in(|| TcpStream::connect_timeout(&dst, timeout))?
        .map_err(classify)?;
    conn.set_read_timeout(Some(timeout))
        .map_err(RequestError::Io)?;
    let mut reader = BufReader::new(conn.try_clone().map_err(RequestError::Io)?);
    let mut line = String::new();
    if reader.read_line(&mut line).map_err(classify)? == 0 {
        return Err(RequestError::Reset);
    }
    let reply = parse_reply(&line)?;
    (&conn).write_all(b"ping\n").map_err(classify)?;
    let mut echo = String::new();
    reader.read_line(&mut echo).map_err(classify)?;
    if echo != "ping\n" {
        return Err(RequestError::Malformed(echo));
    }
    Ok(reply)
}

/// Like [`tcp_exchange`], returning only the backend identity.
pub fn tcp_request(ns: &Netns, dst: SocketAddr, timeout: Duration) -> Result<String, RequestError> {
    tcp_exchange(ns, dst, timeout).map(|r| r.backend)
}

/// Sends one datagram from `ns` to `dst` and waits up to `timeout` for the answer. An ICMP port unreachable
/// comes back as [`RequestError::Refused`].
pub fn udp_exchange(ns: &Netns, dst: SocketAddr, timeout: Duration) -> Result<Reply, RequestError> {
    let unspecified: SocketAddr = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .expect("valid");
    udp_exchange_from(ns, unspecified, dst, timeout)
}

/// Like [`udp_exchange`], from a chosen local address and port: repeated requests from the same port reuse one
/// conntrack entry, which is how tests observe stale UDP flows.
pub fn udp_exchange_from(
    ns: &Netns,
    local: SocketAddr,
    dst: SocketAddr,
    timeout: Duration,
) -> Result<Reply, RequestError> {
    let sock = ns
        .run_in(|| {
            let s = UdpSocket::bind(local)?;
            s.connect(dst)?;
            Ok::<_, std::io::Error>(s)
        })?
        .map_err(classify)?;
    sock.set_read_timeout(Some(timeout))
        .map_err(RequestError::Io)?;
    sock.send(b"ping").map_err(classify)?;
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).map_err(classify)?;
    parse_reply(&String::from_utf8_lossy(&buf[..n]))
}

/// Like [`udp_exchange`], returning only the backend identity.
pub fn udp_request(ns: &Netns, dst: SocketAddr, timeout: Duration) -> Result<String, RequestError> {
    udp_exchange(ns, dst, timeout).map(|r| r.backend)
}
