#!/bin/sh
# Starts the binary that WORKER names (contact-sync, loyalty-events, ..., switchyard-sandbox,
# switchyard), passing the container's arguments on. `exec` makes it PID 1's only child so it
# receives SIGTERM directly and drains gracefully.
set -eu

if [ -z "${WORKER:-}" ]; then
  echo "docker-entrypoint: set WORKER to the binary to run; available:" >&2
  ls /usr/local/bin | grep -v -e '^docker-entrypoint.sh$' >&2
  exit 64
fi
case "$WORKER" in
  */* | .*)
    echo "docker-entrypoint: WORKER=\"$WORKER\" must be a binary name, not a path" >&2
    exit 64
    ;;
esac
binary="/usr/local/bin/$WORKER"
if [ ! -x "$binary" ] || [ "$WORKER" = docker-entrypoint.sh ]; then
  echo "docker-entrypoint: WORKER=\"$WORKER\" is not a Switchyard binary; available:" >&2
  ls /usr/local/bin | grep -v -e '^docker-entrypoint.sh$' >&2
  exit 64
fi
exec "$binary" "$@"
