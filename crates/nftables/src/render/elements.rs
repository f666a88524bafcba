//! Helpers of the incremental render: which service ports changed, and the winning value of element keys
//! several service ports may claim (e.g. one externalIP on two Services: the later name wins, as upstream).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use kube_proxy_model::{Protocol, ProxyState, ServicePortName, ServicePortState};

use super::{ElemKey, ElemVal};
use crate::config::RenderConfig;
use crate::names::HAIRPIN_SET;
use crate::service::{render_service, ServiceRender};
use crate::slots::Slots;

/// Service ports added, removed or changed between two states (one ordered pass over both maps).
pub(super) fn touched_services(prev: &ProxyState, new: &ProxyState) -> BTreeSet<ServicePortName> {
    let mut out = BTreeSet::new();
    let mut a = prev.services.iter().peekable();
    let mut b = new.services.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((n, _)), None) => {
                out.insert((*n).clone());
                a.next();
            }
            (None, Some((n, _))) => {
                out.insert((*n).clone());
                b.next();
            }
            (Some((na, sa)), Some((nb, sb))) => match na.cmp(nb) {
                std::cmp::Ordering::Less => {
                    out.insert((*na).clone());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.insert((*nb).clone());
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(sa, sb) && sa != sb {
                        out.insert((*na).clone());
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    out
}

/// Claims of the rendered service ports on shared element keys (not `@hairpin`), in name order.
pub(super) fn claims(
    renders: &BTreeMap<ServicePortName, ServiceRender>,
) -> BTreeMap<ElemKey, Vec<(&ServicePortName, ElemVal)>> {
    let mut out: BTreeMap<ElemKey, Vec<(&ServicePortName, ElemVal)>> = BTreeMap::new();
    for (name, r) in renders {
        for e in r.elements.iter().filter(|e| e.set != HAIRPIN_SET) {
            out.entry((e.set.clone(), e.key.clone()))
                .or_default()
                .push((name, (e.verdict.clone(), e.data.clone(), e.comment.clone())));
        }
    }
    out
}

/// Could `svc` own an element with one of these addresses or node ports?
fn may_claim(svc: &ServicePortState, ips: &[IpAddr], ports: &[(Protocol, u16)]) -> bool {
    let ip = |a: &IpAddr| ips.binary_search(a).is_ok();
    ip(&svc.cluster_ip)
        || svc.external_ips.iter().any(ip)
        || svc.load_balancer_ips.iter().any(ip)
        || svc
            .node_port
            .is_some_and(|p| ports.binary_search(&(svc.protocol, p)).is_ok())
}

/// Winning value of each key in `keys`, computed over the services of `state` that may claim them.
pub(super) fn element_values(
    state: &ProxyState,
    cfg: &RenderConfig,
    slots: &Slots,
    keys: &BTreeSet<ElemKey>,
    touched_renders: &BTreeMap<ServicePortName, ServiceRender>,
    ips: &[IpAddr],
    ports: &[(Protocol, u16)],
) -> BTreeMap<ElemKey, ElemVal> {
    let mut out = BTreeMap::new();
    for (name, svc) in &state.services {
        let owned;
        let render = match touched_renders.get(name) {
            Some(r) => r,
            None => {
                if !may_claim(svc, ips, ports) {
                    continue;
                }
                owned = render_service(svc, cfg, slots);
                &owned
            }
        };
        for e in &render.elements {
            let k = (e.set.clone(), e.key.clone());
            if keys.contains(&k) {
                out.insert(k, (e.verdict.clone(), e.data.clone(), e.comment.clone()));
            }
        }
    }
    out
}
