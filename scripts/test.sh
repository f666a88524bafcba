#!/usr/bin/env bash
# Runs every test: unit, golden, API-server integration and (as root) end-to-end tests in network namespaces.
# End-to-end tests need root; with CI=true they fail instead of skipping when they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace --locked --no-fail-fast "$@"
