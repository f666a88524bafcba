//! One benchmark run: namespaces, the API server loaded with N Services × M endpoints, the proxy started, the
//! initial sync timed, the dataplane probed, K single changes timed, CPU and peak RSS read, everything removed.
//!
//! "Programmed" means: the proxy's `kubeproxy_sync_proxy_rules_last_timestamp_seconds` (IPv4) moved past the
//! moment the bench acted, and the kernel, read with the stock tools, shows the expected state. The latency
//! is that timestamp minus the moment of the action (same clock), so polling cost does not inflate it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube_proxy_testkit::apiserver::{ApiServer, ApiServerOptions};
use kube_proxy_testkit::netns::Netns;

use crate::config::BenchConfig;
use crate::dataplane::{probe, probe_one, Backend, DataplaneResult, Topology};
use crate::error::{BenchError, Result};
use crate::floor::{self, Floor};
use crate::kernel::Kernel;
use crate::proxy::{scrape_in_namespace, Proxy, ProxyMetrics};
use crate::workload::{pod_addr, probe_addr, ChangeKind, Expect, Op, Workload, NAMESPACE};

/// How often the proxy's metrics are read while waiting.
const POLL: Duration = Duration::from_millis(5);

/// One measured change.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ChangeResult {
    pub kind: ChangeKind,
    /// Action → the proxy's sync timestamp of the sync that made it visible in the kernel.
    pub latency_ms: f64,
    /// The proxy's own duration of the syncs in between (histogram sum delta / count delta).
    pub proxy_sync_ms: f64,
    /// Those syncs' time over the time their kernel loads took (`iptables-restore` runs, netlink batches): the
    /// proxy's sync against the bare tool on the same input. `None` when a sync loaded nothing.
    pub sync_over_kernel: Option<f64>,
}

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunResult {
    pub variant: String,
    pub services: usize,
    pub endpoints: usize,
    /// Loading the objects into the test API server (not part of any figure).
    pub load_objects_s: f64,
    /// Proxy process start → end of the first sync whose rules the kernel shows (includes the initial list).
    pub initial_sync_s: f64,
    /// The proxy's own duration of its first IPv4 sync (render + apply).
    pub initial_proxy_sync_s: f64,
    /// The bare tool loading the same rendered ruleset; `None` when `render` does not support the mode.
    pub kernel_floor: Option<Floor>,
    /// Why there is no floor, if there is none.
    pub kernel_floor_missing: Option<String>,
    /// initial_proxy_sync_s / kernel floor.
    pub initial_sync_floor_ratio: Option<f64>,
    /// The first sync over its own kernel load (the same input, in the proxy's own namespace).
    pub initial_sync_over_kernel: Option<f64>,
    pub changes: Vec<ChangeResult>,
    pub change_p50_ms: Option<f64>,
    pub change_p99_ms: Option<f64>,
    /// CPU seconds of the proxy when the initial sync was seen, and at the end of the run.
    pub cpu_initial_s: f64,
    pub cpu_total_s: f64,
    pub peak_rss_mib: f64,
    pub dataplane: Option<DataplaneResult>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs one benchmark. Needs root; removes every namespace and process it creates, also on error.
pub fn run_once(cfg: &BenchConfig) -> Result<RunResult> {
    if !is_root() {
        return Err(BenchError::NotRoot);
    }
    if !cfg.proxy_binary.is_file() {
        return Err(BenchError::MissingBinary(
            cfg.proxy_binary.display().to_string(),
        ));
    }
    let mut workload = Workload::new(cfg.services, cfg.endpoints);
    let objects = workload.initial_objects()?;

    let (kernel_floor, kernel_floor_missing) = match floor::render(cfg, &objects)? {
        Ok(rules) => (Some(floor::load(cfg.variant, &rules, cfg.timeout)?), None),
        Err(reason) => (None, Some(reason)),
    };

    let topo = Topology::build()?;
    let _backend = Backend::start(&topo.pod)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| BenchError::Proxy(format!("tokio runtime: {e}")))?;
    let listener = topo
        .node
        .run_in(|| std::net::TcpListener::bind("127.0.0.1:0"))?
        .map_err(|e| BenchError::Proxy(format!("binding the API server: {e}")))?;
    let api = runtime.block_on(ApiServer::start_on(listener, ApiServerOptions::default()))?;
    let load_start = Instant::now();
    for obj in &objects {
        api.apply(obj)?;
    }
    let load_objects_s = load_start.elapsed().as_secs_f64();
    let kernel = Kernel::new(&topo.node, cfg.variant);

    let before_proxy = if cfg.connections > 0 {
        Some(probe_one(&topo.client, pod_addr(), cfg.connections)?)
    } else {
        None
    };

    let started = unix_now();
    let mut proxy = Proxy::start(&topo.node, cfg, &api.url())?;
    let expected = workload.served_services();
    let mut waiter = Waiter {
        node: &topo.node,
        cfg,
        last_seen: 0.0,
        prev: ProxyMetrics::default(),
        recent_sync: 0.0,
    };
    let (synced_at, metrics) = waiter.wait(&mut proxy, started, "the initial sync", || {
        Ok(kernel.served_services()? == expected)
    })?;
    let cpu_initial_s = proxy.cpu_seconds()?;
    let initial_proxy_sync_s = metrics.sync_seconds_sum / metrics.sync_count.max(1.0);
    let initial_sync_over_kernel = metrics.sync_over_kernel_since(&ProxyMetrics::default());
    let initial_sync_s = synced_at - started;
    // The initial sync must not count as "recent" when waiting for a quiet proxy before the first change.
    waiter.prev = metrics;

    let dataplane = if cfg.connections > 0 {
        let mut d = probe(&topo.client, probe_addr(), pod_addr(), cfg.connections)?;
        d.pod_ip_before_proxy = before_proxy;
        Some(d)
    } else {
        None
    };

    let mut changes = Vec::with_capacity(cfg.changes);
    for k in 0..cfg.changes {
        let before = waiter.wait_quiet(&mut proxy)?;
        let change = workload.change(k);
        let acted = unix_now();
        for op in &change.ops {
            match op {
                Op::Apply(v) => {
                    api.apply(v)?;
                }
                Op::Delete(kind, name) => {
                    api.delete(*kind, NAMESPACE, name);
                }
            }
        }
        let what = format!(
            "change {k} ({:?}: {})",
            change.kind,
            describe(&change.expect)
        );
        let (at, after) = waiter.wait(&mut proxy, acted, &what, || kernel.shows(&change.expect))?;
        let syncs = (after.sync_count - before.sync_count).max(1.0);
        changes.push(ChangeResult {
            kind: change.kind,
            latency_ms: (at - acted) * 1e3,
            proxy_sync_ms: (after.sync_seconds_sum - before.sync_seconds_sum) / syncs * 1e3,
            sync_over_kernel: after.sync_over_kernel_since(&before),
        });
    }
    let latencies: Vec<f64> = changes.iter().map(|c| c.latency_ms).collect();
    let result = RunResult {
        variant: cfg.variant.label().into(),
        services: cfg.services,
        endpoints: cfg.endpoints,
        load_objects_s,
        initial_sync_s,
        initial_proxy_sync_s,
        initial_sync_floor_ratio: kernel_floor
            .as_ref()
            .map(|f| initial_proxy_sync_s / f.seconds),
        initial_sync_over_kernel,
        kernel_floor,
        kernel_floor_missing,
        change_p50_ms: crate::stats::percentile_f64(&latencies, 50.0),
        change_p99_ms: crate::stats::percentile_f64(&latencies, 99.0),
        changes,
        cpu_initial_s,
        cpu_total_s: proxy.cpu_seconds()?,
        peak_rss_mib: proxy.peak_rss_kib()? as f64 / 1024.0,
        dataplane,
    };
    drop(proxy);
    drop(api);
    Ok(result)
}

