//! End-to-end harness: a two-node cluster of network namespaces, the test API server listening inside node1,
//! and the real `kube-proxy-rs` binary running in node1 against it with `--master`.
//!
//! Every namespace and process is removed on drop. Tests wait for eventual states (rules programmed) with
//! generous deadlines; they never assert on durations.
#![allow(dead_code)]

pub mod objects;

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube_proxy_testkit::apiserver::{ApiServer, ApiServerOptions, Kind};
use kube_proxy_testkit::netns::{
    eventually, tcp_echo_server, tcp_exchange, udp_echo_server, udp_exchange, ClusterTopology,
    EchoServer, Family, Netns, Reply, RequestError, TopologyOpts,
};
use serde_json::Value;

/// pod-a's address (on node1).
pub const A: &str = "10.244.1.10";
/// pod-b's address (on node1).
pub const B: &str = "10.244.1.11";
/// pod-c's address (on node2).
pub const C: &str = "10.244.2.10";
/// pod-c's IPv6 address.
pub const C6: &str = "fd00:10:244:2::a";
/// node1's LAN address.
pub const NODE1: &str = "10.100.0.1";
/// The external client's LAN address.
pub const CLIENT: &str = "10.100.0.100";

/// A set of backend names, for comparing with [`tcp_backends`].
pub fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Port every pod's echo servers listen on (TCP and UDP).
pub const POD_PORT: u16 = 8080;
/// How long to wait for the proxy to program a change.
pub const SETTLE: Duration = Duration::from_secs(20);
/// Per-request timeout: long enough for a loaded CI machine, short enough that a DROP test finishes.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);

/// A kernel mode under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Iptables,
    Nftables,
    /// Only inside the qemu guest (see [`in_vm_guest`]): this host's kernel has no IPVS.
    Ipvs,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Iptables => "iptables",
            Mode::Nftables => "nftables",
            Mode::Ipvs => "ipvs",
        }
    }

    /// What every per-service chain name starts with; IPVS has no per-service chains, so there it is the
    /// start of an `ipvsadm -Ln` TCP virtual-server line.
    pub fn service_chain_prefix(self) -> &'static str {
        match self {
            Mode::Iptables => "KUBE-SVC-",
            Mode::Nftables => "service-",
            Mode::Ipvs => "TCP  ",
        }
    }
}

/// The variable the VM runner sets in the qemu guest (`scripts/vm/run.sh` via `VMTEST_GUEST_ENV`).
pub const IN_VM_ENV: &str = "KPRS_IN_VM";

/// Whether an IPVS test may run: true inside the guest (`KPRS_IN_VM=1`, and root). The IPVS tests are
/// `#[ignore]`d so that the host never counts them as passed; run there by hand with `--ignored`, they fail
/// with a pointer to the VM test that runs them (`cargo test -p kube-proxy-vmtest --test e2e_ipvs_in_vm`).
pub fn in_vm_guest(test: &str) -> bool {
    assert!(
        std::env::var(IN_VM_ENV).as_deref() == Ok("1"),
        "{test} needs a kernel with IPVS and runs only inside the qemu guest ({IN_VM_ENV}=1); on this host run \
         `cargo test -p kube-proxy-vmtest --test e2e_ipvs_in_vm`"
    );
    privileged(test)
}

/// The cluster under test.
pub struct Cluster {
    pub topo: ClusterTopology,
    pub api: ApiServer,
    pub runtime: tokio::runtime::Runtime,
    pub proxy: std::sync::Mutex<Option<Proxy>>,
    failures: std::sync::Mutex<Vec<String>>,
    _servers: Vec<EchoServer>,
}

