//! The pure core of kube-proxy-rs.
//!
//! Kubernetes objects ([`ClusterObjects`]: Services, EndpointSlices, this node's Node) go in; an immutable,
//! per-node, per-IP-family [`ProxyState`] comes out. Every mode (iptables, nftables, ipvs, userspace) renders
//! from a `ProxyState` and never looks at API objects. This crate performs no I/O, never shells out and never
//! panics on bad input: invalid objects become typed [`Rejection`]s.
#![forbid(unsafe_code)]

mod build;
mod diff;
mod endpoint_list;
mod endpoints;
pub mod fixtures;
mod incremental;
mod objects;
mod parse;
mod service;
mod slice;
mod state;
mod synthetic;
mod topology;

pub use build::{build_state, BuildOutput, NodeContext};
pub use diff::StateDiff;
pub use endpoint_list::EndpointList;
pub use endpoints::LABEL_SERVICE_NAME;
pub use incremental::{BuildStep, IncrementalBuilder};
pub use objects::{service_cidr_ranges, ClusterObjects, ObjectDelta, ObjectKey};
pub use parse::{parse_cidr_sloppy, parse_ip_sloppy};
pub use service::{DEFAULT_AFFINITY_TIMEOUT_SECONDS, LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME};
pub use slice::{CompactSlice, NameInterner, SliceAddress, SliceEndpoint, SlicePort};
pub use state::{
    Endpoint, EndpointHints, IpFamily, Protocol, ProxyState, Rejection, RejectionKind,
    ServicePortName, ServicePortState,
};
pub use synthetic::{synthetic_api_objects, synthetic_cluster, SyntheticObjects};
pub use topology::{
    categorize, topology_mode, Categorized, NodeTopology, TopologyMode, ZONE_LABEL,
};
