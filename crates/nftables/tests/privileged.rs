//! Privileged end-to-end tests: the netlink applier against the real kernel, compared with the nft text
//! encoder's output loaded by `nft -f`, each in a private network namespace. Needs root and nft: fails when
//! CI=true and they are missing, skips with a note otherwise.

mod common;

use std::sync::Arc;

use common::*;
use kube_proxy_model::{IpFamily, ProxyState};
use kube_proxy_nftables::text::to_nft_script;
use kube_proxy_nftables::{
    render_full, render_incremental, FullReason, LocalDetector, NftablesDataplane,
    NodePortAddresses, RenderConfig, SyncKind,
};

fn cfg() -> RenderConfig {
    RenderConfig {
        local_detector: LocalDetector::Cidrs(vec![
            "10.0.0.0/16".parse().unwrap(),
            "fd00:1::/64".parse().unwrap(),
        ]),
        node_port_addresses: NodePortAddresses::Ips(vec![ip("192.168.1.10"), ip("fd00:99::10")]),
        node_ips: vec![ip("198.51.100.7")],
        service_cidrs: vec![
            "172.30.0.0/16".parse().unwrap(),
            "fd00:30::/112".parse().unwrap(),
        ],
        ..RenderConfig::default()
    }
}

/// What `nft` shows after loading the text encoding of `steps` (each a transaction) in a fresh namespace.
fn listing_via_text(family: &'static str, steps: Vec<String>) -> String {
    in_private_netns(move || {
        for (i, s) in steps.iter().enumerate() {
            nft_load(s).unwrap_or_else(|e| panic!("nft -f of step {i} failed: {e}\n{s}"));
        }
        nft_list(family).expect("table exists")
    })
}

fn family_str(f: IpFamily) -> &'static str {
    match f {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

fn check_full_and_incremental(first: Arc<ProxyState>, second: Arc<ProxyState>) {
    let fam = family_str(first.family);
    let cfg = cfg();
    let full_text = to_nft_script(&render_full(&first, &cfg));
    let inc_text = to_nft_script(&render_incremental(&first, &second, &cfg));
    let want_full = listing_via_text(fam, vec![full_text.clone()]);
    let want_inc = listing_via_text(fam, vec![full_text, inc_text]);
    let want_resync = listing_via_text(fam, vec![to_nft_script(&render_full(&second, &cfg))]);
    let (got_full, got_inc, tamper) = in_private_netns(|| {
        let mut dp = NftablesDataplane::new(first.family, cfg.clone()).expect("netlink socket");
        let r = dp.sync(&first, false).expect("full sync");
        assert_eq!(r.kind, SyncKind::Full);
        let got_full = nft_list(fam).expect("table after full sync");
        let r = dp.sync(&second, false).expect("incremental sync");
        assert_eq!(
            r.kind,
            SyncKind::Partial,
            "untampered table must sync incrementally"
        );
        let got_inc = nft_list(fam).expect("table after incremental sync");
        // Nothing changed: no batch at all.
        let r = dp.sync(&second, false).expect("no-op sync");
        assert_eq!((r.kind, r.messages), (SyncKind::Partial, 0));
        // Tamper: another program adds a chain to our table; the next sync notices and resyncs in full.
        nft_load(&format!("add chain {fam} kube-proxy intruder\n")).expect("tamper");
        let r = dp.sync(&second, false).expect("resync");
        assert_eq!(r.full_reason, Some(FullReason::Tampered));
        let after_resync = nft_list(fam).expect("table after resync");
        dp.cleanup().expect("cleanup");
        assert!(nft_list(fam).is_none(), "cleanup removes the table");
        dp.cleanup().expect("cleanup is idempotent");
        (got_full, got_inc, after_resync)
    });
    assert_eq!(
        normalise(&got_full),
        normalise(&want_full),
        "full sync via netlink differs from nft -f"
    );
    assert_eq!(
        normalise(&got_inc),
        normalise(&want_inc),
        "incremental sync via netlink differs from nft -f"
    );
    assert_eq!(
        normalise(&tamper),
        normalise(&want_resync),
        "resync after tampering restores the table"
    );
}

#[test]
fn netlink_equals_nft_text_ipv4() {
    if !can_run_privileged() {
        return;
    }
    check_full_and_incremental(v4_state("10.0.1.7"), v4_state("10.0.1.8"));
}

#[test]
fn netlink_equals_nft_text_ipv6() {
    if !can_run_privileged() {
        return;
    }
    let first = v6_state();
    let mut second = (*first).clone();
    second.services.pop_first();
    check_full_and_incremental(first, Arc::new(second));
}
