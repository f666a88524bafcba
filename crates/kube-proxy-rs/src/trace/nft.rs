//! nftables mode: the rendered full-sync plan, or table `kube-proxy` read back with `nft -j list table`.

use std::process::Command;

use anyhow::Context;
use kube_proxy_nftables::plan::Family;
use kube_proxy_trace::nft::{trace_nft, NftTable};
use kube_proxy_trace::Trace;

use super::{nft_json, Ctx};
use crate::setup::nftables_config;

pub(super) fn trace(ctx: &Ctx) -> anyhow::Result<Trace> {
    let (table, node_addrs) = match ctx.manifests()? {
        Some(m) => {
            let ncfg = nftables_config(&m.rcfg, ctx.family, &ctx.cfg.service_cluster_ip_range);
            let tx = kube_proxy_nftables::render_full(&m.state, &ncfg);
            (NftTable::from_transaction(&tx), m.node_ips)
        }
        None => (live(Family::of(ctx.family))?, Vec::new()),
    };
    Ok(trace_nft(&table, &ctx.packet, &ctx.options(&node_addrs)))
}

/// Reads table `kube-proxy` of `family` from the kernel (`nft -j`), as a typed table.
fn live(family: Family) -> anyhow::Result<NftTable> {
    let out = Command::new("nft")
        .args([
            "-j",
            "list",
            "table",
            family.as_str(),
            kube_proxy_nftables::plan::TABLE,
        ])
        .output()
        .context("running nft (is the nftables package installed?)")?;
    if !out.status.success() {
        anyhow::bail!(
            "nft -j list table {} kube-proxy: {}",
            family.as_str(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let (tx, warnings) = nft_json::parse(&String::from_utf8_lossy(&out.stdout))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(NftTable::from_transaction(&tx))
}
