//! Scale figures on the real kernel (root, private network namespace): initial sync and single-endpoint
//! changes at 10,000 Services x 10 endpoints through the netlink applier; prints figures, checks only
//! correctness. A measurement tool, not a test:
//! `cargo run -p kube-proxy-nftables --release --example scale -- ten-thousand-services`
//! `LAYOUT_FILE=layout.nft cargo run -p kube-proxy-nftables --release --example scale -- layout-probe`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("ten-thousand-services") => ten_thousand_services(),
        Some("layout-probe") => layout_probe(),
        _ => {
            eprintln!("usage: scale ten-thousand-services | layout-probe");
            std::process::exit(2);
        }
    }
}

use std::sync::Arc;
use std::time::Instant;

use common::*;
use kube_proxy_model::{
    build_state, synthetic_cluster, IpFamily, NodeContext, ProxyState, ServicePortState,
};
use kube_proxy_nftables::{NftablesDataplane, RenderConfig, SyncKind};

/// Time this thread spent on a CPU (user and kernel), from /proc/thread-self/schedstat.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn ten_thousand_services() {
    if !can_run_privileged() {
        return;
    }
    let n: usize = std::env::var("SCALE_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let objs = synthetic_cluster(n, 10, "node1");
    let node = NodeContext {
        node_name: "node1".into(),
    };
    let base = with_affinity(build_state(&objs, &node, IpFamily::V4, None).state);
    in_private_netns(|| {
        let mut dp = NftablesDataplane::new(IpFamily::V4, RenderConfig::default()).unwrap();
        let state = Arc::new(base.clone());
        // The dataplane's route (streamed, no typed transaction); `examples/full_sync_mem.rs` compares routes.
        let t = Instant::now();
        let full = kube_proxy_nftables::netlink::encode_full(
            &state,
            &RenderConfig::default(),
            &kube_proxy_nftables::slots::Slots::fresh(&state),
            1,
        );
        println!(
            "full render+encode {:?} ({} messages)",
            t.elapsed(),
            full.batch.messages()
        );
        drop(full);
        let cpu0 = thread_cpu_ns();
        let t = Instant::now();
        let r = dp.sync(&state, false).unwrap();
        println!(
            "initial sync of {n} services: {:?} ({:.2} s on-cpu), {} messages, {} bytes",
            t.elapsed(),
            (thread_cpu_ns() - cpu0) as f64 / 1e9,
            r.messages,
            r.bytes
        );
        let mut current = state;
        {
            // Render and encode cost of one replacement, outside the dataplane.
            let next = Arc::new(changed(&current, 0, 42, replace_first));
            let mut slots = kube_proxy_nftables::slots::Slots::fresh(&current);
            let t = Instant::now();
            let tx = kube_proxy_nftables::render_incremental_with(
                &current,
                &next,
                &RenderConfig::default(),
                &mut slots,
            );
            let render = t.elapsed();
            let t = Instant::now();
            let b = kube_proxy_nftables::netlink::encode(&tx, 1);
            println!(
                "incremental render {render:?}, encode {:?}, {} ops",
                t.elapsed(),
                b.messages()
            );
        }
        let plain = |i: usize| (i * 97) % n;
        measure(
            &mut dp,
            &mut current,
            n,
            100,
            "single-endpoint change",
            plain,
            replace_first,
        );
        let count = |i: usize| (i * 389 + 11) % n;
        measure(
            &mut dp,
            &mut current,
            n,
            20,
            "endpoint added (count change)",
            count,
            add_one,
        );
        // Services 0, 100, 200, ... (by name order) have ClientIP affinity, see `with_affinity`.
        let aff = |i: usize| (i * 700) % n - ((i * 700) % n) % 100;
        measure(
            &mut dp,
            &mut current,
            n,
            20,
            "affinity service endpoint change",
            aff,
            replace_first,
        );
        let t = Instant::now();
        let listing = nft_list("ip").unwrap();
        println!(
            "nft list: {:?} ({} lines)",
            t.elapsed(),
            listing.lines().count()
        );
    });
}

/// Every 100th service port (in name order) gets ClientIP affinity (upstream-style endpoint chains).
fn with_affinity(mut state: ProxyState) -> ProxyState {
    let names: Vec<_> = state.services.keys().step_by(100).cloned().collect();
    for name in names {
        let mut s = (*state.services[&name]).clone();
        s.session_affinity_timeout = Some(10_800);
        state.services.insert(name, Arc::new(s));
    }
    state
}

/// The first endpoint of `s` moves to an address derived from `i`.
fn replace_first(i: usize, s: &mut ServicePortState) {
    if let Some(e) = s.endpoints.first_mut() {
        e.ip = ip(&format!("10.251.{}.{}", i / 250, i % 250 + 1));
    }
    resort(s);
}

/// One endpoint is added to `s` (the endpoint count changes).
fn add_one(i: usize, s: &mut ServicePortState) {
    if let Some(mut e) = s.endpoints.first().cloned() {
        e.ip = ip(&format!("10.252.{}.{}", i / 250, i % 250 + 1));
        s.endpoints.push(e);
    }
    resort(s);
}

