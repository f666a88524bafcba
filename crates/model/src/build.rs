//! Builds a [`ProxyState`] from [`ClusterObjects`] for one node and one IP family, all at once.
//!
//! Pure: reads the objects, never does I/O, never panics on bad input. The steps are upstream kube-proxy's:
//! services become service ports ([`crate::service`]), EndpointSlices of the family are merged per port
//! ([`crate::endpoints`]), and each port's endpoints are categorised for Cluster and Local traffic
//! ([`crate::topology`]). It is the [`IncrementalBuilder`] fed every object in one delta, so a one-shot build
//! and the sync runner's incremental builds can never disagree.

use std::sync::Arc;

use crate::incremental::IncrementalBuilder;
use crate::objects::{ClusterObjects, ObjectDelta};
use crate::state::{IpFamily, ProxyState, Rejection};

/// Who "this node" is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeContext {
    /// This node's name (`--hostname-override` or the hostname); endpoints whose `nodeName` equals it are local.
    pub node_name: String,
}

/// The state plus the objects (or parts) that were skipped and why.
#[derive(Clone, Debug)]
pub struct BuildOutput {
    pub state: ProxyState,
    pub rejections: Vec<Rejection>,
}

/// Computes the state one proxier programs. Ports equal to those of `previous` keep its `Arc`s.
pub fn build_state(
    objects: &ClusterObjects,
    node: &NodeContext,
    family: IpFamily,
    previous: Option<&ProxyState>,
) -> BuildOutput {
    let mut builder = IncrementalBuilder::new(family, node.clone());
    builder.apply(&ObjectDelta::everything(objects));
    let rejections = builder.rejections().cloned().collect();
    let mut state = ProxyState::clone(builder.state());
    if let Some(previous) = previous {
        for (name, port) in state.services.iter_mut() {
            if let Some(prev) = previous.services.get(name) {
                if prev == port {
                    *port = Arc::clone(prev);
                }
            }
        }
    }
    BuildOutput { state, rejections }
}
