#!/usr/bin/env bash
# Side by side with the JavaScript reference connector (BENCHMARKS.md, "Side by side with
# ilp-connector"): the same m2m-loadgen load, sender -> connector -> fulfiller, against
#
#   ours    m2m-connector run (release), node test.m2m, children alice and bob (USD, scale 6),
#           alice's credit limit 10^15, durable journal in a temporary directory;
#   theirs  ilp-connector (version pinned in bench/side-by-side/package-lock.json), node test.js,
#           children alice and bob on ilp-plugin-btp server listeners (bench/side-by-side/launch.js
#           explains its configuration: rate limit raised, balances huge, one-to-one rates).
#
# Each connector runs alone (ours first, stopped, then theirs), for every window in WINDOWS: one
# `m2m-loadgen --role fulfiller` process connected as bob, one `--role sender` process as alice
# (--expect-all-fulfilled), RUN_SECONDS each, same settings for both connectors. Before the
# measured runs each connector gets an unrecorded warm-up run (WARMUP_SECONDS at W=16), so
# neither is measured cold (Node's JIT, our allocator). Prints the loadgen JSON lines (sender and
# fulfiller) of every run, `cat /proc/loadavg` before it, then a table and the ratios ours/theirs.
#
#   scripts/side-by-side.sh                          # W = 1, 16, 256; 5 s each
#   WINDOWS="16 256" RUN_SECONDS=3 scripts/side-by-side.sh
#   LOADGEN_THREADS=2 WARMUP_SECONDS=0 scripts/side-by-side.sh
#   OURS_DURABLE=false scripts/side-by-side.sh       # ours without the per-batch flush, to see
#                                                    # what durability costs (ilp-connector keeps
#                                                    # its balances in memory only)
#
# Needs: cargo (builds both binaries in release), node >= 20 and npm (runs `npm ci` in
# bench/side-by-side when node_modules is missing or older than the lock file), python3, curl.
# Everything listens on 127.0.0.1 only, on free ports. Bounded: each sender stops issuing after
# RUN_SECONDS (at most 60) and is killed RUN_SECONDS + 40 s later; fulfillers are stopped after
# their sender (and killed at RUN_SECONDS + 70 s); each connector gets 30 s to become ready and
# 10 s to stop; the JS launcher also exits by itself after 30 minutes. All processes are stopped
# on any exit. Exit status: 0 if every run had every packet fulfilled, else non-zero.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

WINDOWS="${WINDOWS:-1 16 256}"
RUN_SECONDS="${RUN_SECONDS:-5}"
WARMUP_SECONDS="${WARMUP_SECONDS:-2}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
OURS_DURABLE="${OURS_DURABLE:-true}"
EXPIRY_MS=10000
if [[ "$OURS_DURABLE" != true && "$OURS_DURABLE" != false ]]; then
  echo "OURS_DURABLE must be true or false" >&2
  exit 2
fi
if ! [[ "$RUN_SECONDS" =~ ^[0-9]+$ ]] || ((RUN_SECONDS < 1 || RUN_SECONDS > 60)); then
  echo "RUN_SECONDS must be 1..60" >&2
  exit 2
fi
if ! [[ "$WARMUP_SECONDS" =~ ^[0-9]+$ ]] || ((WARMUP_SECONDS > 60)); then
  echo "WARMUP_SECONDS must be 0..60" >&2
  exit 2
fi
if ! [[ "$LOADGEN_THREADS" =~ ^[0-9]+$ ]] || ((LOADGEN_THREADS < 1 || LOADGEN_THREADS > 64)); then
  echo "LOADGEN_THREADS must be 1..64" >&2
  exit 2
fi
for window in $WINDOWS; do
  if ! [[ "$window" =~ ^[0-9]+$ ]] || ((window < 1 || window > 65536)); then
    echo "WINDOWS: each window must be 1..65536 (got '$window')" >&2
    exit 2
  fi
done
for tool in cargo node npm python3 curl timeout; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "side-by-side: $tool is required" >&2
    exit 1
  fi
done

# --- JavaScript side: pinned install (idempotent, like tests/interop/install.sh) ---------------
js_dir="$repo/bench/side-by-side"
stamp="$js_dir/node_modules/.package-lock.json" # written by npm on every install
if [[ -d "$js_dir/node_modules" && -f "$stamp" && ! "$js_dir/package-lock.json" -nt "$stamp" ]]; then
  echo "== bench/side-by-side: node_modules up to date" >&2
