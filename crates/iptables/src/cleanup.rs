//! Removal of everything kube-proxy's iptables mode creates (upstream's `CleanupLeftovers`).

use kube_proxy_model::IpFamily;

use crate::chains::*;
use crate::exec::{chains_in_save, choose_backend, Backend, IptablesExec, RealExec, Table};
use crate::jumps::JUMPS;
use crate::IptablesError;

/// Removes everything kube-proxy's iptables mode created in `family` (upstream's `CleanupLeftovers`): the
/// jumps from built-in chains, the top-level and per-service chains in nat and filter, and the canaries.
/// kubelet's KUBE-FIREWALL chain and its jumps are left alone.
pub fn cleanup(exec: &dyn IptablesExec, family: IpFamily) -> Result<(), IptablesError> {
    let mut input = String::new();
    for (table, ours) in [
        (
            Table::Filter,
            &[
                KUBE_SERVICES,
                KUBE_EXTERNAL_SERVICES,
                KUBE_FORWARD,
                KUBE_NODEPORTS,
                KUBE_PROXY_FIREWALL,
                KUBE_PROXY_CANARY,
            ][..],
        ),
        (
            Table::Nat,
            &[
                KUBE_SERVICES,
                KUBE_NODEPORTS,
                KUBE_POSTROUTING,
                KUBE_MARK_MASQ,
                KUBE_PROXY_CANARY,
            ][..],
        ),
        (Table::Mangle, &[KUBE_PROXY_CANARY][..]),
    ] {
        let save = exec.save(family, table)?;
        let existing = chains_in_save(&save);
        let mut delete: Vec<&str> = ours
            .iter()
            .copied()
            .filter(|c| existing.contains(c))
            .collect();
        if table == Table::Nat {
            delete.extend(existing.iter().copied().filter(|c| is_service_chain(c)));
        }
        let unjumps: Vec<String> = save
            .lines()
            .filter(|l| JUMPS.iter().any(|j| j.table == table && j.matches(l)))
            .map(|l| format!("-D{}", &l[2..]))
            .collect();
        if delete.is_empty() && unjumps.is_empty() {
            continue;
        }
        input.push_str(&format!("*{}\n", table.as_str()));
        for c in &delete {
            input.push_str(&format!(":{c} - [0:0]\n"));
        }
        for l in &unjumps {
            input.push_str(l);
            input.push('\n');
        }
        for c in &delete {
            input.push_str(&format!("-X {c}\n"));
        }
        input.push_str("COMMIT\n");
    }
    if input.is_empty() {
        return Ok(());
    }
    exec.restore(family, &input, true)
}

/// `--cleanup` for the host: [`cleanup`] for IPv4 and IPv6 with the real binaries of `backend` (detected when
/// `None`). Both families are attempted; the first error is returned.
pub fn cleanup_host(backend: Option<Backend>) -> Result<(), IptablesError> {
    let exec = RealExec::new(choose_backend(backend));
    let mut first_err = None;
    for family in [IpFamily::V4, IpFamily::V6] {
        if let Err(e) = cleanup(&exec, family) {
            tracing::error!(?family, error = %e, "iptables cleanup failed");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}
