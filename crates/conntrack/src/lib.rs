//! kube-proxy-conntrack: keeps the kernel's connection-tracking table consistent with the proxy's desired state.
//!
//! - [`flow`]: the plain-data view of one conntrack entry ([`Flow`]).
//! - [`reconcile`]: the pure decision of which UDP flows are stale for a [`ProxyState`](kube_proxy_model::ProxyState)
//!   (upstream's post-sync conntrack reconciler), and the driver that lists and deletes them.
//! - [`ops`]: the [`ConntrackOps`] seam, with a netlink implementation ([`netlink`]) and an in-memory fake.
//! - [`sysctl`]: conntrack tuning applied once at start-up (`nf_conntrack_max`, hashsize, timeouts).
//!
//! This crate never touches iptables/nftables rules; it only lists and deletes conntrack entries and writes sysctls.
#![forbid(unsafe_code)]

pub mod error;
pub mod flow;
pub mod netlink;
pub mod ops;
pub mod reconcile;
pub mod sysctl;

pub use error::ConntrackError;
pub use flow::{Flow, FlowTuple, IPPROTO_TCP, IPPROTO_UDP};
pub use netlink::NetlinkConntrack;
pub use ops::{ConntrackOps, FakeConntrack};
pub use reconcile::{cleanup_required, flows_to_delete, reconcile, ReconcileOutcome};
pub use sysctl::{apply_conntrack_tuning, conntrack_max, ConntrackTuning, SysRoot, TuningOutcome};

/// Result alias of this crate.
pub type Result<T, E = ConntrackError> = std::result::Result<T, E>;
