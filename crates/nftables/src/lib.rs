//! The nftables dataplane of kube-proxy-rs: upstream kube-proxy's nftables mode (table `kube-proxy` in families
//! `ip` and `ip6`) rendered from a [`kube_proxy_model::ProxyState`] into a typed plan ([`plan`]), encoded as nft
//! text ([`text`]) or as one native nf_tables netlink batch ([`netlink`]), and applied incrementally by
//! [`NftablesDataplane`]. No `nft` process is needed at run time.
#![forbid(unsafe_code)]

pub mod config;
mod dataplane;
mod error;
pub mod names;
pub mod netlink;
pub mod plan;
mod render;
mod service;
mod setup;
pub mod slots;
pub mod text;

pub use config::{LocalDetector, NodePortAddresses, RenderConfig};
pub use dataplane::{
    cleanup, FullReason, NftablesDataplane, SyncKind, SyncReport, FULL_SYNC_PERIOD,
};
pub use error::NftError;
pub use plan::{Family, Transaction};
pub use render::{
    no_local_endpoints, render_full, render_full_with, render_incremental, render_incremental_with,
    TABLE_COMMENT,
};
pub use service::{render_service, ServiceRender};

/// The `nft -f` script equivalent to a full sync of `state` (for `render --proxy-mode nftables`).
pub fn render_script(state: &kube_proxy_model::ProxyState, cfg: &RenderConfig) -> String {
    text::to_nft_script(&render_full(state, cfg))
}
