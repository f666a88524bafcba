//! How a service port's policy chain chooses an endpoint: one `dnat … numgen … map @backends-K` rule over
//! its slots (no affinity), or upstream's affinity lookups and a uniform `numgen` cascade of gotos.

use kube_proxy_model::{Endpoint, ServicePortState};

use super::ServiceRender;
use crate::names::*;
use crate::plan::*;

/// Endpoint addresses `svc` puts in `@hairpin` (sorted, unique; none with ClientIP affinity, whose
/// endpoint chains mark hairpin traffic themselves).
pub fn hairpin_ips(svc: &ServicePortState) -> Vec<std::net::IpAddr> {
    if svc.session_affinity_timeout.is_some() {
        return Vec::new();
    }
    let mut ips: Vec<std::net::IpAddr> = svc.all_reachable_endpoints.iter().map(|e| e.ip).collect();
    ips.sort();
    ips.dedup();
    ips
}

/// One rule choosing uniformly among `endpoints` stored in slots `base..` of `@map`, and those elements.
pub(super) fn backend_selection(
    out: &mut ServiceRender,
    svc: &ServicePortState,
    chain: &str,
    endpoints: &[Endpoint],
    map: &str,
    base: u32,
) {
    let n = u32::try_from(endpoints.len()).unwrap_or(u32::MAX);
    out.rules.push(Rule::new(
        chain,
        vec![
            Stmt::Match(Match::L4Proto(svc.protocol)),
            Stmt::DnatNumgenMap {
                modulus: n,
                offset: base,
                map: map.into(),
            },
        ],
    ));
    for (i, ep) in endpoints.iter().enumerate() {
        let slot = base.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
        out.elements.push(Element {
            set: map.into(),
            key: vec![Value::Slot(slot)],
            verdict: None,
            data: Some(vec![Value::Addr(ep.ip), Value::Port(ep.port)]),
            comment: None,
        });
    }
}

/// Affinity lookups, then the uniform cascade: rule i (of n) jumps with probability 1/(n-i).
pub(super) fn endpoint_selection(
    out: &mut ServiceRender,
    svc: &ServicePortState,
    chain: &str,
    endpoints: &[Endpoint],
) {
    if svc.session_affinity_timeout.is_some() {
        for ep in endpoints {
            out.rules.push(Rule::new(
                chain,
                vec![
                    Stmt::Match(Match::AddrInSet {
                        field: AddrField::Saddr,
                        set: affinity_set(&svc.name, ep),
                    }),
                    Stmt::Verdict(Verdict::Goto(endpoint_chain(&svc.name, ep))),
                ],
            ));
        }
    }
    let n = endpoints.len();
    for (i, ep) in endpoints.iter().enumerate() {
        let mut stmts = Vec::new();
        let remaining = u32::try_from(n - i).unwrap_or(u32::MAX);
        if remaining > 1 {
            stmts.push(Stmt::Match(Match::NumgenModZero(remaining)));
        }
        stmts.push(Stmt::Verdict(Verdict::Goto(endpoint_chain(&svc.name, ep))));
        out.rules.push(Rule::new(chain, stmts));
    }
}
