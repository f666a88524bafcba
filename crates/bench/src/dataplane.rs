//! The namespaces of one run and the dataplane probe: a client namespace and a backend pod namespace, each
//! linked to the node namespace (where the proxy runs and forwards), and bounded loops of new TCP connections
//! from the client to the probe ClusterIP and to the same pod by its own IP, interleaved.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_proxy_testkit::netns::link::{add_addr, add_route, veth};
use kube_proxy_testkit::netns::Netns;

use crate::error::{BenchError, Result};
use crate::workload::{pod_addr, CLIENT_DIRECT_IP, CLIENT_IP, NODE_IP, NODE_POD_LINK_IP, POD_IP};

/// Rounds the connections to each target are split into (alternating targets, so drift hits both alike).
const ROUNDS: usize = 4;
/// Per-connection timeout of the probe.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// client ─ node ─ pod, all removed on drop.
pub struct Topology {
    pub node: Netns,
    pub client: Netns,
    pub pod: Netns,
}

impl Topology {
    /// Builds the three namespaces; the node forwards between the client and the pod.
    pub fn build() -> Result<Topology> {
        let node = Netns::new("bench-node")?;
        let client = Netns::new("bench-client")?;
        let pod = Netns::new("bench-pod")?;
        node.enable_forwarding()?;
        veth(&node, "eth0", &client, "eth0")?;
        add_addr(&node, "eth0", &format!("{NODE_IP}/24"))?;
        add_addr(&client, "eth0", &format!("{CLIENT_IP}/24"))?;
        add_route(&client, "default", Some(NODE_IP), None)?;
        // Direct-to-pod connections leave from a second address. With one source address, a direct connection
        // can reuse the 4-tuple (as the pod sees it) of an earlier DNATed one still in TIME_WAIT in the pod and
        // in the node's conntrack table, and its SYN is then dropped (a 1 s retransmit): an artefact of probing
        // one backend two ways from one client, not a cost of either path.
        add_addr(&client, "eth0", &format!("{CLIENT_DIRECT_IP}/24"))?;
        client.ip(&[
            "route",
            "add",
            &format!("{POD_IP}/32"),
            "via",
            NODE_IP,
            "src",
            CLIENT_DIRECT_IP,
        ])?;
        veth(&node, "pods", &pod, "eth0")?;
        add_addr(&node, "pods", &format!("{NODE_POD_LINK_IP}/24"))?;
        add_addr(&pod, "eth0", &format!("{POD_IP}/24"))?;
        add_route(&pod, "default", Some(NODE_POD_LINK_IP), None)?;
        Ok(Topology { node, client, pod })
    }
}