fn describe(e: &Expect) -> String {
    match e {
        Expect::Present { ip, endpoints } => format!("{ip} with {endpoints} endpoints"),
        Expect::Absent { ip } => format!("{ip} gone"),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Waits for syncs of the proxy and checks the kernel after each new one.
struct Waiter<'a> {
    node: &'a Netns,
    cfg: &'a BenchConfig,
    /// The newest sync timestamp already checked.
    last_seen: f64,
    /// Metrics at the last quiet check that saw new syncs, and the mean duration of those syncs.
    prev: ProxyMetrics,
    recent_sync: f64,
}

impl Waiter<'_> {
    /// Waits until no sync has ended for 2 × min-sync-period + 3 × the recent sync duration + 200 ms, so that a
    /// change meets an idle rate limiter — a full bucket of upstream's burst of 2 syncs, which a Service and
    /// its EndpointSlice need back to back — and no trailing sync of the previous change is pending. Returns
    /// the metrics read then.
    fn wait_quiet(&mut self, proxy: &mut Proxy) -> Result<ProxyMetrics> {
        let deadline = Instant::now() + self.cfg.timeout;
        loop {
            proxy.ensure_running()?;
            if let Some(m) = self.node.run_in(scrape_in_namespace)? {
                if m.sync_count > self.prev.sync_count {
                    self.recent_sync = (m.sync_seconds_sum - self.prev.sync_seconds_sum)
                        / (m.sync_count - self.prev.sync_count);
                    self.prev = m;
                }
                let quiet =
                    2.0 * self.cfg.min_sync_period.as_secs_f64() + 3.0 * self.recent_sync + 0.2;
                if unix_now() - m.last_sync >= quiet {
                    return Ok(m);
                }
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: "a quiet proxy".into(),
                    log: proxy.log_tail(30),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a sync that ended at or after `since` leaves the kernel in a state where `check` holds.
    /// Returns that sync's timestamp and the metrics read then.
    fn wait(
        &mut self,
        proxy: &mut Proxy,
        since: f64,
        what: &str,
        mut check: impl FnMut() -> Result<bool>,
    ) -> Result<(f64, ProxyMetrics)> {
        let deadline = Instant::now() + self.cfg.timeout;
        loop {
            proxy.ensure_running()?;
            let metrics = self.node.run_in(scrape_in_namespace)?;
            if let Some(m) = metrics {
                if m.last_sync >= since && m.last_sync > self.last_seen {
                    self.last_seen = m.last_sync;
                    if check()? {
                        return Ok((m.last_sync, m));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: what.into(),
                    log: proxy.log_tail(30),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}
