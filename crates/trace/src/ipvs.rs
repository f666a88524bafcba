//! IPVS mode: the kernel's virtual servers on top of kube-proxy's helper iptables rules and ipsets.
//!
//! The iptables part (masquerade marks, source-range DROP, the KUBE-IPVS-FILTER REJECT, `-m set` matches
//! against [`crate::TraceOptions::ipsets`]) is walked by the iptables tracer. IPVS sits where the kernel puts
//! it: for packets arriving at the node, after `filter INPUT` (LOCAL_IN), then the scheduled packet leaves
//! through `filter OUTPUT` and `nat POSTROUTING`; for packets of the node itself, after the OUTPUT chains.
//! A virtual server matching protocol, address and port sends the packet to each real server of non-zero
//! weight with probability weight / total (rr and wrr; other schedulers are reported with the same shares);
//! none of non-zero weight: ICMP port unreachable (REJECT), as the kernel answers.

use std::net::{IpAddr, SocketAddr};

use kube_proxy_model::Protocol;
use serde::Serialize;

use crate::packet::{Packet, TraceOptions};
use crate::ruleset::{RuleRef, Ruleset};
use crate::trace::{Trace, VirtualServerHit};

/// One real server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpvsReal {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
}

/// One virtual server and its real servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpvsService {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
    pub scheduler: String,
    /// Persistence timeout (ClientIP affinity), when persistent.
    pub persistence_seconds: Option<u32>,
    pub reals: Vec<IpvsReal>,
}

impl IpvsService {
    /// `TCP 10.96.0.10:80`, as ipvsadm names it.
    pub fn name(&self) -> String {
        format!(
            "{} {}",
            self.protocol.as_k8s(),
            SocketAddr::new(self.addr, self.port)
        )
    }
}

/// The IPVS table (address/port virtual servers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IpvsTable {
    pub services: Vec<IpvsService>,
}

/// Where IPVS sends a packet: per real server, the new destination, the probability and the report.
pub(crate) enum Scheduled {
    /// No virtual server for this destination.
    NoService,
    /// A virtual server without usable real servers: the kernel answers ICMP port unreachable.
    NoReals(RuleRef),
    To(Vec<(IpAddr, u16, f64, RuleRef, VirtualServerHit)>),
}

impl IpvsTable {
    pub(crate) fn schedule(&self, protocol: &str, dst: IpAddr, port: u16) -> Scheduled {
        let Some(vs) = self
            .services
            .iter()
            .find(|s| s.protocol.as_lower() == protocol && s.addr == dst && s.port == port)
        else {
            return Scheduled::NoService;
        };
        let rref = |rule: String| RuleRef {
            table: "ipvs".to_string(),
            chain: vs.name(),
            rule,
        };
        let total: u32 = vs.reals.iter().map(|r| r.weight).sum();
        if total == 0 {
            return Scheduled::NoReals(rref(format!(
                "{} {}: no real server with a non-zero weight",
                vs.name(),
                vs.scheduler
            )));
        }
        Scheduled::To(
            vs.reals
                .iter()
                .filter(|r| r.weight > 0)
                .map(|r| {
                    let to = SocketAddr::new(r.addr, r.port);
                    let hit = VirtualServerHit {
                        service: vs.name(),
                        scheduler: vs.scheduler.clone(),
                        persistence_seconds: vs.persistence_seconds,
                        weight: r.weight,
                        total_weight: total,
                    };
                    let rule = format!("-> {to} Masq weight {}", r.weight);
                    let p = f64::from(r.weight) / f64::from(total);
                    (r.addr, r.port, p, rref(rule), hit)
                })
                .collect(),
        )
    }
}

/// Traces `packet` through IPVS mode's iptables rules (`rules` must hold the jumps from the built-in chains;
/// `opts.ipsets` the ipset contents; `opts.local_addrs` the addresses bound to kube-ipvs0) and `ipvs`.
pub fn trace_ipvs(
    rules: &Ruleset,
    ipvs: &IpvsTable,
    packet: &Packet,
    opts: &TraceOptions,
) -> Trace {
    crate::walk::walk_with(rules, packet, opts, Some(ipvs))
}
