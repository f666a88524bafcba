//! Guest-side network fixtures: namespaces with veth links to the guest's root namespace, TCP backends that
//! answer with their name, and a client that runs inside a namespace.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use kube_proxy_vmtest::guest::sh;
use nix::sched::{setns, CloneFlags};

/// Runs `f` on a fresh thread inside network namespace `ns` (sockets created there stay in it).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))?;
        Ok(f())
    })
    .join()
    .map_err(|_| "netns thread panicked".to_string())?
}

/// Creates namespace `ns` linked to the root namespace: root side `host_if` = `<prefix>.1/24`, namespace
/// side `eth0` = `<prefix>.2/24` with a default route through the root namespace.
pub fn add_namespace(ns: &str, host_if: &str, prefix: &str) -> Result<(), String> {
    sh("ip", &["netns", "add", ns])?;
    sh(
        "ip",
        &[
            "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    )?;
    sh(
        "ip",
        &["addr", "add", &format!("{prefix}.1/24"), "dev", host_if],
    )?;
    sh("ip", &["link", "set", host_if, "up"])?;
    let ip_ns = |args: &[&str]| {
        let mut v = vec!["-n", ns];
        v.extend_from_slice(args);
        sh("ip", &v)
    };
    ip_ns(&["addr", "add", &format!("{prefix}.2/24"), "dev", "eth0"])?;
    ip_ns(&["link", "set", "eth0", "up"])?;
    ip_ns(&["link", "set", "lo", "up"])?;
    ip_ns(&["route", "add", "default", "via", &format!("{prefix}.1")])?;
    Ok(())
}

/// Starts a TCP server in `ns` on `port` that answers every line with `name`.
pub fn start_backend(ns: &str, port: u16, name: &'static str) -> Result<(), String> {
    let listener = in_netns(ns, move || TcpListener::bind(("0.0.0.0", port)))?
        .map_err(|e| format!("bind in {ns}: {e}"))?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = match conn.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                for line in BufReader::new(conn).lines() {
                    if line.is_err() || writeln!(w, "{name}").is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(())
}

/// A client connection opened from inside a namespace.
pub struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(ns: &str, to: SocketAddr) -> Result<Client, String> {
        let stream = in_netns(ns, move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(5))
        })?
        .map_err(|e| format!("connect {to} from {ns}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(Client { stream, reader })
    }

    /// Sends a line and returns the backend's name.
    pub fn ask(&mut self) -> Result<String, String> {
        writeln!(self.stream, "hi").map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        if line.is_empty() {
            return Err("connection closed".into());
        }
        Ok(line.trim().to_string())
    }

    /// Ends the connection with a reset: a request whose answer is left unread makes the kernel send RST on
    /// close, which IPVS tracks as CLOSE (expiring in 10 s) rather than TIME_WAIT (2 min).
    pub fn abort(self) -> Result<(), String> {
        let Client { mut stream, reader } = self;
        writeln!(stream, "hi").map_err(|e| format!("write: {e}"))?;
        stream
            .peek(&mut [0u8; 1])
            .map_err(|e| format!("waiting for the answer: {e}"))?;
        drop(reader);
        drop(stream);
        Ok(())
    }
}

/// One request on a fresh connection.
pub fn ask_once(ns: &str, to: SocketAddr) -> Result<String, String> {
    Client::connect(ns, to)?.ask()
}

/// Starts a UDP server in `ns` on `port` that answers every datagram with `name`.
pub fn start_udp_backend(ns: &str, port: u16, name: &'static str) -> Result<(), String> {
    let sock = in_netns(ns, move || std::net::UdpSocket::bind(("0.0.0.0", port)))?
        .map_err(|e| format!("udp bind in {ns}: {e}"))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(name.as_bytes(), from);
        }
    });
    Ok(())
}

/// Sends one datagram from a fresh socket in `ns` (or the root namespace for `None`) and returns the answer.
pub fn udp_ask(ns: &str, to: SocketAddr) -> Result<String, String> {
    let sock = in_netns(ns, || std::net::UdpSocket::bind(("0.0.0.0", 0)))?
        .map_err(|e| format!("udp bind: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    sock.send_to(b"hi", to)
        .map_err(|e| format!("udp send: {e}"))?;
    let mut buf = [0u8; 512];
    let (n, _) = sock
        .recv_from(&mut buf)
        .map_err(|e| format!("udp recv from {to}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// One TCP request from the guest's root namespace (a process on the node).
pub fn ask_from_node(to: SocketAddr) -> Result<String, String> {
    let stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .map_err(|e| format!("connect {to} from the node: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    Client { stream, reader }.ask()
}

/// Adds IPv6 addresses to a namespace made by [`add_namespace`]: `<prefix>::1/64` on the root side,
/// `<prefix>::2/64` inside, with a default route (no duplicate address detection).
pub fn add_v6(ns: &str, host_if: &str, prefix: &str) -> Result<(), String> {
    sh(
        "ip",
        &[
            "-6",
            "addr",
            "add",
            &format!("{prefix}::1/64"),
            "dev",
            host_if,
            "nodad",
        ],
    )?;
    sh(
        "ip",
        &[
            "-n",
            ns,
            "-6",
            "addr",
            "add",
            &format!("{prefix}::2/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    sh(
        "ip",
        &[
            "-n",
            ns,
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("{prefix}::1"),
        ],
    )?;
    Ok(())
}

/// Starts a TCP server on `[::]:port` in `ns` answering every line with `name`.
pub fn start_backend_v6(ns: &str, port: u16, name: &'static str) -> Result<(), String> {
    let listener = in_netns(ns, move || TcpListener::bind(("::", port)))?
        .map_err(|e| format!("bind v6 in {ns}: {e}"))?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut w) = conn.try_clone() else { return };
                for line in BufReader::new(conn).lines() {
                    if line.is_err() || writeln!(w, "{name}").is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(())
}
