//! kube-proxy-rs' IPVS dataplane.
//!
//! * [`types`]: virtual/real server data; [`handle::Ipvs`]: the kernel seam, implemented over generic netlink
//!   by [`genl::GenlIpvs`] (encoding in [`nla`]) and in memory by [`handle::FakeIpvs`].
//! * [`ipset_kernel::IpsetHandle`]: the ipset seam, over nfnetlink by [`ipset_kernel::NetlinkIpset`]
//!   (encoding in [`ipset_wire`]) and in memory by [`ipset_kernel::FakeIpset`].
//! * [`link::DummyLink`]: kube-ipvs0, over rtnetlink by [`link::RtnlLink`], in memory by [`link::FakeLink`].
//! * [`render()`] (pure): `ProxyState` + [`IpvsConfig`] → [`IpvsPlan`] (virtual servers, kube-ipvs0 addresses,
//!   [`ipsets`], iptables text from [`rules`]); [`format`] prints it `ipvsadm -Ln` style.
//! * [`IpvsDataplane`] ([`applier`]): diffs and applies a plan, with graceful termination of real servers.
//! * [`cleanup`]: `--cleanup` for IPVS mode.
//! * [`detect`]: [`ipvs_available`], used to fall back to iptables mode.
#![forbid(unsafe_code)]

pub mod applier;
pub mod cleanup;
pub mod config;
pub mod detect;
mod error;
pub mod format;
pub mod genl;
pub mod handle;
pub mod ipset_kernel;
pub mod ipset_wire;
pub mod ipsets;
pub mod link;
pub mod nla;
pub mod render;
pub mod rules;
pub mod types;

pub use applier::{required_sysctls, IpvsDataplane, IpvsSyncReport};
pub use cleanup::{cleanup, cleanup_host, cleanup_iptables};
pub use config::{IpvsConfig, LocalDetector, DUMMY_DEVICE};
pub use detect::{ipvs_available, ipvs_support, Unavailable};
pub use error::IpvsError;
pub use format::{ipvsadm_list, plan_ipvsadm, render_text};
pub use genl::GenlIpvs;
pub use handle::{FakeIpvs, Ipvs};
pub use ipset_kernel::{sync_ipsets, FakeIpset, IpsetHandle, NetlinkIpset};
pub use kube_proxy_iptables::Backend;
pub use link::{DummyLink, FakeLink, RtnlLink};
pub use render::{render, DesiredService, IpvsPlan};
pub use types::{
    ForwardMethod, RealServer, Scheduler, ServiceKey, Timeouts, VirtualServer, SVC_F_HASHED,
    SVC_F_ONEPACKET, SVC_F_PERSISTENT,
};
