//! TCP through the userspace proxy on loopback: balancing, affinity, retries of dead endpoints, half-close,
//! bulk relaying, endpoint removal and the connection limit.

mod common;

use std::net::SocketAddr;

use common::*;
use kube_proxy_model::Protocol;
use kube_proxy_userspace::UserspaceConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn round_robin_spreads_evenly_over_three_backends() {
    let backends = [
        id_backend(1).await,
        id_backend(2).await,
        id_backend(3).await,
    ];
    let vip = ip("127.0.77.1");
    let port = free_port(vip);
    let proxy = proxy_for(
        config(true),
        vec![service("rr", Protocol::Tcp, vip, port, &backends)],
    )
    .await;
    let mut counts = [0usize; 4];
    for _ in 0..9 {
        let got = read_all(SocketAddr::new(vip, port), None).await;
        assert_eq!(got.len(), 1);
        counts[usize::from(got[0])] += 1;
    }
    assert_eq!(&counts[1..], &[3, 3, 3]);
    let m = &proxy.metrics_snapshot()[&name("rr", Protocol::Tcp)];
    assert_eq!(m.accepted_total, 9);
    assert_eq!(m.dial_failures, 0);
}

#[tokio::test]
async fn client_ip_affinity_pins_each_client_to_one_backend() {
    let backends = [
        id_backend(1).await,
        id_backend(2).await,
        id_backend(3).await,
    ];
    let vip = ip("127.0.77.2");
    let port = free_port(vip);
    let mut svc = service("aff", Protocol::Tcp, vip, port, &backends);
    svc.session_affinity_timeout = Some(10800);
    let _proxy = proxy_for(config(true), vec![svc]).await;
    let to = SocketAddr::new(vip, port);
    let mut seen = Vec::new();
    for client in ["127.0.78.1", "127.0.78.2", "127.0.78.3"] {
        let first = read_all(to, Some(ip(client))).await;
        for _ in 0..4 {
            assert_eq!(
                read_all(to, Some(ip(client))).await,
                first,
                "client {client}"
            );
        }
        seen.push(first[0]);
    }
    // Round-robin placed the three new clients on three different backends.
    seen.sort();
    assert_eq!(seen, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_dead_backend_never_fails_a_connection() {
    let dead = dead_backend();
    let backends = [id_backend(1).await, dead, id_backend(2).await];
    let vip = ip("127.0.77.3");
    let port = free_port(vip);
    let proxy = proxy_for(
        config(true),
        vec![service("dead", Protocol::Tcp, vip, port, &backends)],
    )
    .await;
    for _ in 0..9 {
        let got = read_all(SocketAddr::new(vip, port), None).await;
        assert!(got == [1] || got == [2], "got {got:?}");
    }
    let m = &proxy.metrics_snapshot()[&name("dead", Protocol::Tcp)];
    assert_eq!(m.dial_failures, 3);
    assert_eq!(m.failed_endpoints.get(&dead), Some(&3));
    assert_eq!(m.no_endpoint_drops, 0);
}

/// The backend answers only after the client's EOF, with the number of bytes it received.
async fn counting_backend() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut all = Vec::new();
                s.read_to_end(&mut all).await.unwrap();
                s.write_all(format!("got {}", all.len()).as_bytes())
                    .await
                    .unwrap();
                s.shutdown().await.unwrap();
            });
        }
    });
    addr
}

async fn half_close_through(vip: &str, splice: bool) {
    let backend = counting_backend().await;
    let vip = ip(vip);
    let port = free_port(vip);
    let n = format!("half-{splice}");
    let proxy = proxy_for(
        config(splice),
        vec![service(&n, Protocol::Tcp, vip, port, &[backend])],
    )
    .await;
    let mut s = TcpStream::connect((vip, port)).await.unwrap();
    let payload = vec![7u8; 300_000];
    s.write_all(&payload).await.unwrap();
    s.shutdown().await.unwrap();
    let mut reply = String::new();
    within(s.read_to_string(&mut reply)).await.unwrap();
    assert_eq!(reply, "got 300000");
    let m = wait_metrics(&proxy, &name(&n, Protocol::Tcp), |m| {
        m.active_connections == 0
    })
    .await;
    assert_eq!(m.bytes_in, 300_000);
    assert_eq!(m.bytes_out, 10);
}

#[tokio::test]
async fn half_close_is_forwarded_with_splice() {
    half_close_through("127.0.77.4", true).await;
}

#[tokio::test]
async fn half_close_is_forwarded_with_buffered_copy() {
    half_close_through("127.0.77.5", false).await;
}

