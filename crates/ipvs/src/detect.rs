//! Whether this kernel can run IPVS mode: the check the binary uses to fall back to iptables mode.
//!
//! Reads `/proc` and, when that is inconclusive, asks generic netlink for the "IPVS" family (which also makes
//! the kernel load `ip_vs` when it can). Never changes anything else.

use std::path::Path;

use crate::genl::GenlIpvs;

/// Why IPVS mode cannot run here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Ok` when IPVS is usable: `<proc_root>/net/ip_vs` exists or the "IPVS" generic netlink family resolves.
pub fn ipvs_support(proc_root: &Path) -> Result<(), Unavailable> {
    if proc_root.join("net/ip_vs").exists() {
        return Ok(());
    }
    match GenlIpvs::new() {
        Ok(_) => Ok(()),
        Err(e) => Err(Unavailable(format!(
            "the kernel has no IPVS ({} missing; {e})",
            proc_root.join("net/ip_vs").display()
        ))),
    }
}

/// Whether IPVS mode can run on this host (see [`ipvs_support`]).
pub fn ipvs_available() -> bool {
    ipvs_support(Path::new("/proc")).is_ok()
}
