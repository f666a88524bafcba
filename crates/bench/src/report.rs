//! Summaries of repeated runs (median with min/max per figure) as JSON and as markdown tables, one per variant.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::run::RunResult;
use crate::stats::{percentile_f64, Spread};
use crate::workload::ChangeKind;

/// The machine the figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub date_utc: String,
    pub command: String,
}

impl Machine {
    /// Reads cores and kernel release of this machine; `date_utc` from `date -u`.
    pub fn current(command: String) -> Machine {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let date_utc = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cores,
            kernel,
            date_utc,
            command,
        }
    }
}

/// (figure name with its unit, how to read it from one run).
type Figure = (&'static str, fn(&RunResult) -> Option<f64>);

/// Every figure of the tables, in order.
pub const FIGURES: &[Figure] = &[
    ("initial sync, start → rules in kernel (s)", |r| {
        Some(r.initial_sync_s)
    }),
    ("proxy's own first sync (s)", |r| {
        Some(r.initial_proxy_sync_s)
    }),
    ("kernel floor: bare tool, same ruleset (s)", |r| {
        r.kernel_floor.as_ref().map(|f| f.seconds)
    }),
    ("first sync ÷ kernel floor", |r| r.initial_sync_floor_ratio),
    ("first sync ÷ its own kernel load, same input", |r| {
        r.initial_sync_over_kernel
    }),
    ("one change → programmed, p50 (ms)", |r| r.change_p50_ms),
    ("one change → programmed, p99 (ms)", |r| r.change_p99_ms),
    ("endpoint add/remove → programmed, p50 (ms)", |r| {
        kind_percentile(
            r,
            &[ChangeKind::EndpointAdd, ChangeKind::EndpointRemove],
            50.0,
        )
    }),
    ("endpoint add/remove → programmed, p99 (ms)", |r| {
        kind_percentile(
            r,
            &[ChangeKind::EndpointAdd, ChangeKind::EndpointRemove],
            99.0,
        )
    }),
    (
        "Service add (Service, then its slice) → programmed, p50 (ms)",
        |r| kind_percentile(r, &[ChangeKind::ServiceAdd], 50.0),
    ),
    ("Service delete → programmed, p50 (ms)", |r| {
        kind_percentile(r, &[ChangeKind::ServiceDelete], 50.0)
    }),
    ("proxy's own sync per change, median (ms)", |r| {
        percentile_f64(
            &r.changes
                .iter()
                .map(|c| c.proxy_sync_ms)
                .collect::<Vec<_>>(),
            50.0,
        )
    }),
    (
        "proxy's sync per change ÷ its own kernel load, median",
        |r| percentile_f64(&sync_over_kernel(r), 50.0),
    ),
    ("proxy's sync per change ÷ its own kernel load, max", |r| {
        percentile_f64(&sync_over_kernel(r), 100.0)
    }),
    ("CPU at initial sync (s)", |r| Some(r.cpu_initial_s)),
    ("CPU whole run (s)", |r| Some(r.cpu_total_s)),
    ("peak RSS (MiB)", |r| Some(r.peak_rss_mib)),
    ("new TCP conns/s via ClusterIP", |r| {
        r.dataplane.as_ref().map(|d| d.cluster_ip.per_second)
    }),
    ("new TCP conns/s via pod IP", |r| {
        r.dataplane.as_ref().map(|d| d.pod_ip.per_second)
    }),
    (
        "new TCP conns/s via pod IP, before the proxy started (no rules)",
        |r| {
            r.dataplane
                .as_ref()
                .and_then(|d| d.pod_ip_before_proxy.as_ref())
                .map(|s| s.per_second)
        },
    ),
    ("ClusterIP ÷ pod IP conn rate", |r| {
        r.dataplane.as_ref().map(|d| d.rate_ratio)
    }),
    ("connect p50 via ClusterIP (µs)", |r| {
        r.dataplane.as_ref().map(|d| d.cluster_ip.connect_p50_us)
    }),
    ("connect p50 via pod IP (µs)", |r| {
        r.dataplane.as_ref().map(|d| d.pod_ip.connect_p50_us)
    }),
    ("connect p99 via ClusterIP (µs)", |r| {
        r.dataplane.as_ref().map(|d| d.cluster_ip.connect_p99_us)
    }),
    ("connect p99 via pod IP (µs)", |r| {
        r.dataplane.as_ref().map(|d| d.pod_ip.connect_p99_us)
    }),
];

/// Per change: the proxy's syncs over their kernel loads (changes whose syncs all loaded something).
fn sync_over_kernel(r: &RunResult) -> Vec<f64> {
    r.changes
        .iter()
        .filter_map(|c| c.sync_over_kernel)
        .collect()
}

fn kind_percentile(r: &RunResult, kinds: &[ChangeKind], p: f64) -> Option<f64> {
    let v: Vec<f64> = r
        .changes
        .iter()
        .filter(|c| kinds.contains(&c.kind))
        .map(|c| c.latency_ms)
        .collect();
    percentile_f64(&v, p)
}

/// The summary of one (variant, N) cell.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub variant: String,
    pub services: usize,
    pub endpoints: usize,
    pub figures: BTreeMap<String, Spread>,
}

