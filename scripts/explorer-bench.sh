#!/usr/bin/env bash
# Measures the Explorer over a journal of EVENTS events (default 10 million; BENCHMARKS.md,
# "Explorer"): how long `journal replay --projection explorer` takes to build the index, then,
# against a node serving that journal, the latency of packet lookups and filtered pages over
# HTTP (REQUESTS of each kind on one keep-alive connection; p50, p99, max).
#
#   bash scripts/explorer-bench.sh
#   EVENTS=1000000 REQUESTS=200 bash scripts/explorer-bench.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

EVENTS="${EVENTS:-10000000}"
REQUESTS="${REQUESTS:-300}"
work="$(mktemp -d)"
cleanup() {
  [[ -n "${connector_pid:-}" ]] && stop_pid "$connector_pid" 30 || true
  [[ "${KEEP:-0}" == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --bin m2m-connector --example synthetic_traffic_journal
bin="$PWD/target/release/m2m-connector"
echo "== writing $EVENTS events"
target/release/examples/synthetic_traffic_journal "$work/journal" "$EVENTS"
du -sh "$work/journal"
echo "== building the index: journal replay --projection explorer"
/usr/bin/time -f "index build: %e s wall, %U s user, %M KiB max RSS" "$bin" journal replay --projection explorer --dir "$work/journal" | tail -n +1 | head -8
du -sh "$work/explorer-index"

two_free_ports
btp="$btp_port" health="$health_port"
explorer_port="$(free_port)"
cat >"$work/config.toml" <<TOML
[node]
id = "bench"
ilp_address = "test.a"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = $btp
health_port = $health

[explorer]
port = $explorer_port

[journal]
dir = "$work/journal"

[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
credit_limit = 9000000000000000000

[[peers]]
id = "carol"
relation = "child"
asset_code = "USD"
asset_scale = 6
credit_limit = 9000000000000000000

[[peers]]
id = "dave"
relation = "child"
asset_code = "USD"
asset_scale = 6
credit_limit = 9000000000000000000

[[peers]]
id = "bob"
relation = "peer"
asset_code = "USD"
asset_scale = 6
credit_limit = 0
TOML
echo "== starting the node on that journal (Explorer on 127.0.0.1:$explorer_port)"
(cd "$work" && exec env LOG_LEVEL=warn "$bin" run --config "$work/config.toml") >"$work/connector.log" 2>&1 &
connector_pid=$!
for _ in $(seq 1200); do
  curl -fsS --max-time 1 "http://127.0.0.1:$health/health/ready" >/dev/null 2>&1 && break
  kill -0 "$connector_pid" 2>/dev/null || { cat "$work/connector.log"; exit 1; }
  sleep 0.1
done
python3 - "$explorer_port" "$REQUESTS" <<'PY'
import hashlib, http.client, json, random, sys, time
port, requests = int(sys.argv[1]), int(sys.argv[2])
random.seed(7)
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def get(path):
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise SystemExit(f"{path}: {response.status} {body[:200]!r}")
    return elapsed, json.loads(body)
# Wait until the index has caught up with what the node appended at its start.
for _ in range(600):
    _, health = get("/api/health")
    if health["index_lag_events"] == 0:
        break
    time.sleep(0.1)
top = health["index_position"]
_, first = get("/api/events?limit=1")
_, newest = get("/api/events?limit=1&types=PacketPrepared")
packets = newest["events"][0]["packet_id"]
def condition(packet_id):
    fulfillment = hashlib.sha256(b"m2m-bench" + packet_id.to_bytes(8, "big")).digest()
    return hashlib.sha256(fulfillment).hexdigest()
def cursor():
    return random.randint(1000, top)
start_ms = 1_800_000_000_000
kinds = [
    ("packet by id", lambda: f"/api/packets/{random.randint(1, packets - 1)}"),
    ("packet by condition", lambda: f"/api/packets/{condition(random.choice([p for p in [random.randint(1, packets - 1)] if p % 30 not in (7, 17)] or [1]))}"),
    ("page, no filter, newest", lambda: "/api/events?limit=100"),
    ("page, no filter, deep cursor", lambda: f"/api/events?limit=100&cursor={cursor()}"),
    ("page, peer=carol", lambda: f"/api/events?peer=carol&limit=100&cursor={cursor()}"),
    ("page, code=F99", lambda: f"/api/events?code=F99&limit=100&cursor={cursor()}"),
    ("page, peer=alice&direction=in&code=T04", lambda: f"/api/events?peer=alice&direction=in&code=T04&limit=100&cursor={cursor()}"),
    ("page, types=PacketRejected", lambda: f"/api/events?types=PacketRejected&limit=100&cursor={cursor()}"),
    ("page, one second (since/until)", lambda: (lambda t: f"/api/events?since={t}&until={t + 999}&limit=100")(start_ms + random.randint(0, packets) // 1000 * 1000)),
    ("page, destination prefix", lambda: f"/api/events?destination=test.a.bob.42&limit=100&cursor={cursor()}"),
    ("page, destination matching nothing (partial)", lambda: f"/api/events?destination=test.a.carol&limit=100&cursor={cursor()}"),
    ("page, limit=1000, peer=bob", lambda: f"/api/events?peer=bob&limit=1000&cursor={cursor()}"),
]
print(f"index position {top}, {first['total']} events, ~{packets} packets; {requests} requests of each kind, one keep-alive connection")
print(f"{'request':42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'events/page':>12}")
for name, path in kinds:
    samples, sizes = [], []
    for _ in range(requests):
        elapsed, body = get(path())
        samples.append(elapsed)
        sizes.append(len(body.get("events", body.get("events", []))) if isinstance(body, dict) else 0)
    samples.sort()
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"{name:42} {p(0.5):8.2f} {p(0.99):8.2f} {samples[-1]:8.2f} {sum(sizes) / len(sizes):12.1f}")
PY
