//! The demo's sandbox: the test kit's cluster of namespaces plus a client pod, echo backends, and the proxy
//! process running in node-1. Every piece is an RAII guard; dropping the [`Sandbox`] removes all namespaces.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube_proxy_model::{Protocol, ProxyState};
use kube_proxy_testkit::netns::link::{add_addr, add_route, veth};
use kube_proxy_testkit::netns::{
    tcp_echo_server, udp_echo_server, ClusterTopology, EchoServer, Family, Netns, TopologyOpts,
};

use super::{check_interrupt, pause, DemoError};

/// The client pod's address on node-1 (not a backend of anything).
pub const CLIENT_POD_IP: &str = "10.244.1.50";
/// Prefix of the examples' load-balancer IPs and externalIPs, routed from the external client via node-1.
const VIP_PREFIX: &str = "198.51.100.0/24";
/// How long the proxy may take to program the examples.
const RULES_TIMEOUT: Duration = Duration::from_secs(60);

/// The namespaces of the demo.
pub struct Sandbox {
    /// A pod on node-1 that only sends requests.
    pub client_pod: Netns,
    pub topo: ClusterTopology,
}

impl Sandbox {
    /// Builds the cluster (IPv4 only) and the client pod.
    pub fn build() -> Result<Sandbox, DemoError> {
        let topo = ClusterTopology::build(TopologyOpts {
            ipv4: true,
            ipv6: false,
            vip_routes: vec![VIP_PREFIX.to_string()],
            client_routes_to_pods: false,
        })
        .map_err(DemoError::BuildNamespaces)?;
        let client_pod = Netns::new("client-pod").map_err(DemoError::BuildNamespaces)?;
        let node1 = &topo.node1;
        let wire = || -> Result<(), kube_proxy_testkit::netns::NetnsError> {
            veth(node1, "veth-client", &client_pod, "eth0")?;
            add_addr(node1, "veth-client", "10.244.1.1/32")?;
            add_route(
                node1,
                &format!("{CLIENT_POD_IP}/32"),
                None,
                Some("veth-client"),
            )?;
            add_addr(&client_pod, "eth0", &format!("{CLIENT_POD_IP}/32"))?;
            add_route(&client_pod, "10.244.1.1", None, Some("eth0"))?;
            add_route(&client_pod, "default", Some("10.244.1.1"), Some("eth0"))?;
            Ok(())
        };
        wire().map_err(DemoError::BuildNamespaces)?;
        // Every refused connection gets its ICMP error (the kernel rate-limits them per destination by default,
        // which would turn some of a REJECTed service's answers into timeouts). node-1's own setting only.
        node1
            .sysctl("net.ipv4.icmp_ratelimit", "0")
            .map_err(DemoError::BuildNamespaces)?;
        Ok(Sandbox { client_pod, topo })
    }

    /// node-1's LAN address.
    pub fn node_ip(&self) -> IpAddr {
        self.topo.node_ip(1, Family::V4)
    }