#[tokio::test]
async fn ipv6_loopback_service_works() {
    let l = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let backend = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(b"six").await.unwrap();
    });
    let vip = ip("::1");
    let port = free_port(vip);
    let _proxy = proxy_for(
        config(true),
        vec![service("v6", Protocol::Tcp, vip, port, &[backend])],
    )
    .await;
    assert_eq!(read_all(SocketAddr::new(vip, port), None).await, b"six");
}

#[tokio::test]
async fn an_established_connection_outlives_its_endpoint_removal() {
    let echo = echo_backend().await;
    let vip = ip("127.0.77.8");
    let port = free_port(vip);
    let svc = service("drain", Protocol::Tcp, vip, port, &[echo]);
    let proxy = proxy_for(config(true), vec![svc.clone()]).await;
    let mut s = TcpStream::connect((vip, port)).await.unwrap();
    echo_round(&mut s, b"one").await;

    let out = proxy
        .apply(state(vec![service("drain", Protocol::Tcp, vip, port, &[])]))
        .await;
    assert_eq!((out.opened, out.closed), (0, 0));
    // New connections find no endpoint and are closed without data...
    assert!(read_all(SocketAddr::new(vip, port), None).await.is_empty());
    // ...while the established one still works and ends cleanly.
    echo_round(&mut s, b"two").await;
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(s.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    let m = wait_metrics(&proxy, &svc.name, |m| m.active_connections == 0).await;
    assert_eq!(m.no_endpoint_drops, 1);
}

#[tokio::test]
async fn connection_limit_closes_extra_connections() {
    let echo = echo_backend().await;
    let vip = ip("127.0.77.9");
    let port = free_port(vip);
    let cfg = UserspaceConfig {
        max_connections_per_service: Some(1),
        ..config(true)
    };
    let svc = service("limited", Protocol::Tcp, vip, port, &[echo]);
    let proxy = proxy_for(cfg, vec![svc.clone()]).await;
    let mut first = TcpStream::connect((vip, port)).await.unwrap();
    echo_round(&mut first, b"hold").await;

    let mut second = TcpStream::connect((vip, port)).await.unwrap();
    let _ = second.write_all(b"x").await;
    let mut buf = [0u8; 1];
    let n = within(second.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "over-limit connection must be closed");
    assert_eq!(proxy.metrics_snapshot()[&svc.name].over_limit_drops, 1);

    drop(first);
    wait_metrics(&proxy, &svc.name, |m| m.active_connections == 0).await;
    let mut third = TcpStream::connect((vip, port)).await.unwrap();
    echo_round(&mut third, b"again").await;
}

async fn bulk_echo(vip: &str, splice: bool) {
    bulk_echo_with(vip, config(splice)).await;
}

async fn bulk_echo_with(vip: &str, cfg: UserspaceConfig) {
    let echo = echo_backend().await;
    let vip = ip(vip);
    let port = free_port(vip);
    let n = format!("bulk-{}-{:?}", cfg.use_splice, cfg.socket_buffer_size);
    let proxy = proxy_for(cfg, vec![service(&n, Protocol::Tcp, vip, port, &[echo])]).await;
    let mut clients = Vec::new();
    for c in 0..8u8 {
        clients.push(tokio::spawn(async move {
            let s = TcpStream::connect((vip, port)).await.unwrap();
            let (mut r, mut w) = s.into_split();
            let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8 ^ c).collect();
            let expected = data.clone();
            // Write and read at the same time: a relay that serialises directions would deadlock here.
            let writer = tokio::spawn(async move {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            within(r.read_to_end(&mut back)).await.unwrap();
            writer.await.unwrap();
            assert!(back == expected, "client {c}: echoed data differs");
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let m = wait_metrics(&proxy, &name(&n, Protocol::Tcp), |m| {
        m.active_connections == 0
    })
    .await;
    assert_eq!((m.bytes_in, m.bytes_out), (8_000_000, 8_000_000));
}

#[tokio::test]
async fn bulk_bidirectional_echo_with_splice() {
    bulk_echo("127.0.77.11", true).await;
}

#[tokio::test]
async fn bulk_bidirectional_echo_with_buffered_copy() {
    bulk_echo("127.0.77.12", false).await;
}

#[tokio::test]
async fn bulk_bidirectional_echo_with_small_fixed_socket_buffers() {
    // Fixed buffers (one loopback segment) far smaller than the transfer: every byte still arrives, in both
    // directions at once.
    for (vip, splice) in [("127.0.77.13", true), ("127.0.77.14", false)] {
        let cfg = UserspaceConfig {
            socket_buffer_size: Some(64 * 1024),
            ..config(splice)
        };
        bulk_echo_with(vip, cfg).await;
    }
}
