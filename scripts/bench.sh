#!/usr/bin/env bash
# make bench: throughput, latency, memory and quota precision of the workers, each worker figure
# a ratio to a floor measured in the same run (README "Benchmark"). Writes target/bench/summary.json,
# target/bench/throughput.svg and a table on stdout; worker logs go to target/bench/logs/.
#   BENCH_QUICK=1             the one-minute version (smaller backlogs)
#   BENCH_ONLY=floor,worker   only some scenarios (floor,worker,workers,concurrency,latency,memory,quota)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The workers run as their release binaries, like in production.
cargo build --release --bins -p switchyard-bench -p contact-sync -p voucher-events -p loyalty-events -p recommendations
exec target/release/switchyard-bench
