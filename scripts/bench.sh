#!/usr/bin/env bash
# Builds kube-proxy-rs and kube-proxy-bench in release mode and runs the scale benchmark matrix:
# N = 100, 1,000, 10,000 Services × 10 endpoints, in every mode the binary supports (iptables with the nft and
# the legacy backend; nftables when `render --proxy-mode nftables` works). Needs root. Results go to
# target/bench/results.{json,md}, rewritten after every run.
#
# Environment overrides: BENCH_VARIANTS (e.g. iptables-nft,nftables), BENCH_SERVICES (e.g. 100,1000),
# BENCH_REPEATS (default 3), BENCH_LARGE_REPEATS (runs at N >= 10,000; default 1), BENCH_CHANGES (default 20).
# Extra arguments are passed to kube-proxy-bench (see `kube-proxy-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench.sh needs root (network namespaces, iptables, nft)" >&2
    exit 1
fi

cargo build --release -p kube-proxy-rs -p kube-proxy-bench
proxy=target/release/kube-proxy-rs

variants=${BENCH_VARIANTS:-}
if [ -z "$variants" ]; then
    variants=iptables-nft,iptables-legacy
    if "$proxy" render --proxy-mode nftables --manifests examples --hostname-override node-1 >/dev/null 2>&1; then
        variants=$variants,nftables
    fi
fi

exec target/release/kube-proxy-bench \
    --proxy-binary "$proxy" \
    --variants "$variants" \
    --services "${BENCH_SERVICES:-100,1000,10000}" \
    --endpoints 10 \
    --changes "${BENCH_CHANGES:-20}" \
    --repeats "${BENCH_REPEATS:-3}" \
    --large-repeats "${BENCH_LARGE_REPEATS:-3}" \
    --out-dir target/bench \
    "$@"
