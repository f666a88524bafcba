//! How traffic for a service address reaches the proxy's listeners, outside the proxy itself.
//!
//! - With [`crate::Addressing::Redirect`]: NAT rules in the style of upstream's old userspace mode, rendered from
//!   [`crate::UserspaceProxy::portals`] ([`render_rules`], pure) and applied with `iptables-restore --noflush`
//!   ([`RedirectRules`]). Chains (nat): `KUBE-PORTALS-CONTAINER` (from PREROUTING: pods and other hosts),
//!   `KUBE-PORTALS-HOST` (from OUTPUT: this node), `KUBE-NODEPORT-CONTAINER` / `KUBE-NODEPORT-HOST` (same hooks,
//!   only for local destination addresses); (filter) `KUBE-NODEPORT-NON-LOCAL` accepting the proxy's NodePort
//!   listener ports in INPUT.
//! - With [`crate::Addressing::BindVips`]: no NAT at all; [`LocalRoutes`] makes the kernel deliver the virtual
//!   addresses locally with `local` routes on `lo` (tagged with their own routing protocol number, so that they
//!   can be found and removed again without any saved state).
//!
//! Nothing here opens sockets or decides which endpoint is used.

mod apply;
mod local_routes;
mod rules;
#[cfg(test)]
mod tests;

pub use apply::{cleanup, RedirectRules};
pub use local_routes::{
    local_route_targets, IpRouteExec, LocalRouteExec, LocalRoutes, ROUTE_PROTOCOL,
};
pub use rules::{render_rules, RedirectConfig, RenderedRedirect};

use kube_proxy_iptables::IptablesError;
use kube_proxy_model::IpFamily;

/// Container portals: traffic arriving from pods or other hosts (nat PREROUTING).
pub const KUBE_PORTALS_CONTAINER: &str = "KUBE-PORTALS-CONTAINER";
/// Host portals: traffic this node originates (nat OUTPUT).
pub const KUBE_PORTALS_HOST: &str = "KUBE-PORTALS-HOST";
/// NodePorts for traffic arriving from pods or other hosts (nat PREROUTING, local destinations only).
pub const KUBE_NODEPORT_CONTAINER: &str = "KUBE-NODEPORT-CONTAINER";
/// NodePorts for traffic this node originates (nat OUTPUT, local destinations only).
pub const KUBE_NODEPORT_HOST: &str = "KUBE-NODEPORT-HOST";
/// Accepts NodePort traffic towards the proxy's listener ports (filter INPUT).
pub const KUBE_NODEPORT_NON_LOCAL: &str = "KUBE-NODEPORT-NON-LOCAL";

/// Why writing or removing the redirect rules or local routes failed.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    /// `iptables-save` of the current rules failed.
    #[error("reading the {family:?} rules: {source}")]
    ReadRules {
        family: IpFamily,
        #[source]
        source: IptablesError,
    },
    /// `iptables-restore` rejected the portal rules (or the jumps into them).
    #[error("writing the {family:?} portal rules: {source}")]
    WriteRules {
        family: IpFamily,
        #[source]
        source: IptablesError,
    },
    /// `iptables-restore` rejected the removal of the chains.
    #[error("removing the {family:?} portal rules: {source}")]
    Cleanup {
        family: IpFamily,
        #[source]
        source: IptablesError,
    },
    /// Listing the local routes failed.
    #[error("listing local routes: {0}")]
    ListRoutes(String),
    /// Adding or deleting one local route failed.
    #[error("{action} local route {target}: {detail}")]
    ChangeRoute {
        action: &'static str,
        target: String,
        detail: String,
    },
}
