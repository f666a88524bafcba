//! The nftables-mode tracer: a packet through table `kube-proxy` ([`NftTable`], built from the typed plan of
//! `kube_proxy_nftables`), chain by chain and map by map.
//!
//! * Hooks: inbound `prerouting` → routing (destination local → `input`, else `forward` → `postrouting`);
//!   local `output` → `postrouting` (→ `input` on `lo` when the destination is local). Base chains of one
//!   hook run in priority order (`filter-*` at dstnat-10, `nat-*` at dstnat, `filter-output-post-dnat` at
//!   dstnat+10); only this table's chains are modelled.
//! * Verdict maps (`vmap @service-ips`, `@no-endpoint-services`, `@firewall-ips`, ...) are looked up in the
//!   table's elements; the element that matched is part of the path and decides DROP verdicts it carries.
//! * `numgen random mod N == 0` branches with probability 1/N; `dnat to numgen random mod N offset B map
//!   @backends-K` branches into N slots of 1/N each.
//! * Affinity sets (`flags dynamic,timeout`): a source not in the set takes the "not seen" path and the
//!   check is reported as [`crate::Affinity`] (sets named in `TraceOptions::recent_seen` count as seen).
//! * Masquerade: decided in `nat-postrouting` by the mark; `Masquerade::decided_by` is the jump to
//!   `mark-for-masquerade`, or the `masquerading` rule (with its `@hairpin` element) for hairpin traffic.

mod eval;
mod table;
mod walk;

pub use table::{NftChain, NftSet, NftTable};
pub use walk::walk as trace_nft;
