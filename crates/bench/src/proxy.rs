//! The proxy under test: the real binary started inside the node namespace against the test API server, its
//! own metrics (scraped from 127.0.0.1:10249 inside that namespace) and its CPU time and peak RSS from /proc.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube_proxy_testkit::netns::Netns;

use crate::config::BenchConfig;
use crate::error::{BenchError, Result};
use crate::workload::NODE;

/// Where the proxy serves metrics inside its namespace.
pub const METRICS_ADDR: &str = "127.0.0.1:10249";
/// Linux reports /proc/PID/stat times in USER_HZ, which is 100 on every architecture the kernel supports today.
const USER_HZ: f64 = 100.0;

/// A running proxy; killed on drop.
pub struct Proxy {
    child: Child,
    log: tempfile::NamedTempFile,
}

/// The figures of the proxy's own metrics the bench reads (IPv4 family).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProxyMetrics {
    /// `kubeproxy_sync_proxy_rules_last_timestamp_seconds` (Unix seconds; 0 before the first sync).
    pub last_sync: f64,
    /// `kubeproxy_sync_proxy_rules_duration_seconds_sum`.
    pub sync_seconds_sum: f64,
    /// `kubeproxy_sync_proxy_rules_duration_seconds_count`.
    pub sync_count: f64,
    /// `kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_sum`: the part of those syncs spent in the bare
    /// tool (`iptables-restore`) or the netlink batch.
    pub kernel_seconds_sum: f64,
    /// `kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_count`.
    pub kernel_count: f64,
}

impl ProxyMetrics {
    /// The proxy's sync time over its own kernel-loading time, for the syncs between `earlier` and `self`, when
    /// every one of them loaded something.
    pub fn sync_over_kernel_since(&self, earlier: &ProxyMetrics) -> Option<f64> {
        let syncs = self.sync_count - earlier.sync_count;
        let loads = self.kernel_count - earlier.kernel_count;
        let kernel = self.kernel_seconds_sum - earlier.kernel_seconds_sum;
        (syncs > 0.0 && loads == syncs && kernel > 0.0)
            .then(|| (self.sync_seconds_sum - earlier.sync_seconds_sum) / kernel)
    }
}

impl Proxy {
    /// Starts `cfg.proxy_binary` in `node` against the API server at `api_url`.
    pub fn start(node: &Netns, cfg: &BenchConfig, api_url: &str) -> Result<Proxy> {
        if !cfg.proxy_binary.is_file() {
            return Err(BenchError::MissingBinary(
                cfg.proxy_binary.display().to_string(),
            ));
        }
        let log = tempfile::Builder::new()
            .prefix("kube-proxy-bench-")
            .suffix(".log")
            .tempfile()
            .map_err(|source| BenchError::WriteFile {
                what: "the proxy log".into(),
                source,
            })?;
        let stderr = log.reopen().map_err(|source| BenchError::WriteFile {
            what: "the proxy log".into(),
            source,
        })?;
        let min_sync = format!("{}ms", cfg.min_sync_period.as_millis());
        let mut cmd = Command::new(&cfg.proxy_binary);
        cmd.args(["--master", api_url, "--hostname-override", NODE])
            .args(cfg.variant.proxy_args())
            .args([
                "--iptables-min-sync-period",
                &min_sync,
                "--metrics-bind-address",
                METRICS_ADDR,
                "--healthz-bind-address",
                "127.0.0.1:10256",
                "--conntrack-max-per-core=0",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        let child = node.spawn(&mut cmd)?;
        Ok(Proxy { child, log })
    }

    /// The process id (the binary itself; no wrapper process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::Proxy(format!(
                "exited with {status}; log tail:\n{}",
                self.log_tail(30)
            ))),
            Err(e) => Err(BenchError::Proxy(e.to_string())),
        }
    }

    /// The last `n` lines of the proxy's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = read_proc(self.pid(), "stat")?;
        parse_cpu_seconds(&stat)
            .ok_or_else(|| BenchError::Proxy("unparsable /proc/PID/stat".into()))
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        let status = read_proc(self.pid(), "status")?;
        parse_vm_hwm_kib(&status)
            .ok_or_else(|| BenchError::Proxy("no VmHWM in /proc/PID/status".into()))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_proc(pid: u32, file: &str) -> Result<String> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::read_to_string(&path)
        .map_err(|e| BenchError::Proxy(format!("{}: {e}", path.display())))
}

/// utime + stime (fields 14 and 15 of /proc/PID/stat) in seconds.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may contain spaces; fields after its closing parenthesis start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// The VmHWM line of /proc/PID/status, in KiB.
pub fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes the proxy's metrics; called from a thread inside the proxy's namespace.
pub fn scrape_in_namespace() -> Option<ProxyMetrics> {
    let mut stream = TcpStream::connect_timeout(
        &METRICS_ADDR.parse().expect("constant"),
        Duration::from_secs(2),
    )
    .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(parse_metrics(&body))
}

/// The IPv4 (or unlabelled) samples of the metrics the bench reads.
pub fn parse_metrics(text: &str) -> ProxyMetrics {
    let mut m = ProxyMetrics::default();
    for line in text.lines() {
        if line.starts_with('#') || (line.contains("ip_family=") && !line.contains("IPv4")) {
            continue;
        }
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let name = line.split(['{', ' ']).next().unwrap_or("");
        match name {
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds" => {
                m.last_sync = m.last_sync.max(value)
            }
            "kubeproxy_sync_proxy_rules_duration_seconds_sum" => m.sync_seconds_sum += value,
            "kubeproxy_sync_proxy_rules_duration_seconds_count" => m.sync_count += value,
            "kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_sum" => {
                m.kernel_seconds_sum += value
            }
            "kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_count" => {
                m.kernel_count += value
            }
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_parsed() {
        let stat =
            "1234 (kube proxy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        let status = "Name:\tx\nVmPeak:\t 1000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(51200));
    }

    #[test]
    fn metrics_take_ipv4_samples_only() {
        let text = "# TYPE x gauge\n\
            kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} 1700000000.5\n\
            kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv6\"} 1800000000.0\n\
            kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family=\"IPv4\"} 0.25\n\
            kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} 2\n\
            kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_sum{ip_family=\"IPv4\"} 0.2\n\
            kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_count{ip_family=\"IPv4\"} 2\n\
            kubeproxy_rs_sync_proxy_rules_kernel_duration_seconds_sum{ip_family=\"IPv6\"} 9\n\
            kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.5\",ip_family=\"IPv4\"} 2\n";
        let m = parse_metrics(text);
        assert_eq!(m.last_sync, 1_700_000_000.5);
        assert_eq!(m.sync_seconds_sum, 0.25);
        assert_eq!(m.sync_count, 2.0);
        assert_eq!((m.kernel_seconds_sum, m.kernel_count), (0.2, 2.0));
        assert_eq!(
            m.sync_over_kernel_since(&ProxyMetrics::default()),
            Some(1.25)
        );
        let one_sync_without_load = ProxyMetrics {
            sync_count: 3.0,
            sync_seconds_sum: 0.3,
            ..m
        };
        assert_eq!(one_sync_without_load.sync_over_kernel_since(&m), None);
    }
}
