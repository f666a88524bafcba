//! Golden nft scripts (insta snapshots) for the main configurations, and a check that every one of them is
//! valid `nft -f` input (loaded in a private network namespace; needs root, fails when CI=true without it).
//! Regenerate with `INSTA_UPDATE=always cargo test -p kube-proxy-nftables --test golden` and review the diff.

mod common;

use common::*;
use kube_proxy_model::ProxyState;
use kube_proxy_nftables::text::to_nft_script;
use kube_proxy_nftables::{
    render_full, render_incremental, LocalDetector, NodePortAddresses, RenderConfig,
};

fn primary_cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec![
            "10.0.0.0/16".parse().unwrap(),
            "fd00:1::/64".parse().unwrap(),
        ]),
        node_port_addresses: NodePortAddresses::Ips(vec![
            ip("192.168.1.10"),
            ip("127.0.0.1"),
            ip("fd00:99::10"),
        ]),
        node_ips: vec![ip("198.51.100.7")],
        service_cidrs: vec![
            "172.30.0.0/16".parse().unwrap(),
            "fd00:30::/112".parse().unwrap(),
        ],
        ..RenderConfig::default()
    }
}

fn all_cfg() -> RenderConfig {
    RenderConfig {
        masquerade_all: true,
        masquerade_bit: 5,
        local_detector: LocalDetector::InterfaceNamePrefix("veth".into()),
        node_port_addresses: NodePortAddresses::All,
        ..RenderConfig::default()
    }
}

fn bridge_cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::BridgeInterface("cbr0".into()),
        ..RenderConfig::default()
    }
}

fn scripts() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let a = v4_state("10.0.1.7");
    let b = v4_state("10.0.1.8");
    let v6 = v6_state();
    let full = |s: &ProxyState, c: &RenderConfig| to_nft_script(&render_full(s, c));
    vec![
        ("v4_primary", "ip", vec![full(&a, &primary_cfg())]),
        ("v4_masquerade_all_fib", "ip", vec![full(&a, &all_cfg())]),
        ("v4_bridge", "ip", vec![full(&a, &bridge_cfg())]),
        ("v6_primary", "ip6", vec![full(&v6, &primary_cfg())]),
        (
            "v4_incremental_endpoint_change",
            "ip",
            vec![
                full(&a, &primary_cfg()),
                to_nft_script(&render_incremental(&a, &b, &primary_cfg())),
            ],
        ),
    ]
}

#[test]
fn golden_scripts() {
    for (name, _, steps) in scripts() {
        insta::assert_snapshot!(name, steps.last().unwrap());
    }
}

#[test]
fn golden_scripts_load_with_nft() {
    if !can_run_privileged() {
        return;
    }
    for (name, family, steps) in scripts() {
        let listing = in_private_netns(|| {
            for s in &steps {
                nft_load(s).unwrap_or_else(|e| panic!("{name}: nft -f failed: {e}"));
            }
            nft_list(family)
        });
        assert!(listing.is_some(), "{name}: table exists after loading");
    }
}
