//! Listener lifecycle of the userspace proxy: closing one service's portals without disturbing another's,
//! redirect-mode portals, FREEBIND, bind failures that are retried, and following a stream of states.

mod common;

use std::net::SocketAddr;

use common::*;
use kube_proxy_model::Protocol;
use kube_proxy_userspace::{
    Addressing, PortalKind, UserspaceConfig, UserspaceError, UserspaceProxy,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn removing_a_service_closes_only_its_listener() {
    let echo = echo_backend().await;
    let (va, vb) = (ip("127.0.77.6"), ip("127.0.77.7"));
    let (pa, pb) = (free_port(va), free_port(vb));
    let a = service("svc-a", Protocol::Tcp, va, pa, &[echo]);
    let b = service("svc-b", Protocol::Tcp, vb, pb, &[echo]);
    let proxy = proxy_for(config(true), vec![a, b.clone()]).await;
    let mut conn_b = TcpStream::connect((vb, pb)).await.unwrap();
    echo_round(&mut conn_b, b"before").await;

    let out = proxy.apply(state(vec![b])).await;
    assert_eq!((out.opened, out.closed), (0, 1));
    let err = TcpStream::connect((va, pa)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    echo_round(&mut conn_b, b"after").await;
    let mut fresh = TcpStream::connect((vb, pb)).await.unwrap();
    echo_round(&mut fresh, b"new").await;
    assert!(!proxy
        .metrics_snapshot()
        .contains_key(&name("svc-a", Protocol::Tcp)));
}

#[tokio::test]
async fn redirect_mode_reports_an_ephemeral_proxy_port_per_portal() {
    let backend = id_backend(5).await;
    let vip = ip("10.96.0.10");
    let mut svc = service("redir", Protocol::Tcp, vip, 80, &[backend]);
    svc.external_ips = vec![ip("192.0.2.7")];
    svc.node_port = Some(30080);
    let cfg = UserspaceConfig {
        addressing: Addressing::Redirect {
            listen_ip: Some(ip("127.0.0.1")),
        },
        node_port_addresses: vec![ip("127.0.0.1"), ip("::1")],
        ..config(true)
    };
    let proxy = proxy_for(cfg, vec![svc]).await;
    let portals = proxy.portals();
    let kinds: Vec<_> = portals
        .iter()
        .map(|p| (p.key.kind, p.key.vip, p.key.port))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (PortalKind::ClusterIp, vip, 80),
            (PortalKind::ExternalIp, ip("192.0.2.7"), 80),
            (PortalKind::NodePort, ip("127.0.0.1"), 30080),
        ]
    );
    for p in portals.iter() {
        assert_eq!(p.listen.ip(), ip("127.0.0.1"));
        assert_ne!(p.listen.port(), 0);
        // What a REDIRECT rule would deliver reaches the backend.
        assert_eq!(read_all(p.listen, None).await, [5]);
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn bind_vips_uses_freebind_for_addresses_not_on_this_host() {
    // Binding sends nothing: no traffic leaves loopback.
    let svc4 = service(
        "free4",
        Protocol::Tcp,
        ip("192.0.2.99"),
        8080,
        &[dead_backend()],
    );
    let proxy = proxy_for(config(true), vec![svc4]).await;
    assert_eq!(
        proxy.portals()[0].listen,
        "192.0.2.99:8080".parse().unwrap()
    );
    let svc6 = service("free6", Protocol::Udp, ip("2001:db8::99"), 8080, &[]);
    let proxy6 = proxy_for(config(true), vec![svc6]).await;
    assert_eq!(
        proxy6.portals()[0].listen,
        "[2001:db8::99]:8080".parse().unwrap()
    );
}

#[tokio::test]
async fn follow_applies_published_states_and_sctp_is_skipped() {
    let backend = id_backend(9).await;
    let vip = ip("127.0.77.10");
    let port = free_port(vip);
    let tcp = service("followed", Protocol::Tcp, vip, port, &[backend]);
    let sctp = service("sctp", Protocol::Sctp, vip, port, &[backend]);
    let empty = state(vec![]);
    let proxy = std::sync::Arc::new(UserspaceProxy::new(config(true), empty.clone()));
    let outcome = proxy.apply(state(vec![sctp.clone()])).await;
    assert!(outcome.is_complete());
    assert_eq!(outcome.unsupported, vec![sctp.name.clone()]);
    assert!(proxy.portals().is_empty());

    let (tx, rx) = tokio::sync::watch::channel(empty);
    let follower = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.follow(rx).await }
    });
    tx.send(state(vec![tcp])).unwrap();
    // Retried until the follower has applied the state: connection refused before, the backend's id after.
    let to = SocketAddr::new(vip, port);
    let mut got = None;
    for _ in 0..2000 {
        if let Ok(mut s) = TcpStream::connect(to).await {
            let mut out = Vec::new();
            within(s.read_to_end(&mut out)).await.unwrap();
            got = Some(out);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(got, Some(vec![9]));
    drop(tx);
    within(follower).await.unwrap();
}

#[tokio::test]
async fn a_portal_whose_port_is_taken_is_reported_and_retried() {
    let backend = id_backend(4).await;
    let vip = ip("127.0.77.13");
    let squatter = std::net::TcpListener::bind((vip, 0)).unwrap();
    let port = squatter.local_addr().unwrap().port();
    let st = state(vec![service("taken", Protocol::Tcp, vip, port, &[backend])]);
    let proxy = UserspaceProxy::new(config(true), st.clone());
    let out = proxy.apply(st.clone()).await;
    assert_eq!(out.opened, 0);
    assert!(
        matches!(out.errors.as_slice(), [UserspaceError::Bind { addr, .. }] if *addr == SocketAddr::new(vip, port)),
        "{:?}",
        out.errors
    );
    drop(squatter);
    let out = proxy.apply(st).await;
    assert!(out.is_complete(), "{:?}", out.errors);
    assert_eq!(out.opened, 1);
    assert_eq!(read_all(SocketAddr::new(vip, port), None).await, [4]);
}