/// Sorts the endpoints again; every synthetic endpoint is ready, so the cluster and all-reachable views are
/// all of them.
fn resort(s: &mut ServicePortState) {
    s.endpoints.sort();
    s.cluster_endpoints = s.endpoints.clone().into();
    s.all_reachable_endpoints = s.cluster_endpoints.clone();
}

/// `state` with service port number `index` (name order) changed by `f`.
fn changed(
    state: &ProxyState,
    i: usize,
    index: usize,
    f: fn(usize, &mut ServicePortState),
) -> ProxyState {
    let mut next = state.clone();
    let (name, svc) = next
        .services
        .iter()
        .nth(index)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let mut s = (*svc).clone();
    f(i, &mut s);
    next.services.insert(name, Arc::new(s));
    next
}

/// `iters` syncs, each changing one service port; prints on-CPU (user + kernel) and wall percentiles.
fn measure(
    dp: &mut NftablesDataplane,
    current: &mut Arc<ProxyState>,
    n: usize,
    iters: usize,
    label: &str,
    pick: impl Fn(usize) -> usize,
    f: fn(usize, &mut ServicePortState),
) {
    let mut lat = Vec::new();
    let mut cpu = Vec::new();
    for i in 0..iters {
        let next = Arc::new(changed(current, i, pick(i) % n, f));
        let cpu0 = thread_cpu_ns();
        let t = Instant::now();
        let r = dp.sync(&next, false).unwrap();
        lat.push(t.elapsed());
        cpu.push(thread_cpu_ns() - cpu0);
        assert_eq!(r.kind, SyncKind::Partial);
        *current = next;
    }
    lat.sort();
    cpu.sort();
    let p99 = |v: usize| (v * 99).div_ceil(100) - 1;
    println!(
        "{label} ({iters}): on-cpu p50 {:.2} ms, p99 {:.2} ms; wall p50 {:?}, p99 {:?}",
        cpu[iters / 2] as f64 / 1e6,
        cpu[p99(iters)] as f64 / 1e6,
        lat[iters / 2],
        lat[p99(iters)]
    );
}

/// Kernel cost of small batches on a table loaded from `LAYOUT_FILE` (an `nft -f` script with a chain named
/// `probe`): separates the commit's fixed cost from the table validation that verdict-bearing changes trigger.
fn layout_probe() {
    if !can_run_privileged() {
        return;
    }
    let Ok(path) = std::env::var("LAYOUT_FILE") else {
        eprintln!("note: set LAYOUT_FILE");
        return;
    };
    use kube_proxy_nftables::netlink::{encode, NetlinkTransport, NfTransport};
    use kube_proxy_nftables::plan::*;
    in_private_netns(|| {
        let script = std::fs::read_to_string(&path).unwrap();
        let t0 = Instant::now();
        nft_load(&script).unwrap();
        println!("nft -f {path}: {:?}", t0.elapsed());
        let mut t = NetlinkTransport::open().unwrap();
        let plain = |a: &str| {
            Op::AddElement(Element {
                set: "service-ips".into(),
                key: vec![
                    Value::Addr(ip(a)),
                    Value::Proto(kube_proxy_model::Protocol::Tcp),
                    Value::Port(1),
                ],
                verdict: Some(Verdict::Drop),
                data: None,
                comment: None,
            })
        };
        let probes: Vec<(&str, Vec<Op>)> = vec![
            (
                "warm-up chain",
                vec![Op::AddChain(Chain::regular("probe2"))],
            ),
            ("new chain", vec![Op::AddChain(Chain::regular("probe3"))]),
            (
                "rule without verdict",
                vec![Op::AddRule(Rule::new("probe", vec![Stmt::Counter]))],
            ),
            (
                "rule with drop",
                vec![Op::AddRule(Rule::new(
                    "probe",
                    vec![Stmt::Verdict(Verdict::Drop)],
                ))],
            ),
            ("vmap element drop", vec![plain("172.31.0.1")]),
            (
                "vmap element goto",
                vec![Op::AddElement(Element {
                    set: "service-ips".into(),
                    key: vec![
                        Value::Addr(ip("172.31.0.2")),
                        Value::Proto(kube_proxy_model::Protocol::Tcp),
                        Value::Port(1),
                    ],
                    verdict: Some(Verdict::Goto("probe".into())),
                    data: None,
                    comment: None,
                })],
            ),
        ];
        for (what, ops) in probes {
            let tx = Transaction {
                family: Family::Ip,
                ops,
            };
            let b = encode(&tx, 1000);
            let cpu0 = thread_cpu_ns();
            let t0 = Instant::now();
            t.send_batch(&tx, &b).map_err(|e| format!("{e:?}")).unwrap();
            println!(
                "probe {what}: wall {:?}, on-cpu {:.2} ms",
                t0.elapsed(),
                (thread_cpu_ns() - cpu0) as f64 / 1e6
            );
        }
    });
}
