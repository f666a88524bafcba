//! Which UDP conntrack entries are stale for a desired [`ProxyState`], and the driver that removes them.
//!
//! This follows upstream kube-proxy's post-sync reconciler (k8s 1.31+): list every UDP entry of the family, and
//! delete those that were addressed to a UDP service but whose reply does not come from one of the service's
//! serving endpoints. That single rule covers every case the older "stale services / stale endpoints" logic
//! handled: an endpoint that was removed or stopped serving (reply source is no longer an endpoint), a service
//! that went from no endpoints to some (the cached un-NATed entry replies from the service IP itself), and
//! NodePort flows (matched by destination port, whatever node address they were sent to).
//!
//! Like upstream, traffic policies, topology and terminating state are not considered: every serving endpoint of
//! the service keeps its flows, so UDP behaves like TCP when a policy changes. Only UDP is reconciled (TCP and
//! SCTP entries go away with their connections).
//!
//! One refinement over upstream, which keys service addresses by IP only (so with several UDP ports on one IP
//! the winner depends on map order): a flow whose destination is a service IP *and* port is checked against that
//! port's endpoints; a flow to a service IP on a port no UDP service uses is checked against the union of the
//! endpoints of every UDP port on that IP.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use kube_proxy_model::{Endpoint, Protocol, ProxyState, ServicePortName};

use crate::flow::{Flow, IPPROTO_UDP};
use crate::ops::ConntrackOps;
use crate::Result;

/// Serving endpoint IPs allowed to answer, per service address.
#[derive(Debug, Default)]
struct AllowedRepliers {
    /// (service IP, service port) -> endpoint IPs of that port.
    by_ip_port: BTreeMap<(IpAddr, u16), BTreeSet<IpAddr>>,
    /// service IP -> endpoint IPs of every UDP port on that IP.
    by_ip: BTreeMap<IpAddr, BTreeSet<IpAddr>>,
    /// NodePort -> endpoint IPs.
    by_node_port: BTreeMap<u16, BTreeSet<IpAddr>>,
}

impl AllowedRepliers {
    fn from_state(state: &ProxyState) -> AllowedRepliers {
        let mut out = AllowedRepliers::default();
        for svc in state.services.values() {
            if svc.protocol != Protocol::Udp {
                continue;
            }
            let serving: BTreeSet<IpAddr> = svc
                .endpoints
                .iter()
                .filter(|e| e.serving || e.ready)
                .map(|e| e.ip)
                .collect();
            let ips = std::iter::once(svc.cluster_ip)
                .chain(svc.load_balancer_ips.iter().copied())
                .chain(svc.external_ips.iter().copied());
            for ip in ips {
                out.by_ip_port
                    .entry((ip, svc.port))
                    .or_default()
                    .extend(serving.iter().copied());
                out.by_ip
                    .entry(ip)
                    .or_default()
                    .extend(serving.iter().copied());
            }
            if let Some(np) = svc.node_port {
                out.by_node_port
                    .entry(np)
                    .or_default()
                    .extend(serving.iter().copied());
            }
        }
        out
    }

    fn is_stale(&self, flow: &Flow) -> bool {
        let dst = flow.original.dst;
        let replier = flow.reply.src;
        let by_ip = self
            .by_ip_port
            .get(&(dst, flow.original.dst_port))
            .or_else(|| self.by_ip.get(&dst));
        if by_ip.is_some_and(|allowed| !allowed.contains(&replier)) {
            return true;
        }
        self.by_node_port
            .get(&flow.original.dst_port)
            .is_some_and(|allowed| !allowed.contains(&replier))
    }
}

/// The UDP flows of `state.family` in `flows` that must be deleted for `state`, in input order, without
/// duplicates. Pure.
pub fn flows_to_delete(flows: &[Flow], state: &ProxyState) -> Vec<Flow> {
    let allowed = AllowedRepliers::from_state(state);
    let mut seen = HashSet::new();
    flows
        .iter()
        .filter(|f| f.protocol == IPPROTO_UDP && state.family.contains(&f.original.dst))
        .filter(|f| allowed.is_stale(f))
        .filter(|f| seen.insert(**f))
        .copied()
        .collect()
}

/// Whether a sync from `old` to `new` calls for a reconciliation pass: upstream runs one only when the endpoints
/// of a service with a UDP port changed (which includes the first sync, where every endpoint is new). Changes to
/// service addresses alone do not trigger it.
pub fn cleanup_required(old: &ProxyState, new: &ProxyState) -> bool {
    old.services
        .keys()
        .chain(new.services.keys())
        .filter(|name| name.protocol == Protocol::Udp)
        .any(|name| endpoints_of(old, name) != endpoints_of(new, name))
}

fn endpoints_of<'a>(state: &'a ProxyState, name: &ServicePortName) -> &'a [Endpoint] {
    state
        .services
        .get(name)
        .map_or(&[], |s| s.endpoints.as_slice())
}

/// What one reconciliation pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileOutcome {
    /// UDP entries listed.
    pub listed: usize,
    /// Entries found stale.
    pub stale: usize,
    /// Entries the kernel actually deleted.
    pub deleted: usize,
}

/// Lists the UDP entries of `state.family` through `ops` and deletes the stale ones. Call after every
/// successful sync of the dataplane (the new rules must be in place first, or new entries would be stale too).
pub fn reconcile(ops: &dyn ConntrackOps, state: &ProxyState) -> Result<ReconcileOutcome> {
    let flows = ops.list_udp(state.family)?;
    let stale = flows_to_delete(&flows, state);
    let deleted = if stale.is_empty() {
        0
    } else {
        ops.delete(&stale)?
    };
    tracing::debug!(family = ?state.family, listed = flows.len(), stale = stale.len(), deleted, "reconciled conntrack entries");
    Ok(ReconcileOutcome {
        listed: flows.len(),
        stale: stale.len(),
        deleted,
    })
}

#[cfg(test)]
mod tests;
