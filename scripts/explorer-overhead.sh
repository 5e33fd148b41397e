#!/usr/bin/env bash
# What the Explorer costs the packet path (BENCHMARKS.md, "Explorer"): W=256 throughput of
# `m2m-loadgen --role both` with the Explorer off, and with it on and BROWSERS (default 2)
# clients on its live stream, alternated ROUNDS times (default 3) on fresh connectors, so both
# see the same machine. Prints one line per run and the medians.
# CLIENTS=chromium (default): headless chromium dashboards, on the same 2 cores as the connector
# and the load generator (their CPU is printed). CLIENTS=ws: WebSocket clients that parse every
# frame without rendering, i.e. what browsers running elsewhere cost the node. BROWSERS=0: the
# Explorer on with nobody watching. CLIENTS_IDLE=1 runs the clients (and every process they
# start) at SCHED_IDLE: they get only the CPU the connector and the load generator leave, the
# nearest this machine comes to browsers on another one. Needs `bash scripts/explorer.sh install`.
# RATE=N paces the load generator at N packets/s (`--rate`; below what the machine carries) and
# compares CPU per packet instead of throughput: the connector's (and of it, the index thread's),
# the clients' and the load generator's, in µs a packet, which a noisy shared machine disturbs
# far less than a saturated throughput. INDEX_DIR_BASE=DIR puts each run's Explorer index under
# DIR (e.g. /dev/shm) instead of beside the journal: the index on another device than the journal.
# CLIENTS_TMPDIR=DIR gives the clients that TMPDIR (playwright makes each chromium's profile
# there): with /dev/shm the browsers' profile and cache writes stay off the journal's disk.
# CLIENTS=burn is the control: the Explorer stays off on both sides, and the "on" side gets a
# bystander process that burns BURN_PERCENT (default 12) of a core in 100 ms periods, about what
# two chromium dashboards take: what any neighbour of that size costs the packet path here.
# BURN_KIND=memory makes it copy 16 MiB buffers while busy (a neighbour that sweeps the caches
# and the memory bus, as a software-rendering browser does) instead of spinning in registers.
# CLIENTS=chromium-blank, the other control: the Explorer off on both sides, and BROWSERS headless
# chromium on about:blank on the "on" side (the browsers running, showing nothing).
# CLIENTS=thp, not about the Explorer: both sides off, and the "on" side's connector started with
# MIMALLOC_ALLOW_THP=1, i.e. with transparent huge pages as before the node turned them off
# (`process::disable_transparent_huge_pages`): on/off is then what huge pages do to W=256.
#
#   bash scripts/explorer-overhead.sh
#   CLIENTS=ws ROUNDS=8 RUN_SECONDS=10 BROWSERS=2 bash scripts/explorer-overhead.sh
#   RATE=100000 ROUNDS=4 bash scripts/explorer-overhead.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS="${ROUNDS:-3}"
RUN_SECONDS="${RUN_SECONDS:-10}"
BROWSERS="${BROWSERS:-2}"
CLIENTS="${CLIENTS:-chromium}"
CLIENTS_IDLE="${CLIENTS_IDLE:-0}"
WINDOW="${WINDOW:-256}"
RATE="${RATE:-}"
INDEX_DIR_BASE="${INDEX_DIR_BASE:-}"
CLIENTS_TMPDIR="${CLIENTS_TMPDIR:-${TMPDIR:-/tmp}}"
cargo build --release --quiet --bin m2m-connector --bin m2m-loadgen
connector="$PWD/target/release/m2m-connector"
loadgen="$PWD/target/release/m2m-loadgen"
work="$(mktemp -d -t m2m-explorer-overhead.XXXXXX)"
connector_pid=""
watch_pid=""
burner_pid=""
cleanup() {
  [[ -n "$watch_pid" ]] && kill "$watch_pid" 2>/dev/null || true
  stop_pid "$connector_pid" 10
  rm -rf "$work"
}
trap cleanup EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
browser_ticks() { # utime+stime of every chromium process (browser, renderers, GPU, utility) and of the clients' own process (node, or the burner)
  local total=0
  for pid in $(pgrep -f "/usr/lib/chromium/" || true) $watch_pid; do total=$((total + $(ticks "$pid"))); done
  echo "$total"
}
index_ticks() { # the Explorer index's thread (comm "projection-expl", truncated to 15 bytes)
  local total=0 task
  for task in /proc/"$1"/task/*; do
    [[ "$(cat "$task/comm" 2>/dev/null)" == projection-expl* ]] && total=$((total + $(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
thread_ticks() { # one line per thread of PID: its name, a tab, its utime+stime
  local task
  for task in /proc/"$1"/task/*; do
    printf '%s\t%s\n' "$(cat "$task/comm" 2>/dev/null)" "$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo 0)"
  done
}
run() { # run MODE ROUND: prints one line: packets/s, p99, CPU of the connector and the clients
  local mode="$1" round="$2" dir="$work/$1-$2"
  two_free_ports
  local explorer_port
  explorer_port="$(free_port)"
  local index_dir="$dir/explorer-index" # the default: beside the journal
  [[ -n "$INDEX_DIR_BASE" ]] && index_dir="$(mktemp -d "$INDEX_DIR_BASE/m2m-index.XXXXXX")"
  [[ "$CLIENTS" == thp ]] && { if [[ "$mode" == on ]]; then export MIMALLOC_ALLOW_THP=1; else unset MIMALLOC_ALLOW_THP; fi; }
  EXPLORER_ENABLED="$([[ "$mode" == off || "$CLIENTS" == burn || "$CLIENTS" == chromium-blank || "$CLIENTS" == thp ]] && echo false || echo true)" EXPLORER_PORT="$explorer_port" EXPLORER_INDEX_DIR="$index_dir" \
    start_connector "$connector" overhead "$dir" true "$btp_port" "$health_port" 20 || exit 1
  if [[ "$mode" == on && "$CLIENTS" == burn ]]; then
    python3 -c '
import sys, time
busy = float(sys.argv[1]) / 100 * 0.1
memory = sys.argv[2] == "memory"
source = bytearray(16 << 20)
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < busy:
        if memory:
            copy = bytes(source)
    time.sleep(0.1 - busy)
' "${BURN_PERCENT:-12}" "${BURN_KIND:-cpu}" &
    watch_pid=$!
    burner_pid=$watch_pid
  elif [[ "$mode" == on && "$BROWSERS" -gt 0 && "$CLIENTS" != thp ]]; then
    mkfifo "$dir/watch.in"
    local script=(e2e/watch.mjs)
    [[ "$CLIENTS" == ws ]] && script=(--experimental-websocket e2e/ws-clients.mjs)
    local idle=()
    [[ "$CLIENTS_IDLE" == 1 ]] && idle=(chrt --idle 0)
    local blank=""
    [[ "$CLIENTS" == chromium-blank ]] && blank=1
    (cd explorer && BLANK="$blank" TMPDIR="$CLIENTS_TMPDIR" EXPLORER_URL="http://127.0.0.1:$explorer_port/" BROWSERS="$BROWSERS" CLIENTS="$BROWSERS" \
      SECONDS=$((RUN_SECONDS + 60)) exec "${idle[@]}" node "${script[@]}" <"$dir/watch.in") >"$dir/watch.log" 2>&1 &
    watch_pid=$!
    exec 3>"$dir/watch.in"
    for _ in $(seq 300); do grep -q watching "$dir/watch.log" 2>/dev/null && break; sleep 0.1; done
    grep -q watching "$dir/watch.log" || { cat "$dir/watch.log"; exit 1; }
    sleep 2
  fi
  local before_c before_b before_i started line ended
  before_c="$(ticks "$connector_pid")"
  before_b="$(browser_ticks)"
  before_i="$(index_ticks "$connector_pid")"
  thread_ticks "$connector_pid" >"$dir/threads.before"
  local stat_before stat_after
  stat_before="$(head -1 /proc/stat)"
  local rate=()
  [[ -n "$RATE" ]] && rate=(--rate "$RATE")
  started="$(date +%s.%N)"
  # The load generator's own CPU (user and system seconds) from bash's `time`, on fd 4.
  line="$( { TIMEFORMAT='%U %S'; time "$loadgen" --role both --url "ws://127.0.0.1:$btp_port" --window "$WINDOW" \
    "${rate[@]}" --seconds "$RUN_SECONDS" --expiry-ms 10000 2>"$dir/loadgen.err"; } 2>"$dir/loadgen.time")"
  ended="$(date +%s.%N)"
  local after_c after_b after_i
  after_c="$(ticks "$connector_pid")"
  after_b="$(browser_ticks)"
  after_i="$(index_ticks "$connector_pid")"
  thread_ticks "$connector_pid" >"$dir/threads.after"
  stat_after="$(head -1 /proc/stat)"
  if [[ -n "$burner_pid" ]]; then
    kill "$burner_pid" 2>/dev/null || true
    wait "$burner_pid" 2>/dev/null || true
    burner_pid="" watch_pid=""
  elif [[ -n "$watch_pid" ]]; then
    exec 3>&-
    wait "$watch_pid" 2>/dev/null || true
    watch_pid=""
  fi
  # The journal's flushes (fdatasync with durable=true): the index's own writes and syncs share
  # the disk with them.
  local flushes metrics
  metrics="$(curl -sf "http://127.0.0.1:$health_port/metrics")"
  flushes="$(awk '/^journal_flush_seconds_(sum|count) /{printf "%s ", $2}' <<<"$metrics")"
  # Events the index read back from the journal's store because the writer's feed had dropped
  # batches for it (it fell behind by more than the feed holds): decoding them costs far more.
  local read_back
  read_back="$(awk '/^projection_read_back_events_total\{projection="explorer"\}/{print $2}' <<<"$metrics")"
  export READ_BACK="${read_back:-0}"
  stop_pid "$connector_pid" 10
  connector_pid=""
  [[ -n "$INDEX_DIR_BASE" ]] && rm -rf "$index_dir"
  python3 - "$mode" "$round" "$line" "$before_c" "$after_c" "$before_b" "$after_b" "$before_i" "$after_i" "$started" "$ended" \
    "$(tail -1 "$dir/loadgen.time")" "$flushes" "$dir" "$work/threads.jsonl" "$stat_before" "$stat_after" <<'PY'
import collections, json, os, re, sys
mode, round_, line, bc, ac, bb, ab, bi, ai, started, ended, loadgen_time, flushes, run_dir, threads_out, stat_before, stat_after = sys.argv[1:]
# The whole machine over the run, from /proc/stat's first line: idle (idle + iowait) and steal
# (time the hypervisor ran something else while a vCPU wanted to run), in % of one core.
cpu_before, cpu_after = ([int(value) for value in stat.split()[1:9]] for stat in (stat_before, stat_after))
delta = [after - before for before, after in zip(cpu_before, cpu_after)]
flush_sum, flush_count = (float(part) for part in flushes.split()) if len(flushes.split()) == 2 else (0.0, 1.0)
hz = os.sysconf("SC_CLK_TCK")
seconds = float(ended) - float(started)
report = json.loads(line)
packets = report["fulfilled"] + sum(report["rejected"].values())
connector, browsers, index = ((int(a) - int(b)) / hz for a, b in ((ac, bc), (ab, bb), (ai, bi)))
loadgen = sum(float(part) for part in loadgen_time.split())
us = lambda cpu: 1e6 * cpu / max(packets, 1)
print(f"{mode:4} round {round_}: {report['packets_per_second']:10.0f} packets/s, p99 {report['latency_us']['p99']} µs, "
      f"connector {100 * connector / seconds:5.1f}% CPU, browsers {100 * browsers / seconds:5.1f}% CPU; "
      f"µs/packet: connector {us(connector):.2f} (index {us(index):.2f}), clients {us(browsers):.2f}, loadgen {us(loadgen):.2f}; "
      f"journal flushes {flush_count / seconds:.0f}/s, mean {1e6 * flush_sum / max(flush_count, 1):.0f} µs; "
      f"machine idle {100 * (delta[3] + delta[4]) / hz / seconds:.0f}%, steal {100 * delta[7] / hz / seconds:.1f}%; "
      f"index read back {int(float(os.environ.get('READ_BACK', '0')))} events")
# The connector's CPU per packet by thread name (numbered threads summed: "m2m-worker" for all
# the runtime's workers), for the summary.
def by_name(path):
    groups = collections.Counter()
    for row in open(path):
        name, _, value = row.rstrip("\n").rpartition("\t")
        groups[re.sub(r"[-_ ]?[0-9]+$", "", name)] += int(value or 0)
    return groups
before, after = by_name(f"{run_dir}/threads.before"), by_name(f"{run_dir}/threads.after")
with open(threads_out, "a") as out:
    out.write(json.dumps({"mode": mode, "round": round_, "us": {name: us((after[name] - before.get(name, 0)) / hz) for name in after}}) + "\n")
PY
  # The run's journal and index (~1 GB at W=256): kept until the end, 60 rounds filled the disk.
  rm -rf "$dir"
}
echo "== W=$WINDOW$([[ -n $RATE ]] && echo " at $RATE packets/s"), clients' TMPDIR $CLIENTS_TMPDIR, index ${INDEX_DIR_BASE:-beside the journal}, $RUN_SECONDS s per run, $ROUNDS rounds, Explorer off vs on with $BROWSERS $CLIENTS clients$([[ $CLIENTS_IDLE == 1 ]] && echo " at SCHED_IDLE") (load $(cut -d' ' -f1-3 /proc/loadavg))"
# ABBA order (off, on, then on, off): a drift over the run (page cache, the disk, the VM's
# neighbours) then favours neither side.
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order=(off on); else order=(on off); fi
  for mode in "${order[@]}"; do run "$mode" "$round" | tee -a "$work/results"; done
done
python3 - "$work/results" <<'PY'
import re, statistics, sys
runs = {"off": {}, "on": {}}
for line in open(sys.argv[1]):
    mode, _, round_ = line.split()[:3]
    runs[mode][round_] = float(re.search(r"([0-9.]+) packets/s", line).group(1))
off, on = statistics.median(runs["off"].values()), statistics.median(runs["on"].values())
pairs = sorted(runs["on"][r] / runs["off"][r] for r in runs["off"] if r in runs["on"])
print(f"median: off {off:.0f} packets/s, on {on:.0f} packets/s: on/off = {on / off:.3f}")
print(f"per-round on/off: {', '.join(f'{ratio:.3f}' for ratio in pairs)} (median {statistics.median(pairs):.3f})")
# The rounds' ratios as a sample: their geometric mean and its 95% confidence interval (Student's
# t on the log ratios, rounds taken as independent; ABBA keeps a drift out of them). A criterion
# like "within 5%" is met when the whole interval is above 0.95, not when one median is.
if len(pairs) >= 2:
    import math
    logs = [math.log(ratio) for ratio in pairs]
    mean, half = statistics.mean(logs), statistics.stdev(logs) / math.sqrt(len(logs))
    t_table = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23, 12: 2.18, 15: 2.13, 20: 2.09, 25: 2.06, 30: 2.04, 40: 2.02, 60: 2.00}
    t = t_table[max(df for df in t_table if df <= len(pairs) - 1)] # the nearest listed df below: a slightly wider interval
    print(f"on/off over {len(pairs)} rounds: geometric mean {math.exp(mean):.3f}, 95% CI {math.exp(mean - t * half):.3f}–{math.exp(mean + t * half):.3f}")
cpu = {"off": {}, "on": {}}
for line in open(sys.argv[1]):
    mode, _, round_ = line.split()[:3]
    found = re.search(r"connector ([0-9.]+) \(index ([0-9.]+)\), clients ([0-9.]+), loadgen ([0-9.]+)", line)
    cpu[mode][round_] = [float(group) for group in found.groups()]
med = lambda mode, i: statistics.median(values[i] for values in cpu[mode].values())
print(f"CPU µs/packet (medians): connector off {med('off', 0):.2f}, on {med('on', 0):.2f} (index {med('on', 1):.2f}): "
      f"on/off = {med('on', 0) / med('off', 0):.3f}; clients {med('on', 2):.2f}; loadgen off {med('off', 3):.2f}, on {med('on', 3):.2f}")
flush = {mode: statistics.median(float(re.search(r"mean ([0-9.]+) µs", line).group(1)) for line in open(sys.argv[1]) if line.split()[0] == mode)
         for mode in ("off", "on")}
print(f"journal flush, mean µs (median of runs): off {flush['off']:.0f}, on {flush['on']:.0f}")
PY
python3 - "$work/threads.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
names = sorted({name for run in runs for name in run["us"]})
med = lambda mode, name: statistics.median(run["us"].get(name, 0.0) for run in runs if run["mode"] == mode)
rows = sorted(((med("on", name) - med("off", name), name) for name in names), reverse=True)
print("connector threads, CPU µs/packet (medians, off → on):")
for _, name in rows:
    if max(med("off", name), med("on", name)) >= 0.01:
        print(f"  {name:16} {med('off', name):5.2f} → {med('on', name):5.2f}")
PY
