#!/usr/bin/env bash
# Runs kube-proxy-rs once on the bundled examples/ manifests (no cluster needed) inside a throwaway network
# namespace, then prints the iptables rules it programmed there. The host's own rules are never touched.
# Needs root (network namespaces); builds the binary first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p kube-proxy-rs
bin="$PWD/target/debug/kube-proxy-rs"
ns="kprs-try-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin" --manifests examples --hostname-override node-1 --sync-once \
  --conntrack-max-per-core=0 "$@"
echo "=== what kube-proxy-rs programmed (iptables-save in namespace $ns) ==="
ip netns exec "$ns" iptables-save -t nat
ip netns exec "$ns" iptables-save -t filter