/// The proxy process under test.
pub struct Proxy {
    pub child: Child,
    pub log: std::path::PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns false (skip) when not root and CI is unset; panics when CI=true and not root.
pub fn privileged(test: &str) -> bool {
    kube_proxy_testkit::netns::require_root(test)
}

impl Cluster {
    /// Builds the namespaces, starts echo servers in every pod, the API server inside node1 (loaded with the
    /// two Node objects), but not the proxy.
    pub fn new() -> Cluster {
        let topo = ClusterTopology::build(TopologyOpts {
            ipv4: true,
            ipv6: true,
            vip_routes: vec!["192.168.100.0/24".into(), "fd00:192:168:100::/64".into()],
            client_routes_to_pods: false,
        })
        .expect("building the namespaces");
        // Nodes route service IPs out of their LAN interface (as a real node's default route would), so that
        // traffic from the node itself reaches the OUTPUT DNAT rules.
        for node in [&topo.node1, &topo.node2] {
            node.ip(&["route", "add", "10.96.0.0/16", "dev", "eth0"])
                .unwrap();
            node.ip(&["-6", "route", "add", "fd00:96::/64", "dev", "eth0"])
                .unwrap();
        }
        let mut servers = Vec::new();
        for pod in &topo.pods {
            for family in [Family::V4, Family::V6] {
                let addr = SocketAddr::new(pod.ip(family), POD_PORT);
                servers.push(tcp_echo_server(&pod.ns, addr).expect("tcp echo server"));
                servers.push(udp_echo_server(&pod.ns, addr).expect("udp echo server"));
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = topo
            .node1
            .run_in(|| std::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap()
            .expect("binding the API server inside node1");
        let api = runtime
            .block_on(ApiServer::start_on(listener, ApiServerOptions::default()))
            .expect("starting the API server");
        let cluster = Cluster {
            topo,
            api,
            runtime,
            proxy: std::sync::Mutex::new(None),
            failures: std::sync::Mutex::new(Vec::new()),
            _servers: servers,
        };
        cluster.apply(objects::node("node1", 1, "zone-a"));
        cluster.apply(objects::node("node2", 2, "zone-b"));
        cluster
    }

    /// Creates or updates an object on the API server.
    pub fn apply(&self, obj: Value) {
        self.api.apply(&obj).expect("applying an object");
    }

    /// Deletes an object from the API server.
    pub fn delete(&self, kind: Kind, ns: &str, name: &str) {
        assert!(
            self.api.delete(kind, ns, name),
            "{kind:?} {ns}/{name} existed"
        );
    }

    /// Starts kube-proxy-rs in node1 with the default test flags plus `extra`.
    pub fn start_proxy(&self, extra: &[&str]) {
        let log = std::env::temp_dir().join(format!(
            "kprs-e2e-{}-{}.log",
            std::process::id(),
            self.topo.node1.name()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kube-proxy-rs"));
        cmd.args([
            "--master",
            &self.api.url(),
            "--hostname-override",
            "node1",
            "--cluster-cidr",
            "10.244.0.0/16,fd00:10:244::/56",
            "--iptables-min-sync-period",
            "100ms",
            "--ipvs-min-sync-period",
            "100ms",
            "--conntrack-max-per-core=0",
            "--v=4",
        ])
        .args(extra)
        .env("RUST_LOG", "info,kube_proxy_sync=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(file));
        let child = self
            .topo
            .node1
            .spawn(&mut cmd)
            .expect("starting kube-proxy-rs");
        *self.proxy.lock().unwrap() = Some(Proxy { child, log });
    }

    /// Kills the proxy with SIGKILL (rules stay behind).
    pub fn kill_proxy(&self) {
        if let Some(mut p) = self.proxy.lock().unwrap().take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
            std::mem::forget(p);
        }
    }

    /// The proxy's log so far.
    pub fn proxy_log(&self) -> String {
        self.proxy
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|p| std::fs::read_to_string(&p.log).ok())
            .unwrap_or_default()
    }

    pub fn pod(&self, name: &str) -> &Netns {
        &self.topo.pod(name).ns
    }

    pub fn pod_ip(&self, name: &str, family: Family) -> IpAddr {
        self.topo.pod(name).ip(family)
    }

    /// node1's rules of `mode` as text: `iptables-save`, `nft list table`, or for IPVS the virtual servers
    /// (`ipvsadm -Ln` without the connection counters), `ipset save` (without the random `initval`) and
    /// `iptables-save`.
    pub fn rules(&self, mode: Mode, family: Family) -> String {
        match mode {
            Mode::Iptables => self.save(family),
            Mode::Ipvs => format!(
                "{}{}{}",
                ipvs_listing(&self.topo.node1.exec_ok(&["ipvsadm", "-Ln"]).unwrap()),
                ipset_listing(&self.topo.node1.exec_ok(&["ipset", "save"]).unwrap()),
                self.save(family)
            ),
            Mode::Nftables => {
                let fam = if family == Family::V4 { "ip" } else { "ip6" };
                self.topo
                    .node1
                    .exec_ok(&["nft", "list", "table", fam, "kube-proxy"])
                    .unwrap_or_default()
            }
        }
    }

    /// What `kube-proxy-rs trace --proxy-mode MODE` predicts, from node1's live kernel state, for a packet
    /// `src` → `dst` (`IP:PORT[/udp]`) arriving on `iface`: one `(verdict, masqueraded)` per outcome, e.g.
    /// `("dnat 10.244.2.10:8080", true)` or `("drop", false)`.
    pub fn trace(&self, mode: Mode, src: &str, dst: &str, iface: &str) -> Vec<(String, bool)> {
        self.run_trace(&[
            "--proxy-mode",
            mode.name(),
            "--iptables-backend=nft",
            "--src",
            src,
            "--dst",
            dst,
            "--in-interface",
            iface,
        ])
    }

    /// What `kube-proxy-rs trace` predicts from the API server's current objects written out as manifests
    /// (run inside node1, so that its addresses count as local), with `extra` flags; same shape as
    /// [`trace`](Self::trace), `("proxy 10.244.1.10:8080", false)` for the userspace proxy.
    pub fn trace_manifests(&self, extra: &[&str], src: &str, dst: &str) -> Vec<(String, bool)> {
        let dir = tempfile::tempdir().expect("manifest dir");
        let mut n = 0;
        for kind in [Kind::Node, Kind::Service, Kind::EndpointSlice] {
            for obj in self.api.objects(kind) {
                n += 1;
                let path = dir.path().join(format!("{n:03}.json"));
                std::fs::write(path, serde_json::to_vec(&obj).unwrap()).unwrap();
            }
        }
        let manifests = dir.path().to_str().unwrap().to_string();
        let mut args = vec![
            "--manifests",
            &manifests,
            "--hostname-override",
            "node1",
            "--cluster-cidr",
            "10.244.0.0/16,fd00:10:244::/56",
            "--src",
            src,
            "--dst",
            dst,
        ];
        args.extend_from_slice(extra);
        self.run_trace(&args)
    }

    /// What `kube-proxy-rs trace` predicts from node1's live state without `--manifests`, with `extra` flags
    /// (e.g. `--proxy-mode userspace --metrics-bind-address ...`, so that it asks the running proxy); same
    /// shape as [`trace`](Self::trace).
    pub fn trace_live(&self, extra: &[&str], src: &str, dst: &str) -> Vec<(String, bool)> {
        let mut args = vec!["--src", src, "--dst", dst];
        args.extend_from_slice(extra);
        self.run_trace(&args)
    }

    /// `kube-proxy-rs trace -o json ARGS` run inside node1: the whole JSON document.
    pub fn trace_json(&self, args: &[&str]) -> Value {
        let mut cmd = vec![env!("CARGO_BIN_EXE_kube-proxy-rs"), "trace", "-o", "json"];
        cmd.extend_from_slice(args);
        let out = self.topo.node1.exec(&cmd).expect("running trace");
        assert!(
            out.status.success(),
            "trace {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("trace JSON")
    }

    fn run_trace(&self, args: &[&str]) -> Vec<(String, bool)> {
        let v = self.trace_json(args);
        v["outcomes"]
            .as_array()
            .expect("outcomes")
            .iter()
            .map(|o| {
                let verdict = &o["verdict"];
                let kind = verdict["kind"].as_str().unwrap_or("?").to_string();
                let text = if kind == "dnat" || kind == "proxy" {
                    let ip = verdict["ip"].as_str().unwrap_or("?");
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    format!("{kind} {ip}:{}", verdict["port"])
                } else {
                    kind
                };
                (text, !o["masquerade"].is_null())
            })
            .collect()
    }

    /// `iptables-save` (or `ip6tables-save`) of node1 via the nft backend.
    pub fn save(&self, family: Family) -> String {
        let tool = match family {
            Family::V4 => "iptables-nft-save",
            Family::V6 => "ip6tables-nft-save",
        };
        self.topo.node1.exec_ok(&[tool]).unwrap()
    }

    /// Waits until `f` holds, or panics with the proxy's log.
    pub fn wait_until(&self, what: &str, f: impl FnMut() -> bool) {
        if !self.check(what, f) {
            self.finish();
        }
    }

    /// Waits until `f` holds; on failure records it (see [`finish`](Self::finish)) and returns false, so that
    /// one run reports every failing scenario.
    pub fn check(&self, what: &str, mut f: impl FnMut() -> bool) -> bool {
        let ok = eventually(SETTLE, || f().then_some(())).is_some();
        if !ok {
            eprintln!("FAILED: {what}");
            self.failures.lock().unwrap().push(what.to_string());
        }
        ok
    }

    /// Panics with every recorded failure and the proxy's log, if anything failed.
    pub fn finish(&self) {
        let failures = self.failures.lock().unwrap().clone();
        if !failures.is_empty() {
            panic!(
                "not reached within {SETTLE:?}:\n  {}\n--- proxy log ---\n{}",
                failures.join("\n  "),
                tail(&self.proxy_log(), 60)
            );
        }
    }
}

/// `ipvsadm -Ln` output without the ActiveConn/InActConn columns of real-server lines (they change with
/// traffic), so two listings compare by configuration.
fn ipvs_listing(out: &str) -> String {
    out.lines()
        .map(|l| {
            if l.trim_start().starts_with("->") && !l.contains("RemoteAddress") {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols[..cols.len().min(4)].join(" ")
            } else {
                l.to_string()
            }
        })
        .fold(String::new(), |acc, l| acc + &l + "\n")
}

/// `ipset save` output of the KUBE sets without `initval` (random for each created set; the proxy swaps in
/// freshly created sets).
fn ipset_listing(out: &str) -> String {
    out.lines()
        .filter(|l| l.contains(" KUBE-"))
        .map(|l| {
            let mut cols: Vec<&str> = l.split_whitespace().collect();
            if let Some(i) = cols.iter().position(|c| *c == "initval") {
                cols.drain(i..(i + 2).min(cols.len()));
            }
            cols.join(" ")
        })
        .fold(String::new(), |acc, l| acc + &l + "\n")
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A TCP connection held open across changes (the echo servers greet with their name, then echo lines; they
/// close a connection idle for 30 s, so callers echo now and then).
pub struct LongConn {
    stream: std::net::TcpStream,
    reader: std::io::BufReader<std::net::TcpStream>,
    /// The backend that greeted this connection.
    pub backend: String,
}

impl LongConn {
    /// Connects from `ns` to `dst` and reads the greeting.
    pub fn open(ns: &Netns, dst: SocketAddr) -> std::io::Result<LongConn> {
        use std::io::BufRead;
        let stream = ns
            .run_in(|| std::net::TcpStream::connect_timeout(&dst, REQUEST_TIMEOUT))
            .map_err(std::io::Error::other)??;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = std::io::BufReader::new(stream.try_clone()?);
        let mut greeting = String::new();
        reader.read_line(&mut greeting)?;
        let backend = greeting.split_whitespace().next().unwrap_or("").to_string();
        Ok(LongConn {
            stream,
            reader,
            backend,
        })
    }

    /// Sends a line and reads it back: the connection still works end to end.
    pub fn echo(&mut self) -> bool {
        use std::io::{BufRead, Write};
        let mut line = String::new();
        writeln!(self.stream, "still here").is_ok()
            && self.reader.read_line(&mut line).is_ok()
            && line == "still here\n"
    }
}

/// One TCP exchange from `ns` to `dst`.
pub fn tcp(ns: &Netns, dst: SocketAddr) -> Result<Reply, RequestError> {
    tcp_exchange(ns, dst, REQUEST_TIMEOUT)
}

/// One UDP exchange from `ns` to `dst`.
pub fn udp(ns: &Netns, dst: SocketAddr) -> Result<Reply, RequestError> {
    udp_exchange(ns, dst, REQUEST_TIMEOUT)
}

/// The set of backends that answered `n` TCP requests.
pub fn tcp_backends(ns: &Netns, dst: SocketAddr, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .filter_map(|_| tcp(ns, dst).ok().map(|r| r.backend))
        .collect()
}

pub fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}
