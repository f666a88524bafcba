//! `kube-proxy-rs trace`: follow one packet through the rules — rendered from manifests, or read back from the
//! live kernel — and print where it goes: DNAT targets with probabilities, masquerade, DROP or REJECT.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kube_proxy_config::{ProxyFlags, ProxyMode};
use kube_proxy_iptables::{render, RenderScope, Table};
use kube_proxy_model::{build_state, IpFamily, NodeContext};
use kube_proxy_trace::{parse_destination, trace_text, Packet, TraceOptions};

use crate::node_addresses::{local_addresses, node_ips};
use crate::setup::{init_logging, iptables_exec, node_name, render_config};

/// Where the traced packet comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// Arrives on an interface (a pod or an external client): PREROUTING.
    Network,
    /// Sent by a process on the node itself: OUTPUT.
    Node,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Arguments of `trace`: the usual flags plus the packet.
#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    flags: ProxyFlags,
    /// The packet's source address.
    #[arg(long = "src")]
    src: IpAddr,
    /// Destination as IP:PORT, optionally /tcp, /udp or /sctp ([v6]:PORT for IPv6).
    #[arg(long = "dst")]
    dst: String,
    /// Where the packet enters.
    #[arg(long = "from", value_enum, default_value = "network")]
    from: From,
    /// The interface the packet arrives on (for interface-based local-traffic detection).
    #[arg(long = "in-interface")]
    in_interface: Option<String>,
    /// Output format.
    #[arg(long = "output", short = 'o', value_enum, default_value = "text")]
    output: Output,
}

pub fn main(args: TraceArgs) -> ExitCode {
    match trace_main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-proxy-rs trace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn trace_main(args: TraceArgs) -> anyhow::Result<()> {
    let loaded = kube_proxy_config::resolve(&args.flags)?;
    let cfg = loaded.config;
    init_logging(cfg.verbosity);
    if cfg.mode != ProxyMode::Iptables {
        anyhow::bail!(
            "trace supports --proxy-mode iptables (got {})",
            cfg.mode.as_str()
        );
    }
    let (dst, port, protocol) = parse_destination(&args.dst)?;
    let family = IpFamily::of(&dst);
    if IpFamily::of(&args.src) != family {
        anyhow::bail!("--src and --dst must be of the same IP family");
    }
    let local = local_addresses().unwrap_or_default();
    let (rules, mut node_addrs) = match &cfg.manifests {
        Some(dir) => {
            let node = node_name(&cfg)?;
            let (objects, warnings) = kube_proxy_sources::load_manifests(dir, &node)?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            let ips = node_ips(objects.node.as_deref(), Some(cfg.bind_address));
            let ctx = NodeContext { node_name: node };
            let built = build_state(&objects, &ctx, family, None);
            let rcfg = render_config(&cfg, family, &ips, &built.state.node_pod_cidrs, &local);
            let text = render(&built.state, &rcfg, &RenderScope::Full).restore_input();
            (text, ips)
        }
        None => {
            // Live: read back what is programmed on this node.
            let exec = iptables_exec(&cfg);
            let mut text = String::new();
            for table in [Table::Nat, Table::Filter] {
                text.push_str(&exec.save(family, table)?);
            }
            (text, local.clone())
        }
    };
    node_addrs.extend(local.iter().copied());
    node_addrs.retain(|ip| family.contains(ip));
    let packet = match args.from {
        From::Network => Packet::inbound(args.src, dst, port, protocol),
        From::Node => Packet::local(args.src, dst, port, protocol),
    };
    let packet = match &args.in_interface {
        Some(i) => packet.via(i),
        None => packet,
    };
    let trace = trace_text(&rules, &packet, &TraceOptions::with_local_addrs(node_addrs))?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&trace)?),
        Output::Text => print!("{}", trace.render_text()),
    }
    Ok(())
}
