//! Userspace mode, from `--manifests DIR`: the portals the proxy would listen on (its own `portal_keys`) and the
//! endpoints it would round-robin over. Without `--manifests`, on a live node ([`live`]): the listener from the
//! kernel (redirect rules or bound sockets), the backends from the running proxy's `/statusz`.

use std::net::SocketAddr;

use kube_proxy_model::ProxyState;
use kube_proxy_trace::userspace::{
    trace_userspace, UserspacePlan, UserspacePortal, UserspaceService,
};
use kube_proxy_trace::Trace;
use kube_proxy_userspace::{portal_keys, Addressing, PortalKind, UserspaceConfig};

use super::Ctx;

mod live;
use crate::userspace_mode::settings;

pub(super) fn trace(ctx: &Ctx) -> anyhow::Result<Trace> {
    let Some(m) = ctx.manifests()? else {
        return live::trace(ctx);
    };
    let s = settings(
        ctx.family,
        ctx.cfg.userspace_bind_vips,
        &m.node_ips,
        &ctx.local,
        &m.rcfg.node_port_addresses,
    );
    let plan = plan(&m.state, &s.proxy);
    Ok(trace_userspace(
        &plan,
        &ctx.packet,
        &ctx.options(&m.node_ips),
    ))
}

/// The userspace proxy's view of `state` under `config`.
pub(crate) fn plan(state: &ProxyState, config: &UserspaceConfig) -> UserspacePlan {
    let sock = |e: &kube_proxy_model::Endpoint| SocketAddr::new(e.ip, e.port);
    let services = state
        .services
        .values()
        .filter(|svc| svc.family.contains(&svc.cluster_ip))
        .map(|svc| UserspaceService {
            name: svc.name.to_string(),
            protocol: svc.protocol,
            portals: portal_keys(svc, config)
                .into_iter()
                .map(|k| UserspacePortal {
                    kind: match k.kind {
                        PortalKind::ClusterIp => "cluster_ip",
                        PortalKind::ExternalIp => "external_ip",
                        PortalKind::LoadBalancer => "load_balancer",
                        PortalKind::NodePort => "node_port",
                    }
                    .to_string(),
                    external: k.kind.is_external(),
                    vip: k.vip,
                    port: k.port,
                    listen: match config.addressing {
                        Addressing::BindVips => Some(SocketAddr::new(k.vip, k.port)),
                        Addressing::Redirect { .. } => None,
                    },
                })
                .collect(),
            internal: svc.internal_endpoints().iter().map(sock).collect(),
            external: svc.external_endpoints().iter().map(sock).collect(),
            affinity_seconds: svc.session_affinity_timeout,
        })
        .collect();
    UserspacePlan {
        services,
        local_client_cidrs: state.node_pod_cidrs.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_model::fixtures::{ep, finish, ip, name, svc};
    use kube_proxy_model::{IpFamily, Protocol};
    use kube_proxy_trace::{Packet, TraceOptions, Verdict};

    fn state() -> ProxyState {
        let mut web = svc(name("ns1", "web", "http"), "172.30.0.10", 80);
        web.endpoints = vec![ep("10.0.1.1", 8080, false), ep("10.0.2.1", 8080, true)];
        web.node_port = Some(30080);
        web.external_policy_local = true;
        let mut sticky = svc(name("ns1", "sticky", ""), "172.30.0.11", 80);
        sticky.session_affinity_timeout = Some(300);
        sticky.endpoints = vec![ep("10.0.1.1", 8080, false)];
        let empty = svc(name("ns1", "empty", ""), "172.30.0.12", 80);
        let mut st = kube_proxy_model::fixtures::state(
            IpFamily::V4,
            vec![finish(web), finish(sticky), finish(empty)],
        );
        st.node_pod_cidrs = vec!["10.0.2.0/24".parse().unwrap()];
        st
    }

    fn config(addressing: Addressing) -> UserspaceConfig {
        UserspaceConfig {
            addressing,
            node_port_addresses: vec![ip("192.168.0.2")],
            ..UserspaceConfig::default()
        }
    }

    fn trace(addressing: Addressing, src: &str, dst: &str, port: u16) -> Trace {
        let plan = plan(&state(), &config(addressing));
        let pkt = Packet::inbound(ip(src), ip(dst), port, Protocol::Tcp);
        let opts = TraceOptions::with_local_addrs(vec![ip("192.168.0.2")]);
        trace_userspace(&plan, &pkt, &opts)
    }

    fn proxied(t: &Trace) -> Vec<(Verdict, f64)> {
        t.outcomes
            .iter()
            .map(|o| (o.verdict.clone(), o.probability))
            .collect()
    }

    fn to(i: &str) -> Verdict {
        Verdict::Proxy {
            ip: ip(i),
            port: 8080,
        }
    }

    #[test]
    fn cluster_ip_round_robins_over_every_endpoint() {
        let t = trace(Addressing::BindVips, "10.0.2.7", "172.30.0.10", 80);
        assert_eq!(
            proxied(&t),
            vec![(to("10.0.1.1"), 0.5), (to("10.0.2.1"), 0.5)]
        );
        let l = t.outcomes[0].listener.as_ref().unwrap();
        assert_eq!(l.service, "ns1/web:http");
        assert_eq!(l.listen, Some("172.30.0.10:80".parse().unwrap()));
        assert!(t.render_text().contains("round robin over 2 backend(s)"));
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["outcomes"][0]["verdict"]["kind"], "proxy");
        assert_eq!(json["outcomes"][0]["listener"]["portal"], "cluster_ip");
    }

    #[test]
    fn node_ports_use_the_external_policy_for_outside_clients_only() {
        let redirect = || Addressing::Redirect { listen_ip: None };
        let t = trace(redirect(), "203.0.113.9", "192.168.0.2", 30080);
        assert_eq!(proxied(&t), vec![(to("10.0.2.1"), 1.0)]);
        assert_eq!(t.outcomes[0].listener.as_ref().unwrap().listen, None);
        // A pod of this node short-circuits to every endpoint.
        let t = trace(redirect(), "10.0.2.7", "192.168.0.2", 30080);
        assert_eq!(t.outcomes.len(), 2);
    }

    #[test]
    fn affinity_empty_services_and_missing_listeners() {
        let t = trace(Addressing::BindVips, "10.0.2.7", "172.30.0.11", 80);
        assert_eq!(t.outcomes[0].affinity[0].seconds, Some(300));
        // No endpoints: accepted, then closed by the proxy.
        let t = trace(Addressing::BindVips, "10.0.2.7", "172.30.0.12", 80);
        assert_eq!(proxied(&t), vec![(Verdict::Accept, 1.0)]);
        assert_eq!(t.outcomes[0].listener.as_ref().unwrap().backends, 0);
        // Another port of the node: refused; an address that is not the node's: forwarded.
        let t = trace(Addressing::BindVips, "10.0.2.7", "192.168.0.2", 30099);
        assert_eq!(proxied(&t), vec![(Verdict::Reject, 1.0)]);
        assert!(t.outcomes[0]
            .decided_by
            .as_ref()
            .unwrap()
            .rule
            .contains("connection refused"));
        let t = trace(Addressing::BindVips, "10.0.2.7", "172.30.0.99", 80);
        assert_eq!(proxied(&t), vec![(Verdict::Accept, 1.0)]);
        assert!(!t.outcomes[0].delivered_locally);
    }
}
