//! The pure renderer: portals (virtual address → listener) in, `iptables-restore` text for the redirect chains
//! out, plus the jumps from the built-in chains that lead to them.
//!
//! Every run rewrites the whole of our chains (declaring a chain in `--noflush` mode empties it), so the output
//! depends only on the portals and the configuration.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use kube_proxy_iptables::Table;
use kube_proxy_model::{IpFamily, Protocol};

use super::{
    KUBE_NODEPORT_CONTAINER, KUBE_NODEPORT_HOST, KUBE_NODEPORT_NON_LOCAL, KUBE_PORTALS_CONTAINER,
    KUBE_PORTALS_HOST,
};
use crate::portal::{Portal, PortalKind};

/// What the renderer needs besides the portals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectConfig {
    /// The family whose rules are rendered; portals of the other family are ignored.
    pub family: IpFamily,
    /// Where node-originated traffic is sent when a listener is bound to the unspecified address: DNAT to this
    /// address and the listener's port (upstream used the node's IP). `None`: REDIRECT (to the loopback address).
    pub host_ip: Option<IpAddr>,
}

/// The rendered rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedRedirect {
    /// `iptables-restore` input (nat and filter tables) to feed with `--noflush`.
    pub text: String,
    /// Number of `-A` rules in our chains.
    pub rules: usize,
}

/// A jump from a built-in chain into one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Jump {
    pub table: Table,
    pub from: &'static str,
    pub to: &'static str,
    /// Matches before the comment (e.g. the destination address type).
    pub matches: &'static str,
    pub comment: &'static str,
    /// Inserted first in the built-in chain; otherwise appended.
    pub first: bool,
}

/// Portals come before anything else in PREROUTING / OUTPUT; NodePorts, matching any local address, come last so
/// that they never shadow a service address that happens to be local.
pub(crate) const JUMPS: &[Jump] = &[
    Jump {
        table: Table::Nat,
        from: "PREROUTING",
        to: KUBE_PORTALS_CONTAINER,
        matches: "",
        comment: "userspace proxy: service addresses",
        first: true,
    },
    Jump {
        table: Table::Nat,
        from: "OUTPUT",
        to: KUBE_PORTALS_HOST,
        matches: "",
        comment: "userspace proxy: service addresses",
        first: true,
    },
    Jump {
        table: Table::Nat,
        from: "PREROUTING",
        to: KUBE_NODEPORT_CONTAINER,
        matches: "-m addrtype --dst-type LOCAL",
        comment: "userspace proxy: node ports",
        first: false,
    },
    Jump {
        table: Table::Nat,
        from: "OUTPUT",
        to: KUBE_NODEPORT_HOST,
        matches: "-m addrtype --dst-type LOCAL",
        comment: "userspace proxy: node ports",
        first: false,
    },
    Jump {
        table: Table::Filter,
        from: "INPUT",
        to: KUBE_NODEPORT_NON_LOCAL,
        matches: "",
        comment: "userspace proxy: node port listeners",
        first: true,
    },
];

impl Jump {
    /// The rule's specification after `-A/-I/-D <chain>`.
    pub(crate) fn spec(&self) -> String {
        let mut s = String::new();
        if !self.matches.is_empty() {
            s.push_str(self.matches);
            s.push(' ');
        }
        let _ = write!(
            s,
            "-m comment --comment \"{}\" -j {}",
            self.comment, self.to
        );
        s
    }

    /// Whether an `iptables-save` line is this jump.
    pub(crate) fn matches_line(&self, line: &str) -> bool {
        line.strip_prefix("-A ")
            .and_then(|l| l.strip_prefix(self.from))
            .is_some_and(|rest| {
                rest.starts_with(' ') && rest.trim_end().ends_with(&format!("-j {}", self.to))
            })
    }
}

/// The chains of each table, in declaration order.
pub(crate) const NAT_CHAINS: &[&str] = &[
    KUBE_PORTALS_CONTAINER,
    KUBE_PORTALS_HOST,
    KUBE_NODEPORT_CONTAINER,
    KUBE_NODEPORT_HOST,
];
pub(crate) const FILTER_CHAINS: &[&str] = &[KUBE_NODEPORT_NON_LOCAL];

/// Renders the rules sending each portal's traffic to its listener. Portals of another family and of protocols
/// the proxy does not serve are skipped.
pub fn render_rules(portals: &[Portal], config: &RedirectConfig) -> RenderedRedirect {
    let mut portals: Vec<&Portal> = portals
        .iter()
        .filter(|p| config.family.contains(&p.key.vip))
        .filter(|p| matches!(p.key.protocol, Protocol::Tcp | Protocol::Udp))
        .collect();
    portals.sort();

    let mut nat = String::from("*nat\n");
    for c in NAT_CHAINS {
        let _ = writeln!(nat, ":{c} - [0:0]");
    }
    let mut filter = String::from("*filter\n");
    for c in FILTER_CHAINS {
        let _ = writeln!(filter, ":{c} - [0:0]");
    }
    let mut rules = 0;
    for p in portals {
        let key = &p.key;
        let proto = key.protocol.as_lower();
        let dst = if key.vip.is_unspecified() {
            String::new()
        } else {
            format!("-d {} ", host_cidr(key.vip))
        };
        let matches = format!(
            "{dst}-p {proto} -m comment --comment \"{}\" -m {proto} --dport {}",
            key.service, key.port
        );
        let (container, host) = if key.kind == PortalKind::NodePort {
            (KUBE_NODEPORT_CONTAINER, KUBE_NODEPORT_HOST)
        } else {
            (KUBE_PORTALS_CONTAINER, KUBE_PORTALS_HOST)
        };
        let listen_ip = Some(p.listen.ip()).filter(|ip| !ip.is_unspecified());
        let container_target = target(listen_ip, p.listen.port());
        let host_target = target(
            listen_ip.or(config.host_ip.filter(|ip| config.family.contains(ip))),
            p.listen.port(),
        );
        let _ = writeln!(nat, "-A {container} {matches} {container_target}");
        let _ = writeln!(nat, "-A {host} {matches} {host_target}");
        rules += 2;
        if key.kind == PortalKind::NodePort {
            let _ = writeln!(
                filter,
                "-A {KUBE_NODEPORT_NON_LOCAL} -p {proto} -m comment --comment \"{}\" -m conntrack --ctstate NEW -m {proto} --dport {} -j ACCEPT",
                key.service,
                p.listen.port()
            );
            rules += 1;
        }
    }
    nat.push_str("COMMIT\n");
    filter.push_str("COMMIT\n");
    RenderedRedirect {
        text: nat + &filter,
        rules,
    }
}

/// REDIRECT to the port on the address the packet arrived at, or DNAT to a specific address.
fn target(ip: Option<IpAddr>, port: u16) -> String {
    match ip {
        None => format!("-j REDIRECT --to-ports {port}"),
        Some(ip) => format!("-j DNAT --to-destination {}", SocketAddr::new(ip, port)),
    }
}

fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}
