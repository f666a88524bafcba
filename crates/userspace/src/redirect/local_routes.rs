//! Local delivery of virtual addresses for [`crate::Addressing::BindVips`]: one `local` host route on `lo` (in
//! the `local` table) per ClusterIP, externalIP and load-balancer IP served, so that packets for them are
//! delivered to the listeners bound there instead of being routed away.
//!
//! Our routes carry their own routing protocol number ([`ROUTE_PROTOCOL`]); listing, syncing and cleanup only
//! ever look at routes with that number, so routes of anyone else are never touched and no state needs saving.
//! The kernel is reached through the [`LocalRouteExec`] seam; [`IpRouteExec`] runs iproute2's `ip`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;

use kube_proxy_model::IpFamily;

use super::RedirectError;
use crate::portal::{Portal, PortalKind};

/// The routing protocol number tagging our routes (unassigned in iproute2's `rt_protos`).
pub const ROUTE_PROTOCOL: u8 = 106;

/// The kernel seam for local routes.
pub trait LocalRouteExec: Send + Sync {
    /// Addresses with one of our local routes in `family`.
    fn list(&self, family: IpFamily) -> Result<BTreeSet<IpAddr>, RedirectError>;
    /// Adds (or replaces) our local route for `ip`.
    fn add(&self, ip: IpAddr) -> Result<(), RedirectError>;
    /// Deletes our local route for `ip`.
    fn delete(&self, ip: IpAddr) -> Result<(), RedirectError>;
}

/// [`LocalRouteExec`] through iproute2's `ip` binary.
#[derive(Clone, Copy, Debug, Default)]
pub struct IpRouteExec;

fn family_flag(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "-4",
        IpFamily::V6 => "-6",
    }
}

fn host_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

fn run_ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl IpRouteExec {
    fn change(&self, action: &'static str, verb: &str, ip: IpAddr) -> Result<(), RedirectError> {
        let proto = ROUTE_PROTOCOL.to_string();
        let prefix = host_prefix(ip);
        let args = [
            family_flag(IpFamily::of(&ip)),
            "route",
            verb,
            "local",
            &prefix,
            "dev",
            "lo",
            "table",
            "local",
            "proto",
            &proto,
        ];
        run_ip(&args)
            .map(|_| ())
            .map_err(|detail| RedirectError::ChangeRoute {
                action,
                target: prefix.clone(),
                detail,
            })
    }
}

impl LocalRouteExec for IpRouteExec {
    fn list(&self, family: IpFamily) -> Result<BTreeSet<IpAddr>, RedirectError> {
        let proto = ROUTE_PROTOCOL.to_string();
        let out = run_ip(&[
            family_flag(family),
            "route",
            "show",
            "table",
            "local",
            "type",
            "local",
            "proto",
            &proto,
        ])
        .map_err(RedirectError::ListRoutes)?;
        Ok(parse_route_list(&out, family))
    }

    fn add(&self, ip: IpAddr) -> Result<(), RedirectError> {
        self.change("adding", "replace", ip)
    }

    fn delete(&self, ip: IpAddr) -> Result<(), RedirectError> {
        self.change("deleting", "del", ip)
    }
}

/// The destination addresses of `ip route show type local` output (with or without the `local` keyword).
pub(crate) fn parse_route_list(out: &str, family: IpFamily) -> BTreeSet<IpAddr> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let first = words.next()?;
            let dst = if first == "local" {
                words.next()?
            } else {
                first
            };
            let dst = dst.split('/').next()?;
            dst.parse::<IpAddr>().ok()
        })
        .filter(|ip| family.contains(ip))
        .collect()
}

/// The addresses that need a local route: every served portal's virtual address except NodePorts (node
/// addresses are local already) and the unspecified address.
pub fn local_route_targets(portals: &[Portal], family: IpFamily) -> BTreeSet<IpAddr> {
    portals
        .iter()
        .filter(|p| p.key.kind != PortalKind::NodePort)
        .map(|p| p.key.vip)
        .filter(|ip| !ip.is_unspecified() && family.contains(ip))
        .collect()
}

/// Keeps our local routes of one family equal to a wanted set.
pub struct LocalRoutes {
    exec: Arc<dyn LocalRouteExec>,
    family: IpFamily,
}

impl LocalRoutes {
    pub fn new(exec: Arc<dyn LocalRouteExec>, family: IpFamily) -> LocalRoutes {
        LocalRoutes { exec, family }
    }

    /// Adds the missing routes of `wanted` and deletes ours that are not wanted (addresses of another family
    /// in `wanted` are ignored). Every change is attempted; the first error is returned. Returns how many
    /// routes are wanted.
    pub fn sync(&self, wanted: &BTreeSet<IpAddr>) -> Result<usize, RedirectError> {
        let current = self.exec.list(self.family)?;
        let wanted: BTreeSet<IpAddr> = wanted
            .iter()
            .copied()
            .filter(|ip| self.family.contains(ip))
            .collect();
        let mut first_err = None;
        for ip in wanted.difference(&current) {
            if let Err(e) = self.exec.add(*ip) {
                first_err.get_or_insert(e);
            }
        }
        for ip in current.difference(&wanted) {
            if let Err(e) = self.exec.delete(*ip) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(wanted.len()), Err)
    }

    /// Deletes every route of ours in this family.
    pub fn cleanup(&self) -> Result<(), RedirectError> {
        self.sync(&BTreeSet::new()).map(|_| ())
    }
}