    /// The pod (name and namespace) with address `ip`, if the sandbox has one.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Netns> {
        self.topo
            .pods
            .iter()
            .find(|p| p.ipv4 == Some(ip))
            .map(|p| &p.ns)
    }

    /// Starts one echo server per distinct (pod, port, protocol) among the endpoints of `state`.
    pub fn start_backends(&self, state: &ProxyState) -> Result<Vec<EchoServer>, DemoError> {
        let mut wanted = BTreeSet::new();
        for svc in state.services.values() {
            for ep in &svc.endpoints {
                wanted.insert((ep.ip, ep.port, svc.protocol));
            }
        }
        let mut servers = Vec::new();
        for (ip, port, proto) in wanted {
            let Some(ns) = self.pod_by_ip(ip) else {
                eprintln!("note: endpoint {ip} is not a pod of the sandbox; it gets no backend");
                continue;
            };
            let addr = SocketAddr::new(ip, port);
            let server = match proto {
                Protocol::Tcp => tcp_echo_server(ns, addr),
                Protocol::Udp => udp_echo_server(ns, addr),
                Protocol::Sctp => continue,
            };
            servers.push(server.map_err(DemoError::StartBackend)?);
        }
        Ok(servers)
    }

    /// Starts this executable as the proxy in node-1, logging to a file next to the manifests' temp dir.
    pub fn start_proxy(&self, mode: &str, manifests: &Path) -> Result<ProxyProcess, DemoError> {
        let exe = std::env::current_exe().map_err(DemoError::FindExecutable)?;
        let log = std::env::temp_dir().join(format!("kprs-demo-{}-proxy.log", std::process::id()));
        let file = std::fs::File::create(&log).map_err(|e| {
            DemoError::StartProxy(kube_proxy_testkit::netns::NetnsError::RunCommand {
                cmd: format!("creating {}", log.display()),
                source: e,
            })
        })?;
        let mut cmd = Command::new(exe);
        cmd.arg("--manifests")
            .arg(manifests)
            .args([
                "--hostname-override",
                super::DEMO_NODE,
                "--proxy-mode",
                mode,
                "--cluster-cidr",
                "10.244.0.0/16",
                "--iptables-min-sync-period",
                "100ms",
                // Leave every conntrack sysctl alone (nf_conntrack_max is shared with the host).
                "--conntrack-max-per-core=0",
                "--conntrack-min=0",
                "--conntrack-tcp-timeout-established=0s",
                "--conntrack-tcp-timeout-close-wait=0s",
                "--conntrack-udp-timeout=0s",
                "--conntrack-udp-timeout-stream=0s",
                "--v=2",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        let child = self
            .topo
            .node1
            .spawn(&mut cmd)
            .map_err(DemoError::StartProxy)?;
        Ok(ProxyProcess { child, log })
    }

    /// The rules node-1 has: `iptables-save` of the backend the proxy chose, or the nftables tables.
    pub fn rules(&self, mode: &str) -> String {
        let node1 = &self.topo.node1;
        if mode == "nftables" {
            return node1
                .exec_ok(&["nft", "list", "table", "ip", "kube-proxy"])
                .unwrap_or_else(|e| format!("(nft list table ip kube-proxy failed: {e})\n"));
        }
        for tool in ["iptables-nft-save", "iptables-legacy-save", "iptables-save"] {
            if let Ok(text) = node1.exec_ok(&[tool]) {
                if text.contains("KUBE-SERVICES") {
                    return format!("# {tool}\n{text}");
                }
            }
        }
        "(no KUBE- rules found)\n".to_string()
    }

    /// Asks each health-check node port (from the external client) for its local endpoint count.
    pub fn health_check_report(&self, state: &ProxyState) -> Option<String> {
        let mut out = String::new();
        for svc in state.services.values() {
            let Some(port) = svc.health_check_node_port else {
                continue;
            };
            let addr = SocketAddr::new(self.node_ip(), port);
            let body = self
                .topo
                .client
                .run_in(|| http_get(addr))
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_else(|| "no answer".to_string());
            out.push_str(&format!(
                "health-check node port of {} (http://{addr}/): {}\n",
                svc.name,
                body.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        (!out.is_empty()).then(|| out.trim_end().to_string())
    }

    /// Names of every namespace of the sandbox.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut names = self.topo.namespace_names();
        names.push(self.client_pod.name().to_string());
        names
    }
}

/// A plain HTTP/1.0 GET returning the status line and body.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.lines().next().unwrap_or_default().to_string();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok(format!("{status} {body}"))
}

/// The proxy running in node-1; killed on drop (its rules die with the namespace).
pub struct ProxyProcess {
    child: Child,
    log: PathBuf,
}

impl ProxyProcess {
    /// The last lines of the proxy's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until node-1's rules mention every service's cluster IP.
    pub fn wait_for_rules(
        &mut self,
        sandbox: &Sandbox,
        state: &ProxyState,
        mode: &str,
    ) -> Result<(), DemoError> {
        let ips: BTreeSet<String> = state
            .services
            .values()
            .map(|s| s.cluster_ip.to_string())
            .collect();
        let deadline = Instant::now() + RULES_TIMEOUT;
        loop {
            check_interrupt()?;
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(DemoError::ProxyExited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            let rules = sandbox.rules(mode);
            if ips.iter().all(|ip| rules.contains(ip.as_str())) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DemoError::WaitForRules {
                    timeout: RULES_TIMEOUT,
                    log: self.log_tail(),
                });
            }
            pause(Duration::from_millis(100))?;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
