//! The `kube-proxy-rs` binary: parse configuration, wire sources, runner, dataplane and servers.
mod node_addresses;

fn main() {}
