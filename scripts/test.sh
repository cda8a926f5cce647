#!/usr/bin/env bash
# make test: the whole suite (unit + integration against the local broker and the sandbox).
# Tests are parallel-safe: each uses its own SWITCHYARD_NAMESPACE and its own sandbox port.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Integration tests start the real binaries (SIGTERM drain), so build them first.
cargo build --workspace --bins
cargo test --workspace --all-targets --no-fail-fast
