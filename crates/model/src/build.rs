//! Builds a [`ProxyState`] from [`ClusterObjects`] for one node and one IP family.

use crate::objects::ClusterObjects;
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

/// Computes the state one proxier programs. `previous` lets unchanged service ports keep their `Arc`.
pub fn build_state(
    objects: &ClusterObjects,
    node: &NodeContext,
    family: IpFamily,
    previous: Option<&ProxyState>,
) -> BuildOutput {
    let _ = (objects, previous);
    BuildOutput {
        state: ProxyState::empty(family, node.node_name.clone()),
        rejections: Vec::new(),
    }
}
