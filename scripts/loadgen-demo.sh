#!/usr/bin/env bash
# Loopback throughput of the connector: builds both binaries in release, starts
# `m2m-connector run` on a temporary config (children alice and bob in one asset, a journal in a
# temporary directory), runs `m2m-loadgen --role both` at each window for a few seconds, prints
# one JSON line per window, and stops the connector (on any exit). Everything on 127.0.0.1.
# Each line is the load generator's, plus what the script saw around the run: `load` (1-minute
# load average before the run), `rss_kb` (the connector's VmRSS at ready, before and after the
# run) and `thread_cpu_pct` (CPU per connector thread name during the run, % of one core, from
# /proc/PID/task/*/stat; threads of the same name summed).
#
#   scripts/loadgen-demo.sh                      # W = 1, 16, 256; 5 s each
#   WINDOWS="16 256" RUN_SECONDS=3 scripts/loadgen-demo.sh
#   LOADGEN_THREADS=2 scripts/loadgen-demo.sh    # a 2-worker load generator
#   DURABLE=false scripts/loadgen-demo.sh        # [journal] durable = false
#   BIN_DIR=/tmp/old-target/release scripts/loadgen-demo.sh
#       # measure binaries built elsewhere (e.g. another commit, for an A/B run) instead of building
#   FEATURES=tigerbeetle TIGERBEETLE_REPLICAS=127.0.0.1:3033 LAG_PROJECTION=tigerbeetle \
#     WINDOWS=256 RUN_SECONDS=15 scripts/loadgen-demo.sh
#       # build with the feature, mirror into that server, and sample
#       # projection_lag_events{projection="tigerbeetle"} once a second during each run and after
#       # it until 0 (at most LAG_WAIT_SECONDS, default 120): adds `lag` to the line
#       # (max, seconds from the load generator's exit to 0, the samples)
#   PERF_DIR=/tmp/prof WINDOWS=256 scripts/loadgen-demo.sh
#       # also sample the connector with `perf record -e cpu-clock` (software clock: works where
#       # the VM has no hardware counters) during each run, and write PERF_DIR/w<W>.data plus
#       # PERF_DIR/w<W>.top.txt: the top symbols by self time, and the CPU per thread
#
# Bounded: each run stops issuing after RUN_SECONDS (at most 600) and is killed if it has not
# exited RUN_SECONDS + 40 s later; the connector gets 20 s to become ready and 10 s to stop.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WINDOWS="${WINDOWS:-1 16 256}"
RUN_SECONDS="${RUN_SECONDS:-5}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
DURABLE="${DURABLE:-true}"
FEATURES="${FEATURES:-}"
LAG_PROJECTION="${LAG_PROJECTION:-}"
LAG_WAIT_SECONDS="${LAG_WAIT_SECONDS:-120}"
PERF_DIR="${PERF_DIR:-}"
if [[ -n "$PERF_DIR" ]]; then
  command -v perf >/dev/null || { echo "PERF_DIR needs perf (Debian: apt-get install linux-perf)" >&2; exit 2; }
  mkdir -p "$PERF_DIR"
fi
if ! [[ "$RUN_SECONDS" =~ ^[0-9]+$ ]] || ((RUN_SECONDS < 1 || RUN_SECONDS > 600)); then
  echo "RUN_SECONDS must be 1..600" >&2
  exit 2
fi
if [[ "$DURABLE" != true && "$DURABLE" != false ]]; then
  echo "DURABLE must be true or false" >&2
  exit 2
fi
if ! [[ "$LAG_WAIT_SECONDS" =~ ^[0-9]+$ ]] || ((LAG_WAIT_SECONDS > 600)); then
  echo "LAG_WAIT_SECONDS must be 0..600" >&2
  exit 2
fi

if [[ -n "${BIN_DIR:-}" ]]; then
  # Binaries built elsewhere (another commit's worktree, for an A/B run): used as they are.
  connector="$BIN_DIR/m2m-connector"
  loadgen="$BIN_DIR/m2m-loadgen"
  [[ -x "$connector" && -x "$loadgen" ]] || { echo "BIN_DIR=$BIN_DIR lacks m2m-connector or m2m-loadgen" >&2; exit 2; }
else
  echo "== building m2m-connector and m2m-loadgen (release${FEATURES:+, features $FEATURES})" >&2
  cargo build --release --quiet ${FEATURES:+--features "$FEATURES"} --bin m2m-connector --bin m2m-loadgen
  target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  connector="$target_dir/release/m2m-connector"
  loadgen="$target_dir/release/m2m-loadgen"
fi

