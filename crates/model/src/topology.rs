//! Topology-aware routing: trafficDistribution and hints decide which ready endpoints this node uses.
//!
//! Mirrors upstream kube-proxy (1.33+, with PreferSameTrafficDistribution on as from 1.34): the proxy does not
//! look at the Service's `trafficDistribution` or topology annotations; the EndpointSlice controller only writes
//! hints when one of those asks for them, so the hints alone decide. Node hints win when every ready endpoint has
//! one and some endpoint is hinted for this node; otherwise zone hints when every ready endpoint has one and some
//! endpoint is hinted for this node's zone; otherwise topology is ignored. Also holds [`categorize`], upstream's
//! `CategorizeEndpoints`: which endpoints Cluster- and Local-policy traffic use, with the terminating fallback.

use crate::state::Endpoint;

/// Node label holding the node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Which hints restrict the cluster endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyMode {
    /// No topology: every ready endpoint.
    None,
    /// Endpoints hinted for this node (`hints.forNodes`).
    PreferSameNode,
    /// Endpoints hinted for this node's zone (`hints.forZones`).
    PreferSameZone,
}

/// Where this node is.
#[derive(Clone, Copy, Debug)]
pub struct NodeTopology<'a> {
    pub node_name: &'a str,
    /// The node's zone label, "" when unknown (as upstream, which then matches no zone hint).
    pub zone: &'a str,
}

fn has_hint(hints: &[String], name: &str) -> bool {
    hints.iter().any(|h| h == name)
}

/// Chooses the topology mode from the ready endpoints' hints.
pub fn topology_mode(endpoints: &[Endpoint], node: NodeTopology<'_>) -> TopologyMode {
    let mut any_ready = false;
    let (mut all_node_hinted, mut hinted_for_node) = (true, false);
    let (mut all_zone_hinted, mut hinted_for_zone) = (true, false);
    for ep in endpoints.iter().filter(|e| e.ready) {
        any_ready = true;
        if ep.node_hints().is_empty() {
            all_node_hinted = false;
        } else if has_hint(ep.node_hints(), node.node_name) {
            hinted_for_node = true;
        }
        if ep.zone_hints().is_empty() {
            all_zone_hinted = false;
        } else if has_hint(ep.zone_hints(), node.zone) {
            hinted_for_zone = true;
        }
    }
    if !any_ready {
        TopologyMode::None
    } else if all_node_hinted && hinted_for_node {
        TopologyMode::PreferSameNode
    } else if all_zone_hinted && hinted_for_zone {
        TopologyMode::PreferSameZone
    } else {
        TopologyMode::None
    }
}

fn available_for_topology(ep: &Endpoint, mode: TopologyMode, node: NodeTopology<'_>) -> bool {
    match mode {
        TopologyMode::None => true,
        TopologyMode::PreferSameNode => has_hint(ep.node_hints(), node.node_name),
        TopologyMode::PreferSameZone => has_hint(ep.zone_hints(), node.zone),
    }
}

/// The endpoint sets of one service port, as upstream's `CategorizeEndpoints` returns them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Categorized {
    pub cluster: Vec<Endpoint>,
    pub local: Vec<Endpoint>,
    pub all_reachable: Vec<Endpoint>,
    pub has_any: bool,
}

fn usable_terminating(ep: &Endpoint) -> bool {
    ep.serving && ep.terminating
}

/// Splits `endpoints` (sorted) into the Cluster- and Local-policy sets. `uses_cluster` / `uses_local` are the
/// service port's `uses_cluster_endpoints()` / `uses_local_endpoints()`. Output lists keep the input order.
pub fn categorize(
    endpoints: &[Endpoint],
    uses_cluster: bool,
    uses_local: bool,
    node: NodeTopology<'_>,
) -> Categorized {
    let mut out = Categorized::default();
    if endpoints.is_empty() {
        return out;
    }
    let mut mode = TopologyMode::None;
    let mut cluster: Vec<usize> = Vec::new();
    if uses_cluster {
        mode = topology_mode(endpoints, node);
        cluster = pick(endpoints, |e| {
            e.ready && available_for_topology(e, mode, node)
        });
        if cluster.is_empty() {
            // Topology was already dropped when no ready endpoint matched it, so no endpoint is ready anywhere.
            cluster = pick(endpoints, usable_terminating);
        }
        out.has_any = !cluster.is_empty();
    }
    out.cluster = materialize(endpoints, &cluster);
    if !uses_local {
        out.all_reachable = out.cluster.clone();
        return out;
    }

    let (mut local_ready, mut local_terminating) = (false, false);
    for ep in endpoints {
        if ep.ready {
            out.has_any = true;
            local_ready |= ep.is_local;
        } else if usable_terminating(ep) {
            out.has_any = true;
            local_terminating |= ep.is_local;
        }
    }
    let local_uses_terminating = !local_ready && local_terminating;
    let local = if local_ready {
        pick(endpoints, |e| e.is_local && e.ready)
    } else if local_terminating {
        pick(endpoints, |e| e.is_local && usable_terminating(e))
    } else {
        Vec::new()
    };
    out.local = materialize(endpoints, &local);

    out.all_reachable = if !uses_cluster {
        out.local.clone()
    } else if mode == TopologyMode::None && !local_uses_terminating {
        // Every ready endpoint is a cluster endpoint and the local ones are all ready: a superset.
        out.cluster.clone()
    } else {
        materialize(endpoints, &merge_sorted(&cluster, &local))
    };
    out
}

/// Indices of the endpoints to keep, ascending.
fn pick(endpoints: &[Endpoint], keep: impl Fn(&Endpoint) -> bool) -> Vec<usize> {
    (0..endpoints.len())
        .filter(|&i| keep(&endpoints[i]))
        .collect()
}

fn materialize(endpoints: &[Endpoint], indices: &[usize]) -> Vec<Endpoint> {
    indices.iter().map(|&i| endpoints[i].clone()).collect()
}

/// Union of two ascending index lists, ascending.
fn merge_sorted(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x == y => {
                i += 1;
                j += 1;
                x
            }
            (Some(&x), Some(&y)) if x < y => {
                i += 1;
                x
            }
            (Some(&x), None) => {
                i += 1;
                x
            }
            (_, Some(&y)) => {
                j += 1;
                y
            }
            (None, None) => break,
        };
        out.push(next);
    }
    out
}
