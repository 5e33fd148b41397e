#!/usr/bin/env bash
# What a peer flooding made-up replies costs the others (BENCHMARKS.md, "Reply flood"): W=16
# throughput of `m2m-loadgen --role both` (alice pays bob) alone, and while carol, another
# authenticated child, sends Fulfills, Rejects and BTP Errors with random request ids as fast as
# the connector takes them (`m2m-loadgen --role flood-replies`). ROUNDS (default 4) rounds in
# ABBA order on fresh connectors; prints each run, the medians and the frames dropped.
#
#   bash scripts/reply-flood.sh
#   ROUNDS=6 RUN_SECONDS=10 WINDOW=16 bash scripts/reply-flood.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS="${ROUNDS:-4}"
RUN_SECONDS="${RUN_SECONDS:-8}"
WINDOW="${WINDOW:-16}"
cargo build --release --quiet --bin m2m-connector --bin m2m-loadgen
connector="${CONNECTOR:-$PWD/target/release/m2m-connector}"  # CONNECTOR: another build to compare
loadgen="$PWD/target/release/m2m-loadgen"
work="$(mktemp -d -t m2m-reply-flood.XXXXXX)"
connector_pid=""
flood_pid=""
cleanup() {
  [[ -n "$flood_pid" ]] && kill "$flood_pid" 2>/dev/null || true
  stop_pid "$connector_pid" 10
  rm -rf "$work"
}
trap cleanup EXIT
export EXTRA_CHILDREN=carol

run() { # run MODE ROUND: prints "MODE round N: P packets/s ..."
  local mode="$1" round="$2" dir="$work/$1-$2"
  two_free_ports
  start_connector "$connector" flood "$dir" true "$btp_port" "$health_port" 20 || exit 1
  if [[ "$mode" == flood ]]; then
    "$loadgen" --role flood-replies --username carol --url "ws://127.0.0.1:$btp_port" --seconds $((RUN_SECONDS + 3)) \
      >"$dir/flood.json" 2>"$dir/flood.err" &
    flood_pid=$!
    sleep 1
  fi
  local line dropped
  line="$("$loadgen" --role both --url "ws://127.0.0.1:$btp_port" --window "$WINDOW" --seconds "$RUN_SECONDS" --expiry-ms 10000)"
  dropped="$(curl -fsS "http://127.0.0.1:$health_port/metrics" | awk '/^btp_frames_dropped_total\{reason="unmatched_reply"\}/ {print $2}')"
  if [[ -n "$flood_pid" ]]; then
    wait "$flood_pid" || { echo "the flood failed:" >&2; cat "$dir/flood.err" >&2; exit 1; }
    flood_pid=""
  fi
  stop_pid "$connector_pid" 10
  connector_pid=""
  python3 - "$mode" "$round" "$line" "${dropped:-0}" "$dir/flood.json" <<'PY'
import json, os, sys
mode, round_, line, dropped, flood = sys.argv[1:]
report = json.loads(line)
flooded = json.load(open(flood))["frames"] if os.path.exists(flood) else 0
missing = report["sent"] - report["fulfilled"]
print(f"{mode:5} round {round_}: {report['packets_per_second']:9.0f} packets/s, p99 {report['latency_us']['p99']} µs, "
      f"{missing} not fulfilled, flood frames sent {flooded}, dropped as unmatched {float(dropped):.0f}")
PY
}
echo "== W=$WINDOW, $RUN_SECONDS s per run, $ROUNDS rounds: alice→bob alone vs beside carol's reply flood"
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order=(quiet flood); else order=(flood quiet); fi
  for mode in "${order[@]}"; do run "$mode" "$round" | tee -a "$work/results"; done
done
python3 - "$work/results" <<'PY'
import re, statistics, sys
runs = {"quiet": [], "flood": []}
for line in open(sys.argv[1]):
    runs[line.split()[0]].append(float(re.search(r"([0-9.]+) packets/s", line).group(1)))
quiet, flood = statistics.median(runs["quiet"]), statistics.median(runs["flood"])
print(f"median: alone {quiet:.0f} packets/s, beside the flood {flood:.0f} packets/s: flood/alone = {flood / quiet:.3f}")
PY
