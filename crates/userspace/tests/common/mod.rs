//! Shared helpers of the integration tests: service states built by hand, loopback backends and clients.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kube_proxy_model::{
    Endpoint, IpFamily, Protocol, ProxyState, ServicePortName, ServicePortState,
};
use kube_proxy_userspace::{ServiceMetricsSnapshot, UserspaceConfig, UserspaceProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint {
        ip: addr.ip(),
        port: addr.port(),
        is_local: true,
        ready: true,
        serving: true,
        terminating: false,
        hints: None,
    }
}

pub fn name(n: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName {
        namespace: "test".into(),
        name: n.into(),
        port: "".into(),
        protocol,
    }
}

/// A ClusterIP service port `n` on `vip:port` with `backends`.
pub fn service(
    n: &str,
    protocol: Protocol,
    vip: IpAddr,
    port: u16,
    backends: &[SocketAddr],
) -> ServicePortState {
    let eps: Vec<Endpoint> = backends.iter().copied().map(endpoint).collect();
    ServicePortState {
        name: name(n, protocol),
        family: IpFamily::of(&vip),
        cluster_ip: vip,
        port,
        protocol,
        node_port: None,
        external_ips: vec![],
        load_balancer_ips: vec![],
        load_balancer_source_ranges: vec![],
        external_policy_local: false,
        internal_policy_local: false,
        health_check_node_port: None,
        session_affinity_timeout: None,
        endpoints: eps.clone(),
        cluster_endpoints: eps.clone().into(),
        local_endpoints: eps.clone().into(),
        all_reachable_endpoints: eps.into(),
        has_any_endpoints: !backends.is_empty(),
    }
}

pub fn state(services: Vec<ServicePortState>) -> Arc<ProxyState> {
    let family = services.first().map(|s| s.family).unwrap_or(IpFamily::V4);
    let mut map = BTreeMap::new();
    for s in services {
        map.insert(s.name.clone(), Arc::new(s));
    }
    Arc::new(ProxyState {
        family,
        node_name: "node-a".into(),
        node_pod_cidrs: vec![],
        services: map,
    })
}

/// Turns a hang (a relay that never ends a direction) into a test failure; not a timing assertion.
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the proxy never finished this exchange")
}

/// A port that was free on `ip` a moment ago.
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP address nothing listens on.
pub fn dead_backend() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A backend that writes its `id` to every client and then closes.
pub async fn id_backend(id: u8) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = s.write_all(&[id]).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// A backend that echoes until the client's EOF, then closes.
pub async fn echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Connects (from `from`, when given) and reads everything the proxy sends before closing.
pub async fn read_all(to: SocketAddr, from: Option<IpAddr>) -> Vec<u8> {
    let mut s = match from {
        None => TcpStream::connect(to).await.unwrap(),
        Some(src) => {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::new(src, 0)).unwrap();
            sock.connect(to).await.unwrap()
        }
    };
    let mut out = Vec::new();
    within(s.read_to_end(&mut out)).await.unwrap();
    out
}

/// One request/response round trip on an echo connection.
pub async fn echo_round(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    within(s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(buf, msg);
}

/// A UDP echo backend.
pub async fn udp_echo_backend() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let (n, peer) = s.recv_from(&mut buf).await.unwrap();
            s.send_to(&buf[..n], peer).await.unwrap();
        }
    });
    addr
}

/// Waits (without asserting on time) until the metrics of `svc` satisfy `pred`.
pub async fn wait_metrics(
    proxy: &UserspaceProxy,
    svc: &ServicePortName,
    pred: impl Fn(&ServiceMetricsSnapshot) -> bool,
) -> ServiceMetricsSnapshot {
    for _ in 0..2000 {
        let m = proxy
            .metrics_snapshot()
            .get(svc)
            .cloned()
            .unwrap_or_default();
        if pred(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("metrics of {svc} never reached the expected condition");
}

/// Default configuration with the chosen copy strategy.
pub fn config(splice: bool) -> UserspaceConfig {
    UserspaceConfig {
        use_splice: splice,
        ..UserspaceConfig::default()
    }
}

/// A proxy that already serves `services`.
pub async fn proxy_for(cfg: UserspaceConfig, services: Vec<ServicePortState>) -> UserspaceProxy {
    let st = state(services);
    let proxy = UserspaceProxy::new(cfg, st.clone());
    let out = proxy.apply(st).await;
    assert!(out.is_complete(), "{:?}", out.errors);
    proxy
}
