//! Bulk TCP throughput on loopback: a direct connection against the userspace proxy with splice and with
//! buffered copying. Prints MiB/s; asserts nothing. `cargo run -p kube-proxy-userspace --example throughput [MiB]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use kube_proxy_model::{
    Endpoint, IpFamily, Protocol, ProxyState, ServicePortName, ServicePortState,
};
use kube_proxy_userspace::{UserspaceConfig, UserspaceProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A sink that counts what it receives until EOF.
async fn sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = l.local_addr().expect("sink address");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

async fn send(to: SocketAddr, mib: usize) -> f64 {
    let mut s = TcpStream::connect(to).await.expect("connect");
    let chunk = vec![0x5au8; 1024 * 1024];
    let start = Instant::now();
    for _ in 0..mib {
        s.write_all(&chunk).await.expect("write");
    }
    s.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.expect("read");
    mib as f64 / start.elapsed().as_secs_f64()
}

fn state(vip: SocketAddr, backend: SocketAddr) -> Arc<ProxyState> {
    let ep = Endpoint {
        ip: backend.ip(),
        port: backend.port(),
        is_local: true,
        ready: true,
        serving: true,
        terminating: false,
        zone_hints: vec![],
        node_hints: vec![],
    };
    let name = ServicePortName {
        namespace: "bench".into(),
        name: "bulk".into(),
        port: "".into(),
        protocol: Protocol::Tcp,
    };
    let svc = ServicePortState {
        name: name.clone(),
        family: IpFamily::V4,
        cluster_ip: vip.ip(),
        port: vip.port(),
        protocol: Protocol::Tcp,
        node_port: None,
        external_ips: vec![],
        load_balancer_ips: vec![],
        load_balancer_source_ranges: vec![],
        external_policy_local: false,
        internal_policy_local: false,
        health_check_node_port: None,
        session_affinity_timeout: None,
        endpoints: vec![ep.clone()],
        cluster_endpoints: vec![ep.clone()],
        local_endpoints: vec![ep.clone()],
        all_reachable_endpoints: vec![ep],
        has_any_endpoints: true,
    };
    Arc::new(ProxyState {
        family: IpFamily::V4,
        node_name: "bench".into(),
        node_pod_cidrs: vec![],
        services: BTreeMap::from([(name, Arc::new(svc))]),
    })
}

#[tokio::main]
async fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let backend = sink().await;
    println!("direct:           {:8.0} MiB/s", send(backend, mib).await);
    for (splice, vip) in [(true, "127.0.88.1:9000"), (false, "127.0.88.2:9000")] {
        let vip: SocketAddr = vip.parse().expect("vip");
        let st = state(vip, backend);
        let cfg = UserspaceConfig {
            use_splice: splice,
            ..UserspaceConfig::default()
        };
        let proxy = UserspaceProxy::new(cfg, st.clone());
        let outcome = proxy.apply(st).await;
        assert!(outcome.is_complete(), "{:?}", outcome.errors);
        let label = if splice {
            "proxy (splice):"
        } else {
            "proxy (copy):  "
        };
        println!("{label}   {:8.0} MiB/s", send(vip, mib).await);
    }
}
