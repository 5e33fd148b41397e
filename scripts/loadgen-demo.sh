#!/usr/bin/env bash
# Loopback throughput of the connector: builds both binaries in release, starts
# `m2m-connector run` on a temporary config (children alice and bob in one asset, a journal in a
# temporary directory), runs `m2m-loadgen --role both` at each window for a few seconds, prints
# one JSON line per window, and stops the connector (on any exit). Everything on 127.0.0.1.
#
#   scripts/loadgen-demo.sh                      # W = 1, 16, 256; 5 s each
#   WINDOWS="16 256" RUN_SECONDS=3 scripts/loadgen-demo.sh
#   LOADGEN_THREADS=2 scripts/loadgen-demo.sh    # a 2-worker load generator
#
# Bounded: each run stops issuing after RUN_SECONDS (at most 60) and is killed if it has not
# exited RUN_SECONDS + 40 s later; the connector gets 20 s to become ready and 10 s to stop.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WINDOWS="${WINDOWS:-1 16 256}"
RUN_SECONDS="${RUN_SECONDS:-5}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
if ! [[ "$RUN_SECONDS" =~ ^[0-9]+$ ]] || ((RUN_SECONDS < 1 || RUN_SECONDS > 60)); then
  echo "RUN_SECONDS must be 1..60" >&2
  exit 2
fi

echo "== building m2m-connector and m2m-loadgen (release)" >&2
cargo build --release --quiet --bin m2m-connector --bin m2m-loadgen
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
connector="$target_dir/release/m2m-connector"
loadgen="$target_dir/release/m2m-loadgen"

work="$(mktemp -d -t m2m-loadgen-demo.XXXXXX)"
connector_pid=""
cleanup() {
  if [[ -n "$connector_pid" ]] && kill -0 "$connector_pid" 2>/dev/null; then
    kill -TERM "$connector_pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$connector_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$connector_pid" 2>/dev/null || true
    wait "$connector_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
btp_port="$(free_port)"
health_port="$(free_port)"
while [[ "$health_port" == "$btp_port" ]]; do health_port="$(free_port)"; done

cat >"$work/config.toml" <<EOF
[node]
id = "loadgen-demo"
ilp_address = "test.m2m"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = $btp_port
health_port = $health_port

[journal]
dir = "$work/journal"

[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
credit_limit = 1000000000000000

[[peers]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "bob-token"
credit_limit = 0
EOF

echo "== starting m2m-connector on 127.0.0.1:$btp_port (health $health_port)" >&2
# The environment overrides the file: pin what matters so an inherited variable can't change it.
(cd "$work" && exec env BTP_PORT="$btp_port" HEALTH_PORT="$health_port" JOURNAL_DIR="$work/journal" \
  LOG_LEVEL=warn "$connector" run --config "$work/config.toml") >"$work/connector.log" 2>&1 &
connector_pid=$!

ready=""
for _ in $(seq 200); do
  if curl -fsS --max-time 1 "http://127.0.0.1:$health_port/health/ready" >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "$connector_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$ready" ]]; then
  echo "the connector did not become ready; its log:" >&2
  cat "$work/connector.log" >&2
  exit 1
fi

status=0
for window in $WINDOWS; do
  echo "== m2m-loadgen --role both --window $window --seconds $RUN_SECONDS --threads $LOADGEN_THREADS" >&2
  timeout --kill-after=5 $((RUN_SECONDS + 40)) "$loadgen" --role both --url "ws://127.0.0.1:$btp_port" \
    --window "$window" --seconds "$RUN_SECONDS" --expiry-ms 10000 --threads "$LOADGEN_THREADS" || status=$?
done

if ! kill -0 "$connector_pid" 2>/dev/null; then
  echo "the connector exited during the runs; its log:" >&2
  cat "$work/connector.log" >&2
  exit 1
fi
if [[ "$status" != 0 ]]; then
  echo "a load generator run failed (exit $status); connector log (last 20 lines):" >&2
  tail -n 20 "$work/connector.log" >&2
fi
exit "$status"
