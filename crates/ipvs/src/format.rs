//! `ipvsadm -Ln`-style text for virtual servers and their real servers (for `render` and debugging).

use std::fmt::Write;
use std::net::SocketAddr;

use kube_proxy_model::Protocol;

use crate::render::IpvsPlan;
use crate::types::{RealServer, VirtualServer, SVC_F_PERSISTENT};

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// Formats `(virtual server, real servers)` pairs like `ipvsadm -Ln`.
pub fn ipvsadm_list<'a>(
    services: impl IntoIterator<Item = (&'a VirtualServer, Vec<RealServer>)>,
) -> String {
    let mut out = String::new();
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for (vs, mut reals) in services {
        let addr = SocketAddr::new(vs.key.addr, vs.key.port);
        let _ = write!(
            out,
            "{:<5}{} {}",
            proto(vs.key.protocol),
            addr,
            vs.scheduler
        );
        if vs.flags & SVC_F_PERSISTENT != 0 {
            let _ = write!(out, " persistent {}", vs.timeout);
        }
        out.push('\n');
        reals.sort_by_key(|r| (r.addr, r.port));
        for r in reals {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {}",
                r.socket_addr().to_string(),
                r.forward.as_ipvsadm(),
                r.weight,
                r.active_conns,
                r.inactive_conns
            );
        }
    }
    out
}

/// The desired virtual servers of a plan in `ipvsadm -Ln` style.
pub fn plan_ipvsadm(plan: &IpvsPlan) -> String {
    ipvsadm_list(plan.services.values().map(|d| {
        (
            &d.vs,
            d.reals
                .iter()
                .map(|((ip, port), w)| RealServer::masq(*ip, *port, *w))
                .collect(),
        )
    }))
}

/// Everything `render --proxy-mode ipvs` prints: virtual servers, kube-ipvs0 addresses, ipsets, iptables.
pub fn render_text(plan: &IpvsPlan) -> String {
    let mut out = String::from("# IPVS virtual servers (ipvsadm -Ln)\n");
    out.push_str(&plan_ipvsadm(plan));
    out.push_str("\n# kube-ipvs0 addresses\n");
    for a in &plan.bound_addresses {
        let _ = writeln!(out, "{a}");
    }
    out.push_str("\n# ipsets\n");
    out.push_str(&plan.ipsets.listing());
    out.push_str("\n# iptables-restore input\n");
    out.push_str(&plan.iptables);
    out
}
