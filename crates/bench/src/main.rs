//! `kube-proxy-bench`: runs the benchmark matrix (variants × N, repeated) and writes `results.json` and
//! `results.md` into the output directory after every run, so a long matrix keeps what it has measured.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kube_proxy_bench::report::{markdown, summarise, Machine};
use kube_proxy_bench::{run_once, BenchConfig, RunResult, Variant};

/// Scale benchmark of kube-proxy-rs (needs root).
#[derive(Debug, Parser)]
#[command(name = "kube-proxy-bench")]
struct Args {
    /// The kube-proxy-rs binary under test.
    #[arg(long, default_value = "target/release/kube-proxy-rs")]
    proxy_binary: PathBuf,
    /// Variants: iptables-nft, iptables-legacy, nftables (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "iptables-nft")]
    variants: Vec<String>,
    /// Numbers of Services (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    services: Vec<usize>,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Single changes per run.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Runs per (variant, N).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Runs per (variant, N) when N >= 10000 (defaults to --repeats).
    #[arg(long)]
    large_repeats: Option<usize>,
    /// The proxy's --iptables-min-sync-period, in ms (upstream default 1000).
    #[arg(long, default_value_t = 1000)]
    min_sync_period_ms: u64,
    /// New TCP connections per target in the dataplane probe (0: no probe).
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Give up waiting for any one state after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
    /// Where results.json and results.md go.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
}

#[derive(serde::Serialize)]
struct Output<'a> {
    machine: &'a Machine,
    summary: Vec<kube_proxy_bench::report::Summary>,
    runs: &'a [RunResult],
    errors: &'a [String],
}

fn main() -> ExitCode {
    let args = Args::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let machine = Machine::current(command);
    let mut variants = Vec::new();
    for v in &args.variants {
        match Variant::parse(v) {
            Some(v) => variants.push(v),
            None => {
                eprintln!("unknown variant {v} (known: iptables-nft, iptables-legacy, nftables)");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = std::fs::create_dir_all(&args.out_dir) {
        eprintln!("creating {}: {e}", args.out_dir.display());
        return ExitCode::FAILURE;
    }
    let mut runs: Vec<RunResult> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for variant in variants {
        'sizes: for &n in &args.services {
            let repeats = if n >= 10_000 {
                args.large_repeats.unwrap_or(args.repeats)
            } else {
                args.repeats
            };
            for rep in 0..repeats {
                let cfg = BenchConfig {
                    proxy_binary: args.proxy_binary.clone(),
                    variant,
                    services: n,
                    endpoints: args.endpoints,
                    changes: args.changes,
                    min_sync_period: Duration::from_millis(args.min_sync_period_ms),
                    connections: args.connections,
                    timeout: Duration::from_secs(args.timeout_secs),
                };
                eprintln!(
                    "== {} N={n} M={} run {}/{repeats}",
                    variant.label(),
                    args.endpoints,
                    rep + 1
                );
                match run_once(&cfg) {
                    Ok(r) => {
                        eprintln!(
                            "   initial sync {:.2} s (proxy {:.2} s, floor {}), changes p50 {:?} ms p99 {:?} ms, \
                             cpu {:.1} s, peak RSS {:.1} MiB, conn ratio {:?}",
                            r.initial_sync_s,
                            r.initial_proxy_sync_s,
                            r.kernel_floor.as_ref().map(|f| format!("{:.2} s", f.seconds)).unwrap_or("–".into()),
                            r.change_p50_ms,
                            r.change_p99_ms,
                            r.cpu_total_s,
                            r.peak_rss_mib,
                            r.dataplane.as_ref().map(|d| d.rate_ratio)
                        );
                        runs.push(r);
                    }
                    Err(e) => {
                        let msg = format!("{} N={n}: {e}", variant.label());
                        eprintln!("   FAILED: {msg}");
                        errors.push(msg);
                        write(&args, &machine, &runs, &errors);
                        break 'sizes;
                    }
                }
                write(&args, &machine, &runs, &errors);
            }
        }
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn write(args: &Args, machine: &Machine, runs: &[RunResult], errors: &[String]) {
    let summary = summarise(runs);
    let mut md = markdown(machine, &summary);
    for e in errors {
        md.push_str(&format!("\nFailed: {e}\n"));
    }
    let out = Output {
        machine,
        summary,
        runs,
        errors,
    };
    let json = serde_json::to_string_pretty(&out).unwrap_or_default();
    for (name, text) in [("results.json", json), ("results.md", md)] {
        let path = args.out_dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("writing {}: {e}", path.display());
        }
    }
}
