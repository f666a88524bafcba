//! The userspace proxy mode of kube-proxy-rs: the proxy itself accepts connections (and UDP datagrams) for every
//! service address and forwards them to a backend, trying the next endpoint when one does not answer.
//!
//! [`UserspaceProxy::apply`] follows successive [`kube_proxy_model::ProxyState`] snapshots: one listener per
//! [`Portal`] (ClusterIP, externalIPs, load-balancer IPs, NodePort on configured node addresses), either bound
//! on the virtual address itself ([`Addressing::BindVips`], IP_FREEBIND on Linux, no netfilter needed) or on an
//! ephemeral local port that REDIRECT rules written elsewhere point at ([`Addressing::Redirect`]).
//! Endpoint choice uses the model's internal/external endpoint lists as they are (topology, traffic policies
//! and terminating fallback already applied). The proxy itself writes no netfilter rules: [`redirect`] renders and
//! applies the REDIRECT/DNAT rules (or, for bind-VIPs addressing, the local routes) that lead traffic to the
//! listeners. No metrics are exported here: [`ServiceMetrics`] are plain counters for the binary to publish.
#![forbid(unsafe_code)]

mod balancer;
mod config;
mod error;
mod metrics;
mod portal;
mod proxy;
pub mod redirect;
mod relay;
mod service;
mod socket;
#[cfg(target_os = "linux")]
mod splice;
mod tcp;
mod udp;

pub use config::{Addressing, UserspaceConfig};
pub use error::UserspaceError;
pub use metrics::{ServiceMetrics, ServiceMetricsSnapshot};
pub use portal::{portal_keys, Portal, PortalKey, PortalKind};
pub use proxy::{ApplyOutcome, UserspaceProxy};
