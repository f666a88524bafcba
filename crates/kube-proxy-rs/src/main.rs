//! The `kube-proxy-rs` binary: parse configuration, wire sources, runner, dataplane and servers.
//!
//! Thin on purpose: every decision lives in a library crate; this file only dispatches.
// Denied, not forbidden: malloc_tuning makes one commented FFI call.
#![deny(unsafe_code)]

mod dataplanes;
mod demo;
mod listener;
mod malloc_tuning;
mod node_addresses;
mod render;
mod run;
mod setup;
mod trace;
mod userspace_mode;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube_proxy_config::ProxyFlags;

/// A drop-in replacement for Kubernetes' kube-proxy.
#[derive(Debug, Parser)]
#[command(
    name = "kube-proxy-rs",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: ProxyFlags,
    /// Ours: program the rules once, then exit and leave them in place.
    #[arg(long = "sync-once")]
    sync_once: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the rules kube-proxy-rs would program for the given objects, without touching the kernel.
    Render(render::RenderArgs),
    /// Follow one packet through the rules (rendered from --manifests, or live) and print where it goes.
    Trace(trace::TraceArgs),
    /// Run the proxy on the bundled examples in throwaway network namespaces, send traffic, show the results.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    malloc_tuning::apply();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Some(Command::Render(args)) => render::main(args),
        Some(Command::Trace(args)) => trace::main(args),
        Some(Command::Demo(args)) => demo::main(args),
        None => run::main(cli.flags, cli.sync_once),
    }
}
