//! The jump rules from built-in chains into kube-proxy's chains (upstream's `iptablesJumpChains` and the
//! kubelet KUBE-FIREWALL duplicates), and how to recognise them in `iptables-save` output. Data only.

use crate::chains::*;
use crate::exec::Table;

/// A jump from a built-in chain to one of ours (upstream's `iptablesJumpChains`).
pub(crate) struct Jump {
    pub table: Table,
    pub dst: &'static str,
    pub src: &'static str,
    pub comment: &'static str,
    extra: &'static str,
}

const NEW: &str = "-m conntrack --ctstate NEW";

/// In upstream's order; each is inserted at position 1 when missing.
pub(crate) const JUMPS: &[Jump] = &[
    Jump {
        table: Table::Filter,
        dst: KUBE_EXTERNAL_SERVICES,
        src: "INPUT",
        comment: "kubernetes externally-visible service portals",
        extra: NEW,
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_EXTERNAL_SERVICES,
        src: "FORWARD",
        comment: "kubernetes externally-visible service portals",
        extra: NEW,
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_NODEPORTS,
        src: "INPUT",
        comment: "kubernetes health check service ports",
        extra: "",
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_SERVICES,
        src: "FORWARD",
        comment: "kubernetes service portals",
        extra: NEW,
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_SERVICES,
        src: "OUTPUT",
        comment: "kubernetes service portals",
        extra: NEW,
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_FORWARD,
        src: "FORWARD",
        comment: "kubernetes forwarding rules",
        extra: "",
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_PROXY_FIREWALL,
        src: "INPUT",
        comment: "kubernetes load balancer firewall",
        extra: NEW,
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_PROXY_FIREWALL,
        src: "OUTPUT",
        comment: "kubernetes load balancer firewall",
        extra: NEW,
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_PROXY_FIREWALL,
        src: "FORWARD",
        comment: "kubernetes load balancer firewall",
        extra: NEW,
    },
    Jump {
        table: Table::Nat,
        dst: KUBE_SERVICES,
        src: "OUTPUT",
        comment: "kubernetes service portals",
        extra: "",
    },
    Jump {
        table: Table::Nat,
        dst: KUBE_SERVICES,
        src: "PREROUTING",
        comment: "kubernetes service portals",
        extra: "",
    },
    Jump {
        table: Table::Nat,
        dst: KUBE_POSTROUTING,
        src: "POSTROUTING",
        comment: "kubernetes postrouting rules",
        extra: "",
    },
];

/// kubelet's KUBE-FIREWALL jumps: ensured like upstream, never removed by cleanup.
pub(crate) const KUBELET_JUMPS: &[Jump] = &[
    Jump {
        table: Table::Filter,
        dst: KUBE_FIREWALL,
        src: "INPUT",
        comment: "",
        extra: "",
    },
    Jump {
        table: Table::Filter,
        dst: KUBE_FIREWALL,
        src: "OUTPUT",
        comment: "",
        extra: "",
    },
];

impl Jump {
    pub(crate) fn spec(&self) -> String {
        let mut parts = Vec::new();
        if !self.extra.is_empty() {
            parts.push(self.extra.to_string());
        }
        if !self.comment.is_empty() {
            parts.push(format!("-m comment --comment \"{}\"", self.comment));
        }
        parts.push(format!("-j {}", self.dst));
        parts.join(" ")
    }

    /// Whether an `iptables-save` line is this jump.
    pub(crate) fn matches(&self, save_line: &str) -> bool {
        let Some(rest) = save_line.strip_prefix(&format!("-A {} ", self.src)) else {
            return false;
        };
        let jumps_here = rest.ends_with(&format!("-j {}", self.dst));
        if self.comment.is_empty() {
            jumps_here && !rest.contains("--comment")
        } else {
            jumps_here && rest.contains(&format!("--comment \"{}\"", self.comment))
        }
    }
}
