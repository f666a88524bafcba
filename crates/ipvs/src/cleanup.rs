//! `--cleanup` for IPVS mode (upstream's `CleanupLeftovers`): virtual servers, kube-ipvs0, the jumps and
//! chains in nat and filter, then the ipsets (only once no rule references them).

use kube_proxy_iptables::exec::chains_in_save;
use kube_proxy_iptables::{IptablesExec, Table};
use kube_proxy_model::IpFamily;

use crate::handle::Ipvs;
use crate::ipset_kernel::IpsetHandle;
use crate::ipsets::IpSetName;
use crate::link::DummyLink;
use crate::rules::{jump_rule, FILTER_CHAINS, JUMPS, NAT_CHAINS};
use crate::IpvsError;

/// Removes our jumps and chains from the nat and filter tables of `family`; a clean host is a no-op.
pub fn cleanup_iptables(exec: &dyn IptablesExec, family: IpFamily) -> Result<(), IpvsError> {
    let mut input = String::new();
    for (table, name, ours) in [
        (Table::Filter, "filter", &FILTER_CHAINS[..]),
        (Table::Nat, "nat", &NAT_CHAINS[..]),
    ] {
        let save = exec.save(family, table)?;
        let existing = chains_in_save(&save);
        let delete: Vec<&str> = ours
            .iter()
            .copied()
            .filter(|c| existing.contains(c))
            .collect();
        let unjumps: Vec<String> = JUMPS
            .iter()
            .filter(|j| j.0 == name)
            .map(|j| format!("{} {}", j.1, jump_rule(j)))
            .filter(|r| save.lines().any(|l| l.trim() == format!("-A {r}")))
            .collect();
        if delete.is_empty() && unjumps.is_empty() {
            continue;
        }
        input.push_str(&format!("*{name}\n"));
        for c in &delete {
            input.push_str(&format!(":{c} - [0:0]\n"));
        }
        for r in &unjumps {
            input.push_str(&format!("-D {r}\n"));
        }
        for c in &delete {
            input.push_str(&format!("-X {c}\n"));
        }
        input.push_str("COMMIT\n");
    }
    if input.is_empty() {
        return Ok(());
    }
    exec.restore(family, &input, true)?;
    Ok(())
}

/// Removes everything IPVS mode created: all virtual servers, kube-ipvs0, the iptables jumps and chains of
/// both families, then the ipsets of both families. Every step is attempted; the first error is returned.
pub fn cleanup(
    ipvs: Option<&dyn Ipvs>,
    link: &dyn DummyLink,
    iptables: &dyn IptablesExec,
    ipset: &dyn IpsetHandle,
) -> Result<(), IpvsError> {
    let mut first = None;
    let mut keep = |r: Result<(), IpvsError>| {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    if let Some(ipvs) = ipvs {
        keep(ipvs.flush());
    }
    keep(link.delete());
    for family in [IpFamily::V4, IpFamily::V6] {
        keep(cleanup_iptables(iptables, family));
    }
    for family in [IpFamily::V4, IpFamily::V6] {
        for set in IpSetName::ALL {
            keep(ipset.destroy(&set.name(family)));
        }
    }
    first.map_or(Ok(()), Err)
}

/// `--cleanup` on the host: IPVS over generic netlink (skipped when the kernel has none), kube-ipvs0 over
/// rtnetlink, ipsets over nfnetlink, iptables with the binaries of `backend`.
pub fn cleanup_host(backend: kube_proxy_iptables::Backend) -> Result<(), IpvsError> {
    let ipvs = crate::genl::GenlIpvs::new().ok();
    cleanup(
        ipvs.as_ref().map(|i| i as &dyn Ipvs),
        &crate::link::RtnlLink::new(crate::config::DUMMY_DEVICE)?,
        &kube_proxy_iptables::RealExec::new(backend),
        &crate::ipset_kernel::NetlinkIpset::new()?,
    )
}
