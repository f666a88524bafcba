//! Userspace mode on a live node. Two halves, each read from where it actually lives:
//!
//! - where a packet reaches a listener: behind NAT rules, the node's `KUBE-PORTALS-*` / `KUBE-NODEPORT-*` chains
//!   (`iptables-save`, walked like any other rules, so the DNAT/REDIRECT target is the listener); with
//!   `--userspace-bind-vips`, the sockets bound on this node (`/proc/net/{tcp,udp}[6]`) for each service address;
//! - which backends that listener uses: the running proxy's own report, `/statusz` as JSON on the metrics
//!   address (cluster and local endpoint sets, traffic policies, session affinity, the node's pod CIDRs).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use ipnet::IpNet;
use kube_proxy_iptables::Table;
use kube_proxy_model::{IpFamily, Protocol};
use kube_proxy_trace::userspace::{
    trace_redirected, trace_userspace, UserspacePlan, UserspacePortal, UserspaceService,
};
use kube_proxy_trace::{trace_text, Trace};
use kube_proxy_userspace::redirect::{
    KUBE_NODEPORT_CONTAINER, KUBE_NODEPORT_HOST, KUBE_PORTALS_CONTAINER, KUBE_PORTALS_HOST,
};
use serde::Deserialize;

use super::super::{save, Ctx};

/// The chains whose DNAT/REDIRECT rules lead to the proxy's listeners.
const REDIRECT_CHAINS: &[&str] = &[
    KUBE_PORTALS_CONTAINER,
    KUBE_PORTALS_HOST,
    KUBE_NODEPORT_CONTAINER,
    KUBE_NODEPORT_HOST,
];

/// How long reading `/statusz` may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn trace(ctx: &Ctx) -> anyhow::Result<Trace> {
    let addr = status_address(ctx.cfg.metrics_bind_address)?;
    let body = fetch_statusz(addr).with_context(|| {
        format!(
            "reading the running proxy's backends from http://{addr}/statusz (--metrics-bind-address); is \
             kube-proxy-rs running on this node with its metrics server there?"
        )
    })?;
    let status: StatusDoc = serde_json::from_str(&body)
        .with_context(|| format!("http://{addr}/statusz did not answer the expected JSON"))?;
    let plan = plan(&status, ctx.family)?;
    let opts = ctx.options(&[]);
    if ctx.cfg.userspace_bind_vips {
        let sockets = bound_sockets(ctx.family)?;
        Ok(trace_userspace(&bound(&plan, &sockets), &ctx.packet, &opts))
    } else {
        let rules = save(ctx, &[Table::Nat, Table::Filter])?;
        let nat = trace_text(&rules, &ctx.packet, &opts)?;
        Ok(trace_redirected(&nat, &plan, REDIRECT_CHAINS, &opts))
    }
}

/// Where to reach the metrics server: its bind address, the loopback address of its family when bound to
/// every address.
fn status_address(bind: Option<SocketAddr>) -> anyhow::Result<SocketAddr> {
    let Some(mut addr) = bind else {
        anyhow::bail!(
            "trace --proxy-mode userspace without --manifests reads the running proxy's /statusz, but the \
             metrics server is disabled (--metrics-bind-address)"
        );
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// `GET /statusz` with `Accept: application/json`: the body of a 200 answer.
fn fetch_statusz(addr: SocketAddr) -> anyhow::Result<String> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let get = async {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            let req = hyper::Request::get("/statusz")
                .header(hyper::header::HOST, addr.to_string())
                .header(hyper::header::ACCEPT, "application/json")
                .body(Empty::<Bytes>::new())?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                anyhow::bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
            }
            Ok(String::from_utf8(body.to_vec())?)
        };
        tokio::time::timeout(STATUS_TIMEOUT, get)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {STATUS_TIMEOUT:?}"))?
    })
}

/// The parts of `/statusz` the tracer reads (field names as the JSON has them).
#[derive(Debug, Deserialize)]
struct StatusDoc {
    mode: String,
    families: Vec<FamilyDoc>,
}

