//! `kube-proxy-rs render`: print what a mode would program for a set of manifests — iptables-restore input,
//! an `nft -f` script, or IPVS virtual servers with their ipsets and helper rules — with no root and no kernel.

use std::process::ExitCode;

use clap::Args;
use kube_proxy_config::{ProxyFlags, ProxyMode};
use kube_proxy_iptables::{render, RenderScope};
use kube_proxy_model::{build_state, IpFamily, NodeContext};

use crate::node_addresses::{local_addresses, node_ips};
use crate::setup::{init_logging, ipvs_config, nftables_config, node_name, render_config};

/// Arguments of `render`: the usual flags (`--manifests` is required).
#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    flags: ProxyFlags,
}

pub fn main(args: RenderArgs) -> ExitCode {
    match render_main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-proxy-rs render: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn render_main(args: RenderArgs) -> anyhow::Result<()> {
    let loaded = kube_proxy_config::resolve(&args.flags)?;
    let cfg = loaded.config;
    init_logging(cfg.verbosity);
    if !matches!(
        cfg.mode,
        ProxyMode::Iptables | ProxyMode::Nftables | ProxyMode::Ipvs
    ) {
        anyhow::bail!(
            "render supports --proxy-mode iptables, nftables and ipvs (got {})",
            cfg.mode.as_str()
        );
    }
    let Some(dir) = &cfg.manifests else {
        anyhow::bail!("render needs --manifests DIR");
    };
    let node = node_name(&cfg)?;
    let (objects, warnings) = kube_proxy_sources::load_manifests(dir, &node)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let node_obj = objects.node.as_deref();
    let ips = node_ips(node_obj, Some(cfg.bind_address));
    let local = local_addresses().unwrap_or_default();
    let ctx = NodeContext {
        node_name: node.clone(),
    };
    let mut out = String::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let built = build_state(&objects, &ctx, family, None);
        for r in &built.rejections {
            eprintln!("warning: skipping invalid object: {r}");
        }
        if family == IpFamily::V6 && built.state.services.is_empty() {
            continue;
        }
        let rcfg = render_config(&cfg, family, &ips, &built.state.node_pod_cidrs, &local);
        if cfg.mode == ProxyMode::Nftables {
            let ncfg = nftables_config(&rcfg, family, &cfg.service_cluster_ip_range);
            out.push_str(&format!("# nft -f input ({family:?}) for node {node}\n"));
            out.push_str(&kube_proxy_nftables::render_script(&built.state, &ncfg));
            continue;
        }
        if cfg.mode == ProxyMode::Ipvs {
            let icfg = ipvs_config(&cfg, &rcfg, family, &local)?;
            let plan = kube_proxy_ipvs::render(&built.state, &icfg);
            out.push_str(&format!("# IPVS mode ({family:?}) for node {node}\n"));
            out.push_str(&kube_proxy_ipvs::format::render_text(&plan));
            continue;
        }
        let rules = render(&built.state, &rcfg, &RenderScope::Full);
        let tool = match family {
            IpFamily::V4 => "iptables-restore",
            IpFamily::V6 => "ip6tables-restore",
        };
        out.push_str(&format!("# {tool} input for node {node}\n"));
        out.push_str(&rules.restore_input());
    }
    print!("{out}");
    Ok(())
}
