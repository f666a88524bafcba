//! A pure, root-free packet tracer for kube-proxy's modes: iptables (this module's top level), nftables
//! ([`nft`]), IPVS ([`ipvs`], on top of the iptables walker) and userspace ([`userspace`]).
//!
//! Give it `iptables-save` output (or the `iptables-restore` text kube-proxy-rs renders) and a packet; it walks
//! the nat and filter tables in netfilter's hook order, follows every `-m statistic` branch and reports each
//! possible outcome with its probability, the rules it matched, the verdict (DNAT / ACCEPT / DROP / REJECT) and
//! whether — and because of which rule — the packet is masqueraded. It models exactly the matches and targets
//! kube-proxy emits; anything else is reported and treated as non-matching. No I/O.
//!
//! ```
//! use kube_proxy_trace::{trace_text, Packet, TraceOptions, Verdict};
//! let rules = "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -d 10.96.0.1 -p tcp -m tcp --dport 443 -j DNAT --to-destination 192.168.0.2:6443\nCOMMIT\n";
//! let pkt = Packet::inbound("10.0.0.5".parse().unwrap(), "10.96.0.1".parse().unwrap(), 443, kube_proxy_model::Protocol::Tcp);
//! let t = trace_text(rules, &pkt, &TraceOptions::default()).unwrap();
//! assert_eq!(t.outcomes[0].verdict, Verdict::Dnat { ip: "192.168.0.2".parse().unwrap(), port: 6443 });
//! ```
#![forbid(unsafe_code)]

mod error;
mod eval;
pub mod ipvs;
pub mod nft;
mod packet;
pub mod rule;
mod ruleset;
mod tokens;
mod trace;
pub mod userspace;
mod walk;

pub use error::TraceError;
pub use packet::{parse_destination, Origin, Packet, TraceOptions};
pub use ruleset::{is_builtin, Chain, RuleRef, Ruleset, Table};
pub use trace::{
    Affinity, ListenerHit, Masquerade, Outcome, Trace, Unsupported, Verdict, VirtualServerHit,
};
pub use walk::walk;

/// Traces `packet` through already-parsed rules, adding kube-proxy's built-in-chain jumps first when
/// `opts.ensure_kube_proxy_jumps` is set.
pub fn trace_packet(rules: &Ruleset, packet: &Packet, opts: &TraceOptions) -> Trace {
    if opts.ensure_kube_proxy_jumps {
        let mut rules = rules.clone();
        rules.ensure_kube_proxy_jumps();
        walk(&rules, packet, opts)
    } else {
        walk(rules, packet, opts)
    }
}

/// Parses `iptables-save` / `iptables-restore` text and traces `packet` through it.
pub fn trace_text(text: &str, packet: &Packet, opts: &TraceOptions) -> Result<Trace, TraceError> {
    let rules = Ruleset::parse(text)?;
    Ok(trace_packet(&rules, packet, opts))
}
