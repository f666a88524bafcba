//! Link, address and route helpers, all run as `ip -n <ns> ...` so the caller's namespace is never touched.

use super::{Netns, Result};

/// Creates a veth pair inside `a` (named `a_if`) whose peer `b_if` is moved into `b`; both ends are set up.
/// Created inside `a`, so the names never clash with links of the caller's namespace.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// Adds `cidr` (e.g. `10.244.1.1/32`, `fd00::1/64`) to `ifname` in `ns`; IPv6 addresses skip DAD.
pub fn add_addr(ns: &Netns, ifname: &str, cidr: &str) -> Result<()> {
    if cidr.contains(':') {
        ns.ip(&["-6", "addr", "add", cidr, "dev", ifname, "nodad"])?;
    } else {
        ns.ip(&["addr", "add", cidr, "dev", ifname])?;
    }
    Ok(())
}

/// Adds a route `dst` (a prefix, or `default`) via `gateway` (or on-link when `None`) out of `ifname`.
pub fn add_route(ns: &Netns, dst: &str, gateway: Option<&str>, ifname: Option<&str>) -> Result<()> {
    let v6 = dst.contains(':') || gateway.is_some_and(|g| g.contains(':'));
    let mut args = vec![if v6 { "-6" } else { "-4" }, "route", "add", dst];
    if let Some(gw) = gateway {
        args.extend(["via", gw]);
    }
    if let Some(dev) = ifname {
        args.extend(["dev", dev]);
    }
    ns.ip(&args)?;
    Ok(())
}

/// Creates an up bridge `name` in `ns` (multicast snooping off, so IPv6 neighbour discovery always floods).
pub fn bridge(ns: &Netns, name: &str) -> Result<()> {
    ns.ip(&["link", "add", name, "type", "bridge", "mcast_snooping", "0"])?;
    ns.ip(&["link", "set", name, "up"])?;
    Ok(())
}

/// Enslaves `ifname` to `bridge` in `ns`.
pub fn attach_to_bridge(ns: &Netns, ifname: &str, bridge: &str) -> Result<()> {
    ns.ip(&["link", "set", ifname, "master", bridge])?;
    Ok(())
}

/// Sets a link up.
pub fn link_up(ns: &Netns, ifname: &str) -> Result<()> {
    ns.ip(&["link", "set", ifname, "up"])?;
    Ok(())
}
