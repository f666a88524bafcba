//! Heap of the nftables full sync at 10,000 Services x 10 endpoints (every 100th with ClientIP affinity),
//! without a kernel: renders and encodes the full batch the way the dataplane does, and nothing else. A
//! measurement tool for heaptrack, not a test:
//! `cargo build -p kube-proxy-nftables --release --example full_sync_mem`
//! `target/release/examples/full_sync_mem lean` (or under `heaptrack -o /tmp/fsm ...`). Modes: `lean`:
//! `netlink::encode_full`, the dataplane's route; `typed`: `render_full_with` then `netlink::encode`;
//! `compare`: both, checks they are byte-identical; `state`: nothing (the state alone, to subtract).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use kube_proxy_model::{build_state, synthetic_cluster, IpFamily, NodeContext, ProxyState};
use kube_proxy_nftables::slots::Slots;
use kube_proxy_nftables::{netlink, render_full_with, RenderConfig};

/// The system allocator, counting live heap bytes and their peak (heaptrack's peak also covers building the
/// state, which is larger than the sync; this isolates the sync).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the `GlobalAlloc` contract; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            PEAK.fetch_max(LIVE.fetch_add(l.size(), Relaxed) + l.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            // Both blocks are live for a moment when the block moves; count the larger one only (glibc
            // moves large blocks with mremap).
            if new >= l.size() {
                let grow = new - l.size();
                PEAK.fetch_max(LIVE.fetch_add(grow, Relaxed) + grow, Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MIB: f64 = 1024.0 * 1024.0;

/// Every 100th service port (in name order) gets ClientIP affinity, as in `examples/scale.rs`.
fn with_affinity(mut state: ProxyState) -> ProxyState {
    let names: Vec<_> = state.services.keys().step_by(100).cloned().collect();
    for name in names {
        let mut s = (*state.services[&name]).clone();
        s.session_affinity_timeout = Some(10_800);
        state.services.insert(name, Arc::new(s));
    }
    state
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::var("SCALE_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let state = {
        let objs = synthetic_cluster(n, 10, "node1");
        let node = NodeContext {
            node_name: "node1".into(),
        };
        Arc::new(with_affinity(
            build_state(&objs, &node, IpFamily::V4, None).state,
        ))
    };
    let cfg = RenderConfig::default();
    let slots = Slots::fresh(&state);
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let t = Instant::now();
    let (messages, bytes) = match mode.as_str() {
        "state" => (0, 0),
        "typed" => {
            let tx = render_full_with(&state, &cfg, &slots);
            let b = netlink::encode(&tx, 1);
            (b.messages(), b.bytes.len())
        }
        "lean" => {
            let f = netlink::encode_full(&state, &cfg, &slots, 1);
            (f.batch.messages(), f.batch.bytes.len())
        }
        "compare" => {
            let typed = netlink::encode(&render_full_with(&state, &cfg, &slots), 1);
            let lean = netlink::encode_full(&state, &cfg, &slots, 1).batch;
            assert!(typed.bytes == lean.bytes, "the two routes differ");
            (lean.messages(), lean.bytes.len())
        }
        _ => {
            eprintln!("usage: full_sync_mem state|typed|lean|compare");
            std::process::exit(2);
        }
    };
    let elapsed = t.elapsed();
    println!(
        "{mode}: {n} services, {messages} messages, {bytes} bytes, {elapsed:?}; heap before {:.1} MiB, \
         peak during the sync {:.1} MiB above it",
        before as f64 / MIB,
        (PEAK.load(Relaxed) - before) as f64 / MIB
    );
}
