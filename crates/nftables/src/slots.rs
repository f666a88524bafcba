//! Slot ranges of the `backends-K` data maps: every endpoint-selection chain (`service-…` or `local-…` of a
//! service port without ClientIP affinity) owns a stable range `BASE .. BASE+capacity` of one of
//! [`BACKEND_MAPS`] shared data maps (chosen by a hash of the service port's name), and its rule is
//! `dnat to numgen random mod N offset BASE map @backends-K`.
//!
//! Why several maps: the kernel checks every new element of a data map against every rule that reads the
//! map, and every rule binding the map against every element, so one map read by 10,000 rules and holding
//! 100,000 elements costs ~10^9 checks on a full load (13 s measured). 64 maps divide that by 64².
//!
//! Ranges are kept across syncs so that replacing an endpoint only rewrites map elements (no rule, no
//! verdict, no table validation in the kernel). Capacity is N rounded up to a power of two (at least 4), so
//! an endpoint count change keeps BASE unless the range overflows. A fresh allocation (full sync) is a pure
//! function of the state. The reference counts of `@hairpin` addresses (shared by every service port with
//! that endpoint) are carried here too, so an incremental sync need not scan all services for them.
//! Nothing here performs I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kube_proxy_model::{ProxyState, ServicePortName, ServicePortState};

/// Which endpoint-selection chain of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    /// `service-…`: cluster endpoints.
    Cluster,
    /// `local-…`: local endpoints.
    Local,
}

/// Number of `backends-K` maps per family.
pub const BACKEND_MAPS: u32 = 64;

/// Name of map `k`.
pub fn backends_map(k: u32) -> String {
    format!("backends-{k}")
}

/// The map a service port's ranges live in: FNV-1a of its name, modulo [`BACKEND_MAPS`].
pub fn map_of(name: &ServicePortName) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for part in [
        &*name.namespace,
        "/",
        &*name.name,
        "/",
        name.protocol.as_lower(),
        "/",
        &*name.port,
    ] {
        for b in part.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h % BACKEND_MAPS
}

/// Slot 0 is never used (nft omits `offset 0`; keeping every rule's offset explicit is simpler to read).
const FIRST_SLOT: u32 = 1;

/// The slot ranges in use: service port → (base, capacity) per selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slots {
    ranges: BTreeMap<ServicePortName, [Option<(u32, u32)>; 2]>,
    /// Released ranges by (map, capacity), reused before `next` grows.
    free: BTreeMap<(u32, u32), Vec<u32>>,
    /// Next unused slot of each map.
    next: BTreeMap<u32, u32>,
    /// How many service ports put each address in `@hairpin` (an element exists while the count is > 0).
    hairpin: BTreeMap<IpAddr, u32>,
}

fn capacity(n: usize) -> u32 {
    u32::try_from(n.next_power_of_two().max(4)).unwrap_or(u32::MAX)
}

/// The chains of `svc` that choose endpoints through `backends-K` maps, with their endpoint counts.
pub fn selectors(svc: &ServicePortState) -> Vec<(Selector, usize)> {
    if svc.session_affinity_timeout.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if !svc.cluster_endpoints.is_empty() && svc.uses_cluster_endpoints() {
        out.push((Selector::Cluster, svc.cluster_endpoints.len()));
    }
    if !svc.local_endpoints.is_empty() && svc.uses_local_endpoints() {
        out.push((Selector::Local, svc.local_endpoints.len()));
    }
    out
}

impl Slots {
    /// Ranges for every service port of `state`, allocated in name order from slot 1.
    pub fn fresh(state: &ProxyState) -> Slots {
        let mut s = Slots::default();
        for (name, svc) in &state.services {
            for (sel, n) in selectors(svc) {
                s.ensure(name, sel, n);
            }
            s.count_hairpin(svc, 1);
        }
        s
    }

    /// Adds (`delta` = 1) or removes (-1) the `@hairpin` references of one service port.
    pub fn count_hairpin(&mut self, svc: &ServicePortState, delta: i32) {
        for ip in crate::service::hairpin_ips(svc) {
            let c = self.hairpin.entry(ip).or_insert(0);
            *c = c.saturating_add_signed(delta);
            if *c == 0 {
                self.hairpin.remove(&ip);
            }
        }
    }

