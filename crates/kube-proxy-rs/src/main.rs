//! The `kube-proxy-rs` binary: parse configuration, wire sources, runner, dataplane and servers.
fn main() {}
