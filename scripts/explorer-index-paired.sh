#!/usr/bin/env bash
# What the Explorer index's work costs the packet path, measured in one process (BENCHMARKS.md,
# "Explorer", eleventh session). One connector with the Explorer on and two WebSocket clients
# (e2e/ws-clients.mjs) carries W=256 from `m2m-loadgen --role both` for SECONDS_RUN (default 120).
# Built with the `explorer-bench` feature and M2M_BENCH_INDEX_SLOT_MS=SLOT_MS (default 1000), the
# index applies only the events of odd SLOT_MS slots of journal time and steps over the others,
# printing each slot's event count. Each odd slot's count against the geometric mean of its two
# neighbours is one paired ratio: the index working against the index taking its batches and
# doing nothing, under the same load, a slot apart. Prints their geometric mean with a
# 95% confidence interval. What this cannot see: anything constant over a run (the Explorer's
# threads, memory, the clients' processes), and costs that land later than a slot: with 200 ms
# slots the index's writes, which other threads (sled's, the kernel's) finish later, fall into
# both kinds of slot alike, so 200 ms measures less than 1 s does.
#
#   bash scripts/explorer-index-paired.sh
#   SLOT_MS=200 SECONDS_RUN=60 bash scripts/explorer-index-paired.sh
#   INDEX_DIR_BASE=/dev/shm bash scripts/explorer-index-paired.sh   # the index off the journal's disk
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SLOT_MS="${SLOT_MS:-1000}"
SECONDS_RUN="${SECONDS_RUN:-120}"
WINDOW="${WINDOW:-256}"
INDEX_DIR_BASE="${INDEX_DIR_BASE:-}"
[[ -d explorer/node_modules ]] || { echo "explorer-index-paired.sh: run 'bash scripts/explorer.sh install' first (the WebSocket clients need explorer/node_modules)" >&2; exit 1; }
# A binary of its own: the feature must never reach target/release/m2m-connector.
cargo build --release --quiet --features explorer-bench --bin m2m-connector --bin m2m-loadgen
work="$(mktemp -d -t m2m-index-paired.XXXXXX)"
cp target/release/m2m-connector "$work/m2m-connector-bench"
cargo build --release --quiet --bin m2m-connector # put the ordinary binary back
connector="$work/m2m-connector-bench"
loadgen="$PWD/target/release/m2m-loadgen"
connector_pid=""
clients_pid=""
index_dir="$work/index"
[[ -n "$INDEX_DIR_BASE" ]] && index_dir="$(mktemp -d "$INDEX_DIR_BASE/m2m-index.XXXXXX")"
cleanup() {
  exec 3>&- 2>/dev/null || true # the clients leave when their stdin closes
  [[ -n "$clients_pid" ]] && kill "$clients_pid" 2>/dev/null || true
  stop_pid "$connector_pid" 10
  rm -rf "$work"
  [[ -n "$INDEX_DIR_BASE" ]] && rm -rf "$index_dir"
  true
}
trap cleanup EXIT

two_free_ports
explorer_port="$(free_port)"
M2M_BENCH_INDEX_SLOT_MS="$SLOT_MS" EXPLORER_ENABLED=true EXPLORER_PORT="$explorer_port" EXPLORER_INDEX_DIR="$index_dir" \
  start_connector "$connector" paired "$work/node" true "$btp_port" "$health_port" 20
mkfifo "$work/clients.in"
(cd explorer && EXPLORER_URL="http://127.0.0.1:$explorer_port/" CLIENTS=2 SECONDS=$((SECONDS_RUN + 30)) \
  exec node --experimental-websocket e2e/ws-clients.mjs <"$work/clients.in") >"$work/clients.log" 2>&1 &
clients_pid=$!
exec 3>"$work/clients.in"
for _ in $(seq 300); do grep -q watching "$work/clients.log" 2>/dev/null && break; sleep 0.1; done
grep -q watching "$work/clients.log" || { cat "$work/clients.log"; exit 1; }
echo "== W=$WINDOW, $SECONDS_RUN s, index in ${INDEX_DIR_BASE:-the node directory}, the index working in odd $SLOT_MS ms slots only (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$loadgen" --role both --url "ws://127.0.0.1:$btp_port" --window "$WINDOW" --seconds "$SECONDS_RUN" --expiry-ms 10000 2>"$work/loadgen.err" |
  python3 -c 'import json, sys; print("load generator: %.0f packets/s" % json.load(sys.stdin)["packets_per_second"])'
python3 - "$work/node/connector.log" "$SLOT_MS" <<'PY'
import math, statistics, sys
counts = {}
for line in open(sys.argv[1]):
    if line.startswith("bench-slot "):
        _, slot, count = line.split()
        counts[int(slot)] = int(count)
slots = sorted(counts)[5:-5]  # the load's ramp up and down
logs = [math.log(counts[s] / math.sqrt(counts[s - 1] * counts[s + 1])) for s in slots if s % 2 and s - 1 in counts and s + 1 in counts]
if len(logs) < 10:
    sys.exit(f"only {len(logs)} slot pairs: is the connector built with explorer-bench, and did the load run?")
mean, sd, n = statistics.mean(logs), statistics.stdev(logs), len(logs)
t = 2.0 if n < 60 else 1.98
print(f"index working / index idle: geometric mean {math.exp(mean):.3f}, 95% CI {math.exp(mean - t * sd / math.sqrt(n)):.3f}-{math.exp(mean + t * sd / math.sqrt(n)):.3f} "
      f"({n} slots of {sys.argv[2]} ms, log sd {sd:.3f})")
PY
