//! `kube-proxy-rs trace`: follow one packet through the rules — rendered from manifests, or read back from the
//! live kernel — and print where it goes: DNAT targets with probabilities, masquerade, DROP or REJECT. One
//! module per mode turns its plan (rendered or read back) into the tracer's input; the tracing itself is pure
//! (`kube_proxy_trace`).

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kube_proxy_config::{ProxyFlags, ProxyMode};
use kube_proxy_iptables::{render, RenderScope, Table};
use kube_proxy_model::{build_state, IpFamily, NodeContext};
use kube_proxy_trace::{parse_destination, trace_text, Packet, Trace, TraceOptions};

use crate::node_addresses::{local_addresses, node_ips};
use crate::setup::{init_logging, iptables_exec, node_name, render_config};

mod ipvs;
mod nft;
mod nft_json;
mod userspace;

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

/// What every mode's trace starts from: the configuration, the packet and this node's addresses.
pub(crate) struct Ctx {
    pub cfg: kube_proxy_config::ProxyConfig,
    pub family: IpFamily,
    pub packet: Packet,
    /// Addresses of this machine (empty when they cannot be read).
    pub local: Vec<IpAddr>,
}

/// The model state and renderer settings of `--manifests DIR`, for one family.
pub(crate) struct FromManifests {
    pub state: kube_proxy_model::ProxyState,
    pub rcfg: kube_proxy_iptables::RenderConfig,
    /// The node's addresses (from its Node object and `--bind-address`).
    pub node_ips: Vec<IpAddr>,
}

impl Ctx {
    /// Loads and renders `--manifests DIR`, or `None` when tracing the live kernel.
    pub fn manifests(&self) -> anyhow::Result<Option<FromManifests>> {
        let Some(dir) = &self.cfg.manifests else {
            return Ok(None);
        };
        let node = node_name(&self.cfg)?;
        let (objects, warnings) = kube_proxy_sources::load_manifests(dir, &node)?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        let node_ips = node_ips(objects.node.as_deref(), Some(self.cfg.bind_address));
        let ctx = NodeContext { node_name: node };
        let built = build_state(&objects, &ctx, self.family, None);
        let rcfg = render_config(
            &self.cfg,
            self.family,
            &node_ips,
            &built.state.node_pod_cidrs,
            &self.local,
        );
        Ok(Some(FromManifests {
            state: built.state,
            rcfg,
            node_ips,
        }))
    }

    /// Trace options with this node's addresses of the packet's family, plus `extra`.
    pub fn options(&self, extra: &[IpAddr]) -> TraceOptions {
        let mut addrs: Vec<IpAddr> = self.local.iter().chain(extra).copied().collect();
        addrs.retain(|ip| self.family.contains(ip));
        addrs.sort();
        addrs.dedup();
        TraceOptions::with_local_addrs(addrs)
    }
}

fn trace_main(args: TraceArgs) -> anyhow::Result<()> {
    let loaded = kube_proxy_config::resolve(&args.flags)?;
    let cfg = loaded.config;
    init_logging(cfg.verbosity);
    let (dst, port, protocol) = parse_destination(&args.dst)?;
    let family = IpFamily::of(&dst);
    if IpFamily::of(&args.src) != family {
        anyhow::bail!("--src and --dst must be of the same IP family");
    }
    let packet = match args.from {
        From::Network => Packet::inbound(args.src, dst, port, protocol),
        From::Node => Packet::local(args.src, dst, port, protocol),
    };
    let packet = match &args.in_interface {
        Some(i) => packet.via(i),
        None => packet,
    };
    let ctx = Ctx {
        family,
        packet,
        local: local_addresses().unwrap_or_default(),
        cfg,
    };
    let trace = match ctx.cfg.mode {
        ProxyMode::Iptables => iptables(&ctx)?,
        ProxyMode::Nftables => nft::trace(&ctx)?,
        ProxyMode::Ipvs => ipvs::trace(&ctx)?,
        ProxyMode::Userspace => userspace::trace(&ctx)?,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&trace)?),
        Output::Text => print!("{}", trace.render_text()),
    }
    Ok(())
}

/// iptables mode: the rendered restore input, or `iptables-save` of the nat and filter tables.
fn iptables(ctx: &Ctx) -> anyhow::Result<Trace> {
    let (rules, node_addrs) = match ctx.manifests()? {
        Some(m) => {
            let text = render(&m.state, &m.rcfg, &RenderScope::Full).restore_input();
            (text, m.node_ips)
        }
        None => (save(ctx, &[Table::Nat, Table::Filter])?, Vec::new()),
    };
    Ok(trace_text(&rules, &ctx.packet, &ctx.options(&node_addrs))?)
}

/// `iptables-save` of `tables` for the packet's family, with the configured backend.
pub(crate) fn save(ctx: &Ctx, tables: &[Table]) -> anyhow::Result<String> {
    let exec = iptables_exec(&ctx.cfg);
    let mut text = String::new();
    for table in tables {
        text.push_str(&exec.save(ctx.family, *table)?);
    }
    Ok(text)
}
