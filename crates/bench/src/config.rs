//! What one benchmark run is asked to do: which proxy binary, which mode (a parameter, so new modes slot in),
//! how many Services and endpoints, how many single changes, and how the dataplane is probed.

use std::path::PathBuf;
use std::time::Duration;

/// A proxy mode together with the kernel interface it drives; each is benchmarked separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Variant {
    /// `--proxy-mode iptables --iptables-backend nft` (what `auto` picks on an empty host).
    IptablesNft,
    /// `--proxy-mode iptables --iptables-backend legacy`.
    IptablesLegacy,
    /// `--proxy-mode nftables`.
    Nftables,
}

impl Variant {
    /// Every variant, in report order.
    pub const ALL: [Variant; 3] = [
        Variant::IptablesNft,
        Variant::IptablesLegacy,
        Variant::Nftables,
    ];

    /// The label used on the command line and in reports.
    pub fn label(self) -> &'static str {
        match self {
            Variant::IptablesNft => "iptables-nft",
            Variant::IptablesLegacy => "iptables-legacy",
            Variant::Nftables => "nftables",
        }
    }

    /// Parses a label of [`label`](Self::label).
    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.label() == s)
    }

    /// The proxy's flags selecting this variant.
    pub fn proxy_args(self) -> Vec<&'static str> {
        match self {
            Variant::IptablesNft => vec!["--proxy-mode", "iptables", "--iptables-backend", "nft"],
            Variant::IptablesLegacy => {
                vec!["--proxy-mode", "iptables", "--iptables-backend", "legacy"]
            }
            Variant::Nftables => vec!["--proxy-mode", "nftables"],
        }
    }

    /// The `--proxy-mode` value.
    pub fn mode(self) -> &'static str {
        match self {
            Variant::IptablesNft | Variant::IptablesLegacy => "iptables",
            Variant::Nftables => "nftables",
        }
    }
}

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The kube-proxy-rs binary under test.
    pub proxy_binary: PathBuf,
    pub variant: Variant,
    /// N: Services (each with one port and one EndpointSlice).
    pub services: usize,
    /// M: endpoints per Service.
    pub endpoints: usize,
    /// K: single changes, cycling endpoint add, endpoint remove, Service add, Service delete.
    pub changes: usize,
    /// Passed as `--iptables-min-sync-period`; the bench also waits twice this long between changes, so every
    /// change meets an idle rate limiter with its burst of 2 syncs refilled (what a lone change on a quiet
    /// cluster sees).
    pub min_sync_period: Duration,
    /// New TCP connections per target (ClusterIP and pod IP) in the dataplane probe; 0 skips the probe.
    pub connections: usize,
    /// How long to wait for any one expected state before giving up.
    pub timeout: Duration,
}

impl BenchConfig {
    /// A small configuration (used by the smoke test).
    pub fn small(proxy_binary: PathBuf, variant: Variant) -> BenchConfig {
        BenchConfig {
            proxy_binary,
            variant,
            services: 20,
            endpoints: 2,
            changes: 2,
            min_sync_period: Duration::from_millis(100),
            connections: 50,
            timeout: Duration::from_secs(30),
        }
    }
}