/// Groups runs by (variant, N) and summarises every figure.
pub fn summarise(runs: &[RunResult]) -> Vec<Summary> {
    let mut groups: BTreeMap<(String, usize, usize), Vec<&RunResult>> = BTreeMap::new();
    for r in runs {
        groups
            .entry((r.variant.clone(), r.services, r.endpoints))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((variant, services, endpoints), rs)| {
            let figures = FIGURES
                .iter()
                .filter_map(|(name, f)| {
                    let values: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                    Spread::of(&values).map(|s| (name.to_string(), s))
                })
                .collect();
            Summary {
                variant,
                services,
                endpoints,
                figures,
            }
        })
        .collect()
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_spread(s: &Spread) -> String {
    if s.runs == 1 {
        format!("{} (1 run)", fmt_num(s.median))
    } else {
        format!(
            "{} ({}–{})",
            fmt_num(s.median),
            fmt_num(s.min),
            fmt_num(s.max)
        )
    }
}

/// Markdown: the machine, then one table per variant (rows: figures; columns: N × M).
pub fn markdown(machine: &Machine, summaries: &[Summary]) -> String {
    let mut out = format!(
        "Machine: {} cores, kernel {}; {}.\nCommand: `{}`\nCells: median (min–max) over runs.\n",
        machine.cores, machine.kernel, machine.date_utc, machine.command
    );
    let mut variants: Vec<&str> = summaries.iter().map(|s| s.variant.as_str()).collect();
    variants.dedup();
    for v in variants {
        let cols: Vec<&Summary> = summaries.iter().filter(|s| s.variant == v).collect();
        out.push_str(&format!("\n### {v}\n\n| figure |"));
        for c in &cols {
            out.push_str(&format!(" N={} × M={} |", c.services, c.endpoints));
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(cols.len()));
        out.push('\n');
        for (name, _) in FIGURES {
            out.push_str(&format!("| {name} |"));
            for c in &cols {
                let cell = c
                    .figures
                    .get(*name)
                    .map(fmt_spread)
                    .unwrap_or_else(|| "–".into());
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(variant: &str, n: usize, initial: f64) -> RunResult {
        RunResult {
            variant: variant.into(),
            services: n,
            endpoints: 10,
            load_objects_s: 0.0,
            initial_sync_s: initial,
            initial_proxy_sync_s: initial / 2.0,
            kernel_floor: None,
            kernel_floor_missing: Some("no render".into()),
            initial_sync_floor_ratio: None,
            initial_sync_over_kernel: None,
            changes: vec![],
            change_p50_ms: None,
            change_p99_ms: None,
            cpu_initial_s: 1.0,
            cpu_total_s: 2.0,
            peak_rss_mib: 10.0,
            dataplane: None,
        }
    }

    #[test]
    fn runs_are_grouped_and_tabled() {
        let runs = [
            run("iptables-nft", 100, 1.0),
            run("iptables-nft", 100, 3.0),
            run("iptables-nft", 1000, 2.0),
        ];
        let s = summarise(&runs);
        assert_eq!(s.len(), 2);
        let first = &s[0].figures["initial sync, start → rules in kernel (s)"];
        assert_eq!((first.median, first.min, first.max), (2.0, 1.0, 3.0));
        assert!(!s[0]
            .figures
            .contains_key("kernel floor: bare tool, same ruleset (s)"));
        let md = markdown(&Machine::current("x".into()), &s);
        assert!(md.contains("### iptables-nft"), "{md}");
        assert!(
            md.contains(
                "| initial sync, start → rules in kernel (s) | 2.00 (1.00–3.00) | 2.00 (1 run) |"
            ),
            "{md}"
        );
    }
}
