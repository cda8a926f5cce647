#!/usr/bin/env bash
# make chaos: the fault matrix of ../shared/RELIABILITY.md section 6 (report: docs/reliability.md).
#
# Runs, one test at a time:
#   1. the message fuzzers (proptest) with more cases, bounded in time;
#   2. the fast rows (tests/tests/chaos_fast.rs; they also run in `make test`) and row 5
#      (lifecycle.rs: the broker closing the worker's connections);
#   3. the broker-altering and slow rows (tests/tests/chaos/, feature `chaos`), which start
#      PRIVATE RabbitMQ nodes on ports of their own and never change the shared broker.
# Ends with `N passed, N failed` counted from the test results. Needs root (private nodes run
# from /usr/lib/rabbitmq/bin, `kill -STOP` of a node) and socat.
#
# Variables: PROPTEST_CASES (default 10000), CHAOS_FILTER (a test-name filter for the chaos
# binary, e.g. row_08), CHAOS_LOG_DIR (default target/chaos).
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "make chaos needs root: it starts private RabbitMQ nodes and freezes them with kill -STOP" >&2
  exit 64
fi
for tool in socat ss timeout /usr/lib/rabbitmq/bin/rabbitmq-server /usr/lib/rabbitmq/bin/rabbitmqctl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "make chaos needs $tool" >&2; exit 64; }
done

scripts/setup.sh

export SWITCHYARD_CHAOS=1
SWITCHYARD_CHAOS_DIR="$(mktemp -d /tmp/switchyard-chaos.XXXXXX)"
export SWITCHYARD_CHAOS_DIR
log_dir="${CHAOS_LOG_DIR:-target/chaos}"
mkdir -p "$log_dir"
rm -f "$log_dir"/*.log

# Whatever happens, no private node outlives the run: the tests stop their own nodes (Drop
# guards); this catches a test binary that was killed. Only pids from our own pid files.
cleanup() {
  local pidfile pid
  for pidfile in "$SWITCHYARD_CHAOS_DIR"/*/*/mnesia/*.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    kill -CONT "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  done
  rm -rf "$SWITCHYARD_CHAOS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Building the worker binary and the test binaries"
cargo build -p contact-sync --bins || exit 1
cargo test -p integration-tests --features chaos --tests --no-run || exit 1
cargo test -p messages --test fuzz --no-run || exit 1

failed_runs=0
# run <name> <timeout seconds> <command...>: output to the terminal and to $log_dir/<name>.log.
run() {
  local name="$1" limit="$2"
  shift 2
  say "$name"
  timeout --signal=TERM --kill-after=30 "$limit" "$@" 2>&1 | tee "$log_dir/$name.log"
  # A binary that crashed, timed out or did not build leaves no summary line.
  if ! grep -q '^test result: ' "$log_dir/$name.log"; then
    echo "$name: no test summary (crashed, timed out or failed to build)" | tee -a "$log_dir/$name.log"
    failed_runs=$((failed_runs + 1))
  fi
}

run fuzz 300 env PROPTEST_CASES="${PROPTEST_CASES:-10000}" \
  cargo test -p messages --test fuzz -- --test-threads=1
run fast 600 cargo test -p integration-tests --features chaos --test chaos_fast -- --test-threads=1 --show-output
# Row 5 is lifecycle.rs's connection-close test; row 4 is chaos_fast's row_04 (lifecycle.rs's
# SIGTERM test checks exit 0 and nothing lost, and runs in `make test`).
run lifecycle 300 cargo test -p integration-tests --features chaos --test lifecycle -- --test-threads=1 \
  broker_closing_the_connections_is_survived_with_nothing_lost
run chaos 1200 cargo test -p integration-tests --features chaos --test chaos -- --test-threads=1 --show-output \
  ${CHAOS_FILTER:+"$CHAOS_FILTER"}

echo
say "Fault matrix"
grep -hE '^row ' "$log_dir"/*.log | sort -V || true
echo
echo "Rows not runnable here (see docs/reliability.md):"
echo "  row 24 (single-active-consumer failover): Switchyard does not use SAC; ordering is per-contact locking"
echo "         plus order-independent rules (ARCHITECTURE.md), and replicas consume concurrently by design"
echo "  rows 16/17 on RabbitMQ 4.x (default delivery limit 20, nack no longer counted): only 3.10.8 is installed"
echo

# Counted from libtest's own summary lines (`test result: ok. 12 passed; 0 failed; ...`), which
# stay whole even when a child process writes into a test's `test ... ok` line.
count() { grep -hE '^test result: ' "$log_dir"/*.log | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
passed=$(count passed)
failed=$(( $(count failed) + failed_runs ))
awk 'FNR == 1 {listing = 0} /^failures:$/ {listing = 1; next} listing && /^    [A-Za-z0-9_:]+$/ {print "failed:" $0}' "$log_dir"/*.log | sort -u
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
