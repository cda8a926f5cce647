#!/usr/bin/env bash
# Installs (Debian, as root or with sudo) and starts what Switchyard needs on this machine:
# RabbitMQ, Redis and curl; for the operations tests (tests/tests/ops.rs) also Prometheus
# (`promtool`, `prometheus`), PyYAML and kubernetes-validate. Safe to run again: it only does
# what is missing.
set -euo pipefail

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "Rust is not installed. Install it with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

missing=()
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  say "Installing ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Only the binaries are needed (tests start their own server on a free port): a Prometheus
  # service the package started under systemd is stopped again.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# Python modules of the operations tests, for whichever python3 is first on PATH (Debian's
# python3-yaml only serves Debian's own python3).
py_missing=()
python3 -c 'import yaml' >/dev/null 2>&1 || py_missing+=(pyyaml)
python3 -c 'import kubernetes_validate' >/dev/null 2>&1 || py_missing+=(kubernetes-validate)
if [ ${#py_missing[@]} -gt 0 ]; then
  say "Installing ${py_missing[*]} (pip)"
  python3 -m pip install --quiet --user "${py_missing[@]}" 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages "${py_missing[@]}"
fi

broker_up() { rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; }
if ! broker_up; then
  say "Starting RabbitMQ"
  # The Debian package may have started it through systemd already; -detached is for machines
  # without systemd (containers, CI).
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 90); do
    broker_up && break
    sleep 1
  done
  broker_up || { echo "RabbitMQ did not come up within 90 s; see /var/log/rabbitmq/" >&2; exit 1; }
fi

if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  say "Starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/switchyard.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
say "RabbitMQ and Redis are running"
