//! Reading what the proxy programmed, per variant, with the stock tools run inside the proxy's namespace:
//! how many ClusterIPs are served (one full listing) and whether one change is visible (listings of one or two
//! chains / one map). Only used to cross-check the proxy's own "synced" timestamp, never timed.

use kube_proxy_testkit::netns::Netns;

use crate::config::Variant;
use crate::error::{BenchError, Result};
use crate::workload::Expect;

/// Reads the rules of one namespace.
pub struct Kernel<'a> {
    ns: &'a Netns,
    variant: Variant,
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

impl<'a> Kernel<'a> {
    pub fn new(ns: &'a Netns, variant: Variant) -> Kernel<'a> {
        Kernel { ns, variant }
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        self.ns
            .exec_ok(args)
            .map_err(|e| BenchError::KernelRead(e.to_string()))
    }

    /// Like `run`, but a failure (e.g. the table does not exist yet) reads as empty output.
    fn run_or_empty(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_default()
    }

    fn iptables(&self) -> (&'static str, &'static str) {
        match self.variant {
            Variant::IptablesLegacy => ("iptables-legacy", "iptables-legacy-save"),
            _ => ("iptables-nft", "iptables-nft-save"),
        }
    }

    /// How many ClusterIP:port pairs are served (full listing).
    pub fn served_services(&self) -> Result<usize> {
        match self.variant {
            Variant::IptablesNft | Variant::IptablesLegacy => {
                let (_, save) = self.iptables();
                let text = self.run_or_empty(&[save, "-t", "nat"]);
                Ok(text
                    .lines()
                    .filter(|l| l.starts_with("-A KUBE-SERVICES ") && l.contains("-j KUBE-SVC-"))
                    .count())
            }
            Variant::Nftables => {
                let text =
                    self.run_or_empty(&["nft", "list", "map", "ip", "kube-proxy", "service-ips"]);
                Ok(count(&text, "goto service-") + count(&text, "goto \"service-"))
            }
        }
    }

    /// Whether the kernel shows `expect`.
    pub fn shows(&self, expect: &Expect) -> Result<bool> {
        match self.variant {
            Variant::IptablesNft | Variant::IptablesLegacy => Ok(self.iptables_shows(expect)),
            Variant::Nftables => Ok(self.nft_shows(expect)),
        }
    }

    fn iptables_shows(&self, expect: &Expect) -> bool {
        let (tool, _) = self.iptables();
        let services = self.run_or_empty(&[tool, "-w", "-t", "nat", "-S", "KUBE-SERVICES"]);
        let ip = match expect {
            Expect::Present { ip, .. } | Expect::Absent { ip } => ip,
        };
        let needle = format!("-d {ip}/32 ");
        let line = services
            .lines()
            .find(|l| l.contains(&needle) && l.contains("-j KUBE-SVC-"));
        match (expect, line) {
            (Expect::Absent { .. }, line) => line.is_none(),
            (Expect::Present { .. }, None) => false,
            (Expect::Present { endpoints, .. }, Some(line)) => {
                let Some(chain) = line.split("-j ").nth(1).map(|s| s.trim()) else {
                    return false;
                };
                let rules = self.run_or_empty(&[tool, "-w", "-t", "nat", "-S", chain]);
                rules.lines().filter(|l| l.contains("-j KUBE-SEP-")).count() == *endpoints
            }
        }
    }

    fn nft_shows(&self, expect: &Expect) -> bool {
        let map = self.run_or_empty(&["nft", "list", "map", "ip", "kube-proxy", "service-ips"]);
        let ip = match expect {
            Expect::Present { ip, .. } | Expect::Absent { ip } => ip,
        };
        let needle = format!("{ip} . tcp . 80 : goto ");
        let element = map.find(&needle).map(|at| &map[at + needle.len()..]);
        match (expect, element) {
            (Expect::Absent { .. }, element) => element.is_none(),
            (Expect::Present { .. }, None) => false,
            (Expect::Present { endpoints, .. }, Some(rest)) => {
                let chain: String = rest
                    .trim_start_matches('"')
                    .chars()
                    .take_while(|c| !matches!(c, '"' | ',' | ' ' | '\n' | '}'))
                    .collect();
                let text = self.run_or_empty(&["nft", "list", "chain", "ip", "kube-proxy", &chain]);
                nft_endpoint_count(&text) == Some(*endpoints)
            }
        }
    }
}

/// Endpoints a listed nftables service chain picks among: `N` of a `numgen random mod N offset B map @backends…`
/// rule (data-only endpoint selection), else the number of `goto endpoint-…` jumps (chain per endpoint).
pub fn nft_endpoint_count(chain: &str) -> Option<usize> {
    if let Some(line) = chain.lines().find(|l| l.contains("map @backends")) {
        let rest = line.split("numgen random mod ").nth(1)?;
        return rest.split_whitespace().next()?.parse().ok();
    }
    Some(count(chain, "goto endpoint-") + count(chain, "goto \"endpoint-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_endpoint_counts_in_both_layouts() {
        let data_only = "table ip kube-proxy {\n\tchain service-X {\n\t\tmeta l4proto tcp dnat ip to numgen random mod 3 offset 1 map @backends-42\n\t}\n}";
        assert_eq!(nft_endpoint_count(data_only), Some(3));
        let chains =
            "numgen random mod 2 == 0 goto endpoint-A\n numgen random mod 1 == 0 goto endpoint-B\n";
        assert_eq!(nft_endpoint_count(chains), Some(2));
    }
}
