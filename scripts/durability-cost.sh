#!/usr/bin/env bash
# What the journal's flush per batch costs end to end, and what this disk's sync costs raw.
#
# 1. Raw sync latency of the disk under $TMPDIR (where the connector's journal goes): 300 writes
#    of 300 bytes, each followed by fdatasync, to a file that grows (appended) and to a
#    preallocated, already-synced file (overwritten in place); the same with
#    sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER), which is what sled 0.34's `flush` calls on
#    Linux instead of fdatasync. Prints one JSON line per case (microseconds).
# 2. For each round, durability (true, false) and window: a fresh `m2m-connector run` on a
#    temporary config like scripts/loadgen-demo.sh's (children alice and bob, journal in a temp
#    dir) with `[journal] durable = <d>`, one `m2m-loadgen --role both` run, then the node's
#    journal metrics (flushes, mean flush time, mean events per frame). Prints one JSON line per
#    run: the load generator's line plus `durable`, `round` and `journal`.
#
#   scripts/durability-cost.sh                          # W = 1 and 256, 2 rounds, 5 s each
#   WINDOWS="1 16 256" ROUNDS=1 RUN_SECONDS=3 scripts/durability-cost.sh
#   SKIP_SYNC=1 scripts/durability-cost.sh              # connector runs only
#   SYNC_ONLY=1 scripts/durability-cost.sh              # raw sync latency only
#
# Bounded: RUN_SECONDS at most 60, ROUNDS at most 5; each load generator run is killed if it has
# not exited RUN_SECONDS + 40 s later; each connector gets 20 s to become ready and 10 s to stop.
# Everything on 127.0.0.1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WINDOWS="${WINDOWS:-1 256}"
RUN_SECONDS="${RUN_SECONDS:-5}"
ROUNDS="${ROUNDS:-2}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
if ! [[ "$RUN_SECONDS" =~ ^[0-9]+$ ]] || ((RUN_SECONDS < 1 || RUN_SECONDS > 60)); then
  echo "RUN_SECONDS must be 1..60" >&2
  exit 2
fi
if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 5)); then
  echo "ROUNDS must be 1..5" >&2
  exit 2
fi

work="$(mktemp -d -t m2m-durability-cost.XXXXXX)"
connector_pid=""
stop_connector() {
  stop_pid "$connector_pid" 10
  connector_pid=""
}
cleanup() {
  stop_connector
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== load average: $(cat /proc/loadavg); journal and sync files under $work ($(df -T "$work" | awk 'NR==2 {print $2 " on " $1}'))" >&2

if [[ -z "${SKIP_SYNC:-}" ]]; then
  echo "== raw sync latency: 300 × (write 300 B + sync), appended vs preallocated" >&2
  python3 - "$work" <<'EOF'
import ctypes, json, os, statistics, sys, time

directory = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE, SYNC_FILE_RANGE_WAIT_AFTER = 1, 2, 4
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

def sync_file_range(fd, offset, length):
    flags = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER
    if libc.sync_file_range(fd, offset, length, flags) != 0:
        raise OSError(ctypes.get_errno(), "sync_file_range")

COUNT, SIZE = 300, 300
record = b"x" * SIZE

def run(name, preallocated, sync):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if preallocated:
            os.write(fd, b"\0" * (COUNT * SIZE))
            os.fsync(fd)
        samples = []
        for index in range(COUNT):
            offset = index * SIZE
            started = time.perf_counter_ns()
            os.pwrite(fd, record, offset)
            if sync == "fdatasync":
                os.fdatasync(fd)
            else:
                sync_file_range(fd, offset, SIZE)
            samples.append((time.perf_counter_ns() - started) / 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    samples.sort()
    quantile = lambda q: round(samples[min(len(samples) - 1, int(q * len(samples)))], 1)
    print(json.dumps({
        "sync": sync, "file": "preallocated" if preallocated else "appended", "count": COUNT,
        "bytes": SIZE, "mean_us": round(statistics.mean(samples), 1), "p50_us": quantile(0.5),
        "p90_us": quantile(0.9), "p99_us": quantile(0.99), "max_us": round(samples[-1], 1),
    }), flush=True)

for sync in ("fdatasync", "sync_file_range"):
    for preallocated in (False, True):
        run(f"sync-{sync}-{preallocated}", preallocated, sync)
EOF
fi
if [[ -n "${SYNC_ONLY:-}" ]]; then
  exit 0
fi

echo "== building m2m-connector and m2m-loadgen (release)" >&2
cargo build --release --quiet --bin m2m-connector --bin m2m-loadgen
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
connector="$target_dir/release/m2m-connector"
loadgen="$target_dir/release/m2m-loadgen"


# Starts a connector with `[journal] durable = $1` in $work/run-$2; sets connector_pid, btp_port,
# health_port.
start_run() {
  two_free_ports
  start_connector "$connector" durability-cost "$work/run-$2" "$1" "$btp_port" "$health_port" 20 || exit 1
}

# The node's journal metrics as JSON: flushes, mean flush µs, mean events and bytes per frame.
journal_metrics() {
  curl -fsS --max-time 5 "http://127.0.0.1:$health_port/metrics" | python3 -c '
import json, sys
values = {}
for line in sys.stdin:
    if line.startswith("#") or not line.strip():
        continue
    name, _, value = line.rpartition(" ")
    values[name] = float(value)
def get(name):
    return next((v for k, v in values.items() if k.split("{")[0] == name), 0.0)
flushes = get("journal_flush_seconds_count")
frames = get("journal_frame_events_count")
print(json.dumps({
    "flushes": int(flushes),
    "flush_mean_us": round(get("journal_flush_seconds_sum") / flushes * 1e6, 1) if flushes else None,
    "events_per_frame_mean": round(get("journal_frame_events_sum") / frames, 1) if frames else None,
    "frame_bytes_mean": round(get("journal_frame_size_bytes_sum") / flushes) if flushes else None,
}))'
}

status=0
run_index=0
for round in $(seq "$ROUNDS"); do
  for window in $WINDOWS; do
    for durable in true false; do
      run_index=$((run_index + 1))
      start_run "$durable" "$run_index"
      echo "== round $round, durable = $durable: m2m-loadgen --role both --window $window --seconds $RUN_SECONDS (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      line="$(timeout --kill-after=5 $((RUN_SECONDS + 40)) "$loadgen" --role both --url "ws://127.0.0.1:$btp_port" \
        --window "$window" --seconds "$RUN_SECONDS" --expiry-ms 10000 --threads "$LOADGEN_THREADS")" || status=$?
      metrics="$(journal_metrics || echo null)"
      python3 -c 'import json, sys
line = json.loads(sys.argv[1]) if sys.argv[1] else {}
line.update({"durable": sys.argv[2] == "true", "round": int(sys.argv[3]), "journal": json.loads(sys.argv[4])})
print(json.dumps(line))' "$line" "$durable" "$round" "$metrics"
      if ! kill -0 "$connector_pid" 2>/dev/null; then
        echo "the connector exited during the run; its log:" >&2
        cat "$work/run-$run_index/connector.log" >&2
        exit 1
      fi
      stop_connector
    done
  done
done
exit "$status"