work="$(mktemp -d -t m2m-loadgen-demo.XXXXXX)"
connector_pid=""
cleanup() {
  stop_pid "$connector_pid" 10
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

two_free_ports
echo "== starting m2m-connector on 127.0.0.1:$btp_port (health $health_port)" >&2
start_connector "$connector" loadgen-demo "$work" "$DURABLE" "$btp_port" "$health_port" 20 || exit 1

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$connector_pid/status" 2>/dev/null || echo null; }
# "name utime+stime" (clock ticks) per connector thread, one line each.
thread_ticks() {
  for stat in /proc/"$connector_pid"/task/*/stat; do
    sed -E 's/^[0-9]+ \((.*)\) (.*)$/\1\t\2/' "$stat" 2>/dev/null | awk -F'\t' '{split($2, f, " "); print $1 "\t" f[12] + f[13]}'
  done
}
now() { date +%s.%N; }
# The projection's lag (a number), or "null" if /metrics does not have it.
lag() {
  curl -fsS --max-time 2 "http://127.0.0.1:$health_port/metrics" 2>/dev/null |
    awk -v m="projection_lag_events{projection=\"$LAG_PROJECTION\"}" '$1 == m {v = $2} END {print (v == "" ? "null" : v)}'
}
lag_sampler() { # appends "seconds-since-$1 lag" to $2 once a second until killed
  while :; do
    echo "$(awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') $(lag)" >>"$2"
    sleep 1
  done
}

rss_ready="$(rss_kb)"
echo "== connector pid $connector_pid, VmRSS at ready $rss_ready kB" >&2
status=0
run=0
for window in $WINDOWS; do
  run=$((run + 1))
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "== m2m-loadgen --role both --window $window --seconds $RUN_SECONDS --threads $LOADGEN_THREADS (load $load, durable $DURABLE)" >&2
  rss_before="$(rss_kb)"
  thread_ticks >"$work/ticks-before"
  started="$(now)"
  sampler_pid=""
  if [[ -n "$LAG_PROJECTION" ]]; then
    : >"$work/lag-$run"
    lag_sampler "$started" "$work/lag-$run" &
    sampler_pid=$!
  fi
  perf_pid=""
  if [[ -n "$PERF_DIR" ]]; then
    perf record -q -e cpu-clock -F 999 -p "$connector_pid" -o "$PERF_DIR/w$window.data" \
      -- sleep "$RUN_SECONDS" 2>"$PERF_DIR/w$window.record.log" &
    perf_pid=$!
  fi
  line="$(timeout --kill-after=5 $((RUN_SECONDS + 40)) "$loadgen" --role both --url "ws://127.0.0.1:$btp_port" \
    --window "$window" --seconds "$RUN_SECONDS" --expiry-ms 10000 --threads "$LOADGEN_THREADS")" || status=$?
  ended="$(now)"
  thread_ticks >"$work/ticks-after"
  if [[ -n "$perf_pid" ]]; then
    wait "$perf_pid" || true
    {
      echo "# perf record -e cpu-clock -F 999 over ${RUN_SECONDS}s at W=$window; self time"
      echo "## by thread"
      perf report -i "$PERF_DIR/w$window.data" --stdio --sort comm 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
      echo "## top symbols"
      perf report -i "$PERF_DIR/w$window.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -40
    } >"$PERF_DIR/w$window.top.txt" || true # head closes the pipe early
    echo "== profile: $PERF_DIR/w$window.top.txt" >&2
  fi
  rss_after="$(rss_kb)"
  lag_json=null
  if [[ -n "$sampler_pid" ]]; then
    # Keep sampling once a second after the load stops, until the lag is 0 (bounded).
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    while :; do
      value="$(lag)"
      echo "$(awk -v a="$started" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') $value" >>"$work/lag-$run"
      [[ "$value" != 0 ]] || break
      awk -v a="$ended" -v b="$(now)" -v w="$LAG_WAIT_SECONDS" 'BEGIN {exit !(b - a > w)}' && break
      sleep 1
    done
    lag_json="$(python3 - "$work/lag-$run" "$started" "$ended" <<'PY'
import json, sys
samples = [line.split() for line in open(sys.argv[1]) if line.strip()]
samples = [(float(t), None if v == "null" else float(v)) for t, v in samples]
load_s = float(sys.argv[3]) - float(sys.argv[2])
values = [v for _, v in samples if v is not None]
zero_after = next((t for t, v in samples if t >= load_s and v == 0), None)
print(json.dumps({
    "max": max(values) if values else None,
    "at_load_end": next((v for t, v in reversed(samples) if t <= load_s), None),
    "load_seconds": round(load_s, 1),
    "catch_up_seconds": round(zero_after - load_s, 1) if zero_after is not None else None,
    "samples": [[t, v] for t, v in samples],
}))
PY
)"
  fi
  python3 - "$line" "$load" "$rss_ready" "$rss_before" "$rss_after" "$lag_json" \
    "$work/ticks-before" "$work/ticks-after" "$started" "$ended" "$(getconf CLK_TCK)" "$DURABLE" <<'PY'
import json, sys
line, load, ready, before, after, lag, tb, ta, started, ended, tck, durable = sys.argv[1:]
def ticks(path):
    out = {}
    for row in open(path):
        name, _, value = row.rstrip("\n").rpartition("\t")
        if name:
            out[name] = out.get(name, 0) + int(value)
    return out
b, a = ticks(tb), ticks(ta)
wall = float(ended) - float(started)
cpu = {n: round((a[n] - b.get(n, 0)) / int(tck) / wall * 100, 1) for n in a if a[n] - b.get(n, 0) > 0}
record = json.loads(line) if line else {}
num = lambda s: None if s == "null" else int(s)
record.update({
    "durable": durable == "true", "load": load,
    "rss_kb": {"ready": num(ready), "before": num(before), "after": num(after)},
    "thread_cpu_pct": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
})
if lag != "null":
    record["lag"] = json.loads(lag)
print(json.dumps(record))
PY
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