else
  echo "== bench/side-by-side: npm ci (node $(node --version), npm $(npm --version))" >&2
  (cd "$js_dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) >&2
fi
js_version="$(node -p 'require(process.argv[1]).version' "$js_dir/node_modules/ilp-connector/package.json")"

# --- our side: release build ------------------------------------------------------------------
echo "== building m2m-connector and m2m-loadgen (release)" >&2
cargo build --release --quiet --bin m2m-connector --bin m2m-loadgen
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
connector="$target_dir/release/m2m-connector"
loadgen="$target_dir/release/m2m-loadgen"

work="$(mktemp -d -t m2m-side-by-side.XXXXXX)"
server_pid=""   # the connector under test (ours or theirs)
fulfiller_pid=""
cleanup() {
  stop_pid "$fulfiller_pid" 5
  stop_pid "$server_pid" 10
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ports=()
while ((${#ports[@]} < 4)); do
  port="$(free_port)"
  [[ " ${ports[*]} " == *" $port "* ]] || ports+=("$port")
done
btp_port="${ports[0]}" health_port="${ports[1]}" alice_port="${ports[2]}" bob_port="${ports[3]}"

echo "== machine: nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); node $(node --version); $(rustc --version)" >&2

results="$work/results.jsonl" # one line per run: {connector, window, loadavg, sender, fulfiller}
: >"$results"
status=0

# One measured (or warm-up) run: fulfiller as bob, then the sender as alice.
#   run_load LABEL WINDOW SECONDS SENDER_URL FULFILLER_URL DESTINATION RECORD(0|1)
run_load() {
  local label="$1" window="$2" seconds="$3" sender_url="$4" fulfiller_url="$5" destination="$6" record="$7"
  local loadavg sender_rc=0
  loadavg="$(cat /proc/loadavg)"
  if [[ "$record" == 1 ]]; then
    echo "== $label W=$window, ${seconds}s; loadavg before: $loadavg"
  else
    echo "== $label warm-up W=$window, ${seconds}s (not recorded); loadavg before: $loadavg" >&2
  fi
  timeout --kill-after=5 $((seconds + 70)) "$loadgen" --role fulfiller --url "$fulfiller_url" \
    --username bob --destination "$destination" --seconds $((seconds + 60)) \
    --threads "$LOADGEN_THREADS" >"$work/fulfiller.json" 2>"$work/fulfiller.err" &
  fulfiller_pid=$!
  sleep 0.3 # the sender's probes cover a fulfiller that connects later (T01 until it does)
  timeout --kill-after=5 $((seconds + 40)) "$loadgen" --role sender --url "$sender_url" \
    --username alice --destination "$destination" --window "$window" --seconds "$seconds" \
    --expiry-ms "$EXPIRY_MS" --threads "$LOADGEN_THREADS" --expect-all-fulfilled \
    >"$work/sender.json" 2>"$work/sender.err" || sender_rc=$?
  stop_pid "$fulfiller_pid" 5 # SIGTERM: the fulfiller prints its line and exits
  fulfiller_pid=""
  if [[ "$sender_rc" != 0 ]]; then
    echo "side-by-side: $label W=$window: m2m-loadgen sender exited $sender_rc:" >&2
    cat "$work/sender.err" "$work/fulfiller.err" >&2
    status=1
  fi
  if [[ "$record" == 1 ]]; then
    cat "$work/sender.json" "$work/fulfiller.json"
    python3 - "$label" "$window" "$loadavg" "$work/sender.json" "$work/fulfiller.json" >>"$results" <<'EOF'
import json, sys
label, window, loadavg, sender_path, fulfiller_path = sys.argv[1:]
def last_json(path):
    lines = [line for line in open(path) if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None
print(json.dumps({"connector": label, "window": int(window), "loadavg": loadavg,
                  "sender": last_json(sender_path), "fulfiller": last_json(fulfiller_path)}))
EOF
  fi
}

# Runs the warm-up and every window against one connector.
run_all() {
  local label="$1" sender_url="$2" fulfiller_url="$3" destination="$4"
  if ((WARMUP_SECONDS > 0)); then
    run_load "$label" 16 "$WARMUP_SECONDS" "$sender_url" "$fulfiller_url" "$destination" 0
  fi
  for window in $WINDOWS; do
    run_load "$label" "$window" "$RUN_SECONDS" "$sender_url" "$fulfiller_url" "$destination" 1
  done
}

server_must_be_alive() {
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "side-by-side: the $1 connector exited during the runs; its log:" >&2
    tail -n 40 "$2" >&2
    exit 1
  fi
}

# --- ours ----------------------------------------------------------------------------------------
echo "== starting m2m-connector on 127.0.0.1:$btp_port (health $health_port), journal durable = $OURS_DURABLE" >&2
connector_pid=""
start_connector "$connector" side-by-side "$work/ours" "$OURS_DURABLE" "$btp_port" "$health_port" 30 || {
  server_pid="$connector_pid"
  exit 1
}
server_pid="$connector_pid"
run_all ours "ws://127.0.0.1:$btp_port" "ws://127.0.0.1:$btp_port" test.m2m.bob
server_must_be_alive ours "$work/ours/connector.log"
stop_pid "$server_pid" 10
server_pid=""

# --- theirs: ilp-connector -----------------------------------------------------------------------
mkdir -p "$work/js"
echo "== starting ilp-connector $js_version (alice 127.0.0.1:$alice_port, bob 127.0.0.1:$bob_port)" >&2
node "$js_dir/launch.js" --address test.js --alice-port "$alice_port" --bob-port "$bob_port" \
  --max-seconds 1800 >"$work/js/connector.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 300); do
  if grep -q '^side-by-side: ready' "$work/js/connector.log"; then
    ready=1
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$ready" ]]; then
  echo "side-by-side: ilp-connector did not become ready; its log:" >&2
  cat "$work/js/connector.log" >&2
  exit 1
fi
run_all ilp-connector "ws://127.0.0.1:$alice_port" "ws://127.0.0.1:$bob_port" test.js.bob
server_must_be_alive ilp-connector "$work/js/connector.log"
stop_pid "$server_pid" 10
server_pid=""

# --- table ---------------------------------------------------------------------------------------
python3 - "$results" "$js_version" "$OURS_DURABLE" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
js_version = sys.argv[2]
ours_name = "m2m-connector" if sys.argv[3] == "true" else "m2m-connector (durable = false)"
def cell(row, *keys):
    value = row["sender"]
    for key in keys:
        value = (value or {}).get(key)
    return value
print()
print(f"| connector | W | packets/s | p50 µs | p99 µs | sent | fulfilled | rejected | load average before |")
print("|---|---:|---:|---:|---:|---:|---:|---|---|")
for row in rows:
    name = ours_name if row["connector"] == "ours" else f"ilp-connector {js_version}"
    rejected = cell(row, "rejected") or {}
    rejected = " ".join(f"{code}×{count}" for code, count in rejected.items()) or "0"
    print(f"| {name} | {row['window']} | {cell(row, 'packets_per_second'):,.0f} | "
          f"{cell(row, 'latency_us', 'p50'):,} | {cell(row, 'latency_us', 'p99'):,} | "
          f"{cell(row, 'sent'):,} | {cell(row, 'fulfilled'):,} | {rejected} | "
          f"{' '.join(row['loadavg'].split()[:3])} |")
print()
print("| W | packets/s ours/theirs | p50 ours/theirs | p99 ours/theirs |")
print("|---:|---:|---:|---:|")
by = {(row["connector"], row["window"]): row for row in rows}
def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"
for window in dict.fromkeys(row["window"] for row in rows):
    ours, theirs = by.get(("ours", window)), by.get(("ilp-connector", window))
    if not ours or not theirs:
        continue
    print(f"| {window} | {ratio(cell(ours, 'packets_per_second'), cell(theirs, 'packets_per_second'))} | "
          f"{ratio(cell(ours, 'latency_us', 'p50'), cell(theirs, 'latency_us', 'p50'))} | "
          f"{ratio(cell(ours, 'latency_us', 'p99'), cell(theirs, 'latency_us', 'p99'))} |")
print()
print("packets/s ratio > 1: ours is faster; latency ratio < 1: ours answers sooner.")
EOF
exit "$status"
