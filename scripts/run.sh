#!/usr/bin/env bash
# make run: sets up the machine, starts the provider sandbox and every worker, publishes the
# bundled sample events (valid, invalid and unroutable) and shows what happened.
#   RUN_ONCE=1  exit once the samples have drained (0 if everything was accounted for)
#   otherwise   keep running until Ctrl-C, then stop everything this script started
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

scripts/setup.sh
say "Building"
cargo build --workspace --bins --quiet

run_dir=.run
mkdir -p "$run_dir/logs"
SANDBOX_ADDR=${SANDBOX_ADDR:-127.0.0.1:8080}
SANDBOX_METRICS_ADDR=${SANDBOX_METRICS_ADDR:-127.0.0.1:9470}
CONTACT_SYNC_METRICS_ADDR=${CONTACT_SYNC_METRICS_ADDR:-127.0.0.1:9464}
LOYALTY_EVENTS_METRICS_ADDR=${LOYALTY_EVENTS_METRICS_ADDR:-127.0.0.1:9465}
VOUCHER_EVENTS_METRICS_ADDR=${VOUCHER_EVENTS_METRICS_ADDR:-127.0.0.1:9466}
RECOMMENDATIONS_METRICS_ADDR=${RECOMMENDATIONS_METRICS_ADDR:-127.0.0.1:9467}
INBOUND_METRICS_ADDR=${INBOUND_METRICS_ADDR:-127.0.0.1:9468}
INBOUND_ADDR=${INBOUND_ADDR:-127.0.0.1:8081}
# Demo-only webhook secrets (the sandbox signs its webhooks with the same ones).
demo_ecomail_token=demo-ecomail-webhook-token
demo_voucherify_secret=demo-voucherify-webhook-secret
ECOMAIL_LIST_ID=${ECOMAIL_LIST_ID:-7}
sandbox_url="http://$SANDBOX_ADDR"
bin=target/debug

pids=()
stop_all() {
  local code=$?
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    say "Stopping ${#pids[@]} processes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  exit "$code"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start() { # name, then env assignments and the command
  local name=$1; shift
  env "$@" >"$run_dir/logs/$name.log" 2>&1 &
  pids+=($!)
}

wait_ready() { # name url
  for _ in $(seq 1 100); do
    curl -fsS "$2" >/dev/null 2>&1 && return 0
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$1 did not become ready at $2; its log:" >&2
  tail -n 20 "$run_dir/logs/$1.log" >&2
  return 1
}

# A Voucherify sandbox project allows 100 calls an hour; the demo uses a plan-sized quota so its
# few customer upserts do not wait 36 s each (set both to 100/h to watch messages park).
start switchyard-sandbox SANDBOX_ADDR="$SANDBOX_ADDR" METRICS_ADDR="$SANDBOX_METRICS_ADDR" LOG_FORMAT=json \
  SANDBOX_VOUCHERIFY_RATE="${SANDBOX_VOUCHERIFY_RATE:-600/min}" \
  "$bin/switchyard-sandbox"
wait_ready switchyard-sandbox "http://$SANDBOX_METRICS_ADDR/readyz"

# Every worker points at the sandbox with its default credentials.
ecomail=(ECOMAIL_BASE_URL="$sandbox_url/ecomail" ECOMAIL_API_KEY=sandbox-ecomail-key ECOMAIL_LIST_ID="$ECOMAIL_LIST_ID")
spotler=(SPOTLER_BASE_URL="$sandbox_url/spotler/integrationservice-1.1.0"
  SPOTLER_CONSUMER_KEY=sandbox-spotler-key SPOTLER_CONSUMER_SECRET=sandbox-spotler-secret)
voucherify=(VOUCHERIFY_BASE_URL="$sandbox_url/voucherify" VOUCHERIFY_RATE="${VOUCHERIFY_RATE:-600/min}"
  VOUCHERIFY_APP_ID=sandbox-voucherify-app VOUCHERIFY_APP_TOKEN=sandbox-voucherify-token)
start contact-sync METRICS_ADDR="$CONTACT_SYNC_METRICS_ADDR" LOG_FORMAT=json "${ecomail[@]}" "${spotler[@]}" \
  "${voucherify[@]}" CONTACT_SYNC_DESTINATIONS=spotler,ecomail,salesmanago,voucherify \
  SALESMANAGO_BASE_URL="$sandbox_url/salesmanago" SALESMANAGO_CLIENT_ID=sandbox-sm-client \
  SALESMANAGO_API_SECRET=sandbox-sm-secret SALESMANAGO_OWNER=owner@example.com \
  "$bin/contact-sync"
wait_ready contact-sync "http://$CONTACT_SYNC_METRICS_ADDR/readyz"