    /// Does some service port put `ip` in `@hairpin`?
    pub fn hairpin_used(&self, ip: &IpAddr) -> bool {
        self.hairpin.contains_key(ip)
    }

    /// Map index and base slot of a selector chain, if it has a range.
    pub fn base(&self, name: &ServicePortName, sel: Selector) -> Option<(u32, u32)> {
        self.ranges
            .get(name)
            .and_then(|r| r[sel as usize])
            .map(|r| (map_of(name), r.0))
    }

    /// Only the ranges of `names` (what renders of those service ports need).
    pub fn subset<'a>(&self, names: impl IntoIterator<Item = &'a ServicePortName>) -> Slots {
        let mut out = Slots::default();
        for n in names {
            if let Some(r) = self.ranges.get(n) {
                out.ranges.insert(n.clone(), *r);
            }
        }
        out
    }

    /// Makes the ranges of `name` fit `svc` (None: the service port is gone).
    pub fn update(&mut self, name: &ServicePortName, svc: Option<&ServicePortState>) {
        let wanted = svc.map(selectors).unwrap_or_default();
        for sel in [Selector::Cluster, Selector::Local] {
            match wanted.iter().find(|(s, _)| *s == sel) {
                Some((_, n)) => self.ensure(name, sel, *n),
                None => self.release(name, sel),
            }
        }
    }

    fn ensure(&mut self, name: &ServicePortName, sel: Selector, n: usize) {
        let cap = capacity(n);
        if let Some((_, have)) = self.ranges.get(name).and_then(|r| r[sel as usize]) {
            if have >= cap {
                return;
            }
            self.release(name, sel);
        }
        let map = map_of(name);
        let base = match self.free.get_mut(&(map, cap)).and_then(Vec::pop) {
            Some(b) => b,
            None => {
                let next = self.next.entry(map).or_insert(FIRST_SLOT);
                let b = *next;
                *next = b.saturating_add(cap);
                b
            }
        };
        match self.ranges.get_mut(name) {
            Some(r) => r[sel as usize] = Some((base, cap)),
            None => {
                let mut r = [None, None];
                r[sel as usize] = Some((base, cap));
                self.ranges.insert(name.clone(), r);
            }
        }
    }

    fn release(&mut self, name: &ServicePortName, sel: Selector) {
        let Some(r) = self.ranges.get_mut(name) else {
            return;
        };
        if let Some((base, cap)) = r[sel as usize].take() {
            self.free.entry((map_of(name), cap)).or_default().push(base);
        }
        if r.iter().all(Option::is_none) {
            self.ranges.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_proxy_model::Protocol;

    fn name(n: &str) -> ServicePortName {
        ServicePortName {
            namespace: "ns".into(),
            name: n.into(),
            port: "".into(),
            protocol: Protocol::Tcp,
        }
    }

    #[test]
    fn ranges_are_stable_grow_by_moving_and_are_reused() {
        // Three names that share a map, so their ranges interact.
        let m = map_of(&name("a0"));
        let same: Vec<String> = (1..10_000)
            .map(|i| format!("a{i}"))
            .filter(|n| map_of(&name(n)) == m)
            .take(2)
            .collect();
        let (a, b, c) = (name("a0"), name(&same[0]), name(&same[1]));
        let mut s = Slots::default();
        s.ensure(&a, Selector::Cluster, 3);
        s.ensure(&b, Selector::Cluster, 10);
        assert_eq!(s.base(&a, Selector::Cluster), Some((m, 1)));
        assert_eq!(s.base(&b, Selector::Cluster), Some((m, 5)));
        // Within capacity: same base.
        s.ensure(&a, Selector::Cluster, 4);
        assert_eq!(s.base(&a, Selector::Cluster), Some((m, 1)));
        // Overflow: a new range; the old one is free for the next 4-slot range.
        s.ensure(&a, Selector::Cluster, 5);
        assert_eq!(s.base(&a, Selector::Cluster), Some((m, 21)));
        s.ensure(&c, Selector::Local, 1);
        assert_eq!(s.base(&c, Selector::Local), Some((m, 1)));
        s.release(&c, Selector::Local);
        assert_eq!(s.base(&c, Selector::Local), None);
    }
}