#[derive(Debug, Deserialize)]
struct FamilyDoc {
    family: String,
    #[serde(rename = "podCIDRs", default)]
    pod_cidrs: Vec<IpNet>,
    services: Vec<ServiceDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceDoc {
    name: String,
    protocol: String,
    #[serde(rename = "clusterIP")]
    cluster_ip: IpAddr,
    port: u16,
    node_port: Option<u16>,
    #[serde(rename = "externalIPs", default)]
    external_ips: Vec<IpAddr>,
    #[serde(rename = "loadBalancerIPs", default)]
    load_balancer_ips: Vec<IpAddr>,
    internal_traffic_policy: String,
    external_traffic_policy: String,
    #[serde(default)]
    session_affinity_timeout_seconds: Option<u32>,
    cluster_endpoints: Vec<SocketAddr>,
    local_endpoints: Vec<SocketAddr>,
}

/// Every service port the running proxy reports for `family`, with portals on the service addresses and a
/// NodePort portal on every local address; where it listens is not known yet.
fn plan(status: &StatusDoc, family: IpFamily) -> anyhow::Result<UserspacePlan> {
    if status.mode != "userspace" {
        anyhow::bail!(
            "the proxy answering /statusz runs in {} mode, not userspace",
            status.mode
        );
    }
    let name = match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    };
    let Some(f) = status.families.iter().find(|f| f.family == name) else {
        anyhow::bail!("the running proxy reports no successful {name} sync yet");
    };
    let mut services = Vec::new();
    for s in &f.services {
        let Some(protocol) = Protocol::from_k8s(&s.protocol) else {
            continue;
        };
        let portal = |kind: &str, vip: IpAddr, port: u16| UserspacePortal {
            kind: kind.to_string(),
            external: kind != "cluster_ip",
            vip,
            port,
            listen: None,
        };
        let mut portals = vec![portal("cluster_ip", s.cluster_ip, s.port)];
        portals.extend(
            s.external_ips
                .iter()
                .map(|ip| portal("external_ip", *ip, s.port)),
        );
        portals.extend(
            s.load_balancer_ips
                .iter()
                .map(|ip| portal("load_balancer", *ip, s.port)),
        );
        if let Some(np) = s.node_port {
            portals.push(portal("node_port", unspecified(family), np));
        }
        portals.retain(|p| family.contains(&p.vip));
        let by_policy = |local: &str| {
            if local == "Local" {
                s.local_endpoints.clone()
            } else {
                s.cluster_endpoints.clone()
            }
        };
        services.push(UserspaceService {
            name: s.name.clone(),
            protocol,
            portals,
            internal: by_policy(&s.internal_traffic_policy),
            external: by_policy(&s.external_traffic_policy),
            affinity_seconds: s.session_affinity_timeout_seconds,
        });
    }
    Ok(UserspacePlan {
        services,
        local_client_cidrs: f.pod_cidrs.clone(),
    })
}