/// A TCP server in the pod that accepts every connection and closes it after the client has; stopped on drop.
pub struct Backend {
    stop: Arc<AtomicBool>,
    /// The listener's descriptor, owned by the accept thread, which outlives every use of it here.
    fd: std::os::fd::RawFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Binds the backend in `pod` and accepts on a thread of its own (blocking accepts: a sleeping accept loop
    /// lets the listen queue overflow at tens of thousands of connections per second, and a dropped SYN costs
    /// a 1 s retransmit).
    pub fn start(pod: &Netns) -> Result<Backend> {
        let listener = pod
            .run_in(|| TcpListener::bind(pod_addr()))?
            .map_err(|e| BenchError::Dataplane(format!("binding the backend: {e}")))?;
        // std listens with a backlog of 128: on a busy machine the accept thread can be off-CPU for the 3 ms
        // that takes to fill at these rates, and a dropped SYN costs a 1 s retransmit. Re-listening raises it.
        let backlog = nix::sys::socket::Backlog::new(4096)
            .map_err(|e| BenchError::Dataplane(e.to_string()))?;
        nix::sys::socket::listen(&listener, backlog)
            .map_err(|e| BenchError::Dataplane(format!("raising the backlog: {e}")))?;
        let fd = listener.as_raw_fd();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Ok((mut conn, _)) = listener.accept() {
                    // Wait for the client's FIN so that the client closes first and keeps the TIME_WAIT: the
                    // client then never reuses a 4-tuple the pod (or the node's conntrack) still remembers.
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                    let _ = std::io::Read::read(&mut conn, &mut [0u8; 64]);
                }
            }
        });
        Ok(Backend {
            stop,
            fd,
            thread: Some(thread),
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Shutting down a listening socket makes a blocked accept() return with an error.
        let _ = nix::sys::socket::shutdown(self.fd, nix::sys::socket::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// New-connection figures for one target.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ConnectStats {
    pub connections: usize,
    pub failures: usize,
    /// Sequential new connections per second (connect + close, one client thread).
    pub per_second: f64,
    pub connect_p50_us: f64,
    pub connect_p99_us: f64,
    pub connect_max_us: f64,
}

/// The probe's result: the same backend via the ClusterIP and via its pod IP.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DataplaneResult {
    pub cluster_ip: ConnectStats,
    pub pod_ip: ConnectStats,
    /// cluster_ip.per_second / pod_ip.per_second.
    pub rate_ratio: f64,
    /// The pod IP before the proxy started (no rules in the node at all): what every forwarded new
    /// connection pays for the proxy's nat rules, whatever its destination.
    pub pod_ip_before_proxy: Option<ConnectStats>,
}

/// Opens `per_target` new connections to each of `cluster_ip` and `direct` from `client`.
pub fn probe(
    client: &Netns,
    cluster_ip: SocketAddr,
    direct: SocketAddr,
    per_target: usize,
) -> Result<DataplaneResult> {
    let mut stats = client.run_in(|| measure(&[cluster_ip, direct], per_target))?;
    let d = stats.pop().unwrap_or_default();
    let c = stats.pop().unwrap_or_default();
    if c.connections == 0 || d.connections == 0 {
        return Err(BenchError::Dataplane(format!(
            "no connection succeeded (ClusterIP failures {}, pod IP failures {})",
            c.failures, d.failures
        )));
    }
    let ratio = c.per_second / d.per_second;
    Ok(DataplaneResult {
        cluster_ip: c,
        pod_ip: d,
        rate_ratio: ratio,
        pod_ip_before_proxy: None,
    })
}

/// Opens `n` new connections to `target` from `client` (used before the proxy has programmed anything).
pub fn probe_one(client: &Netns, target: SocketAddr, n: usize) -> Result<ConnectStats> {
    let stats = client.run_in(|| measure(&[target], n))?;
    Ok(stats.into_iter().next().unwrap_or_default())
}

/// Sequential connect + close to every target, `per_target` each, in [`ROUNDS`] alternating rounds.
fn measure(targets: &[SocketAddr], per_target: usize) -> Vec<ConnectStats> {
    let mut samples = vec![Vec::new(); targets.len()];
    let mut busy = vec![Duration::ZERO; targets.len()];
    let mut failures = vec![0usize; targets.len()];
    let per_round = per_target.div_ceil(ROUNDS);
    for _ in 0..ROUNDS {
        for (i, target) in targets.iter().enumerate() {
            let round_start = Instant::now();
            for _ in 0..per_round {
                let start = Instant::now();
                match TcpStream::connect_timeout(target, CONNECT_TIMEOUT) {
                    Ok(conn) => {
                        samples[i].push(start.elapsed());
                        drop(conn);
                    }
                    Err(_) => failures[i] += 1,
                }
            }
            busy[i] += round_start.elapsed();
        }
    }
    (0..targets.len())
        .map(|i| {
            let s = &mut samples[i];
            s.sort();
            let n = s.len() + failures[i];
            ConnectStats {
                connections: s.len(),
                failures: failures[i],
                per_second: n as f64 / busy[i].as_secs_f64().max(1e-9),
                connect_p50_us: micros(crate::stats::percentile(s, 50.0)),
                connect_p99_us: micros(crate::stats::percentile(s, 99.0)),
                connect_max_us: micros(s.last().copied()),
            }
        })
        .collect()
}

fn micros(d: Option<Duration>) -> f64 {
    d.map(|d| d.as_secs_f64() * 1e6).unwrap_or(0.0)
}