start loyalty-events METRICS_ADDR="$LOYALTY_EVENTS_METRICS_ADDR" LOG_FORMAT=json "${ecomail[@]}" \
  "$bin/loyalty-events"
wait_ready loyalty-events "http://$LOYALTY_EVENTS_METRICS_ADDR/readyz"

start voucher-events METRICS_ADDR="$VOUCHER_EVENTS_METRICS_ADDR" LOG_FORMAT=json "${voucherify[@]}" \
  VOUCHERIFY_INTEGRATION_BASE_URL="$sandbox_url/voucherify-integration" \
  VOUCHERIFY_INTEGRATION_APP_ID=sandbox-vf-integration-app VOUCHERIFY_INTEGRATION_SECRET_KEY=sandbox-vf-integration-secret \
  BLOOMREACH_BASE_URL="$sandbox_url/bloomreach" BLOOMREACH_PROJECT_TOKEN=sandbox-project \
  BLOOMREACH_API_KEY_ID=sandbox-bloomreach-key BLOOMREACH_API_SECRET=sandbox-bloomreach-secret \
  "$bin/voucher-events"
wait_ready voucher-events "http://$VOUCHER_EVENTS_METRICS_ADDR/readyz"

start recommendations METRICS_ADDR="$RECOMMENDATIONS_METRICS_ADDR" LOG_FORMAT=json \
  FROOMLE_BASE_URL="$sandbox_url/froomle" \
  FROOMLE_CLIENT_ID=sandbox-froomle-client FROOMLE_CLIENT_SECRET=sandbox-froomle-secret \
  "$bin/recommendations"
wait_ready recommendations "http://$RECOMMENDATIONS_METRICS_ADDR/readyz"

start inbound METRICS_ADDR="$INBOUND_METRICS_ADDR" INBOUND_ADDR="$INBOUND_ADDR" LOG_FORMAT=json "${spotler[@]}" \
  INBOUND_ECOMAIL_TOKEN="$demo_ecomail_token" INBOUND_VOUCHERIFY_SECRET="$demo_voucherify_secret" \
  INBOUND_SPOTLER_POLL_INTERVAL=30s INBOUND_STATE_DIR="$run_dir/state/inbound" \
  "$bin/inbound"
wait_ready inbound "http://$INBOUND_METRICS_ADDR/readyz"

echo "switchyard-sandbox metrics http://$SANDBOX_METRICS_ADDR/metrics"
echo "contact-sync metrics http://$CONTACT_SYNC_METRICS_ADDR/metrics"
echo "loyalty-events metrics http://$LOYALTY_EVENTS_METRICS_ADDR/metrics"
echo "voucher-events metrics http://$VOUCHER_EVENTS_METRICS_ADDR/metrics"
echo "recommendations metrics http://$RECOMMENDATIONS_METRICS_ADDR/metrics"
echo "inbound metrics http://$INBOUND_METRICS_ADDR/metrics"
say "Logs are in $run_dir/logs/"

# One transient failure and one rate limit, so the summary shows a retry and a pause.
curl -fsS -X PUT "$sandbox_url/_sandbox/faults/spotler" -H 'content-type: application/json' \
  -d '{"force":{"status":503,"count":1}}' >/dev/null
curl -fsS -X PUT "$sandbox_url/_sandbox/faults/ecomail" -H 'content-type: application/json' \
  -d '{"force":{"status":429,"count":1,"retry_after_secs":1}}' >/dev/null

say "Publishing the samples"
demo_status=0
"$bin/switchyard" demo --samples samples --sandbox "$sandbox_url" \
  --metrics "http://$CONTACT_SYNC_METRICS_ADDR/metrics" --metrics "http://$LOYALTY_EVENTS_METRICS_ADDR/metrics" \
  --metrics "http://$VOUCHER_EVENTS_METRICS_ADDR/metrics" --metrics "http://$RECOMMENDATIONS_METRICS_ADDR/metrics" \
  || demo_status=$?

say "Sending a vendor webhook through inbound (the sandbox plays Ecomail)"
curl -fsS -X POST "$sandbox_url/_sandbox/send/ecomail-webhook" -H 'content-type: application/json' \
  -d "{\"url\":\"http://$INBOUND_ADDR/webhooks/ecomail/$demo_ecomail_token\",\"email\":\"jana.novakova@example.com\",\"status\":\"SUBSCRIBED\",\"list_id\":$ECOMAIL_LIST_ID}" \
  && echo || demo_status=1

for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    echo "a started process exited early; see $run_dir/logs/" >&2
    demo_status=1
  fi
done

if [ "${RUN_ONCE:-0}" = 1 ]; then
  exit "$demo_status"
fi
say "Everything is running. The sandbox: $sandbox_url/_sandbox/calls  —  press Ctrl-C to stop."
wait