fn unspecified(family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// A socket bound on this node: protocol and local address.
type Bound = (Protocol, SocketAddr);

/// Bind-VIPs addressing: the portals some socket is bound to, with that socket as the listener. A service
/// address serves only with a socket on exactly that address and port; a NodePort with one on any address.
fn bound(plan: &UserspacePlan, sockets: &[Bound]) -> UserspacePlan {
    let services = plan
        .services
        .iter()
        .map(|s| {
            let portals = s
                .portals
                .iter()
                .flat_map(|p| {
                    sockets
                        .iter()
                        .filter(|(proto, addr)| {
                            *proto == s.protocol
                                && addr.port() == p.port
                                && (addr.ip() == p.vip || p.vip.is_unspecified())
                        })
                        .map(|(_, addr)| UserspacePortal {
                            vip: addr.ip(),
                            listen: Some(*addr),
                            ..p.clone()
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            UserspaceService {
                portals,
                ..s.clone()
            }
        })
        .collect();
    UserspacePlan {
        services,
        local_client_cidrs: plan.local_client_cidrs.clone(),
    }
}

/// Listening TCP and bound UDP sockets of `family` in this network namespace.
fn bound_sockets(family: IpFamily) -> anyhow::Result<Vec<Bound>> {
    let suffix = match family {
        IpFamily::V4 => "",
        IpFamily::V6 => "6",
    };
    let mut out = Vec::new();
    for (proto, name) in [(Protocol::Tcp, "tcp"), (Protocol::Udp, "udp")] {
        let path = format!("/proc/net/{name}{suffix}");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        out.extend(proc_net_bound(&text, proto).into_iter().map(|a| (proto, a)));
    }
    Ok(out)
}

/// The local addresses of `/proc/net/{tcp,udp}[6]` sockets that accept new peers: TCP in LISTEN (0A), UDP
/// unconnected (07). Addresses are the kernel's 32-bit words in host byte order, ports big-endian hex.
fn proc_net_bound(text: &str, proto: Protocol) -> Vec<SocketAddr> {
    let wanted = match proto {
        Protocol::Tcp => "0A",
        _ => "07",
    };
    let mut out: Vec<SocketAddr> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (cols.get(1)?, cols.get(2)?, cols.get(3)?);
            if *state != wanted || (proto != Protocol::Tcp && !remote.ends_with(":0000")) {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(SocketAddr::new(proc_ip(ip)?, port))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn proc_ip(hex: &str) -> Option<IpAddr> {
    let words: Vec<[u8; 4]> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .map(|w| w.map(u32::to_ne_bytes))
        .collect::<Option<_>>()?;
    match words.len() {
        1 if hex.len() == 8 => Some(IpAddr::from(words[0])),
        4 if hex.len() == 32 => {
            let bytes: Vec<u8> = words.concat();
            let arr: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::from(arr))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_trace::{Packet, TraceOptions, Verdict};

    fn status() -> StatusDoc {
        serde_json::from_value(serde_json::json!({
            "mode": "userspace",
            "currentTime": "2024-01-01T00:00:00Z",
            "families": [{
                "family": "IPv4",
                "lastFullSync": "2024-01-01T00:00:00Z",
                "lastPartialSync": null,
                "fullSyncs": 1,
                "partialSyncs": 0,
                "counts": {"rules": 6},
                "podCIDRs": ["10.244.1.0/24"],
                "services": [{
                    "name": "ns/web:http", "protocol": "TCP", "clusterIP": "10.96.0.10", "port": 80,
                    "nodePort": 30080, "externalIPs": ["192.168.100.20"], "loadBalancerIPs": [],
                    "internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Local",
                    "healthCheckNodePort": 32000, "sessionAffinity": "ClientIP",
                    "sessionAffinityTimeoutSeconds": 300,
                    "clusterEndpoints": ["10.244.1.10:8080", "10.244.2.10:8080"],
                    "localEndpoints": ["10.244.1.10:8080"], "totalEndpoints": 2
                }, {
                    "name": "ns/dns", "protocol": "UDP", "clusterIP": "10.96.0.53", "port": 53,
                    "nodePort": null, "externalIPs": [], "loadBalancerIPs": [],
                    "internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Cluster",
                    "healthCheckNodePort": null, "sessionAffinity": "None",
                    "sessionAffinityTimeoutSeconds": null,
                    "clusterEndpoints": ["10.244.2.10:53"], "localEndpoints": [], "totalEndpoints": 1
                }]
            }]
        }))
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_plan_follows_what_the_proxy_reports() {
        let p = plan(&status(), IpFamily::V4).unwrap();
        assert_eq!(p.local_client_cidrs, vec!["10.244.1.0/24".parse().unwrap()]);
        let web = &p.services[0];
        assert_eq!(web.protocol, Protocol::Tcp);
        let portals: Vec<_> = web
            .portals
            .iter()
            .map(|p| (p.kind.as_str(), p.vip, p.port, p.external))
            .collect();
        assert_eq!(
            portals,
            vec![
                ("cluster_ip", ip("10.96.0.10"), 80, false),
                ("external_ip", ip("192.168.100.20"), 80, true),
                ("node_port", ip("0.0.0.0"), 30080, true),
            ]
        );
        assert_eq!(
            web.internal,
            vec![sa("10.244.1.10:8080"), sa("10.244.2.10:8080")]
        );
        assert_eq!(web.external, vec![sa("10.244.1.10:8080")], "eTP=Local");
        assert_eq!(web.affinity_seconds, Some(300));
        assert_eq!(p.services[1].protocol, Protocol::Udp);
        assert_eq!(p.services[1].affinity_seconds, None);
    }

    #[test]
    fn the_wrong_mode_or_family_is_an_error() {
        let err = plan(&status(), IpFamily::V6).unwrap_err().to_string();
        assert!(err.contains("no successful IPv6 sync"), "{err}");
        let mut other = status();
        other.mode = "iptables".into();
        let err = plan(&other, IpFamily::V4).unwrap_err().to_string();
        assert!(err.contains("runs in iptables mode"), "{err}");
    }

    #[test]
    fn the_status_address_is_the_metrics_bind_address_or_loopback() {
        assert_eq!(
            status_address(Some(sa("0.0.0.0:10249"))).unwrap(),
            sa("127.0.0.1:10249")
        );
        assert_eq!(
            status_address(Some(sa("[::]:9000"))).unwrap(),
            sa("[::1]:9000")
        );
        assert_eq!(
            status_address(Some(sa("10.0.0.1:10249"))).unwrap(),
            sa("10.0.0.1:10249")
        );
        assert!(status_address(None).is_err());
    }

    #[test]
    fn an_unreachable_metrics_address_is_an_error() {
        // Bound, then closed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(fetch_statusz(port).is_err());
    }

    #[test]
    fn reads_bound_sockets_from_proc_net() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0A00600A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
           1: 0100007F:2809 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
           2: 0100640A:0050 6400640A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n\
           3: 00000000:7580 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                proc_net_bound(tcp, Protocol::Tcp),
                vec![
                    sa("0.0.0.0:30080"),
                    sa("10.96.0.10:80"),
                    sa("127.0.0.1:10249")
                ]
            );
        }
        // One bound, one connected, one malformed (an address of the wrong length).
        let udp6 = "  sl  local_address                         remote_address                        st\n\
           0: 0000DDFD000000000000000035000000:0035 00000000000000000000000000000000:0000 07 0\n\
           1: 00000000000000000000000000000000:0044 00000000000000000000000001000000:1234 01 0\n\
           2: 0000DDFD0000000000000000350000:0036 00000000000000000000000000000000:0000 07 0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                proc_net_bound(udp6, Protocol::Udp),
                vec![sa("[fddd::35]:53")]
            );
        }
        // This very process's listener shows up.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = bound_sockets(IpFamily::V4).unwrap();
        assert!(
            me.contains(&(Protocol::Tcp, l.local_addr().unwrap())),
            "{me:?}"
        );
    }

    /// The JSON contract: what the metrics server's `/statusz` serves is what the tracer reads.
    #[test]
    fn reads_the_plan_from_a_real_statusz() {
        use kube_proxy_model::fixtures::{ep, finish, name, svc};
        use kube_proxy_telemetry::{Metrics, StatusBoard};
        use std::sync::Arc;

        let mut web = svc(name("ns", "web", "http"), "10.96.0.10", 80);
        web.endpoints = vec![
            ep("10.244.1.10", 8080, true),
            ep("10.244.2.10", 8080, false),
        ];
        web.node_port = Some(30080);
        web.external_policy_local = true;
        web.session_affinity_timeout = Some(120);
        let mut st = kube_proxy_model::fixtures::state(IpFamily::V4, vec![finish(web)]);
        st.node_pod_cidrs = vec!["10.244.1.0/24".parse().unwrap()];
        let board = Arc::new(StatusBoard::new("userspace"));
        board.record_sync(IpFamily::V4, true, &[], &Arc::new(st));

        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt
            .block_on(kube_proxy_servers::serve_metrics_with_status(
                sa("127.0.0.1:0"),
                Arc::new(Metrics::new()),
                "userspace".into(),
                serde_json::json!({}),
                board,
            ))
            .unwrap();
        let body = fetch_statusz(server.local_addr()).unwrap();
        let p = plan(&serde_json::from_str(&body).unwrap(), IpFamily::V4).unwrap();
        assert_eq!(p.local_client_cidrs, vec!["10.244.1.0/24".parse().unwrap()]);
        let web = &p.services[0];
        assert_eq!(web.name, "ns/web:http");
        assert_eq!(
            web.internal,
            vec![sa("10.244.1.10:8080"), sa("10.244.2.10:8080")]
        );
        assert_eq!(web.external, vec![sa("10.244.1.10:8080")]);
        assert_eq!(web.affinity_seconds, Some(120));
        assert_eq!(web.portals.len(), 2);
        rt.block_on(server.shutdown());
    }

    #[test]
    fn bind_vips_portals_are_the_bound_sockets() {
        let p = plan(&status(), IpFamily::V4).unwrap();
        let sockets = vec![
            (Protocol::Tcp, sa("10.96.0.10:80")),
            (Protocol::Tcp, sa("0.0.0.0:30080")),
            // Another process on the node's address and the service port: not the service's portal.
            (Protocol::Tcp, sa("0.0.0.0:80")),
            // The right address, the wrong protocol.
            (Protocol::Udp, sa("192.168.100.20:80")),
        ];
        let b = bound(&p, &sockets);
        let listens: Vec<_> = b.services[0]
            .portals
            .iter()
            .map(|p| (p.kind.as_str(), p.listen))
            .collect();
        assert_eq!(
            listens,
            vec![
                ("cluster_ip", Some(sa("10.96.0.10:80"))),
                ("node_port", Some(sa("0.0.0.0:30080"))),
            ]
        );
        assert!(b.services[1].portals.is_empty(), "dns has no socket");

        let opts = TraceOptions::with_local_addrs(vec![ip("10.100.0.1")]);
        let pkt =
            |dst: &str, port| Packet::inbound(ip("10.100.0.100"), ip(dst), port, Protocol::Tcp);
        // From outside to the NodePort: eTP=Local, the local endpoint.
        let t = trace_userspace(&b, &pkt("10.100.0.1", 30080), &opts);
        assert_eq!(
            t.outcomes
                .iter()
                .map(|o| o.verdict.clone())
                .collect::<Vec<_>>(),
            vec![Verdict::Proxy {
                ip: ip("10.244.1.10"),
                port: 8080
            }]
        );
        // The externalIP has no listener: not the node's address, so forwarded.
        let t = trace_userspace(&b, &pkt("192.168.100.20", 80), &opts);
        assert_eq!(t.outcomes[0].verdict, Verdict::Accept);
        assert!(t.outcomes[0].listener.is_none());
    }
}
