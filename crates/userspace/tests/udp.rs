//! UDP through the userspace proxy on loopback: echo with replies sourced from the service address, per-client
//! flows and retry after a backend that answers "port unreachable".

mod common;

use std::net::SocketAddr;

use common::*;
use kube_proxy_model::Protocol;
use kube_proxy_userspace::{UserspaceConfig, UserspaceProxy};
use tokio::net::UdpSocket;

async fn exchange(client: &UdpSocket, to: SocketAddr, msg: &[u8]) -> SocketAddr {
    client.send_to(msg, to).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = within(client.recv_from(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], msg);
    from
}

fn free_udp_port(ip: std::net::IpAddr) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn udp_echo_replies_come_from_the_service_address() {
    let backend = udp_echo_backend().await;
    let vip = ip("127.0.77.20");
    let port = free_udp_port(vip);
    let st = state(vec![service("dns", Protocol::Udp, vip, port, &[backend])]);
    let proxy = UserspaceProxy::new(UserspaceConfig::default(), st.clone());
    assert!(proxy.apply(st).await.is_complete());
    let to = SocketAddr::new(vip, port);
    let c1 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(exchange(&c1, to, b"hello").await, to);
    assert_eq!(exchange(&c2, to, b"world!").await, to);
    assert_eq!(exchange(&c1, to, b"again").await, to);
    let m = &proxy.metrics_snapshot()[&name("dns", Protocol::Udp)];
    assert_eq!(m.bytes_in, 16);
    assert_eq!(m.bytes_out, 16);
    assert!(m.accepted_total >= 2);
}

#[tokio::test]
async fn udp_flow_to_an_unreachable_backend_moves_to_the_next() {
    let dead = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let backend = udp_echo_backend().await;
    let vip = ip("127.0.77.21");
    let port = free_udp_port(vip);
    let svc = service("udp-dead", Protocol::Udp, vip, port, &[dead, backend]);
    let st = state(vec![svc.clone()]);
    let proxy = UserspaceProxy::new(UserspaceConfig::default(), st.clone());
    assert!(proxy.apply(st).await.is_complete());
    let to = SocketAddr::new(vip, port);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Retransmit like a real UDP client until an answer arrives; only the live backend can answer.
    let mut buf = [0u8; 64];
    let mut answered = false;
    for _ in 0..50 {
        client.send_to(b"ping", to).await.unwrap();
        if let Ok(Ok((n, from))) = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            client.recv_from(&mut buf),
        )
        .await
        {
            assert_eq!((&buf[..n], from), (&b"ping"[..], to));
            answered = true;
            break;
        }
    }
    assert!(answered, "the live backend never answered");
    let m = &proxy.metrics_snapshot()[&svc.name];
    assert_eq!(m.dial_failures, 1);
    assert_eq!(m.failed_endpoints.get(&dead), Some(&1));
}

async fn udp_proxy(
    vip: &str,
    n: &str,
    cfg: UserspaceConfig,
) -> (
    UserspaceProxy,
    SocketAddr,
    kube_proxy_model::ServicePortName,
) {
    let backend = udp_echo_backend().await;
    let vip = ip(vip);
    let port = free_udp_port(vip);
    let svc = service(n, Protocol::Udp, vip, port, &[backend]);
    let st = state(vec![svc.clone()]);
    let proxy = UserspaceProxy::new(cfg, st.clone());
    assert!(proxy.apply(st).await.is_complete());
    (proxy, SocketAddr::new(vip, port), svc.name)
}

#[tokio::test]
async fn an_idle_udp_flow_closes_and_a_new_one_opens() {
    let cfg = UserspaceConfig {
        udp_idle_timeout: std::time::Duration::from_millis(50),
        ..UserspaceConfig::default()
    };
    let (proxy, to, svc) = udp_proxy("127.0.77.22", "udp-idle", cfg).await;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(exchange(&c, to, b"one").await, to);
    let m = wait_metrics(&proxy, &svc, |m| m.active_connections == 0).await;
    assert_eq!(m.accepted_total, 1);
    assert_eq!(exchange(&c, to, b"two").await, to);
    assert_eq!(proxy.metrics_snapshot()[&svc].accepted_total, 2);
}

#[tokio::test]
async fn the_connection_limit_counts_udp_flows() {
    let cfg = UserspaceConfig {
        udp_idle_timeout: std::time::Duration::from_secs(3600),
        max_connections_per_service: Some(1),
        ..UserspaceConfig::default()
    };
    let (proxy, to, svc) = udp_proxy("127.0.77.23", "udp-limit", cfg).await;
    let c1 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(exchange(&c1, to, b"one").await, to);
    c2.send_to(b"two", to).await.unwrap();
    let m = wait_metrics(&proxy, &svc, |m| m.over_limit_drops > 0).await;
    assert_eq!(
        (m.over_limit_drops, m.accepted_total, m.active_connections),
        (1, 1, 1)
    );
    // The first client's flow still works.
    assert_eq!(exchange(&c1, to, b"three").await, to);
}
