//! kube-proxy-rs' IPVS dataplane.
//!
//! * [`types`]: virtual/real server data; [`handle::Ipvs`]: the kernel seam, implemented over generic netlink
//!   by [`genl::GenlIpvs`] (encoding in [`nla`]) and in memory by [`handle::FakeIpvs`].
//! * [`detect`]: [`ipvs_available`], used to fall back to iptables mode.
#![forbid(unsafe_code)]

pub mod detect;
mod error;
pub mod genl;
pub mod handle;
pub mod nla;
pub mod types;

pub use detect::{ipvs_available, ipvs_support, Unavailable};
pub use error::IpvsError;
pub use genl::GenlIpvs;
pub use handle::{FakeIpvs, Ipvs};
pub use types::{
    ForwardMethod, RealServer, Scheduler, ServiceKey, Timeouts, VirtualServer, SVC_F_HASHED,
    SVC_F_ONEPACKET, SVC_F_PERSISTENT,
};
